"""REST API of segments: CRUD, preview, members, CSV export, static segments, snapshots
and member changes; scoped to the caller's workspace, role-checked, audited, and in the
OpenAPI schema. Timelines are hand-built with the ORM; the clock is frozen at T0."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import django_rq
import pytest
import time_machine
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import AsyncClient, Client

from engagement_site.workspaces.models import AuditLog
from engagement_site.workspaces.roles import Role
from engagement_site.workspaces.services import api_key_create
from segments import segment_api, services
from segments.evaluation import PreviewTimeout
from segments.models import Event, Identity, Profile, Segment, SegmentMembership, SegmentSize
from tests.conftest import SETUP, logged_in

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
T0_TEXT = "2026-11-20T12:00:00Z"
DAY = timedelta(days=1)
_message_ids = itertools.count()

TWICE_IN_7_DAYS = {
    "type": "event_count",
    "event": "order_completed",
    "op": "gte",
    "count": 2,
    "window": {"last_days": 7},
}
TWICE_IN_7_DAYS_SUMMARY = "People who did order_completed at least twice in the last 7 days"
PRO_PLAN = {"type": "attribute", "trait": "plan", "op": "eq", "value": "pro"}


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(T0, tick=False):
        yield


def _api(user, workspace_slug: str = "acme") -> Client:
    client = logged_in(user)
    client.defaults["HTTP_X_WORKSPACE"] = workspace_slug
    return client


def _key_client(workspace, role: str) -> Client:
    _, key = api_key_create(workspace=workspace, kind="secret", role=role, name="ci", context=SETUP)
    return Client(headers={"Authorization": f"Bearer {key}"})


def _post(client: Client, url: str, body: dict):
    return client.post(url, body, content_type="application/json")


def _patch(client: Client, url: str, body: dict):
    return client.patch(url, body, content_type="application/json")


def _track(profile: Profile, name: str, at: datetime) -> None:
    Event.objects.create(
        workspace_id=profile.workspace_id,
        profile=profile,
        name=name,
        timestamp=at,
        message_id=f"m-{next(_message_ids)}",
    )


def _segment(workspace, name: str, definition: dict | None = None, **fields) -> Segment:
    return Segment.objects.create(
        workspace=workspace,
        name=name,
        definition=TWICE_IN_7_DAYS if definition is None else definition,
        **fields,
    )


def _member(segment: Segment, profile: Profile, entered_at: datetime, **fields):
    return SegmentMembership.objects.create(
        workspace=segment.workspace,
        segment=segment,
        profile=profile,
        entered_at=entered_at,
        **fields,
    )


def _segment_audit(**filters) -> list[tuple]:
    return list(
        AuditLog.objects.filter(action__startswith="segment.", **filters)
        .order_by("sequence")
        .values_list("action", "actor__username", "object_id", "changes")
    )


def _csv_upload(text: str, name: str = "vip.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


@pytest.fixture
def people(workspace, other_workspace):
    def profile(ws, user_id: str, last_seen: datetime, **fields) -> Profile:
        person = Profile.objects.create(
            workspace=ws, user_id=user_id, first_seen=T0 - 60 * DAY, last_seen=last_seen, **fields
        )
        # As ingestion records it: static CSVs of user ids are matched through identities.
        Identity.objects.create(workspace=ws, kind="user_id", value=user_id, profile=person)
        return person

    return {
        "ada": profile(
            workspace,
            "ada-1",
            T0 - 1 * DAY,
            email="ada@example.com",
            phone="+442071838750",
            time_zone="Europe/London",
        ),
        "bob": profile(workspace, "bob-2", T0 - 2 * DAY, email="bob@example.com"),
        "cy": profile(workspace, "cy-3", T0 - 3 * DAY, email="cy@example.com"),
        "stranger": profile(other_workspace, "ada-1", T0, email="ada@example.com"),
    }


def _detail(segment: Segment, **overrides) -> dict:
    """The detail body of a segment as stored (before a recompute)."""
    body = {
        "id": segment.pk,
        "name": segment.name,
        "description": segment.description,
        "kind": segment.kind,
        "summary": overrides.pop("summary", TWICE_IN_7_DAYS_SUMMARY),
        "member_count": segment.member_count,
        "last_computed_at": None,
        "last_error": "",
        "source": segment.source,
        "recompute_interval_seconds": segment.recompute_interval_seconds,
        "created_at": T0_TEXT,
        "updated_at": T0_TEXT,
        "definition": segment.definition,
        "used_by": [],
        "size_history": [],
    }
    return {**body, **overrides}


# --------------------------------------------------------------------------- create, read


def test_create_answers_the_segment_queues_its_recompute_and_audits(
    workspace, owner, django_capture_on_commit_callbacks
):
    client = _api(owner)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = _post(
            client,
            "/api/v1/segments/",
            {
                "name": "Repeat buyers",
                "description": "Bought twice this week",
                "definition": TWICE_IN_7_DAYS,
                "recompute_interval_seconds": 600,
            },
        )
    assert response.status_code == 201
    segment = Segment.objects.get(workspace=workspace)
    assert response.json() == {
        "id": segment.pk,
        "name": "Repeat buyers",
        "description": "Bought twice this week",
        "kind": "dynamic",
        "summary": TWICE_IN_7_DAYS_SUMMARY,
        "member_count": 0,
        "last_computed_at": None,
        "last_error": "",
        "source": "",
        "recompute_interval_seconds": 600,
        "created_at": T0_TEXT,
        "updated_at": T0_TEXT,
        "definition": TWICE_IN_7_DAYS,
        "used_by": [],
        "size_history": [],
    }
    assert len(callbacks) == 1
    assert django_rq.get_queue("default").job_ids == [f"segment-recompute-{segment.pk}"]
    assert _segment_audit() == [
        (
            "segment.create",
            "olivia",
            str(segment.pk),
            {
                "name": "Repeat buyers",
                "kind": "dynamic",
                "description": "Bought twice this week",
                "definition": TWICE_IN_7_DAYS,
                "recompute_interval_seconds": 600,
            },
        )
    ]
    assert client.get(f"/api/v1/segments/{segment.pk}/").json() == response.json()


def test_create_defaults_description_and_interval(workspace, owner):
    response = _post(
        _api(owner), "/api/v1/segments/", {"name": "Pro", "definition": PRO_PLAN}
    ).json()
    assert (response["description"], response["recompute_interval_seconds"]) == ("", 300)
    assert response["summary"] == "People whose plan is pro"


def test_list_is_alphabetical_scoped_filterable_and_paginated(workspace, other_workspace, owner):
    buyers = _segment(workspace, "Buyers", member_count=3, last_error="")
    uses_buyers = _segment(
        workspace, "Also buyers", {"type": "membership", "segment_id": buyers.pk, "in": True}
    )
    vip = _segment(workspace, "VIP", {}, kind="static", source="CSV upload: vip.csv")
    _segment(other_workspace, "Aaa theirs")
    client = _api(owner)

    first = client.get("/api/v1/segments/?page_size=2").json()
    assert [row["name"] for row in first["results"]] == ["Also buyers", "Buyers"]
    second = client.get(first["next"]).json()
    assert [row["name"] for row in second["results"]] == ["VIP"]
    assert second["next"] is None
    assert first["results"][0] == {
        "id": uses_buyers.pk,
        "name": "Also buyers",
        "description": "",
        "kind": "dynamic",
        "summary": "People who are in Buyers",
        "member_count": 0,
        "last_computed_at": None,
        "last_error": "",
        "source": "",
        "recompute_interval_seconds": 300,
        "created_at": T0_TEXT,
        "updated_at": T0_TEXT,
    }
    assert second["results"][0]["summary"] == "A fixed list of people (CSV upload: vip.csv)"
    static_only = client.get("/api/v1/segments/?kind=static").json()["results"]
    assert [row["id"] for row in static_only] == [vip.pk]
    bad_kind = client.get("/api/v1/segments/?kind=master")
    assert bad_kind.status_code == 400
    assert bad_kind.json()["errors"] == {"kind": ['"master" is not a valid choice.']}


def test_list_costs_the_same_queries_for_one_segment_or_many(
    workspace, owner, django_assert_num_queries
):
    client = _api(owner)
    _segment(workspace, "One")
    # The session, its user, the membership, the page, and the names for the summaries.
    with django_assert_num_queries(5):
        assert len(client.get("/api/v1/segments/").json()["results"]) == 1
    for index in range(10):
        _segment(workspace, f"Many {index}")
    with django_assert_num_queries(5):
        assert len(client.get("/api/v1/segments/").json()["results"]) == 11


def test_detail_shows_where_used_and_the_last_30_days_of_sizes(workspace, owner):
    buyers = _segment(workspace, "Buyers", member_count=5)
    user = _segment(workspace, "Loyal", {"type": "membership", "segment_id": buyers.pk, "in": True})
    for hours_ago, count in ((31 * 24, 1), (29 * 24, 4), (1, 5)):
        SegmentSize.objects.create(
            segment=buyers,
            hour=T0 - timedelta(hours=hours_ago),
            member_count=count,
            entered=count,
            exited=0,
        )
    body = _api(owner).get(f"/api/v1/segments/{buyers.pk}/").json()
    assert body["used_by"] == [{"id": user.pk, "name": "Loyal"}]
    assert body["size_history"] == [
        {"hour": "2026-10-22T12:00:00Z", "member_count": 4, "entered": 4, "exited": 0},
        {"hour": "2026-11-20T11:00:00Z", "member_count": 5, "entered": 5, "exited": 0},
    ]


# --------------------------------------------------------------------------- refusals


BAD_DEFINITION = {
    "type": "and",
    "rules": [PRO_PLAN, {"type": "event_count", "event": "order_completed", "count": -1}],
}


def test_a_bad_definition_is_refused_with_the_rule_path_and_nothing_is_stored(
    workspace, owner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = _post(
            _api(owner), "/api/v1/segments/", {"name": "Broken", "definition": BAD_DEFINITION}
        )
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "The request has invalid fields.",
        "errors": {"definition": ["rules[1] (event_count): count must be ≥ 0"]},
    }
    assert Segment.objects.count() == 0
    assert _segment_audit() == []
    assert callbacks == []


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"name": "X", "definition": {"type": "nope"}},
            {
                "definition": [
                    "root: unknown rule type 'nope'; expected one of and, or, not, attribute, event_count, sequence, streak, recency, membership, message_engagement, computed_trait"
                ]
            },
        ),
        (
            {"name": "X", "definition": [PRO_PLAN]},
            {"definition": ["root: a rule must be a JSON object"]},
        ),
        (
            {"name": "X", "definition": {"type": "membership", "segment_id": 987654, "in": True}},
            {"definition": ["a membership rule names segment 987654, which does not exist"]},
        ),
        ({"name": "X"}, {"definition": ["This field is required."]}),
        ({"name": "  ", "definition": PRO_PLAN}, {"name": ["This field may not be blank."]}),
        (
            {"name": "X", "definition": PRO_PLAN, "recompute_interval_seconds": 5},
            {"recompute_interval_seconds": ["Ensure this value is greater than or equal to 60."]},
        ),
        (
            {"name": "X", "definition": PRO_PLAN, "kind": "static"},
            {
                "kind": [
                    "Unknown field; expected name, description, definition, recompute_interval_seconds."
                ]
            },
        ),
    ],
)
def test_create_names_each_problem(workspace, owner, body, errors):
    response = _post(_api(owner), "/api/v1/segments/", body)
    assert (response.status_code, response.json().get("errors")) == (400, errors)
    assert Segment.objects.count() == 0


def test_names_are_unique_per_workspace(workspace, other_workspace, owner):
    _segment(workspace, "Buyers")
    _segment(other_workspace, "Theirs")
    client = _api(owner)
    duplicate = _post(client, "/api/v1/segments/", {"name": "Buyers", "definition": PRO_PLAN})
    assert duplicate.status_code == 400
    assert duplicate.json()["errors"] == {"name": ["A segment named 'Buyers' already exists."]}
    assert (
        _post(client, "/api/v1/segments/", {"name": "Theirs", "definition": PRO_PLAN}).status_code
        == 201
    )
    assert Segment.objects.filter(workspace=workspace).count() == 2
    assert _segment_audit(action="segment.create", object_repr="Buyers") == []


# --------------------------------------------------------------------------- change


def test_patch_changes_requeues_on_a_new_rule_and_audits_the_differences(
    workspace, owner, django_capture_on_commit_callbacks
):
    segment = _segment(workspace, "Buyers", last_error="old failure")
    client = _api(owner)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = _patch(
            client,
            f"/api/v1/segments/{segment.pk}/",
            {"name": "Pro buyers", "definition": PRO_PLAN, "description": "Paying"},
        )
    assert response.status_code == 200
    segment.refresh_from_db()
    assert response.json() == _detail(segment, summary="People whose plan is pro")
    assert (segment.name, segment.definition, segment.last_error) == (
        "Pro buyers",
        PRO_PLAN,
        "",
    )
    assert len(callbacks) == 1
    assert _segment_audit() == [
        (
            "segment.update",
            "olivia",
            str(segment.pk),
            {
                "name": ["Buyers", "Pro buyers"],
                "description": ["", "Paying"],
                "definition": [TWICE_IN_7_DAYS, PRO_PLAN],
            },
        )
    ]

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = _patch(
            client, f"/api/v1/segments/{segment.pk}/", {"recompute_interval_seconds": 900}
        )
    assert again.json()["recompute_interval_seconds"] == 900
    assert callbacks == []  # the rule did not change: no recompute
    unchanged = _patch(client, f"/api/v1/segments/{segment.pk}/", {"name": "Pro buyers"})
    assert unchanged.status_code == 200
    assert [row[0] for row in _segment_audit()] == ["segment.update", "segment.update"]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"definition": BAD_DEFINITION},
            {"definition": ["rules[1] (event_count): count must be ≥ 0"]},
        ),
        ({"name": "Taken"}, {"name": ["A segment named 'Taken' already exists."]}),
        (
            {"kind": "static"},
            {
                "kind": [
                    "Unknown field; expected name, description, definition, recompute_interval_seconds."
                ]
            },
        ),
        (
            {"recompute_interval_seconds": 10**9},
            {"recompute_interval_seconds": ["Ensure this value is less than or equal to 604800."]},
        ),
    ],
)
def test_a_refused_patch_changes_nothing(workspace, owner, body, errors):
    segment = _segment(workspace, "Buyers")
    _segment(workspace, "Taken")
    response = _patch(_api(owner), f"/api/v1/segments/{segment.pk}/", {"name": "New", **body})
    assert (response.status_code, response.json()["errors"]) == (400, errors)
    segment.refresh_from_db()
    assert (segment.name, segment.definition, segment.kind) == (
        "Buyers",
        TWICE_IN_7_DAYS,
        "dynamic",
    )
    assert _segment_audit() == []


def test_a_membership_rule_cannot_loop_back(workspace, owner):
    first = _segment(workspace, "First")
    second = _segment(
        workspace, "Second", {"type": "membership", "segment_id": first.pk, "in": True}
    )
    response = _patch(
        _api(owner),
        f"/api/v1/segments/{first.pk}/",
        {"definition": {"type": "membership", "segment_id": second.pk, "in": True}},
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "definition": [
            "a membership rule names 'Second', which depends on this segment: segments "
            "cannot depend on each other in a loop"
        ]
    }
    first.refresh_from_db()
    assert first.definition == TWICE_IN_7_DAYS


def test_a_static_segment_takes_no_rule(workspace, owner):
    static = _segment(workspace, "VIP", {}, kind="static")
    response = _patch(_api(owner), f"/api/v1/segments/{static.pk}/", {"definition": PRO_PLAN})
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "definition": ["A static segment has no rule; its members are a fixed list."]
    }
    static.refresh_from_db()
    assert static.definition == {}


# --------------------------------------------------------------------------- delete


def test_delete_is_refused_while_another_segment_uses_it_then_allowed(workspace, owner, people):
    buyers = _segment(workspace, "Buyers", member_count=1)
    _member(buyers, people["ada"], T0)
    loyal = _segment(
        workspace, "Loyal", {"type": "membership", "segment_id": buyers.pk, "in": True}
    )
    client = _api(owner)

    refused = client.delete(f"/api/v1/segments/{buyers.pk}/")
    assert refused.status_code == 409
    assert refused.json() == {
        "code": "segment_in_use",
        "message": "'Buyers' is used by Loyal: change those first.",
    }
    assert Segment.objects.filter(pk=buyers.pk).exists()
    assert _segment_audit() == []

    assert client.delete(f"/api/v1/segments/{loyal.pk}/").status_code == 204
    deleted = client.delete(f"/api/v1/segments/{buyers.pk}/")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert not Segment.objects.filter(workspace=workspace).exists()
    assert not SegmentMembership.objects.exists()
    audit = _segment_audit()
    assert [(action, actor, object_id) for action, actor, object_id, _ in audit] == [
        ("segment.delete", "olivia", str(loyal.pk)),
        ("segment.delete", "olivia", str(buyers.pk)),
    ]
    assert audit[1][3] == {
        "name": "Buyers",
        "kind": "dynamic",
        "description": "",
        "definition": TWICE_IN_7_DAYS,
        "recompute_interval_seconds": 300,
        "member_count": 1,
    }


# --------------------------------------------------------------------------- preview


@pytest.fixture
def orders(people):
    """ada ordered twice this week, bob once, cy twice but 10 days ago; the stranger
    (another workspace) twice this week."""
    for name, days_ago in (
        ("ada", 1),
        ("ada", 3),
        ("bob", 2),
        ("cy", 10),
        ("cy", 11),
        ("stranger", 1),
        ("stranger", 2),
    ):
        _track(people[name], "order_completed", T0 - days_ago * DAY)
    return people


def test_preview_counts_and_samples_an_unsaved_rule(workspace, owner, orders):
    response = _post(_api(owner), "/api/v1/segments/preview", {"definition": TWICE_IN_7_DAYS})
    assert response.status_code == 200
    assert response.json() == {
        "count": 1,
        "sample": [
            {
                "id": orders["ada"].pk,
                "user_id": "ada-1",
                "email": "ada@example.com",
                "last_seen": "2026-11-19T12:00:00Z",
            }
        ],
        "summary": TWICE_IN_7_DAYS_SUMMARY,
    }
    assert Segment.objects.count() == 0
    assert _segment_audit() == []


def test_preview_samples_the_most_recently_seen_first(workspace, owner, orders):
    once_ever = {"type": "event_count", "event": "order_completed", "op": "gte", "count": 1}
    body = _post(_api(owner), "/api/v1/segments/preview", {"definition": once_ever}).json()
    assert body["count"] == 3
    assert [row["user_id"] for row in body["sample"]] == ["ada-1", "bob-2", "cy-3"]
    assert body["summary"] == "People who did order_completed"


def test_preview_names_the_offending_rule(workspace, owner):
    response = _post(_api(owner), "/api/v1/segments/preview", {"definition": BAD_DEFINITION})
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "definition": ["rules[1] (event_count): count must be ≥ 0"]
    }


def test_preview_cannot_read_another_workspaces_segment(workspace, other_workspace, owner):
    theirs = _segment(other_workspace, "Theirs")
    response = _post(
        _api(owner),
        "/api/v1/segments/preview",
        {"definition": {"type": "membership", "segment_id": theirs.pk, "in": True}},
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "definition": [f"a membership rule names segment {theirs.pk}, which does not exist"]
    }


def test_a_preview_that_takes_too_long_is_503(workspace, owner, monkeypatch):
    def too_slow(**kwargs):
        raise PreviewTimeout("The rule took longer than 5 s to evaluate.")

    monkeypatch.setattr(segment_api, "segment_preview", too_slow)
    response = _post(_api(owner), "/api/v1/segments/preview", {"definition": PRO_PLAN})
    assert response.status_code == 503
    assert response.json() == {
        "code": "preview_timeout",
        "message": "The rule took longer than 5 s to evaluate.",
    }


# --------------------------------------------------------------------------- members, export


def test_members_are_the_open_rows_newest_entries_first_and_paginated(workspace, owner, people):
    segment = _segment(workspace, "Buyers")
    _member(segment, people["ada"], T0 - 3 * DAY)
    _member(segment, people["bob"], T0 - 1 * DAY)
    _member(segment, people["cy"], T0 - 2 * DAY)
    _member(segment, people["cy"], T0 - 9 * DAY, exited_at=T0 - 5 * DAY)
    client = _api(owner)
    first = client.get(f"/api/v1/segments/{segment.pk}/members/?page_size=2").json()
    assert first["results"] == [
        {
            "profile_id": people["bob"].pk,
            "user_id": "bob-2",
            "email": "bob@example.com",
            "entered_at": "2026-11-19T12:00:00Z",
        },
        {
            "profile_id": people["cy"].pk,
            "user_id": "cy-3",
            "email": "cy@example.com",
            "entered_at": "2026-11-18T12:00:00Z",
        },
    ]
    second = client.get(first["next"]).json()
    assert [row["profile_id"] for row in second["results"]] == [people["ada"].pk]
    assert second["next"] is None


def test_export_streams_the_members_as_csv_and_is_audited(workspace, owner, people):
    segment = _segment(workspace, "Buyers", member_count=2)
    _member(segment, people["bob"], T0 - 1 * DAY)
    _member(segment, people["ada"], datetime(2026, 11, 17, 8, 30, 15, 250000, tzinfo=UTC))
    _member(segment, people["cy"], T0 - 9 * DAY, exited_at=T0 - 5 * DAY)
    response = _api(owner).get(f"/api/v1/segments/{segment.pk}/export", HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="segment-{segment.pk}-members.csv"'
    )
    ada, bob = people["ada"].pk, people["bob"].pk
    assert b"".join(response.streaming_content).decode() == (
        "profile_id,user_id,email,phone,time_zone,entered_at\r\n"
        f"{ada},ada-1,ada@example.com,+442071838750,Europe/London,2026-11-17T08:30:15.250000+00:00\r\n"
        f"{bob},bob-2,bob@example.com,,,2026-11-19T12:00:00+00:00\r\n"
    )
    assert _segment_audit() == [("segment.export", "olivia", str(segment.pk), {"member_count": 2})]


def test_export_of_an_empty_segment_is_the_header(workspace, owner):
    segment = _segment(workspace, "Nobody")
    response = _api(owner).get(f"/api/v1/segments/{segment.pk}/export")
    assert b"".join(response.streaming_content) == (
        b"profile_id,user_id,email,phone,time_zone,entered_at\r\n"
    )


def test_export_errors_are_json_whatever_the_accept_header(workspace, make_member):
    segment = _segment(workspace, "Buyers")
    response = _api(make_member(Role.MARKETER)).get(
        f"/api/v1/segments/{segment.pk}/export", HTTP_ACCEPT="text/csv"
    )
    assert response.status_code == 403
    assert response.json() == {
        "code": "permission_denied",
        "message": "This role (marketer) lacks the permission segments.export.",
    }
    assert _segment_audit() == []


@pytest.mark.django_db(transaction=True)
def test_export_is_streamed_under_asgi_too(workspace, people):
    """Daphne serves the app: the CSV comes as an asynchronous stream, read from the
    database in the request's thread."""
    segment = _segment(workspace, "Buyers", member_count=1)
    _member(segment, people["ada"], T0)
    _, key = api_key_create(
        workspace=workspace, kind="secret", role="analyst", name="ci", context=SETUP
    )

    async def export() -> tuple[int, bool, bytes]:
        response = await AsyncClient().get(
            f"/api/v1/segments/{segment.pk}/export", headers={"Authorization": f"Bearer {key}"}
        )
        body = b"".join([chunk async for chunk in response.streaming_content])
        return response.status_code, response.is_async, body

    status, is_async, body = async_to_sync(export)()
    assert (status, is_async) == (200, True)
    assert body.decode() == (
        "profile_id,user_id,email,phone,time_zone,entered_at\r\n"
        f"{people['ada'].pk},ada-1,ada@example.com,+442071838750,Europe/London,"
        "2026-11-20T12:00:00+00:00\r\n"
    )
    assert _segment_audit() == [("segment.export", None, str(segment.pk), {"member_count": 1})]


