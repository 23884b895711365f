from __future__ import annotations

from typing import Any

import orjson
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from engagement_site.workspaces.access import workspace_view
from segments import selectors

PROFILES_PER_PAGE = 50
PROFILE_EVENTS_SHOWN = 100
SUMMARY_LENGTH = 140


@workspace_view("segments.view")
def segment_list(request: HttpRequest) -> HttpResponse:
    return render(request, "segments/segment_list.html", {"area": "segments"})


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
    profile = selectors.profile_get(workspace=request.workspace, profile_id=profile_id)
    events = selectors.profile_events_latest(
        workspace=request.workspace, profile=profile, limit=PROFILE_EVENTS_SHOWN
    )
    traits = profile.traits if isinstance(profile.traits, dict) else {}
    return render(
        request,
        "segments/profile_detail.html",
        {
            "area": "profiles",
            "profile": profile,
            "traits": [(key, _display_value(traits[key])) for key in sorted(traits)],
            "events": [
                (event, _properties_summary(event.properties), _compact_json(event.properties))
                for event in events
            ],
            "events_shown": PROFILE_EVENTS_SHOWN,
        },
    )


def _compact_json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _display_value(value: Any) -> str:
    return value if isinstance(value, str) else _compact_json(value)


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
