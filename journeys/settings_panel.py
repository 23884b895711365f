"""The builder's journey settings (journeys.nodes.JourneySettings): re-entry, entry
limit, conversion goal, frequency cap, quiet hours, send rate, topic, shadow mode and
transactional, as a server-rendered form in a dialog (htmx).

POST `settings` (the draft's settings JSON) renders the form; every change POSTs the
form back (`apply=1`) and the answer ends with `<script type="application/json"
id="journey-settings-result">{"settings", "valid", "errors"}`, which the builder
stores in the draft it saves."""

from __future__ import annotations

import json
import zoneinfo

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST
from pydantic import ValidationError

from engagement_site.workspaces.access import member_can, workspace_view
from journeys import nodes, selectors
from journeys.inspector_forms import UNITS, duration_seconds, split_duration

REENTRY = (
    ("never", "Once: never again"),
    ("after_days", "Again after some days"),
    ("always", "Every time the trigger happens"),
)


def _settings_from_form(post) -> dict:
    """The settings JSON the form describes (possibly invalid; pydantic says why)."""
    settings: dict = {}
    mode = post.get("reentry_mode", "never")
    settings["reentry"] = {"mode": mode}
    if mode == "after_days":
        days = post.get("reentry_days", "").strip()
        settings["reentry"]["days"] = int(days) if days.isdigit() else None
    limit = post.get("entry_limit", "").strip()
    if limit:
        settings["entry_limit"] = int(limit) if limit.isdigit() else limit
    goal_event = post.get("goal_event", "").strip()
    if goal_event:
        settings["goal"] = {
            "event": goal_event,
            "window_seconds": duration_seconds(
                post.get("goal_amount", ""), post.get("goal_unit", "days")
            ),
        }
    cap = post.get("cap_messages", "").strip()
    if cap:
        settings["frequency_cap"] = {
            "messages": int(cap) if cap.isdigit() else cap,
            "per_seconds": duration_seconds(
                post.get("cap_amount", ""), post.get("cap_unit", "days")
            ),
        }
    start, end = post.get("quiet_start", "").strip(), post.get("quiet_end", "").strip()
    if start or end:
        settings["quiet_hours"] = {
            "start": start or None,
            "end": end or None,
            "fallback_time_zone": post.get("quiet_time_zone", "UTC") or "UTC",
        }
    rate = post.get("send_rate_per_minute", "").strip()
    if rate:
        settings["send_rate_per_minute"] = int(rate) if rate.isdigit() else rate
    settings["shadow_mode"] = post.get("shadow_mode") == "on"
    settings["topic"] = post.get("topic", "")
    settings["transactional"] = post.get("transactional") == "on"
    return settings


def _errors(settings: dict) -> list[str]:
    try:
        nodes.JourneySettings.model_validate(settings)
    except ValidationError as error:
        labels = {
            "reentry": "Re-entry", "entry_limit": "Entry limit", "goal": "Goal",
            "frequency_cap": "Frequency cap", "quiet_hours": "Quiet hours",
            "send_rate_per_minute": "Send rate", "topic": "Topic",
        }  # fmt: skip
        return [
            f"{labels.get(str(item['loc'][0]), str(item['loc'][0]))}: "
            f"{item['msg'].removeprefix('Value error, ')}"
            for item in error.errors()
        ]
    return []


def _context(request, journey, settings: dict, errors: list[str]) -> dict:
    from delivery.models import Topic

    goal = settings.get("goal") or {}
    cap = settings.get("frequency_cap") or {}
    quiet = settings.get("quiet_hours") or {}
    reentry = settings.get("reentry") or {}
    goal_amount, goal_unit = split_duration(goal.get("window_seconds"))
    cap_amount, cap_unit = split_duration(cap.get("per_seconds"))
    return {
        "journey": journey,
        "settings": settings,
        "errors": errors,
        "result": {"settings": settings, "valid": not errors, "errors": errors},
        "apply_url": reverse(
            "journey_settings",
            kwargs={"workspace_slug": request.workspace.slug, "journey_id": journey.pk},
        ),
        "can_edit": member_can(request, "journeys.edit"),
        "reentry_modes": REENTRY,
        "reentry_mode": reentry.get("mode", "never"),
        "reentry_days": reentry.get("days") or "",
        "goal_event": goal.get("event", ""),
        "goal_amount": goal_amount if goal else "7",
        "goal_unit": goal_unit if goal else "days",
        "cap_messages": cap.get("messages", ""),
        "cap_amount": cap_amount if cap else "1",
        "cap_unit": cap_unit if cap else "days",
        "quiet": quiet,
        "units": [unit for unit, _ in UNITS],
        "time_zones": ("UTC", *sorted(z for z in zoneinfo.available_timezones() if z != "UTC")),
        "topics": list(
            Topic.objects.filter(workspace=request.workspace)
            .order_by("name")
            .values_list("key", "name")
        ),
    }


@workspace_view("journeys.view")
@require_POST
def journey_settings(request: HttpRequest, journey_id: int) -> HttpResponse:
    journey = selectors.journey_get(workspace=request.workspace, journey_id=journey_id)
    if request.POST.get("apply"):
        if not member_can(request, "journeys.edit"):
            raise PermissionDenied("Your role cannot change this journey: journeys.edit")
        settings = _settings_from_form(request.POST)
    else:
        try:
            settings = json.loads(request.POST.get("settings") or "{}")
        except ValueError:
            return HttpResponse("settings must be the journey settings as JSON.", status=400)
        if not isinstance(settings, dict):
            return HttpResponse("settings must be a JSON object.", status=400)
    return render(
        request,
        "journeys/settings_panel.html",
        _context(request, journey, settings, _errors(settings)),
    )