# --------------------------------------------------------------------------- static


def test_a_static_segment_from_a_csv_reports_what_matched(workspace, owner, people):
    csv_text = "email,name\nada@example.com,Ada\nBOB@example.com,Bob\nnobody@example.com,X\nada@example.com,Ada again\n"
    response = _api(owner).post(
        "/api/v1/segments/static",
        {"name": "VIP", "description": "From sales", "file": _csv_upload(csv_text)},
    )
    assert response.status_code == 201
    segment = Segment.objects.get(workspace=workspace, name="VIP")
    assert response.json() == _detail(
        segment,
        summary="A fixed list of people (CSV upload: vip.csv)",
        last_computed_at=T0_TEXT,
        size_history=[
            {"hour": T0_TEXT, "member_count": 2, "entered": 2, "exited": 0},
        ],
        match_report={
            "column": "email",
            "rows": 4,
            "matched": 2,
            "unmatched": 1,
            "duplicates": 1,
            "unmatched_examples": ["nobody@example.com"],
        },
    )
    assert (segment.kind, segment.member_count, segment.description) == ("static", 2, "From sales")
    assert set(
        SegmentMembership.objects.filter(segment=segment).values_list("profile_id", flat=True)
    ) == {people["ada"].pk, people["bob"].pk}
    assert _segment_audit() == [
        (
            "segment.create",
            "olivia",
            str(segment.pk),
            {
                "kind": "static",
                "source": "CSV upload: vip.csv",
                "column": "email",
                "rows": 4,
                "matched": 2,
                "unmatched": 1,
            },
        )
    ]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"name": "VIP", "file": "user_id\nnobody\nghost\n"},
            {"file": ["None of the 2 values in the user_id column is a known profile."]},
        ),
        (
            {"name": "VIP", "file": "a,b\n1,2\n"},
            {
                "file": [
                    "No identifier column: name one of the columns user_id, email, anonymous_id, profile_id."
                ]
            },
        ),
        ({"name": "VIP"}, {"file": ["No file was submitted."]}),
        (
            {"name": "Buyers", "file": "user_id\nada-1\n"},
            {"name": ["A segment named 'Buyers' already exists."]},
        ),
    ],
)
def test_a_refused_csv_stores_nothing(workspace, owner, people, body, errors):
    _segment(workspace, "Buyers")
    if "file" in body:
        body = {**body, "file": _csv_upload(body["file"])}
    response = _api(owner).post("/api/v1/segments/static", body)
    assert (response.status_code, response.json()["errors"]) == (400, errors)
    assert list(Segment.objects.values_list("name", flat=True)) == ["Buyers"]
    assert not SegmentMembership.objects.exists()
    assert _segment_audit() == []


