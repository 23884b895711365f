"""REST API of profiles, events, rejected events and event schemas: scoped to the
caller's workspace, filtered, paginated, role-checked, audited, in the OpenAPI schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from engagement_site.workspaces.models import AuditLog
from engagement_site.workspaces.roles import Role
from engagement_site.workspaces.services import api_key_create
from segments.models import Event, EventSchema, Profile, RejectedEvent, TraitChange
from tests.conftest import SETUP, logged_in

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _api(user, workspace_slug: str = "acme") -> Client:
    client = logged_in(user)
    client.defaults["HTTP_X_WORKSPACE"] = workspace_slug
    return client


def _profile(workspace, user_id: str, **fields) -> Profile:
    return Profile.objects.create(workspace=workspace, user_id=user_id, **fields)


def _event(profile: Profile, name: str, when: datetime, **fields) -> Event:
    return Event.objects.create(
        workspace=profile.workspace,
        profile=profile,
        name=name,
        timestamp=when,
        message_id=f"{profile.user_id}-{name}-{when.isoformat()}-{Event.objects.count()}",
        **fields,
    )


def _all_pages(client: Client, url: str) -> list[list[dict]]:
    pages = []
    while url:
        body = client.get(url).json()
        pages.append(body["results"])
        url = body["next"]
    return pages


@pytest.fixture
def people(workspace, other_workspace):
    ada = _profile(workspace, "ada-1", email="ada@example.com", traits={"name": "Ada Lovelace"})
    bob = _profile(workspace, "bob-2", email="bob@example.com", traits={"name": "Bob Byte"})
    cy = _profile(workspace, "", anonymous_ids=["anon-cy"], traits={"name": "Cy Anon"})
    stranger = _profile(other_workspace, "ada-1", email="ada@example.com", traits={"name": "Ada"})
    return {"ada": ada, "bob": bob, "cy": cy, "stranger": stranger}


# --------------------------------------------------------------------------- profiles


def test_profile_list_is_scoped_newest_first_and_paginated(people, owner):
    client = _api(owner)
    pages = _all_pages(client, "/api/v1/profiles/?page_size=2")
    assert [[row["id"] for row in page] for page in pages] == [
        [people["cy"].pk, people["bob"].pk],
        [people["ada"].pk],
    ]
    assert pages[1][0] == {
        "id": people["ada"].pk,
        "user_id": "ada-1",
        "anonymous_ids": [],
        "email": "ada@example.com",
        "phone": "",
        "time_zone": "",
        "locale": "",
        "traits": {"name": "Ada Lovelace"},
        "first_seen": pages[1][0]["first_seen"],
        "last_seen": pages[1][0]["last_seen"],
        "created_at": pages[1][0]["created_at"],
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("user_id=ada-1", ["ada"]),
        ("user_id=ada", []),
        ("email=bob@example.com", ["bob"]),
        ("search=LOVELACE", ["ada"]),
        ("search=anon-cy", []),
        ("search=cy", ["cy"]),
        ("search=example.com", ["bob", "ada"]),
        ("user_id=bob-2&search=ada", []),
        ("email=", ["cy", "bob", "ada"]),
    ],
)
def test_profile_list_filters(people, owner, query, expected):
    results = _api(owner).get(f"/api/v1/profiles/?{query}").json()["results"]
    assert [row["id"] for row in results] == [people[name].pk for name in expected]


def test_profile_get_shows_identities_and_merges(people, owner):
    ada = people["ada"]
    ada.identities.create(workspace=ada.workspace, kind="user_id", value="ada-1")
    ada.merges.create(
        workspace=ada.workspace,
        merged_profile_id=4242,
        merged_identities=["anon-old"],
        merged_traits={"plan": "free"},
        events_moved=2,
        reason="identify",
        merged_at=T0,
    )
    body = _api(owner).get(f"/api/v1/profiles/{ada.pk}/").json()
    assert body["identities"] == [
        {"kind": "user_id", "value": "ada-1", "created_at": body["identities"][0]["created_at"]}
    ]
    assert body["merges"] == [
        {
            "merged_at": "2026-11-02T09:00:00Z",
            "reason": "identify",
            "merged_profile_id": 4242,
            "merged_identities": ["anon-old"],
            "merged_traits": {"plan": "free"},
            "events_moved": 2,
            "message_id": "",
        }
    ]


PROFILE_ENDPOINTS = [
    ("get", "/api/v1/profiles/{id}/"),
    ("patch", "/api/v1/profiles/{id}/"),
    ("get", "/api/v1/profiles/{id}/events/"),
    ("get", "/api/v1/profiles/{id}/export"),
    ("post", "/api/v1/profiles/{id}/erase"),
]


@pytest.mark.parametrize(("method", "route"), PROFILE_ENDPOINTS)
def test_every_profile_endpoint_answers_404_for_another_workspaces_profile(
    people, owner, method, route
):
    stranger = people["stranger"]
    _event(stranger, "logged_in", T0)
    response = getattr(_api(owner), method)(
        route.format(id=stranger.pk),
        {"traits": {"plan": "stolen"}} if method == "patch" else None,
        content_type="application/json",
    )
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "No such profile"}
    stranger.refresh_from_db()
    assert stranger.traits == {"name": "Ada"}
    assert Event.objects.filter(profile=stranger).count() == 1
    assert TraitChange.objects.count() == 0
    assert (
        AuditLog.objects.filter(
            action__in=["profile.update", "profile.export", "profile.erase"]
        ).count()
        == 0
    )


def test_a_secret_key_sees_only_its_workspaces_profiles(people, workspace):
    _, key = api_key_create(
        workspace=workspace, kind="secret", role="viewer", name="ci", context=SETUP
    )
    client = Client(headers={"Authorization": f"Bearer {key}"})
    assert sorted(row["user_id"] for row in client.get("/api/v1/profiles/").json()["results"]) == [
        "",
        "ada-1",
        "bob-2",
    ]
    assert client.get(f"/api/v1/profiles/{people['stranger'].pk}/").status_code == 404


@pytest.mark.parametrize(
    ("role", "can_read", "can_edit", "can_export", "can_erase"),
    [
        (Role.VIEWER, True, False, False, False),
        (Role.CONTENT_EDITOR, True, False, False, False),
        (Role.MARKETER, True, True, False, False),
        (Role.ANALYST, True, True, True, False),
        (Role.ADMIN, True, True, True, True),
    ],
)
def test_roles_decide_who_reads_edits_exports_and_erases(
    people, make_member, role, can_read, can_edit, can_export, can_erase
):
    client = _api(make_member(role))
    ada, bob = people["ada"], people["bob"]
    statuses = {
        "list": client.get("/api/v1/profiles/").status_code,
        "get": client.get(f"/api/v1/profiles/{ada.pk}/").status_code,
        "events": client.get(f"/api/v1/profiles/{ada.pk}/events/").status_code,
        "patch": client.patch(
            f"/api/v1/profiles/{ada.pk}/",
            {"traits": {"plan": "pro"}},
            content_type="application/json",
        ).status_code,
        "export": client.get(f"/api/v1/profiles/{ada.pk}/export").status_code,
        "erase": client.post(f"/api/v1/profiles/{bob.pk}/erase").status_code,
    }
    allowed = {200: True, 403: False}
    assert {key: allowed[status] for key, status in statuses.items()} == {
        "list": can_read,
        "get": can_read,
        "events": can_read,
        "patch": can_edit,
        "export": can_export,
        "erase": can_erase,
    }
    ada.refresh_from_db()
    assert ada.traits == (
        {"name": "Ada Lovelace", "plan": "pro"} if can_edit else {"name": "Ada Lovelace"}
    )
    assert Profile.objects.filter(pk=bob.pk).exists() is not can_erase


# --------------------------------------------------------------------------- traits


def test_patch_merges_traits_records_history_and_audits_names_only(workspace, owner):
    profile = _profile(
        workspace,
        "dee-4",
        email="dee@example.com",
        traits={
            "name": "Dee",
            "email": "dee@example.com",
            "plan": "free",
            "address": {"city": "Paris", "zip": "75001"},
        },
    )
    response = _api(owner).patch(
        f"/api/v1/profiles/{profile.pk}/",
        {
            "traits": {
                "plan": "pro",
                "name": "Dee",
                "email": None,
                "address": {"city": "Berlin"},
                "tags": ["vip"],
                "phone": "+4915112345678",
            }
        },
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json()["traits"] == {
        "name": "Dee",
        "plan": "pro",
        "address": {"city": "Berlin", "zip": "75001"},
        "tags": ["vip"],
        "phone": "+4915112345678",
    }
    profile.refresh_from_db()
    assert (profile.email, profile.phone) == ("", "+4915112345678")
    assert sorted(
        TraitChange.objects.filter(profile=profile).values_list(
            "trait", "before", "after", "source"
        )
    ) == [
        ("address.city", "Paris", "Berlin", "api"),
        ("email", "dee@example.com", None, "api"),
        ("phone", None, "+4915112345678", "api"),
        ("plan", "free", "pro", "api"),
        ("tags", None, ["vip"], "api"),
    ]
    audit = AuditLog.objects.get(action="profile.update")
    assert (audit.actor, audit.object_type, audit.object_id, audit.object_repr) == (
        owner,
        "segments.Profile",
        str(profile.pk),
        f"Profile {profile.pk}",
    )
    assert audit.changes == {
        "traits": {"set": ["address.city", "phone", "plan", "tags"], "removed": ["email"]},
        "source": "api",
    }


def test_patch_that_changes_nothing_records_nothing(workspace, owner):
    profile = _profile(workspace, "eve-5", traits={"plan": "pro", "gone": 1})
    response = _api(owner).patch(
        f"/api/v1/profiles/{profile.pk}/",
        {"traits": {"plan": "pro", "absent": None}},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert TraitChange.objects.count() == 0
    assert AuditLog.objects.filter(action="profile.update").count() == 0


def test_patch_keeps_only_the_newest_trait_history(workspace, owner):
    profile = _profile(workspace, "fay-6")
    TraitChange.objects.bulk_create(
        TraitChange(
            workspace=workspace,
            profile=profile,
            trait=f"old{number}",
            after=number,
            source="identify",
            changed_at=T0 + timedelta(seconds=number),
        )
        for number in range(TraitChange.TRAIT_HISTORY_KEPT)
    )
    _api(owner).patch(
        f"/api/v1/profiles/{profile.pk}/",
        {"traits": {"a": 1, "b": 2}},
        content_type="application/json",
    )
    traits = set(TraitChange.objects.filter(profile=profile).values_list("trait", flat=True))
    assert len(traits) == TraitChange.TRAIT_HISTORY_KEPT
    assert {"a", "b"} <= traits
    assert {"old0", "old1"} & traits == set()


@pytest.mark.parametrize(
    ("traits", "errors"),
    [
        (
            {"phone": "0151 1234"},
            {"phone": ["phone must be in E.164 form, such as +4915112345678."]},
        ),
        ({"email": 42}, {"email": ["email must be a string (or null to remove it)."]}),
        (
            {"time_zone": "Mars/Olympus"},
            {"time_zone": ["time_zone must be an IANA time zone such as Europe/Berlin."]},
        ),
        (
            {"locale": "english please"},
            {"locale": ["locale must be a locale such as en or pt-BR."]},
        ),
    ],
)
def test_patch_refuses_unusable_contact_traits_and_names_them(workspace, owner, traits, errors):
    profile = _profile(workspace, "gus-7", traits={"plan": "free"})
    response = _api(owner).patch(
        f"/api/v1/profiles/{profile.pk}/",
        {"traits": {**traits, "plan": "pro"}},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "The request has invalid fields.",
        "errors": {"traits": errors},
    }
    profile.refresh_from_db()
    assert profile.traits == {"plan": "free"}
    assert TraitChange.objects.count() == 0
    assert AuditLog.objects.filter(action="profile.update").count() == 0


def test_patch_needs_a_traits_object(workspace, owner):
    profile = _profile(workspace, "hal-8")
    client = _api(owner)
    empty = client.patch(
        f"/api/v1/profiles/{profile.pk}/", {"traits": {}}, content_type="application/json"
    )
    listed = client.patch(
        f"/api/v1/profiles/{profile.pk}/", {"traits": [1]}, content_type="application/json"
    )
    assert (empty.status_code, listed.status_code) == (400, 400)
    assert empty.json()["errors"] == {"traits": ["This dictionary may not be empty."]}
    assert listed.json()["errors"] == {
        "traits": ['Expected a dictionary of items but got type "list".']
    }


# --------------------------------------------------------------------------- events


def test_profile_events_are_newest_first_filtered_and_keyset_paginated(people, owner):
    ada = people["ada"]
    # Three events share one timestamp: the id orders them, and no page repeats or skips one.
    same_time = [_event(ada, "logged_in", T0) for _ in range(3)]
    older = _event(ada, "signed_up", T0 - timedelta(days=40))
    newest = _event(ada, "order_completed", T0 + timedelta(hours=1), properties={"total": 9.5})
    _event(people["bob"], "logged_in", T0)
    client = _api(owner)

    pages = _all_pages(client, f"/api/v1/profiles/{ada.pk}/events/?page_size=2")
    assert [[row["id"] for row in page] for page in pages] == [
        [newest.id, same_time[2].id],
        [same_time[1].id, same_time[0].id],
        [older.id],
    ]
    assert pages[0][0] == {
        "id": newest.id,
        "profile_id": ada.pk,
        "type": "track",
        "name": "order_completed",
        "timestamp": "2026-11-02T10:00:00Z",
        "original_timestamp": None,
        "sent_at": None,
        "received_at": pages[0][0]["received_at"],
        "message_id": newest.message_id,
        "properties": {"total": 9.5},
        "context": {},
        "violations": [],
    }
    named = client.get(f"/api/v1/profiles/{ada.pk}/events/?name=logged_in").json()
    assert [row["id"] for row in named["results"]] == [event.id for event in reversed(same_time)]
    assert named["next"] is None


def test_a_bad_cursor_is_404(people, owner):
    response = _api(owner).get(f"/api/v1/profiles/{people['ada'].pk}/events/?cursor=bm9wZQ")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "Invalid cursor"}


def test_event_list_filters_by_user_name_and_time_and_stays_in_its_workspace(people, owner):
    ada, bob = people["ada"], people["bob"]
    ada_login = _event(ada, "logged_in", T0)
    ada_order = _event(ada, "order_completed", T0 + timedelta(hours=2))
    bob_login = _event(bob, "logged_in", T0 + timedelta(hours=1))
    _event(people["stranger"], "logged_in", T0)
    client = _api(owner)

    def ids(query: str) -> list[int]:
        return [row["id"] for row in client.get(f"/api/v1/events/?{query}").json()["results"]]

    assert ids("") == [ada_order.id, bob_login.id, ada_login.id]
    assert ids("user_id=ada-1") == [ada_order.id, ada_login.id]
    assert ids("user_id=nobody") == []
    assert ids("name=logged_in") == [bob_login.id, ada_login.id]
    assert ids("since=2026-11-02T10:00:00Z") == [ada_order.id, bob_login.id]
    assert ids("until=2026-11-02T10:00:00Z") == [ada_login.id]
    assert ids("user_id=ada-1&name=logged_in&since=2026-11-02T09:00:00%2B00:00") == [ada_login.id]
    pages = _all_pages(client, "/api/v1/events/?page_size=1")
    assert [page[0]["id"] for page in pages] == [ada_order.id, bob_login.id, ada_login.id]


def test_event_list_refuses_a_bad_time_and_names_the_parameter(people, owner):
    response = _api(owner).get("/api/v1/events/?since=yesterday")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["since"]


def test_rejected_events_are_listed_newest_first_scoped_and_filterable(
    workspace, other_workspace, owner
):
    first = RejectedEvent.objects.create(
        workspace=workspace, code="invalid_json", reason="not JSON", raw="{oops", received_at=T0
    )
    second = RejectedEvent.objects.create(
        workspace=workspace,
        code="schema_violation",
        reason="plan must be a string",
        event_type="track",
        event_name="Upgraded",
        message_id="m-1",
        payload={"event": "Upgraded", "properties": {"plan": 3}},
        received_at=T0 + timedelta(minutes=1),
    )
    RejectedEvent.objects.create(
        workspace=other_workspace, code="invalid_json", reason="x", received_at=T0
    )
    client = _api(owner)
    body = client.get("/api/v1/rejected-events/").json()
    assert body == {
        "next": None,
        "results": [
            {
                "id": second.pk,
                "received_at": "2026-11-02T09:01:00Z",
                "code": "schema_violation",
                "reason": "plan must be a string",
                "event_type": "track",
                "event_name": "Upgraded",
                "message_id": "m-1",
                "payload": {"event": "Upgraded", "properties": {"plan": 3}},
                "raw": "",
            },
            {
                "id": first.pk,
                "received_at": "2026-11-02T09:00:00Z",
                "code": "invalid_json",
                "reason": "not JSON",
                "event_type": "",
                "event_name": "",
                "message_id": "",
                "payload": None,
                "raw": "{oops",
            },
        ],
    }
    filtered = client.get("/api/v1/rejected-events/?code=invalid_json").json()["results"]
    assert [row["id"] for row in filtered] == [first.pk]


# --------------------------------------------------------------------------- event schemas

GOOD_SCHEMA = {
    "event_name": "Order Completed",
    "properties": {"total": {"type": "number", "required": True}, "coupon": {"type": "string"}},
}


def test_event_schema_create_read_replace_delete_each_audited(workspace, owner):
    client = _api(owner)
    created = client.post("/api/v1/event-schemas/", GOOD_SCHEMA, content_type="application/json")
    assert created.status_code == 201
    schema_id = created.json()["id"]
    assert created.json() == {
        "id": schema_id,
        "event_name": "Order Completed",
        "properties": GOOD_SCHEMA["properties"],
        "allow_additional_properties": True,
        "updated_at": created.json()["updated_at"],
    }
    assert client.get(f"/api/v1/event-schemas/{schema_id}/").json() == created.json()
    assert [row["id"] for row in client.get("/api/v1/event-schemas/").json()["results"]] == [
        schema_id
    ]

    replaced = client.put(
        f"/api/v1/event-schemas/{schema_id}/",
        {
            **GOOD_SCHEMA,
            "properties": {"total": {"type": "integer"}},
            "allow_additional_properties": False,
        },
        content_type="application/json",
    )
    assert replaced.status_code == 200
    schema = EventSchema.objects.get(pk=schema_id)
    assert (schema.properties, schema.allow_additional_properties) == (
        {"total": {"type": "integer"}},
        False,
    )

    deleted = client.delete(f"/api/v1/event-schemas/{schema_id}/")
    assert deleted.status_code == 204
    assert EventSchema.objects.count() == 0
    audit = list(
        AuditLog.objects.filter(object_type="segments.EventSchema")
        .order_by("sequence")
        .values_list("action", "changes")
    )
    assert audit == [
        ("event_schema.create", {**GOOD_SCHEMA, "allow_additional_properties": True}),
        (
            "event_schema.update",
            {
                "properties": {
                    "before": GOOD_SCHEMA["properties"],
                    "after": {"total": {"type": "integer"}},
                },
                "allow_additional_properties": {"before": True, "after": False},
            },
        ),
        (
            "event_schema.delete",
            {
                "event_name": "Order Completed",
                "properties": {"total": {"type": "integer"}},
                "allow_additional_properties": False,
            },
        ),
    ]


def test_event_schema_validation_names_each_offending_property(workspace, owner):
    response = _api(owner).post(
        "/api/v1/event-schemas/",
        {
            "event_name": "Signed Up",
            "properties": {
                "plan": {"type": "str"},
                "seats": {"type": "integer", "required": "yes"},
                "source": {"kind": "string"},
                "referrer": "string",
                "trial": {"type": "boolean", "requried": True},
                "ok": {"type": "array", "required": False},
            },
        },
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "properties": {
            "plan": [
                'Property "plan": type "str" is not one of string, number, integer, boolean, object, array.'
            ],
            "seats": ['Property "seats": "required" must be true or false.'],
            "source": [
                'Property "source": "type" is missing; use one of string, number, integer, boolean, object, array.',
                'Property "source": unknown key "kind"; a property takes only "type" and "required".',
            ],
            "referrer": [
                'Property "referrer": give an object such as {"type": "string", "required": true}.'
            ],
            "trial": [
                'Property "trial": unknown key "requried"; a property takes only "type" and "required".'
            ],
        }
    }
    assert EventSchema.objects.count() == 0
    assert AuditLog.objects.filter(object_type="segments.EventSchema").count() == 0


def test_event_schema_properties_must_be_an_object(workspace, owner):
    response = _api(owner).post(
        "/api/v1/event-schemas/",
        {"event_name": "X", "properties": ["total"]},
        content_type="application/json",
    )
    assert response.json()["errors"] == {
        "properties": {
            "properties": [
                'Give the properties as an object, such as {"plan": {"type": "string", "required": true}}.'
            ]
        }
    }


def test_event_schema_names_are_unique_per_workspace(workspace, other_workspace, owner):
    EventSchema.objects.create(workspace=other_workspace, event_name="Order Completed")
    client = _api(owner)
    first = client.post("/api/v1/event-schemas/", GOOD_SCHEMA, content_type="application/json")
    second = client.post("/api/v1/event-schemas/", GOOD_SCHEMA, content_type="application/json")
    assert (first.status_code, second.status_code) == (201, 400)
    assert second.json()["errors"] == {
        "event_name": ['A schema for "Order Completed" already exists.']
    }
    other = EventSchema.objects.create(workspace=workspace, event_name="Signed Up")
    renamed = client.put(
        f"/api/v1/event-schemas/{other.pk}/", GOOD_SCHEMA, content_type="application/json"
    )
    assert renamed.status_code == 400
    other.refresh_from_db()
    assert other.event_name == "Signed Up"
    assert EventSchema.objects.filter(workspace=workspace).count() == 2


def test_event_schemas_of_another_workspace_answer_404(workspace, other_workspace, owner):
    theirs = EventSchema.objects.create(
        workspace=other_workspace, event_name="Secret", properties={}
    )
    client = _api(owner)
    responses = [
        client.get(f"/api/v1/event-schemas/{theirs.pk}/"),
        client.put(
            f"/api/v1/event-schemas/{theirs.pk}/", GOOD_SCHEMA, content_type="application/json"
        ),
        client.delete(f"/api/v1/event-schemas/{theirs.pk}/"),
    ]
    assert [response.status_code for response in responses] == [404, 404, 404]
    assert responses[0].json() == {"code": "not_found", "message": "No such event schema"}
    assert client.get("/api/v1/event-schemas/").json()["results"] == []
    theirs.refresh_from_db()
    assert theirs.event_name == "Secret"


def test_a_viewer_reads_event_schemas_but_cannot_change_them(workspace, make_member):
    schema = EventSchema.objects.create(workspace=workspace, event_name="Signed Up", properties={})
    client = _api(make_member(Role.VIEWER))
    assert client.get("/api/v1/event-schemas/").status_code == 200
    refused = [
        client.post("/api/v1/event-schemas/", GOOD_SCHEMA, content_type="application/json"),
        client.put(
            f"/api/v1/event-schemas/{schema.pk}/", GOOD_SCHEMA, content_type="application/json"
        ),
        client.delete(f"/api/v1/event-schemas/{schema.pk}/"),
    ]
    assert [response.status_code for response in refused] == [403, 403, 403]
    assert list(EventSchema.objects.values_list("event_name", flat=True)) == ["Signed Up"]


# --------------------------------------------------------------------------- OpenAPI


def test_every_endpoint_is_in_the_openapi_schema(client, db):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operations = {
        (path, method)
        for path, item in schema["paths"].items()
        for method in item
        if path.startswith("/api/v1/")
    }
    assert {
        ("/api/v1/profiles/", "get"),
        ("/api/v1/profiles/{profile_id}/", "get"),
        ("/api/v1/profiles/{profile_id}/", "patch"),
        ("/api/v1/profiles/{profile_id}/events/", "get"),
        ("/api/v1/profiles/{profile_id}/export", "get"),
        ("/api/v1/profiles/{profile_id}/erase", "post"),
        ("/api/v1/events/", "get"),
        ("/api/v1/rejected-events/", "get"),
        ("/api/v1/event-schemas/", "get"),
        ("/api/v1/event-schemas/", "post"),
        ("/api/v1/event-schemas/{event_schema_id}/", "get"),
        ("/api/v1/event-schemas/{event_schema_id}/", "put"),
        ("/api/v1/event-schemas/{event_schema_id}/", "delete"),
    } <= operations
    event_parameters = {
        parameter["name"] for parameter in schema["paths"]["/api/v1/events/"]["get"]["parameters"]
    }
    assert event_parameters == {"user_id", "name", "since", "until", "cursor", "page_size"}
