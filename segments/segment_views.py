"""Pages of the Segments area: the list (sizes and trends), a segment's page (size over
time, members, where it is used, CSV export), the builder (new / edit, with a live
size estimate), static segments from a CSV, snapshots and deletion."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from engagement_site.workspaces.access import workspace_view
from engagement_site.workspaces.services import AuditContext
from segments import builder, selectors, services
from segments.describe import rule_summary, segment_summary
from segments.evaluation import PreviewTimeout, segment_preview
from segments.exports import segment_members_export
from segments.models import Profile, Segment
from segments.rules import RuleError

MEMBERS_PER_PAGE = 50
SAMPLE_SIZE = 8
SPARKLINE_DAYS = 14
HISTORY_DAYS = 30
INTERVALS = (
    ("60", "every minute"),
    ("300", "every 5 minutes"),
    ("900", "every 15 minutes"),
    ("3600", "every hour"),
    ("86400", "every day"),
)


# --------------------------------------------------------------------------- charts


def _sparkline(values: list[int], *, width: int = 120, height: int = 28) -> str:
    """An SVG polyline's points for a series (empty below two points)."""
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1
    step = width / (len(values) - 1)
    return " ".join(
        f"{index * step:.1f},{height - 2 - (value - low) / span * (height - 4):.1f}"
        for index, value in enumerate(values)
    )


@dataclass
class SizeChart:
    """The segment page's size-over-time chart, drawn as SVG by the template."""

    width: int = 720
    height: int = 180
    points: str = ""
    area: str = ""
    low: int = 0
    high: int = 0
    first_label: str = ""
    last_label: str = ""
    rows: list[Any] = field(default_factory=list)


def _size_chart(rows: list[Any]) -> SizeChart:
    chart = SizeChart(rows=rows)
    if not rows:
        return chart
    values = [row.member_count for row in rows]
    chart.low, chart.high = min(values), max(values)
    top = chart.high or 1
    start, end = rows[0].hour, rows[-1].hour
    seconds = max((end - start).total_seconds(), 1)
    inner_h = chart.height - 24
    coordinates = [
        (
            (row.hour - start).total_seconds() / seconds * chart.width if len(rows) > 1 else 0,
            8 + inner_h - row.member_count / top * inner_h,
        )
        for row in rows
    ]
    if len(coordinates) == 1:
        coordinates.append((chart.width, coordinates[0][1]))
    chart.points = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
    chart.area = f"0,{8 + inner_h} {chart.points} {chart.width},{8 + inner_h}"
    chart.first_label = f"{start:%b %d %H:00}"
    chart.last_label = f"{end:%b %d %H:00}"
    return chart


# --------------------------------------------------------------------------- list / page