def test_an_oversized_csv_is_refused(workspace, owner, people, monkeypatch):
    monkeypatch.setattr(services, "MAX_STATIC_CSV_BYTES", 16)
    upload = _csv_upload("user_id\nada-1\nbob-2\ncy-3\n" * 1000)
    response = _api(owner).post("/api/v1/segments/static", {"name": "VIP", "file": upload})
    assert response.status_code == 400
    assert response.json()["errors"] == {"file": ["The file is 25000 bytes; at most 16 are taken."]}
    assert Segment.objects.count() == 0


def test_a_static_segment_needs_a_multipart_upload(workspace, owner):
    response = _post(_api(owner), "/api/v1/segments/static", {"name": "VIP", "file": "x"})
    assert response.status_code == 415
    assert Segment.objects.count() == 0


def test_a_snapshot_freezes_the_current_members(workspace, owner, people):
    buyers = _segment(workspace, "Buyers", member_count=2)
    _member(buyers, people["ada"], T0 - DAY)
    _member(buyers, people["bob"], T0 - DAY)
    _member(buyers, people["cy"], T0 - 9 * DAY, exited_at=T0 - 5 * DAY)
    client = _api(owner)
    response = _post(
        client, f"/api/v1/segments/{buyers.pk}/snapshot", {"name": "Buyers in November"}
    )
    assert response.status_code == 201
    snapshot = Segment.objects.get(name="Buyers in November")
    assert response.json() == _detail(
        snapshot,
        summary="A fixed list of people (Snapshot of Buyers)",
        last_computed_at=T0_TEXT,
        size_history=[{"hour": T0_TEXT, "member_count": 2, "entered": 2, "exited": 0}],
    )
    assert (snapshot.kind, snapshot.description, snapshot.member_count) == (
        "static",
        "Members of Buyers on 2026-11-20 12:00 UTC",
        2,
    )
    assert set(
        SegmentMembership.objects.filter(segment=snapshot).values_list("profile_id", flat=True)
    ) == {people["ada"].pk, people["bob"].pk}
    assert _segment_audit() == [
        ("segment.snapshot", "olivia", str(snapshot.pk), {"from_segment": buyers.pk, "members": 2})
    ]
    duplicate = _post(client, f"/api/v1/segments/{buyers.pk}/snapshot", {"name": "Buyers"})
    assert (duplicate.status_code, duplicate.json()["errors"]) == (
        400,
        {"name": ["A segment named 'Buyers' already exists."]},
    )
    assert Segment.objects.count() == 2


