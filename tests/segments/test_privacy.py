"""Privacy: an erased profile leaves no personal data in any table, an export holds
everything, both are audited with counts only, and the admin offers both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from engagement_site.workspaces.models import AuditLog
from engagement_site.workspaces.roles import Role
from segments import privacy
from segments.models import (
    Event,
    EventMessageId,
    Identity,
    Profile,
    ProfileMerge,
    RejectedEvent,
    TraitChange,
)
from segments.partitions import DEFAULT_PARTITION, partition_name
from tests.conftest import SETUP, logged_in

# The person to forget. Every value is unique to them, so finding it anywhere after the
# erase means something of theirs was left behind.
USER_ID = "erin-7731"
ANONYMOUS_IDS = ["anon-erin-a1f3", "anon-erin-b9c2"]
ALIAS = "erin-legacy-5510"
EMAIL = "erin.erasure@example.org"
PHONE = "+4915112340077"
NEEDLES = [USER_ID, *ANONYMOUS_IDS, ALIAS, EMAIL, PHONE]

NOW = timezone.now()
EVENT_TIMES = [
    NOW - timedelta(hours=2),  # this month's partition
    NOW - timedelta(days=40),  # last month's partition
    datetime(2019, 3, 14, 15, 9, tzinfo=UTC),  # no partition: the default one
]


def _event(profile: Profile, *, when: datetime, name: str, message_id: str, **fields) -> Event:
    EventMessageId.objects.create(workspace=profile.workspace, message_id=message_id)
    return Event.objects.create(
        workspace=profile.workspace,
        profile=profile,
        name=name,
        message_id=message_id,
        timestamp=when,
        **fields,
    )


def _person(workspace) -> Profile:
    """A profile with something personal in every table that can hold it."""
    profile = Profile.objects.create(
        workspace=workspace,
        user_id=USER_ID,
        anonymous_ids=ANONYMOUS_IDS,
        email=EMAIL,
        phone=PHONE,
        time_zone="Europe/Berlin",
        locale="de-DE",
        traits={"name": "Erin Erasure", "email": EMAIL, "phone": PHONE, "plan": "pro"},
    )
    Identity.objects.create(workspace=workspace, profile=profile, kind="user_id", value=USER_ID)
    for value in [*ANONYMOUS_IDS, ALIAS]:
        Identity.objects.create(
            workspace=workspace, profile=profile, kind="anonymous_id", value=value
        )
    ProfileMerge.objects.create(
        workspace=workspace,
        profile=profile,
        merged_profile_id=990001,
        merged_identities=[{"kind": "anonymous_id", "value": ANONYMOUS_IDS[1]}],
        merged_traits={"email": EMAIL},
        events_moved=1,
        reason="identify",
        message_id=f"{USER_ID}-identify",
    )
    TraitChange.objects.create(
        workspace=workspace,
        profile=profile,
        trait="email",
        before=None,
        after=EMAIL,
        source="identify",
    )
    for number, when in enumerate(EVENT_TIMES):
        _event(
            profile,
            when=when,
            name="order_completed",
            message_id=f"{USER_ID}-order-{number}",
            properties={"receipt_email": EMAIL},
            context={"traits": {"phone": PHONE}, "anonymousId": ANONYMOUS_IDS[0]},
        )
    RejectedEvent.objects.create(
        workspace=workspace,
        code="schema_violation",
        reason="plan must be a string",
        event_type="track",
        event_name="Upgraded",
        payload={"type": "track", "userId": USER_ID, "properties": {"plan": 3}},
    )
    RejectedEvent.objects.create(
        workspace=workspace,
        code="missing_event",
        reason="track without an event name",
        event_type="track",
        payload={"type": "track", "anonymousId": ANONYMOUS_IDS[0], "traits": {"email": EMAIL}},
    )
    RejectedEvent.objects.create(
        workspace=workspace,
        code="invalid_json",
        reason="not JSON",
        payload=None,
        raw='{"type": "identify", "userId":"erin-7731", "traits": {"phone": "' + PHONE + '"',
    )
    return profile


def _bystander(workspace, *, user_id: str = "carl-0042") -> Profile:
    """Someone else in the same workspace, whose rows must all survive."""
    profile = Profile.objects.create(
        workspace=workspace,
        user_id=user_id,
        email=f"{user_id}@example.net",
        traits={"plan": "free"},
    )
    Identity.objects.create(workspace=workspace, profile=profile, kind="user_id", value=user_id)
    TraitChange.objects.create(
        workspace=workspace, profile=profile, trait="plan", after="free", source="identify"
    )
    _event(profile, when=NOW - timedelta(hours=1), name="logged_in", message_id=f"{user_id}-login")
    RejectedEvent.objects.create(
        workspace=workspace, code="missing_event", reason="no name", payload={"userId": user_id}
    )
    return profile


def _rows_of(workspace, profile: Profile) -> dict[str, int]:
    return {
        "profile": Profile.objects.filter(pk=profile.pk).count(),
        "identities": Identity.objects.filter(profile=profile).count(),
        "trait_changes": TraitChange.objects.filter(profile=profile).count(),
        "events": Event.objects.filter(profile=profile).count(),
        "message_ids": EventMessageId.objects.filter(
            workspace=workspace, message_id__startswith=profile.user_id
        ).count(),
        "rejected_events": RejectedEvent.objects.filter(
            workspace=workspace, payload__contains={"userId": profile.user_id}
        ).count(),
    }


def _tables_holding(needles: list[str]) -> set[str]:
    """Every table in the database with a text, varchar, JSON or array column whose value
    contains one of the needles (case-insensitive): not only the tables we know of."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.table_name, c.column_name
              FROM information_schema.columns c
              JOIN information_schema.tables t USING (table_schema, table_name)
             WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
               AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'ARRAY')
            """
        )
        columns = cursor.fetchall()
        found = set()
        for table, column in columns:
            cursor.execute(
                f'SELECT EXISTS (SELECT 1 FROM "{table}" WHERE EXISTS ('
                f'SELECT 1 FROM unnest(%s::text[]) AS needle WHERE strpos(lower("{column}"::text), lower(needle)) > 0))',
                [needles],
            )
            if cursor.fetchone()[0]:
                found.add(table)
    return found


def _scanned_tables() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
        return {row[0] for row in cursor.fetchall()}


def _api(user):
    client = logged_in(user)
    client.defaults["HTTP_X_WORKSPACE"] = "acme"
    return client


# --------------------------------------------------------------------------- the erase


def test_erase_leaves_no_personal_data_in_any_table(workspace, owner):
    profile = _person(workspace)
    bystander = _bystander(workspace)
    bystander_rows = _rows_of(workspace, bystander)
    client = _api(owner)
    # A trait update and an export first: their audit rows must not carry the person either.
    patched = client.patch(
        f"/api/v1/profiles/{profile.pk}/",
        {"traits": {"phone": "+4915112340078", "nickname": "erin-7731-nick"}},
        content_type="application/json",
    )
    exported = client.get(f"/api/v1/profiles/{profile.pk}/export")
    assert (patched.status_code, exported.status_code) == (200, 200)
    needles = [*NEEDLES, "+4915112340078", "erin-7731-nick"]

    # Every segments model and the audit log are among the scanned tables, and the
    # person is really in each table that can hold them before the erase.
    segments_tables = {
        model._meta.db_table for model in apps.get_app_config("segments").get_models()
    }
    assert segments_tables | {AuditLog._meta.db_table, LogEntry._meta.db_table} <= _scanned_tables()
    month_partitions = {partition_name(when.date().replace(day=1)) for when in EVENT_TIMES[:2]}
    assert _tables_holding(needles) == {
        "segments_profile",
        "segments_identity",
        "segments_profilemerge",
        "segments_traitchange",
        "segments_event",
        DEFAULT_PARTITION,
        *month_partitions,
        "segments_eventmessageid",
        "segments_rejectedevent",
    }

    erased = client.post(f"/api/v1/profiles/{profile.pk}/erase")

    assert erased.status_code == 200
    assert erased.json() == {
        "profile_id": profile.pk,
        "erased": {
            "rejected_events": 3,
            "events": 3,
            "event_message_ids": 3,
            "identities": 4,
            "merges": 1,
            "trait_changes": 3,
            "profiles": 1,
        },
    }
    assert _tables_holding(needles) == set()
    assert _rows_of(workspace, bystander) == bystander_rows
    assert Profile.objects.filter(workspace=workspace).count() == 1


def test_erase_keeps_the_same_user_id_in_another_workspace(workspace, other_workspace, owner):
    profile = _person(workspace)
    twin = _bystander(other_workspace, user_id=USER_ID)
    twin_rows = _rows_of(other_workspace, twin)

    _api(owner).post(f"/api/v1/profiles/{profile.pk}/erase")

    assert Profile.objects.filter(pk=profile.pk).exists() is False
    assert (
        _rows_of(other_workspace, twin)
        == twin_rows
        == {
            "profile": 1,
            "identities": 1,
            "trait_changes": 1,
            "events": 1,
            "message_ids": 1,
            "rejected_events": 1,
        }
    )


def test_erase_is_one_delete_on_the_events_parent_table(workspace):
    profile = _person(workspace)
    with CaptureQueriesContext(connection) as queries:
        privacy.profile_erase(workspace=workspace, profile=profile, context=SETUP)
    event_deletes = [
        query["sql"]
        for query in queries.captured_queries
        if "DELETE FROM segments_event " in query["sql"]
    ]
    assert len(event_deletes) == 1
    assert "segments_event_p" not in event_deletes[0]
    assert Event.objects.filter(workspace=workspace).count() == 0


def test_erase_is_audited_with_counts_and_no_personal_data(workspace, owner):
    profile = _person(workspace)
    _api(owner).post(f"/api/v1/profiles/{profile.pk}/erase")
    row = AuditLog.objects.get(workspace=workspace, action="profile.erase")
    assert (row.actor, row.object_type, row.object_id, row.object_repr) == (
        owner,
        "segments.Profile",
        str(profile.pk),
        f"Profile {profile.pk}",
    )
    assert row.changes == {
        "erased": {
            "rejected_events": 3,
            "events": 3,
            "event_message_ids": 3,
            "identities": 4,
            "merges": 1,
            "trait_changes": 1,
            "profiles": 1,
        }
    }


def test_erase_runs_the_registered_erasers_in_its_transaction(workspace, monkeypatch):
    profile = _person(workspace)
    seen = []

    def messages_erase(*, workspace, profile):
        seen.append((workspace.slug, profile.pk, Profile.objects.filter(pk=profile.pk).exists()))
        return {"messages": 2}

    monkeypatch.setattr(privacy, "PROFILE_ERASERS", [messages_erase])
    counts = privacy.profile_erase(workspace=workspace, profile=profile, context=SETUP)
    assert seen == [("acme", profile.pk, True)]
    assert counts["messages"] == 2
    assert AuditLog.objects.get(action="profile.erase").changes["erased"]["messages"] == 2


def test_a_failing_eraser_rolls_the_whole_erase_back(workspace, monkeypatch):
    profile = _person(workspace)
    before = _rows_of(workspace, profile)

    def broken_erase(*, workspace, profile):
        raise RuntimeError("delivery is down")

    monkeypatch.setattr(privacy, "PROFILE_ERASERS", [broken_erase])
    with pytest.raises(RuntimeError):
        privacy.profile_erase(workspace=workspace, profile=profile, context=SETUP)
    assert _rows_of(workspace, profile) == before
    assert RejectedEvent.objects.filter(workspace=workspace).count() == 3
    assert AuditLog.objects.filter(action="profile.erase").count() == 0


def test_erasing_another_workspaces_profile_is_404_and_erases_nothing(
    workspace, other_workspace, owner
):
    theirs = _bystander(other_workspace)
    before = _rows_of(other_workspace, theirs)
    response = _api(owner).post(f"/api/v1/profiles/{theirs.pk}/erase")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "No such profile"}
    assert _rows_of(other_workspace, theirs) == before
    assert AuditLog.objects.filter(action="profile.erase").count() == 0


# --------------------------------------------------------------------------- the export


def test_export_contains_everything_held_about_the_profile(workspace, owner):
    profile = _person(workspace)
    _bystander(workspace)
    document = _api(owner).get(f"/api/v1/profiles/{profile.pk}/export").json()

    assert set(document) == {
        "format", "exported_at", "workspace", "profile", "identities", "merges",
        "trait_changes", "events", "rejected_events",
    }  # fmt: skip
    assert (document["format"], document["workspace"]) == ("engagement.profile-export.v1", "acme")
    assert {
        key: document["profile"][key]
        for key in ("id", "user_id", "anonymous_ids", "email", "phone")
    } == {
        "id": profile.pk,
        "user_id": USER_ID,
        "anonymous_ids": ANONYMOUS_IDS,
        "email": EMAIL,
        "phone": PHONE,
    }
    assert document["profile"]["traits"] == {
        "name": "Erin Erasure", "email": EMAIL, "phone": PHONE, "plan": "pro",
    }  # fmt: skip
    assert [(row["kind"], row["value"]) for row in document["identities"]] == [
        ("anonymous_id", ANONYMOUS_IDS[0]),
        ("anonymous_id", ANONYMOUS_IDS[1]),
        ("anonymous_id", ALIAS),
        ("user_id", USER_ID),
    ]
    assert [(row["merged_profile_id"], row["merged_traits"]) for row in document["merges"]] == [
        (990001, {"email": EMAIL})
    ]
    assert [(row["trait"], row["after"], row["source"]) for row in document["trait_changes"]] == [
        ("email", EMAIL, "identify")
    ]
    # Oldest first, from every partition.
    assert [row["message_id"] for row in document["events"]] == [
        f"{USER_ID}-order-2",
        f"{USER_ID}-order-1",
        f"{USER_ID}-order-0",
    ]
    assert document["events"][0]["properties"] == {"receipt_email": EMAIL}
    assert document["events"][0]["timestamp"] == "2019-03-14T15:09:00+00:00"
    assert sorted(row["code"] for row in document["rejected_events"]) == [
        "invalid_json",
        "missing_event",
        "schema_violation",
    ]


def test_export_is_audited_with_the_section_sizes(workspace, owner):
    profile = _person(workspace)
    _api(owner).get(f"/api/v1/profiles/{profile.pk}/export")
    row = AuditLog.objects.get(workspace=workspace, action="profile.export")
    assert (row.actor, row.object_id, row.object_repr) == (
        owner,
        str(profile.pk),
        f"Profile {profile.pk}",
    )
    assert row.changes == {
        "sections": {
            "identities": 4,
            "merges": 1,
            "trait_changes": 1,
            "events": 3,
            "rejected_events": 3,
        }
    }


def test_export_includes_the_registered_exporters_sections(workspace, monkeypatch):
    profile = _person(workspace)
    monkeypatch.setattr(
        privacy, "PROFILE_EXPORTERS", [lambda *, workspace, profile: {"messages": [{"id": 1}]}]
    )
    document = privacy.profile_export(workspace=workspace, profile=profile, context=SETUP)
    assert document["messages"] == [{"id": 1}]
    assert AuditLog.objects.get(action="profile.export").changes["sections"]["messages"] == 1


def test_a_rejected_event_of_someone_else_is_neither_exported_nor_erased(workspace):
    profile = _person(workspace)
    other = RejectedEvent.objects.create(
        workspace=workspace,
        code="missing_event",
        reason="no name",
        payload={"userId": "erin-77310", "anonymousId": "someone"},
    )
    document = privacy.profile_export(workspace=workspace, profile=profile, context=SETUP)
    assert other.pk not in [row["id"] for row in document["rejected_events"]]
    privacy.profile_erase(workspace=workspace, profile=profile, context=SETUP)
    assert list(RejectedEvent.objects.filter(workspace=workspace)) == [other]


# --------------------------------------------------------------------------- the admin


@pytest.fixture
def staff(make_user):
    return make_user("ada-admin", is_staff=True, is_superuser=True)


def test_admin_export_action_downloads_every_selected_profile_and_audits_each(workspace, staff):
    profile = _person(workspace)
    bystander = _bystander(workspace)
    response = logged_in(staff).post(
        reverse("admin:segments_profile_changelist"),
        {"action": "export_selected_profiles", "_selected_action": [profile.pk, bystander.pk]},
    )
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="profiles-export.json"'
    body = response.json()
    assert [document["profile"]["user_id"] for document in body["profiles"]] == [
        USER_ID,
        "carl-0042",
    ]
    assert len(body["profiles"][0]["events"]) == 3
    assert sorted(
        AuditLog.objects.filter(action="profile.export").values_list("object_id", flat=True)
    ) == sorted([str(profile.pk), str(bystander.pk)])


def test_admin_erase_action_asks_first_then_erases_through_the_service(workspace, staff):
    profile = _person(workspace)
    bystander = _bystander(workspace)
    client = logged_in(staff)
    url = reverse("admin:segments_profile_changelist")

    confirmation = client.post(
        url, {"action": "erase_selected_profiles", "_selected_action": [profile.pk]}
    )
    assert confirmation.status_code == 200
    assert "Erase these 1 profile for good?" in confirmation.content.decode()
    assert "Their 3 events" in confirmation.content.decode()
    assert Profile.objects.filter(pk=profile.pk).exists()
    assert AuditLog.objects.filter(action="profile.erase").count() == 0

    done = client.post(
        url, {"action": "erase_selected_profiles", "_selected_action": [profile.pk], "post": "yes"}
    )
    assert done.status_code == 302
    assert list(Profile.objects.filter(workspace=workspace)) == [bystander]
    audit = AuditLog.objects.get(action="profile.erase")
    assert (audit.actor, audit.object_repr) == (staff, f"Profile {profile.pk}")
    assert _tables_holding(NEEDLES) == set()


def test_admin_offers_no_plain_delete_of_a_profile(workspace, staff):
    profile = _person(workspace)
    client = logged_in(staff)
    changelist = client.get(reverse("admin:segments_profile_changelist")).content.decode()
    delete_page = client.get(reverse("admin:segments_profile_delete", args=[profile.pk]))
    assert 'value="delete_selected"' not in changelist
    assert 'value="erase_selected_profiles"' in changelist
    assert 'value="export_selected_profiles"' in changelist
    assert delete_page.status_code == 403
    assert Profile.objects.filter(pk=profile.pk).exists()


def test_admin_log_names_a_changed_profile_by_id_only(workspace, staff):
    profile = _person(workspace)
    client = logged_in(staff)
    url = reverse("admin:segments_profile_change", args=[profile.pk])
    form = client.get(url).context["adminform"].form
    data = {
        name: form[name].value() if form[name].value() is not None else ""
        for name in form.fields
        if name not in ("anonymous_ids",)
    }
    data.update(
        {
            "anonymous_ids": ",".join(ANONYMOUS_IDS),
            "traits": '{"plan": "enterprise"}',
            "identities-TOTAL_FORMS": 4,
            "identities-INITIAL_FORMS": 4,
            "merges-TOTAL_FORMS": 1,
            "merges-INITIAL_FORMS": 1,
        }
    )
    for index, identity in enumerate(Identity.objects.filter(profile=profile).order_by("pk")):
        data[f"identities-{index}-id"] = identity.pk
        data[f"identities-{index}-profile"] = profile.pk
    data["merges-0-id"] = ProfileMerge.objects.get(profile=profile).pk
    data["merges-0-profile"] = profile.pk
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    entry = LogEntry.objects.get()
    assert (entry.object_id, entry.object_repr) == (str(profile.pk), f"Profile {profile.pk}")


def test_viewer_cannot_export_or_erase_analyst_exports_admin_erases(workspace, make_member):
    profile = _person(workspace)
    viewer = _api(make_member(Role.VIEWER))
    analyst = _api(make_member(Role.ANALYST))
    refused = [
        viewer.get(f"/api/v1/profiles/{profile.pk}/export"),
        viewer.post(f"/api/v1/profiles/{profile.pk}/erase"),
    ]
    assert [response.status_code for response in refused] == [403, 403]
    assert refused[1].json() == {
        "code": "permission_denied",
        "message": "This role (viewer) lacks the permission segments.erase.",
    }
    assert Profile.objects.filter(pk=profile.pk).exists()
    assert AuditLog.objects.filter(action__in=["profile.export", "profile.erase"]).count() == 0

    assert analyst.get(f"/api/v1/profiles/{profile.pk}/export").status_code == 200
    assert analyst.post(f"/api/v1/profiles/{profile.pk}/erase").status_code == 403
    assert (
        _api(make_member(Role.ADMIN)).post(f"/api/v1/profiles/{profile.pk}/erase").status_code
        == 200
    )
    assert sorted(
        AuditLog.objects.filter(action__in=["profile.export", "profile.erase"]).values_list(
            "action", flat=True
        )
    ) == [
        "profile.erase",
        "profile.export",
    ]