@workspace_view("segments.view")
def segment_list(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace
    segments = list(selectors.workspace_segments(workspace=workspace))
    series = selectors.segment_size_series(
        workspace=workspace,
        segment_ids=[segment.pk for segment in segments],
        since=timezone.now() - timedelta(days=SPARKLINE_DAYS),
    )
    names = {segment.pk: segment.name for segment in segments}
    rows = []
    for segment in segments:
        values = series.get(segment.pk, [])
        rows.append(
            {
                "segment": segment,
                "summary": segment_summary(segment, names),
                "sparkline": _sparkline(values),
                "trend": (values[-1] - values[0]) if len(values) > 1 else 0,
            }
        )
    return render(
        request,
        "segments/segment_list.html",
        {"area": "segments", "rows": rows, "segments": segments},
    )


@workspace_view("segments.view")
def segment_detail(request: HttpRequest, segment_id: int) -> HttpResponse:
    workspace = request.workspace
    segment = selectors.segment_get(workspace=workspace, segment_id=segment_id)
    members = selectors.segment_members(workspace=workspace, segment=segment)
    page = Paginator(members, MEMBERS_PER_PAGE).get_page(request.GET.get("page"))
    names = selectors.segment_names(workspace=workspace)
    sizes = list(
        selectors.segment_sizes(
            workspace=workspace,
            segment=segment,
            since=timezone.now() - timedelta(days=HISTORY_DAYS),
        )
    )
    return render(
        request,
        "segments/segment_detail.html",
        {
            "area": "segments",
            "segment": segment,
            "page": page,
            "summary": segment_summary(segment, names),
            "chart": _size_chart(sizes),
            "recent_sizes": list(reversed(sizes[-24:])),
            "used_by": selectors.segment_usages(workspace=workspace, segment=segment),
            "computing": segment.kind == Segment.Kind.DYNAMIC and segment.last_computed_at is None,
            "definition": orjson.dumps(segment.definition, option=orjson.OPT_INDENT_2).decode(),
        },
    )


@workspace_view("segments.export")
def segment_export(request: HttpRequest, segment_id: int) -> StreamingHttpResponse:
    """The current members as CSV, streamed; the export is audited."""
    segment = selectors.segment_get(workspace=request.workspace, segment_id=segment_id)
    return segment_members_export(
        request=request,
        workspace=request.workspace,
        segment=segment,
        context=AuditContext.from_request(request),
    )


@workspace_view("segments.edit")
@require_POST
def segment_delete(request: HttpRequest, segment_id: int) -> HttpResponse:
    segment = selectors.segment_get(workspace=request.workspace, segment_id=segment_id)
    try:
        services.segment_delete(segment=segment, context=AuditContext.from_request(request))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect(
            "segment_detail", workspace_slug=request.workspace.slug, segment_id=segment_id
        )
    messages.success(request, f"Deleted the segment {segment.name}.")
    return redirect("segment_list", workspace_slug=request.workspace.slug)


@workspace_view("segments.edit")
@require_POST
def segment_snapshot(request: HttpRequest, segment_id: int) -> HttpResponse:
    segment = selectors.segment_get(workspace=request.workspace, segment_id=segment_id)
    name = request.POST.get("name") or f"{segment.name} ({timezone.now():%Y-%m-%d %H:%M})"
    try:
        snapshot = services.static_segment_snapshot(
            segment=segment, name=name, context=AuditContext.from_request(request)
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect(
            "segment_detail", workspace_slug=request.workspace.slug, segment_id=segment_id
        )
    messages.success(
        request, f"Saved {snapshot.member_count} members as the static segment {snapshot.name}."
    )
    return redirect("segment_detail", workspace_slug=request.workspace.slug, segment_id=snapshot.pk)


@workspace_view("segments.edit")
@require_http_methods(["GET", "POST"])
def segment_static_new(request: HttpRequest) -> HttpResponse:
    """A static segment from a CSV of user ids, emails, anonymous ids or profile ids."""
    errors: dict[str, list[str]] = {}
    values = {"name": "", "description": ""}
    if request.method == "POST":
        values = {key: request.POST.get(key, "").strip() for key in values}
        upload = request.FILES.get("file")
        if upload is None:
            errors["file"] = ["Choose a CSV file."]
        else:
            try:
                segment, report = services.static_segment_create_from_csv(
                    workspace=request.workspace,
                    name=values["name"],
                    description=values["description"],
                    data=upload.read(services.MAX_STATIC_CSV_BYTES + 1),
                    filename=upload.name,
                    context=AuditContext.from_request(request),
                )
            except ValidationError as error:
                errors = (
                    error.message_dict if hasattr(error, "error_dict") else {"file": error.messages}
                )
            else:
                text = f"{report.matched} of {report.rows - report.duplicates} identifiers matched a profile"
                if report.unmatched:
                    text += f"; {report.unmatched} did not (e.g. {', '.join(report.unmatched_examples)})"
                messages.success(request, text + ".")
                return redirect(
                    "segment_detail", workspace_slug=request.workspace.slug, segment_id=segment.pk
                )
    return render(
        request,
        "segments/segment_static_new.html",
        {
            "area": "segments",
            "errors": errors,
            "values": values,
            "columns": services.IDENTIFIER_COLUMNS,
        },
        status=400 if errors else 200,
    )


# --------------------------------------------------------------------------- builder


@dataclass
class Preview:
    count: int | None = None
    total: int = 0
    sample: list[Profile] = field(default_factory=list)
    summary: str = ""
    error: str = ""
    error_path: str = ""
    elapsed_ms: int = 0

    @property
    def percent(self) -> str:
        if not self.total or self.count is None:
            return "0"
        share = 100 * self.count / self.total
        return f"{share:.1f}" if share < 10 else f"{share:.0f}"


def _preview(request: HttpRequest, draft: dict[str, Any], *, segment: Segment | None) -> Preview:
    workspace = request.workspace
    definition, paths = builder.draft_to_definition(draft)
    names = selectors.segment_names(workspace=workspace)
    preview = Preview(total=selectors.profile_count(workspace=workspace))
    started = time.perf_counter()
    try:
        # Parsed once; the check also refuses a rule naming the segment being edited.
        rule = services.segment_definition_check(
            workspace=workspace, definition=definition, segment=segment
        )
        preview.summary = rule_summary(rule, segment_names=names)
        count, sample_ids = segment_preview(
            segment_or_definition=rule,
            workspace=workspace,
            sample_size=SAMPLE_SIZE,
        )
    except RuleError as error:
        preview.error = str(error)
        preview.error_path = builder.error_draft_path(str(error), paths)
    except PreviewTimeout as error:
        preview.error = f"{error} Narrow the rule (a window, a filter) and try again."
    else:
        preview.count = count
        preview.sample = selectors.profiles_by_ids(workspace=workspace, profile_ids=sample_ids)
    preview.elapsed_ms = round((time.perf_counter() - started) * 1000)
    return preview


def _node_views(draft: dict[str, Any]) -> dict[str, Any]:
    """The draft with each node's path and display values, for the templates."""

    def window_view(window: Any) -> dict[str, Any]:
        window = window if isinstance(window, dict) else {"ever": True}
        between = window.get("between") or ["", ""]
        return {
            "kind": "last_days"
            if "last_days" in window
            else "between"
            if "between" in window
            else "ever",
            "days": window.get("last_days", 30),
            "start": str(between[0])[:10],
            "end": str(between[1])[:10] if len(between) > 1 else "",
        }

    def filters_view(filters: Any) -> list[dict[str, Any]]:
        return [
            {
                "property": item.get("property", ""),
                "op": item.get("op", "eq"),
                "value": builder.format_value(item.get("value")),
            }
            for item in (filters if isinstance(filters, list) else [])
            if isinstance(item, dict)
        ]

    def convert(node: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        if node.get("type") == "group":
            return {
                "kind": "group",
                "path": path,
                "depth": depth,
                "match": node.get("match", "all"),
                "children": [
                    convert(child, f"{path}-{index}", depth + 1)
                    for index, child in enumerate(node.get("rules", []))
                ],
            }
        kind = node.get("type")
        view: dict[str, Any] = {"kind": "leaf", "type": kind, "path": path, "depth": depth}
        if kind == "attribute":
            view.update(
                target=node.get("column") or "trait",
                trait=node.get("trait") or "",
                op=node.get("op", "eq"),
                value=builder.format_value(node.get("value")),
            )
        elif kind == "event_count":
            view.update(
                event=node.get("event", ""),
                op=node.get("op", "gte"),
                count=node.get("count", 1),
                window=window_view(node.get("window")),
                filters=filters_view(node.get("filters")),
            )
        elif kind == "sequence":
            first, then = node.get("first") or {}, node.get("then") or {}
            hours = node.get("within_hours", 24)
            in_days = isinstance(hours, int | float) and hours >= 24 and hours % 24 == 0
            view.update(
                event=first.get("event", ""),
                filters=filters_view(first.get("filters")),
                then=then.get("event", ""),
                then_filters=filters_view(then.get("filters")),
                within=builder.format_value(int(hours // 24) if in_days else hours),
                unit="days" if in_days else "hours",
                negate=bool(node.get("negate")),
                anchor=node.get("anchor", "any"),
                window=window_view(node.get("window")),
            )
        elif kind == "streak":
            view.update(
                event=node.get("event", ""),
                filters=filters_view(node.get("filters")),
                days=node.get("days", 7),
                since_signup=bool(node.get("since_signup")),
                ongoing=bool(node.get("ongoing")),
            )
        elif kind == "recency":
            op = node.get("op", "within_last_days")
            value = node.get("value")
            view.update(
                event=node.get("event", ""),
                filters=filters_view(node.get("filters")),
                which=node.get("which", "last"),
                op=op,
                days=value if op.endswith("within_last_days") else 30,
                date="" if op.endswith("within_last_days") else str(value or "")[:10],
            )
        elif kind == "membership":
            view.update(segment_id=node.get("segment_id"), is_member=node.get("in", True))
        elif kind == "computed_trait":
            trait = node.get("trait", "value_tier")
            value = node.get("value")
            is_tier = trait == "value_tier"
            view.update(
                trait=trait,
                is_tier=is_tier,
                op=node.get("op", "eq" if is_tier else "gte"),
                # eq / ne pick one tier, in ticks several; a number goes in a text box.
                tier=value if isinstance(value, str) else "",
                tiers=value if isinstance(value, list) else [value],
                value="" if value is None or is_tier else builder.format_value(value),
                hint=builder.COMPUTED_TRAIT_HINTS.get(trait, ""),
            )
        return view

    return convert(draft, "r", 0)


def _builder_context(
    request: HttpRequest, draft: dict[str, Any], *, segment: Segment | None
) -> dict[str, Any]:
    workspace = request.workspace
    event_names = selectors.workspace_event_names(workspace=workspace)
    used_events = sorted(_draft_events(draft) | set(event_names[:50]))
    return {
        **builder.CHOICES,
        "tree": _node_views(draft),
        "leaf_types": builder.LEAF_LABELS,
        "event_names": event_names,
        "trait_keys": selectors.workspace_trait_keys(workspace=workspace),
        "event_properties": selectors.workspace_event_properties(
            workspace=workspace, names=used_events
        ),
        "other_segments": [
            other
            for other in selectors.workspace_segments(workspace=workspace)
            if segment is None or other.pk != segment.pk
        ],
        "builder_url": reverse("segment_builder", kwargs={"workspace_slug": workspace.slug})
        + (f"?segment={segment.pk}" if segment else ""),
    }


def _draft_events(draft: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    stack = [draft]
    while stack:
        node = stack.pop()
        if node.get("type") == "group":
            stack.extend(node.get("rules", []))
            continue
        for key in ("event",):
            if isinstance(node.get(key), str):
                found.add(node[key])
        for key in ("first", "then"):
            if isinstance(node.get(key), dict) and isinstance(node[key].get("event"), str):
                found.add(node[key]["event"])
    return found


def _builder_page(
    request: HttpRequest,
    *,
    segment: Segment | None,
    draft: dict[str, Any],
    values: dict[str, Any],
    errors: dict[str, list[str]],
) -> HttpResponse:
    context = _builder_context(request, draft, segment=segment)
    context.update(
        area="segments",
        segment=segment,
        values=values,
        errors=errors,
        preview=_preview(request, draft, segment=segment),
        templates=builder.SEGMENT_TEMPLATES,
        intervals=_intervals(values.get("interval", "300")),
    )
    return render(request, "segments/segment_builder.html", context, status=400 if errors else 200)


def _intervals(current: str) -> tuple[tuple[str, str], ...]:
    if current in dict(INTERVALS) or not str(current).isdigit():
        return INTERVALS
    return ((str(current), f"every {current} seconds"), *INTERVALS)


def _save(
    request: HttpRequest, *, segment: Segment | None
) -> tuple[Segment | None, dict[str, Any], dict[str, Any], dict[str, list[str]]]:
    draft = builder.draft_from_post(request.POST)
    definition, _ = builder.draft_to_definition(draft)
    values = {
        "name": request.POST.get("name", "").strip(),
        "description": request.POST.get("description", "").strip(),
        "interval": request.POST.get("interval", "300").strip(),
    }
    errors: dict[str, list[str]] = {}
    interval = int(values["interval"]) if values["interval"].isdigit() else values["interval"]
    context = AuditContext.from_request(request)
    try:
        if segment is None:
            segment = services.segment_create(
                workspace=request.workspace,
                name=values["name"],
                description=values["description"],
                definition=definition,
                recompute_interval_seconds=interval,
                context=context,
            )
        else:
            segment = services.segment_update(
                segment=segment,
                context=context,
                name=values["name"],
                description=values["description"],
                definition=definition,
                recompute_interval_seconds=interval,
            )
    except RuleError as error:
        errors["definition"] = [str(error)]
    except ValidationError as error:
        errors = error.message_dict if hasattr(error, "error_dict") else {"form": error.messages}
    return (None if errors else segment), draft, values, errors


@workspace_view("segments.edit")
@require_http_methods(["GET", "POST"])
def segment_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        saved, draft, values, errors = _save(request, segment=None)
        if saved is not None:
            messages.success(request, f"Saved {saved.name}; its members are being computed.")
            return redirect(
                "segment_detail", workspace_slug=request.workspace.slug, segment_id=saved.pk
            )
        return _builder_page(request, segment=None, draft=draft, values=values, errors=errors)
    template = builder.SEGMENT_TEMPLATES.get(request.GET.get("template", ""))
    if template:
        draft = builder.draft_from_definition(template["definition"])
        values = {
            "name": template["name"],
            "description": template["description"],
            "interval": "300",
        }
    else:
        draft = builder.blank_draft()
        values = {"name": "", "description": "", "interval": "300"}
    return _builder_page(request, segment=None, draft=draft, values=values, errors={})


@workspace_view("segments.edit")
@require_http_methods(["GET", "POST"])
def segment_edit(request: HttpRequest, segment_id: int) -> HttpResponse:
    segment = selectors.segment_get(workspace=request.workspace, segment_id=segment_id)
    if segment.kind != Segment.Kind.DYNAMIC:
        messages.error(request, "A static segment has no rule to edit.")
        return redirect(
            "segment_detail", workspace_slug=request.workspace.slug, segment_id=segment.pk
        )
    if request.method == "POST":
        saved, draft, values, errors = _save(request, segment=segment)
        if saved is not None:
            messages.success(request, f"Saved {saved.name}.")
            return redirect(
                "segment_detail", workspace_slug=request.workspace.slug, segment_id=saved.pk
            )
        return _builder_page(request, segment=segment, draft=draft, values=values, errors=errors)
    values = {
        "name": segment.name,
        "description": segment.description,
        "interval": str(segment.recompute_interval_seconds),
    }
    draft = builder.draft_from_definition(segment.definition)
    return _builder_page(request, segment=segment, draft=draft, values=values, errors={})


@workspace_view("segments.edit")
@require_POST
def segment_builder(request: HttpRequest) -> HttpResponse:
    """htmx: with an action, the re-rendered rule tree (and the preview, out of band);
    without, the preview only (size, sample, summary, errors)."""
    segment = None
    if request.GET.get("segment", "").isdigit():
        segment = selectors.segment_get(
            workspace=request.workspace, segment_id=int(request.GET["segment"])
        )
    draft = builder.draft_from_post(request.POST)
    action = request.POST.get("action", "")
    preview = _preview(
        request, builder.draft_apply(draft, action) if action else draft, segment=segment
    )
    if not action:
        return render(request, "segments/_builder_preview.html", {"preview": preview})
    context = _builder_context(request, draft, segment=segment)
    context.update(preview=preview, oob=True)
    return render(request, "segments/_builder_tree.html", context)