def test_members_of_a_static_segment_are_added_and_removed(workspace, owner, people):
    vip = _segment(workspace, "VIP", {}, kind="static", member_count=2)
    _member(vip, people["ada"], T0 - DAY)
    _member(vip, people["bob"], T0 - DAY)
    client = _api(owner)
    response = _post(
        client,
        f"/api/v1/segments/{vip.pk}/members/",
        {"add": [people["cy"].pk, people["bob"].pk], "remove": [people["ada"].pk]},
    )
    assert response.status_code == 200
    assert response.json() == {
        "added": [people["cy"].pk],
        "removed": [people["ada"].pk],
        "member_count": 2,
    }
    assert set(
        SegmentMembership.objects.filter(segment=vip, exited_at=None).values_list(
            "profile_id", flat=True
        )
    ) == {people["bob"].pk, people["cy"].pk}
    assert _segment_audit() == [
        ("segment.members", "olivia", str(vip.pk), {"added": 1, "removed": 1})
    ]
    again = _post(client, f"/api/v1/segments/{vip.pk}/members/", {"add": [people["cy"].pk]})
    assert again.json() == {"added": [], "removed": [], "member_count": 2}
    assert len(_segment_audit()) == 1


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"add": ["Name at least one profile id to add or to remove."]}),
        ({"add": ["ada"]}, {"add": {"0": ["A valid integer is required."]}}),
        ({"add": [1], "members": [2]}, {"members": ["Unknown field; expected add, remove."]}),
    ],
)
def test_a_members_change_names_what_is_wrong(workspace, owner, body, errors):
    vip = _segment(workspace, "VIP", {}, kind="static")
    response = _post(_api(owner), f"/api/v1/segments/{vip.pk}/members/", body)
    assert (response.status_code, response.json()["errors"]) == (400, errors)


