"""The builder's inspector: a node's settings as a server-rendered form (htmx).

The canvas POSTs a node (`node`: its JSON, with its id) and the other nodes of the
draft (`others`: [{"id", "type", "summary"}]) to `inspector_form`; the fragment's form
then posts itself to `inspector_apply` on every change (hidden `node_id`, `node_type`,
`others`, and `action` for a row added, removed or moved). Both answer the form and,
last, <script type="application/json" id="inspector-result"> holding
{"node", "valid", "errors", "summary", "ports"}, which the canvas reads after each swap.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from engagement_site.workspaces.access import member_can, workspace_view
from journeys import editor, inspector_forms, selectors
from journeys.inspector_forms import References

MAX_OTHERS = 500
EVENT_HELP = {
    "trigger": "People enter when your app sends this event (track call).",
    "wait": "They go on through the Event exit as soon as they do it.",
    "goal": "The conversion event, e.g. order_completed.",
}


class BadRequest(ValueError):
    """A request the inspector cannot read; the message says why (answered as 400)."""


def _post_only(request: HttpRequest) -> HttpResponse | None:
    if request.method != "POST":
        return HttpResponseNotAllowed(
            ["POST"],
            content="The inspector takes a POST with the node's JSON in `node`.",
            content_type="text/plain; charset=utf-8",
        )
    return None


def _bad_request(message: str) -> HttpResponse:
    return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")


def _read_node(raw: str | None) -> dict[str, Any]:
    if not raw:
        raise BadRequest("Send the node's JSON in the `node` field.")
    try:
        node = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"`node` is not valid JSON: {error}") from None
    if not isinstance(node, dict):
        raise BadRequest("`node` must be a JSON object.")
    if node.get("type") not in inspector_forms.NODE_TYPES:
        raise BadRequest(
            f"`node` has an unknown type {node.get('type')!r}; "
            f"one of {', '.join(inspector_forms.NODE_TYPES)}."
        )
    if not isinstance(node.get("id"), str) or not node["id"]:
        raise BadRequest("`node` needs its id.")
    return node


def _read_others(raw: str | None, *, journey, node_id: str) -> list[dict[str, str]]:
    """The other nodes as the canvas sent them, else those of the saved draft."""
    if raw is None or raw == "":
        draft = getattr(journey, "draft", None)  # a missing one-to-one raises AttributeError
        definition = draft.definition if draft is not None else {}
        items = [
            {"id": node.get("id"), "type": node.get("type"), "summary": editor.node_summary(node)}
            for node in (definition or {}).get("nodes", [])
            if isinstance(node, dict)
        ]
    else:
        try:
            items = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise BadRequest(f"`others` is not valid JSON: {error}") from None
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise BadRequest("`others` must be a JSON list of {id, type, summary} objects.")
    return [
        {
            "id": str(item.get("id", "")),
            "type": str(item.get("type", "")),
            "summary": str(item.get("summary", "")),
        }
        for item in items[:MAX_OTHERS]
        if item.get("id") and str(item.get("id")) != node_id
    ]


def _template_preview(*, workspace, template) -> dict[str, Any]:
    """What the picked template says, rendered for a sample profile (one query)."""
    from content.rendering import TemplateRenderError, build_context, html_to_text, render_content

    version = template.current_version
    preview: dict[str, Any] = {"template": template, "channel": template.channel}
    if version is None:
        return preview
    context = build_context(
        workspace=workspace,
        profile={
            "id": 0,
            "user_id": "sample-user",
            "email": "sam.sample@example.com",
            "phone": "+15555550123",
            "locale": "en",
            "time_zone": "UTC",
            "traits": {"first_name": "Sam", "last_name": "Sample"},
        },
        journey={"id": 0, "name": "Preview journey", "version": 1},
    )
    try:
        rendered = render_content(
            channel=template.channel, content=version.content, locale="", context=context
        )
    except TemplateRenderError as error:
        preview["error"] = str(error)
        return preview
    fields = rendered.fields
    preview["fields"] = fields
    if template.channel == "email":
        text = fields.get("text") or html_to_text(fields.get("html", ""))
        preview["excerpt"] = " ".join(text.split())[:180]
        html = fields.get("html", "")
        # A thumbnail, not a reader: only reasonably small emails are framed.
        preview["html"] = html if len(html) < 200_000 else ""
    return preview


def _context(request: HttpRequest, *, journey, node: dict, others: list[dict]) -> dict[str, Any]:
    from content.selectors import template_get, workspace_templates
    from journeys.inspector_selectors import event_name_suggestions
    from segments.selectors import workspace_segments, workspace_trait_keys

    workspace = request.workspace
    templates = list(
        workspace_templates(workspace=workspace, include_archived=True)
        .select_related(None)
        .only("pk", "name", "channel", "archived_at", "updated_at")
    )
    segments = list(workspace_segments(workspace=workspace).only("pk", "name", "kind"))
    refs = References(
        templates={template.pk: template for template in templates},
        segments={segment.pk: segment for segment in segments},
    )
    errors = inspector_forms.check_node(node, refs=refs, others=others)
    names = {
        "templates": {template.pk: template.name for template in templates},
        "segments": {segment.pk: segment.name for segment in segments},
    }
    result = {
        "node": node,
        "valid": not errors,
        "errors": [message for _, message in errors],
        "summary": editor.node_summary(node, names=names),
        "ports": editor.ports(node),
    }
    shown_errors = inspector_forms.field_errors(errors)
    kind = node.get("type")
    context: dict[str, Any] = {
        "journey": journey,
        "node": node,
        "node_id": node.get("id", ""),
        "node_type": kind,
        "title": inspector_forms.NODE_TITLES.get(kind, "Node"),
        "others_json": orjson.dumps(others).decode(),
        "can_edit": member_can(request, "journeys.edit"),
        "apply_url": reverse(
            "journey_inspector_apply",
            kwargs={"workspace_slug": workspace.slug, "journey_id": journey.pk},
        ),
        "event_names_url": reverse(
            "journey_event_names", kwargs={"workspace_slug": workspace.slug}
        ),
        "e": shown_errors,
        "has_errors": bool(errors),
        "result": result,
        "operators": inspector_forms.OPERATORS,
        "units": [unit for unit, _ in inspector_forms.UNITS],
        "time_zones": inspector_forms.time_zones(),
        "channel_labels": inspector_forms.CHANNEL_LABELS,
    }
    part = node.get(kind) if kind in ("trigger", "wait", "condition", "action") else None
    part = part if isinstance(part, dict) else {}
    context["part"] = part
    sub = part.get("kind", "")
    context["sub"] = sub

    def picker(items, selected, label):
        """Options of a picker; a selected id the workspace does not offer stays shown
        (as unknown) so the form says what the node holds."""
        options = [
            {"value": item.pk, "label": item.name, "selected": item.pk == selected}
            for item in items
        ]
        if selected and not any(option["selected"] for option in options):
            options.append(
                {"value": selected, "label": f"Unavailable {label} #{selected}", "selected": True}
            )
        return options

    def template_options(channel, selected):
        return picker(
            [t for t in templates if t.channel == channel and t.archived_at is None],
            selected,
            "template",
        )

    uses_events = (
        (kind == "trigger" and sub == "event")
        or (kind == "wait" and sub == "event")
        or kind == "goal"
    )
    if uses_events:
        owner = node if kind == "goal" else part
        prefix = "" if kind == "goal" else f"{kind}_"
        context["event_names"] = event_name_suggestions(workspace=workspace)
        context["event_value"] = owner.get("event", "")
        context["event_errors"] = shown_errors.get(f"{prefix}event", [])
        context["event_help"] = EVENT_HELP[kind]
    filters_owner = {"trigger": part, "wait": part, "condition": part, "goal": node}.get(kind)
    if filters_owner is not None:
        prefix = f"{kind}_" if kind in ("trigger", "wait", "condition") else ""
        context["filter_rows"] = inspector_forms.filter_rows(
            filters_owner.get("filters", []), shown_errors, prefix
        )
        context["can_add_filter"] = len(context["filter_rows"]) < inspector_forms.MAX_FILTERS

    if kind == "trigger":
        context["kinds"] = inspector_forms.TRIGGER_KINDS
        if sub in ("segment", "schedule"):
            context["segment_options"] = picker(segments, part.get("segment_id"), "segment")
        if sub == "schedule":
            zone = part.get("time_zone") or "UTC"
            context["schedule_mode"] = (
                "once" if part.get("at") or not part.get("cron") else "repeat"
            )
            context["at_local"] = inspector_forms.local_datetime(part.get("at"), zone)
            context["cron_hint"] = inspector_forms.cron_hint(part.get("cron") or "")
    elif kind == "wait":
        context["kinds"] = inspector_forms.WAIT_KINDS
        if sub == "duration":
            context["amount"], context["unit"] = inspector_forms.split_duration(part.get("seconds"))
        elif sub == "until_time":
            context.update(inspector_forms.wait_until_time_fields(part))
        elif sub == "until_date":
            context["at_local"] = inspector_forms.local_datetime(part.get("at"), "UTC")
        elif sub in ("event", "segment"):
            context["timeout_amount"], context["timeout_unit"] = inspector_forms.split_duration(
                part.get("timeout_seconds")
            )
            if sub == "segment":
                context["segment_options"] = picker(segments, part.get("segment_id"), "segment")
    elif kind == "condition":
        context["kinds"] = inspector_forms.CONDITION_KINDS
        if sub == "rule":
            shown = inspector_forms.rule_rows(part.get("rule"))
            if shown is None:
                context["rule_as_json"] = True
                context["rule_json"] = orjson.dumps(
                    part.get("rule"), option=orjson.OPT_INDENT_2
                ).decode()
            else:
                context["match"], rows = shown
                for index, row in enumerate(rows):
                    row["index"] = index
                    row["takes_value"] = row["op"] not in ("exists", "not_exists")
                    row["errors"] = shown_errors.get(f"condition_rule_{index}_trait", [])
                context["rule_rows"] = rows
            context["columns"] = [
                ("trait", "Trait"),
                *((c, c.replace("_", " ").capitalize()) for c in inspector_forms.PROFILE_COLUMNS),
            ]
            context["trait_keys"] = workspace_trait_keys(workspace=workspace)[:200]
        elif sub == "engagement":
            context["message_nodes"] = inspector_forms.message_nodes(others)
            context["engagements"] = inspector_forms.ENGAGEMENT_LABELS
    elif kind == "split":
        context["variant_rows"] = inspector_forms.variant_rows(node, shown_errors)
        context["can_add_variant"] = len(context["variant_rows"]) < inspector_forms.MAX_VARIANTS
        holdout = node.get("holdout_percent")
        context["holdout"] = (
            ""
            if holdout is None
            else f"{holdout:g}"
            if isinstance(holdout, int | float)
            else holdout
        )
    elif kind == "action":
        if sub in ("message", "webhook"):
            channel = part.get("channel", "email") if sub == "message" else "webhook"
            context["channel"] = channel
            context["channels"] = [
                (c, inspector_forms.CHANNEL_LABELS[c]) for c in inspector_forms.MESSAGE_CHANNELS
            ]
            context["channel_noun"] = inspector_forms.CHANNEL_NOUNS.get(channel, "a")
            context["template_options"] = template_options(channel, part.get("template_id"))
            chosen = refs.templates.get(part.get("template_id"))
            if (
                chosen is not None
                and chosen.channel == channel
                and not shown_errors.get("action_template_id")
            ):
                full = template_get(workspace=workspace, template_id=chosen.pk)
                context["preview"] = _template_preview(workspace=workspace, template=full)
                context["template_url"] = reverse(
                    "content_template_edit",
                    kwargs={"workspace_slug": workspace.slug, "template_id": chosen.pk},
                )
            if sub == "message":
                variant_templates = part.get("variant_templates") or {}
                context["variant_template_rows"] = [
                    {
                        "index": index,
                        "key": key,
                        "options": template_options(channel, template_id),
                        "errors": shown_errors.get(f"action_variant_templates_{key}_key", [])
                        + shown_errors.get(f"action_variant_templates_{key}", []),
                    }
                    for index, (key, template_id) in enumerate(
                        variant_templates.items() if isinstance(variant_templates, dict) else []
                    )
                ]
        elif sub == "update_attribute":
            value = part.get("value")
            context["value_text"] = "null" if value is None else inspector_forms.format_value(value)
            context["trait_keys"] = workspace_trait_keys(workspace=workspace)[:200]
        elif sub == "segment":
            context["segment_options"] = picker(
                [segment for segment in segments if segment.kind == "static"],
                part.get("segment_id"),
                "segment",
            )
    elif kind == "fallback":
        chain = [step for step in node.get("chain") or [] if isinstance(step, dict)]
        context["chain_rows"] = [
            {
                "index": index,
                "channel": step.get("channel", ""),
                "options": template_options(step.get("channel", ""), step.get("template_id")),
                "noun": inspector_forms.CHANNEL_NOUNS.get(step.get("channel", ""), "a"),
                "first": index == 0,
                "last": index == len(chain) - 1,
                "errors": shown_errors.get(f"chain_{index}_template_id", []),
            }
            for index, step in enumerate(chain)
        ]
        context["channels"] = [
            (c, inspector_forms.CHANNEL_LABELS[c]) for c in inspector_forms.FALLBACK_CHANNELS
        ]
        context["can_add_step"] = len(chain) < inspector_forms.MAX_CHAIN
        context["can_remove_step"] = len(chain) > inspector_forms.MIN_CHAIN
        context["within_amount"], context["within_unit"] = inspector_forms.split_duration(
            node.get("within_seconds")
        )
    elif kind == "goal":
        context["window_amount"], context["window_unit"] = inspector_forms.split_duration(
            node.get("window_seconds")
        )
    return context


def _answer(request: HttpRequest, *, journey, node: dict, others: list[dict]) -> HttpResponse:
    context = _context(request, journey=journey, node=node, others=others)
    return render(request, "journeys/inspector/panel.html", context)


@workspace_view("journeys.view")
def inspector_form(request: HttpRequest, journey_id: int) -> HttpResponse:
    refused = _post_only(request)
    if refused is not None:
        return refused
    journey = selectors.journey_get(workspace=request.workspace, journey_id=journey_id)
    try:
        node = _read_node(request.POST.get("node"))
        others = _read_others(request.POST.get("others"), journey=journey, node_id=node["id"])
    except BadRequest as error:
        return _bad_request(str(error))
    return _answer(request, journey=journey, node=node, others=others)


@workspace_view({"POST": "journeys.edit"})
def inspector_apply(request: HttpRequest, journey_id: int) -> HttpResponse:
    refused = _post_only(request)
    if refused is not None:
        return refused
    journey = selectors.journey_get(workspace=request.workspace, journey_id=journey_id)
    node_type = request.POST.get("node_type", "")
    node_id = request.POST.get("node_id", "")
    if node_type not in inspector_forms.NODE_TYPES or not node_id:
        return _bad_request(
            "Send the form's `node_id` and `node_type` "
            f"(one of {', '.join(inspector_forms.NODE_TYPES)})."
        )
    try:
        others = _read_others(request.POST.get("others"), journey=journey, node_id=node_id)
    except BadRequest as error:
        return _bad_request(str(error))
    node = inspector_forms.node_from_post(request.POST, node_type=node_type, node_id=node_id)
    return _answer(request, journey=journey, node=node, others=others)


@workspace_view("journeys.view")
def event_names(request: HttpRequest) -> HttpResponse:
    from journeys.inspector_selectors import event_name_suggestions

    query = request.GET.get("q", "")[:200]
    return JsonResponse({"names": event_name_suggestions(workspace=request.workspace, query=query)})
