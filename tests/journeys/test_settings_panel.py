"""The builder's journey settings form: it shows the draft's settings, turns the form
back into exact JourneySettings JSON, names what is wrong, and refuses viewers'
changes and other workspaces' journeys."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from engagement_site.workspaces.roles import Role
from engagement_site.workspaces.services import AuditContext
from journeys import services
from tests.conftest import logged_in

pytestmark = pytest.mark.django_db


def _url(workspace, journey) -> str:
    return f"/w/{workspace.slug}/journeys/{journey.pk}/settings-panel/"


def _result(response) -> dict:
    text = response.content.decode()
    start = text.index('<script id="journey-settings-result" type="application/json">')
    body = text[start:].split(">", 1)[1].split("</script>", 1)[0]
    return json.loads(body)


@pytest.fixture
def journey(workspace):
    return services.journey_create(
        workspace=workspace, name="Set", context=AuditContext.system("t")
    )


def test_the_form_becomes_exact_settings(workspace, owner, journey):
    client = logged_in(owner)
    shown = client.post(_url(workspace, journey), {"settings": json.dumps({"shadow_mode": True})})
    assert shown.status_code == 200
    assert _result(shown) == {"settings": {"shadow_mode": True}, "valid": True, "errors": []}
    assert 'name="shadow_mode" checked' in shown.content.decode()

    form = {
        "apply": "1", "reentry_mode": "after_days", "reentry_days": "30", "entry_limit": "500",
        "goal_event": "Order Completed", "goal_amount": "3", "goal_unit": "days",
        "cap_messages": "2", "cap_amount": "1", "cap_unit": "weeks",
        "quiet_start": "21:00", "quiet_end": "08:00", "quiet_time_zone": "Europe/Berlin",
        "send_rate_per_minute": "120", "topic": "", "transactional": "on",
    }  # fmt: skip
    applied = client.post(_url(workspace, journey), form)
    assert _result(applied) == {
        "settings": {
            "reentry": {"mode": "after_days", "days": 30},
            "entry_limit": 500,
            "goal": {"event": "Order Completed", "window_seconds": 3 * 86400},
            "frequency_cap": {"messages": 2, "per_seconds": 604800},
            "quiet_hours": {
                "start": "21:00",
                "end": "08:00",
                "fallback_time_zone": "Europe/Berlin",
            },
            "send_rate_per_minute": 120,
            "shadow_mode": False,
            "topic": "",
            "transactional": True,
        },
        "valid": True,
        "errors": [],
    }
    broken = client.post(_url(workspace, journey), {**form, "quiet_end": "", "reentry_days": ""})
    result = _result(broken)
    assert result["valid"] is False
    assert result["errors"] == [
        "Re-entry: days goes with mode after_days, and only with it",
        "Quiet hours: Input should be a valid time",
    ]


def test_viewers_cannot_change_and_other_workspaces_are_not_found(
    workspace, other_workspace, outsider, make_member, journey
):
    viewer = logged_in(make_member(Role.VIEWER))
    shown = viewer.post(_url(workspace, journey), {"settings": "{}"})
    assert shown.status_code == 200 and "<fieldset disabled" in shown.content.decode()
    assert (
        viewer.post(_url(workspace, journey), {"apply": "1", "shadow_mode": "on"}).status_code
        == 403
    )
    assert (
        logged_in(outsider)
        .post(
            f"/w/{other_workspace.slug}/journeys/{journey.pk}/settings-panel/", {"settings": "{}"}
        )
        .status_code
        == 404
    )
    assert logged_in(outsider).post(_url(workspace, journey), {"settings": "{}"}).status_code in (
        403,
        404,
    )
    assert Client().post(_url(workspace, journey), {"settings": "{}"}).status_code == 302
    assert (
        logged_in(make_member(Role.MARKETER, username="m2"))
        .post(_url(workspace, journey), {"settings": "not json"})
        .status_code
        == 400
    )