def test_a_members_change_naming_a_profile_elsewhere_changes_nothing(workspace, owner, people):
    vip = _segment(workspace, "VIP", {}, kind="static", member_count=1)
    _member(vip, people["ada"], T0 - DAY)
    stranger = people["stranger"].pk
    response = _post(
        _api(owner),
        f"/api/v1/segments/{vip.pk}/members/",
        {"add": [people["bob"].pk, stranger], "remove": [people["ada"].pk]},
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"add": [f"No such profile in this workspace: {stranger}."]}
    assert list(
        SegmentMembership.objects.filter(segment=vip, exited_at=None).values_list(
            "profile_id", flat=True
        )
    ) == [people["ada"].pk]
    assert _segment_audit() == []


def test_a_dynamic_segments_members_cannot_be_changed_by_hand(workspace, owner, people):
    buyers = _segment(workspace, "Buyers")
    response = _post(
        _api(owner), f"/api/v1/segments/{buyers.pk}/members/", {"add": [people["ada"].pk]}
    )
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "Only a static segment's members can be changed by hand.",
    }
    assert not SegmentMembership.objects.exists()
    assert _segment_audit() == []


# --------------------------------------------------------------------------- access


SEGMENT_ENDPOINTS = [
    ("get", "/api/v1/segments/{id}/", None),
    ("patch", "/api/v1/segments/{id}/", {"name": "Stolen"}),
    ("delete", "/api/v1/segments/{id}/", None),
    ("get", "/api/v1/segments/{id}/members/", None),
    ("post", "/api/v1/segments/{id}/members/", {"add": [1]}),
    ("get", "/api/v1/segments/{id}/export", None),
    ("post", "/api/v1/segments/{id}/snapshot", {"name": "Copy"}),
]


