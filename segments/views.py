from __future__ import annotations

from typing import Any

import orjson
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from engagement_site.workspaces.access import workspace_view
from engagement_site.workspaces.services import AuditContext
from segments import privacy, selectors
from segments.forms import TimelineFilterForm

PROFILES_PER_PAGE = 50
TIMELINE_PAGE_SIZE = 50
TRAIT_CHANGES_SHOWN = 20
PROFILE_LIST_SHOWN = 20
SUMMARY_LENGTH = 140


@workspace_view("segments.view")
def profile_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    profiles = selectors.profile_search(workspace=request.workspace, query=query)
    page = Paginator(profiles, PROFILES_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "segments/profile_list.html",
        {"area": "profiles", "page": page, "query": query},
    )


@workspace_view("segments.view")
def profile_detail(request: HttpRequest, profile_id: int) -> HttpResponse:
    """The profile page; to htmx, only the next rows of its event timeline (the last
    row of each batch fetches the next when it scrolls into view)."""
    workspace = request.workspace
    profile = selectors.profile_get(workspace=workspace, profile_id=profile_id)
    timeline_filter = TimelineFilterForm(request.GET)
    event_name = timeline_filter.event_name
    events, next_cursor = selectors.newest_first_page(
        selectors.profile_events(workspace=workspace, profile=profile, name=event_name),
        time_field="timestamp",
        after=timeline_filter.cursor,
        size=TIMELINE_PAGE_SIZE,
    )
    timeline = {
        "profile": profile,
        "event_name": event_name,
        "events": [
            (event, _properties_summary(event.properties), _compact_json(event.properties))
            for event in events
        ],
        "next_cursor": next_cursor.encode() if next_cursor else "",
        "continued": timeline_filter.cursor is not None,
    }
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "segments/_timeline_rows.html", timeline)

    # The profile page shows what later stages did with the person (read through their
    # selectors; imported here because those apps build on this one).
    from delivery.selectors import profile_messages
    from journeys.selectors import profile_trace

    traits = profile.traits if isinstance(profile.traits, dict) else {}
    trait_changes = selectors.profile_trait_changes(workspace=workspace, profile=profile)
    return render(
        request,
        "segments/profile_detail.html",
        {
            **timeline,
            "area": "profiles",
            "traits": [(key, _display_value(traits[key])) for key in sorted(traits)],
            "identities": list(selectors.profile_identities(workspace=workspace, profile=profile)),
            "merges": list(selectors.profile_merges(workspace=workspace, profile=profile)),
            "trait_changes": [
                (change, _display_optional(change.before), _display_optional(change.after))
                for change in trait_changes[:TRAIT_CHANGES_SHOWN]
            ],
            "trait_changes_shown": TRAIT_CHANGES_SHOWN,
            "event_names": selectors.profile_event_names(workspace=workspace, profile=profile),
            "memberships": list(
                selectors.profile_segment_memberships(workspace=workspace, profile=profile)[
                    :PROFILE_LIST_SHOWN
                ]
            ),
            "journey_trace": profile_trace(workspace=workspace, profile_id=profile.pk)[
                :PROFILE_LIST_SHOWN
            ],
            "profile_messages": list(
                profile_messages(workspace=workspace, profile_id=profile.pk)[:PROFILE_LIST_SHOWN]
            ),
            "shown": PROFILE_LIST_SHOWN,
        },
    )


@workspace_view("segments.export")
def profile_export(request: HttpRequest, profile_id: int) -> HttpResponse:
    """Everything held about the profile, as a JSON file download (audited)."""
    profile = selectors.profile_get(workspace=request.workspace, profile_id=profile_id)
    document = privacy.profile_export(
        workspace=request.workspace, profile=profile, context=AuditContext.from_request(request)
    )
    response = HttpResponse(privacy.profile_export_json(document), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="profile-{profile.pk}.json"'
    return response


@workspace_view("segments.erase")
@require_POST
def profile_erase(request: HttpRequest, profile_id: int) -> HttpResponse:
    profile = selectors.profile_get(workspace=request.workspace, profile_id=profile_id)
    counts = privacy.profile_erase(
        workspace=request.workspace, profile=profile, context=AuditContext.from_request(request)
    )
    messages.success(
        request,
        f"Profile {profile_id} erased with its {counts['events']} "
        f"event{'s' if counts['events'] != 1 else ''}, identities and history.",
    )
    return redirect("profile_list", workspace_slug=request.workspace.slug)


def _compact_json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _display_value(value: Any) -> str:
    return value if isinstance(value, str) else _compact_json(value)


def _display_optional(value: Any) -> str:
    """A trait history value; None is an absent trait (shown as a dash)."""
    return "" if value is None else _display_value(value)


def _properties_summary(properties: Any) -> str:
    """One line for the events table: `key: value` pairs, lists of objects counted."""
    if not isinstance(properties, dict) or not properties:
        return ""
    parts = []
    for key, value in properties.items():
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            shown = f"{len(value)} item{'s' if len(value) != 1 else ''}"
        else:
            shown = _display_value(value)
        parts.append(f"{key}: {shown}")
    summary = " · ".join(parts)
    if len(summary) > SUMMARY_LENGTH:
        summary = summary[: SUMMARY_LENGTH - 1].rstrip() + "…"
    return summary


@workspace_view("segments.view")
def data_quality(request: HttpRequest) -> HttpResponse:
    """Quarantined events (with the reason and the payload as received) and the event
    schemas they are checked against."""
    code = request.GET.get("code", "")
    rejected = selectors.rejected_events(workspace=request.workspace, code=code)
    page = Paginator(rejected, 50).get_page(request.GET.get("page"))
    for item in page.object_list:
        item.payload_text = (
            orjson.dumps(item.payload, option=orjson.OPT_INDENT_2).decode()
            if item.payload is not None
            else item.raw
        )
    return render(
        request,
        "segments/data_quality.html",
        {
            "area": "profiles",
            "page": page,
            "code": code,
            "codes": selectors.rejected_event_codes(workspace=request.workspace),
            "schemas": selectors.event_schemas(workspace=request.workspace),
        },
    )
