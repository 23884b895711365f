"""REST API of journeys: create, draft with conflicts, check, publish with the in-flight
choice, pause / resume / stop, versions, enrollments, API entries, a profile's trace;
roles, tenancy and the OpenAPI schema."""

from __future__ import annotations

import copy

import django_rq
import pytest
from django.test import Client
from rq import SimpleWorker

from content import services as content_services
from engagement_site.workspaces.models import AuditLog
from engagement_site.workspaces.roles import Role
from engagement_site.workspaces.services import AuditContext, api_key_create
from journeys.models import Journey
from segments.models import Profile
from tests.conftest import SETUP
from tests.journeys.test_graph import ABANDONED_CART

pytestmark = pytest.mark.django_db

API_JOURNEY = {
    "nodes": [
        {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
        {"id": "tag", "type": "action", "action": {"kind": "update_attribute", "trait": "vip", "value": True}},
        {"id": "end", "type": "exit"},
    ],
    "edges": [{"source": "api", "target": "tag"}, {"source": "tag", "target": "end"}],
}  # fmt: skip


def _client(workspace, role: str = Role.MARKETER) -> Client:
    _, key = api_key_create(workspace=workspace, kind="secret", role=role, name="ci", context=SETUP)
    return Client(headers={"Authorization": f"Bearer {key}"})


def _post(client, url, body=None):
    return client.post(url, body or {}, content_type="application/json")


def _cart(workspace) -> dict:
    template = content_services.template_create(
        workspace=workspace, name="Cart", channel="email",
        content={"default": {"subject": "s", "html": "h"}}, context=AuditContext.system("t"),
    )  # fmt: skip
    definition = copy.deepcopy(ABANDONED_CART)
    definition["nodes"][3]["action"]["template_id"] = template.pk
    return definition


def test_create_save_check_publish_and_control_a_journey(workspace):
    client = _client(workspace)
    created = _post(client, "/api/v1/journeys/", {"name": "Cart", "definition": {"nodes": []}})
    assert created.status_code == 201
    journey_id = created.json()["id"]
    assert (created.json()["status"], created.json()["draft"]["revision"]) == ("draft", 1)

    cart = _cart(workspace)
    broken = copy.deepcopy(cart)
    broken["edges"] = broken["edges"][:-1]
    saved = client.put(
        f"/api/v1/journeys/{journey_id}/draft",
        {"definition": broken, "layout": {"cart": {"x": 0, "y": 0}}, "base_revision": 1},
        content_type="application/json",
    )
    assert (saved.status_code, saved.json()["revision"]) == (200, 2)
    stale = client.put(
        f"/api/v1/journeys/{journey_id}/draft",
        {"definition": {}, "base_revision": 1},
        content_type="application/json",
    )
    assert stale.status_code == 409
    assert "saved revision 2 after you opened revision 1" in stale.json()["message"]

    check = _post(client, f"/api/v1/journeys/{journey_id}/check").json()
    assert check == {
        "valid": False,
        "errors": [{"node": "email", "message": "output 'next' goes nowhere; connect it"}],
    }
    refused = _post(client, f"/api/v1/journeys/{journey_id}/publish")
    assert refused.status_code == 400
    assert refused.json()["errors"]["definition"] == [
        {"node": "email", "message": "output 'next' goes nowhere; connect it"}
    ]

    client.put(
        f"/api/v1/journeys/{journey_id}/draft",
        {"definition": cart},
        content_type="application/json",
    )
    published = _post(client, f"/api/v1/journeys/{journey_id}/publish", {"note": "v1"})
    assert published.status_code == 201
    assert (published.json()["number"], published.json()["note"]) == (1, "v1")
    assert _post(client, f"/api/v1/journeys/{journey_id}/pause").json()["status"] == "paused"
    assert _post(client, f"/api/v1/journeys/{journey_id}/pause").status_code == 409
    assert _post(client, f"/api/v1/journeys/{journey_id}/resume").json()["status"] == "live"
    assert [v["number"] for v in client.get(f"/api/v1/journeys/{journey_id}/versions/").json()] == [
        1
    ]
    assert _post(client, f"/api/v1/journeys/{journey_id}/stop").json()["status"] == "stopped"
    actions = list(
        AuditLog.objects.filter(workspace=workspace, action__startswith="journey.")
        .order_by("sequence")
        .values_list("action", flat=True)
    )
    assert actions == [
        "journey.create", "journey.draft_save", "journey.draft_save", "journey.publish", "journey.pause",
        "journey.resume", "journey.stop", "journey.exit_all",
    ]  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_api_entries_enrollments_and_a_profiles_trace(workspace):
    client = _client(workspace)
    journey_id = _post(
        client, "/api/v1/journeys/", {"name": "VIP", "definition": API_JOURNEY}
    ).json()["id"]
    _post(client, f"/api/v1/journeys/{journey_id}/publish")
    ann = Profile.objects.create(workspace=workspace, user_id="ann")
    entered = _post(
        client,
        f"/api/v1/journeys/{journey_id}/enrollments/",
        {"profile_id": ann.pk, "properties": {"from": "crm"}},
    )
    assert entered.status_code == 201
    assert (entered.json()["user_id"], entered.json()["state"], entered.json()["current_node"]) == (
        "ann",
        "active",
        "api",
    )
    queue = django_rq.get_queue("journeys")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    again = _post(client, f"/api/v1/journeys/{journey_id}/enrollments/", {"profile_id": ann.pk})
    assert (again.status_code, again.content) == (200, b"")
    listed = client.get(f"/api/v1/journeys/{journey_id}/enrollments/", {"state": "exited"}).json()[
        "results"
    ]
    assert [(row["user_id"], row["exit_reason"]) for row in listed] == [("ann", "exit_node")]
    trace = client.get(f"/api/v1/profiles/{ann.pk}/journeys").json()
    assert [trace[0]["journey"]] == ["VIP"]
    assert [(step["node_id"], step["outcome"], step["port"]) for step in trace[0]["steps"]] == [
        ("api", "entered", "next"), ("tag", "continued", "next"), ("end", "exited", ""),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("role", "can_edit", "can_publish"),
    [(Role.OWNER, True, True), (Role.MARKETER, True, True), (Role.CONTENT_EDITOR, False, False), (Role.ANALYST, False, False), (Role.VIEWER, False, False)],
)  # fmt: skip
def test_roles(workspace, role, can_edit, can_publish):
    journey = Journey.objects.create(workspace=workspace, name="Existing")
    from journeys.models import JourneyDraft

    JourneyDraft.objects.create(journey=journey, definition=API_JOURNEY)
    client = _client(workspace, role)
    assert client.get("/api/v1/journeys/").status_code == 200
    assert _post(client, "/api/v1/journeys/", {"name": "New"}).status_code == (
        201 if can_edit else 403
    )
    assert _post(client, f"/api/v1/journeys/{journey.pk}/publish").status_code == (
        201 if can_publish else 403
    )


def test_another_workspaces_journeys_and_profiles_answer_404(workspace, other_workspace):
    theirs = _client(other_workspace)
    journey_id = _post(
        _client(workspace), "/api/v1/journeys/", {"name": "Mine", "definition": API_JOURNEY}
    ).json()["id"]
    profile = Profile.objects.create(workspace=workspace, user_id="mine")
    for response in (
        theirs.get(f"/api/v1/journeys/{journey_id}/"),
        _post(theirs, f"/api/v1/journeys/{journey_id}/publish"),
        _post(theirs, f"/api/v1/journeys/{journey_id}/check"),
        theirs.put(
            f"/api/v1/journeys/{journey_id}/draft",
            {"definition": {}},
            content_type="application/json",
        ),
        theirs.get(f"/api/v1/journeys/{journey_id}/enrollments/"),
        theirs.get(f"/api/v1/profiles/{profile.pk}/journeys"),
    ):
        assert response.status_code == 404
    assert Journey.objects.get(pk=journey_id).status == "draft"


def test_every_journey_endpoint_is_in_the_openapi_schema(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    paths = {
        path
        for path in schema["paths"]
        if path.startswith("/api/v1/journeys") or path.endswith("/journeys")
    }
    assert paths == {
        "/api/v1/journeys/", "/api/v1/journeys/{journey_id}/", "/api/v1/journeys/{journey_id}/draft",
        "/api/v1/journeys/{journey_id}/check", "/api/v1/journeys/{journey_id}/publish",
        "/api/v1/journeys/{journey_id}/simulate",
        "/api/v1/journeys/{journey_id}/pause", "/api/v1/journeys/{journey_id}/resume",
        "/api/v1/journeys/{journey_id}/stop", "/api/v1/journeys/{journey_id}/archive",
        "/api/v1/journeys/{journey_id}/versions/", "/api/v1/journeys/{journey_id}/enrollments/",
        "/api/v1/journeys/{journey_id}/experiments",
        "/api/v1/journeys/{journey_id}/experiments/{node_id}/winner",
        "/api/v1/journeys/{journey_id}/metrics",
        "/api/v1/profiles/{profile_id}/journeys",
    }  # fmt: skip


def test_the_journey_list_page_shows_status_version_and_people(workspace, owner):
    from django.urls import reverse

    from tests.conftest import logged_in

    client = _client(workspace)
    journey_id = _post(
        client, "/api/v1/journeys/", {"name": "VIP", "definition": API_JOURNEY}
    ).json()["id"]
    _post(client, f"/api/v1/journeys/{journey_id}/publish")
    ann = Profile.objects.create(workspace=workspace, user_id="ann")
    _post(client, f"/api/v1/journeys/{journey_id}/enrollments/", {"profile_id": ann.pk})
    html = (
        logged_in(owner)
        .get(reverse("journey_list", kwargs={"workspace_slug": workspace.slug}))
        .content.decode()
    )
    row = html[html.index('data-testid="journeys"') :]
    assert "VIP" in row and "Live" in row and "v1" in row
    assert '<td class="num">1</td>' in row  # in it now / entered