@pytest.mark.parametrize(("method", "route", "body"), SEGMENT_ENDPOINTS)
def test_every_segment_endpoint_answers_404_for_another_workspaces_segment(
    workspace, other_workspace, owner, people, method, route, body
):
    theirs = _segment(other_workspace, "Theirs", {}, kind="static", member_count=1)
    _member(theirs, people["stranger"], T0)
    response = getattr(_api(owner), method)(
        route.format(id=theirs.pk), body, content_type="application/json"
    )
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "No such segment"}
    theirs.refresh_from_db()
    assert (theirs.name, theirs.member_count) == ("Theirs", 1)
    assert list(Segment.objects.values_list("name", flat=True)) == ["Theirs"]
    assert SegmentMembership.objects.filter(segment=theirs, exited_at=None).count() == 1
    assert _segment_audit() == []


def test_a_non_member_gets_404_for_the_workspace(workspace, other_workspace, outsider):
    segment = _segment(workspace, "Buyers")
    client = _api(outsider, "acme")
    assert client.get("/api/v1/segments/").status_code == 404
    assert client.get(f"/api/v1/segments/{segment.pk}/").status_code == 404
    assert (
        _post(client, "/api/v1/segments/", {"name": "X", "definition": PRO_PLAN}).status_code == 404
    )
    assert Segment.objects.count() == 1


def test_a_secret_key_sees_and_writes_only_its_workspace(workspace, other_workspace):
    mine = _segment(workspace, "Mine")
    theirs = _segment(other_workspace, "Theirs")
    client = _key_client(workspace, Role.MARKETER)
    assert [row["id"] for row in client.get("/api/v1/segments/").json()["results"]] == [mine.pk]
    assert client.get(f"/api/v1/segments/{theirs.pk}/").status_code == 404
    created = _post(client, "/api/v1/segments/", {"name": "By key", "definition": PRO_PLAN})
    assert created.status_code == 201
    row = AuditLog.objects.get(action="segment.create")
    assert (
        row.actor,
        row.actor_label.startswith("API key sk_"),
        row.actor_label.endswith("(ci)"),
    ) == (
        None,
        True,
        True,
    )
    assert Segment.objects.get(pk=created.json()["id"]).workspace == workspace


@pytest.mark.parametrize(
    ("role", "can_edit", "can_export"),
    [
        (Role.VIEWER, False, False),
        (Role.CONTENT_EDITOR, False, False),
        (Role.MARKETER, True, False),
        (Role.ANALYST, True, True),
        (Role.ADMIN, True, True),
    ],
)
def test_roles_decide_who_reads_edits_and_exports(
    workspace, make_member, people, role, can_edit, can_export
):
    dynamic = _segment(workspace, "Buyers")
    static = _segment(workspace, "VIP", {}, kind="static")
    client = _api(make_member(role))
    statuses = {
        "list": client.get("/api/v1/segments/").status_code,
        "get": client.get(f"/api/v1/segments/{dynamic.pk}/").status_code,
        "members": client.get(f"/api/v1/segments/{dynamic.pk}/members/").status_code,
        "create": _post(
            client, "/api/v1/segments/", {"name": "New", "definition": PRO_PLAN}
        ).status_code,
        "patch": _patch(
            client, f"/api/v1/segments/{dynamic.pk}/", {"description": "x"}
        ).status_code,
        "preview": _post(client, "/api/v1/segments/preview", {"definition": PRO_PLAN}).status_code,
        "static": client.post(
            "/api/v1/segments/static", {"name": "Up", "file": _csv_upload("user_id\nada-1\n")}
        ).status_code,
        "snapshot": _post(
            client, f"/api/v1/segments/{dynamic.pk}/snapshot", {"name": "Snap"}
        ).status_code,
        "change members": _post(
            client, f"/api/v1/segments/{static.pk}/members/", {"add": [people["ada"].pk]}
        ).status_code,
        "export": client.get(f"/api/v1/segments/{dynamic.pk}/export").status_code,
        "delete": client.delete(f"/api/v1/segments/{static.pk}/").status_code,
    }
    allowed = {200: True, 201: True, 204: True, 403: False}
    assert {key: allowed[status] for key, status in statuses.items()} == {
        "list": True,
        "get": True,
        "members": True,
        "create": can_edit,
        "patch": can_edit,
        "preview": can_edit,
        "static": can_edit,
        "snapshot": can_edit,
        "change members": can_edit,
        "export": can_export,
        "delete": can_edit,
    }
    expected = {"Buyers", "VIP"} if not can_edit else {"Buyers", "New", "Up", "Snap"}
    assert set(Segment.objects.values_list("name", flat=True)) == expected
    assert [row[0] for row in _segment_audit(action="segment.export")] == (
        ["segment.export"] if can_export else []
    )


def test_a_refusal_names_the_missing_permission(workspace, make_member):
    response = _post(
        _api(make_member(Role.VIEWER)), "/api/v1/segments/", {"name": "X", "definition": PRO_PLAN}
    )
    assert response.status_code == 403
    assert response.json() == {
        "code": "permission_denied",
        "message": "This role (viewer) lacks the permission segments.edit.",
    }


# --------------------------------------------------------------------------- OpenAPI


def test_every_segment_endpoint_is_in_the_openapi_schema(client, db):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operations = {
        (path, method)
        for path, item in schema["paths"].items()
        for method in item
        if path.startswith("/api/v1/segments")
    }
    assert operations == {
        ("/api/v1/segments/", "get"),
        ("/api/v1/segments/", "post"),
        ("/api/v1/segments/preview", "post"),
        ("/api/v1/segments/static", "post"),
        ("/api/v1/segments/{segment_id}/", "get"),
        ("/api/v1/segments/{segment_id}/", "patch"),
        ("/api/v1/segments/{segment_id}/", "delete"),
        ("/api/v1/segments/{segment_id}/members/", "get"),
        ("/api/v1/segments/{segment_id}/members/", "post"),
        ("/api/v1/segments/{segment_id}/export", "get"),
        ("/api/v1/segments/{segment_id}/snapshot", "post"),
    }
    export = schema["paths"]["/api/v1/segments/{segment_id}/export"]["get"]
    assert list(export["responses"]["200"]["content"]) == ["text/csv"]
    upload = schema["paths"]["/api/v1/segments/static"]["post"]["requestBody"]["content"]
    assert list(upload) == ["multipart/form-data"]
