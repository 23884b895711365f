"""The builder's model (form paths, drafts, definitions), its htmx endpoint, the
plain-English summaries, static segments, size history and the segment pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from engagement_site.workspaces.models import AuditLog
from engagement_site.workspaces.services import AuditContext
from segments import builder
from segments.demo import DEMO_SEGMENTS
from segments.describe import rule_summary
from segments.identity import profiles_merge
from segments.membership import segment_membership_refresh
from segments.models import Event, Identity, Profile, Segment, SegmentMembership, SegmentSize
from segments.rules import RuleError
from segments.services import (
    segment_definition_check,
    static_segment_create_from_csv,
    static_segment_members_change,
    static_segment_snapshot,
)
from segments.tasks import segment_recompute
from tests.conftest import logged_in

CONTEXT = AuditContext.system("test")
NESTED = {
    "type": "and",
    "rules": [
        {
            "type": "event_count",
            "event": "order_completed",
            "filters": [{"property": "total", "op": "gte", "value": 50}],
            "op": "gte",
            "count": 2,
            "window": {"last_days": 30},
        },
        {
            "type": "not",
            "rule": {
                "type": "or",
                "rules": [
                    {"type": "attribute", "trait": "plan", "op": "in", "value": ["free", 3]},
                    {"type": "streak", "event": "logged_in", "filters": [], "days": 3},
                ],
            },
        },
        {"type": "not", "rule": {"type": "attribute", "column": "email", "op": "exists"}},
    ],
}


def url(name: str, **kwargs) -> str:
    return reverse(name, kwargs={"workspace_slug": "acme", **kwargs})


# --------------------------------------------------------------------------- drafts


@pytest.mark.parametrize(
    "definition",
    [NESTED, *(definition for _, _, definition in DEMO_SEGMENTS)]
    + [template["definition"] for template in builder.SEGMENT_TEMPLATES.values()],
)
def test_a_definition_survives_the_round_trip_through_a_draft(definition):
    draft = builder.draft_from_definition(definition)
    assert draft["type"] == "group"
    assert builder.draft_to_definition(draft)[0] == definition


def test_errors_land_on_the_rule_they_name():
    draft = builder.draft_from_definition(NESTED)
    _, paths = builder.draft_to_definition(draft)
    assert paths["rules[1].rule.rules[1]"] == "r-1-1"
    assert paths["rules[2].rule"] == "r-2-0"
    message = "rules[1].rule.rules[1] (streak): days must be ≥ 1"
    assert builder.error_draft_path(message, paths) == "r-1-1"
    assert builder.error_draft_path("rules[0] (event_count): filters[0].value x", paths) == "r-0"
    assert builder.error_draft_path("root: rules needs at least 1 item(s)", paths) == "r"


def test_values_are_typed_from_text():
    assert builder.parse_value("42", "eq") == 42
    assert builder.parse_value("4.5", "gt") == 4.5
    assert builder.parse_value('"42"', "eq") == "42"
    assert builder.parse_value("true", "eq") is True
    assert builder.parse_value("pro, 3, team", "in") == ["pro", 3, "team"]
    assert builder.parse_value("anything", "exists") is None
    for value in (42, "42", True, "pro", ["pro", 3], 4.5):
        op = "in" if isinstance(value, list) else "eq"
        assert builder.parse_value(builder.format_value(value), op) == value


def test_structural_actions():
    draft = builder.blank_draft()
    builder.draft_apply(draft, "add:r:attribute")
    builder.draft_apply(draft, "add_group:r")
    builder.draft_apply(draft, "add:r-2:streak")
    assert [node["type"] for node in draft["rules"]] == ["event_count", "attribute", "group"]
    assert [node["type"] for node in draft["rules"][2]["rules"]] == ["event_count", "streak"]
    builder.draft_apply(draft, "up:r-2-1")
    assert [node["type"] for node in draft["rules"][2]["rules"]] == ["streak", "event_count"]
    builder.draft_apply(draft, "add_filter:r-0")
    builder.draft_apply(draft, "add_filter:r-0")
    builder.draft_apply(draft, "remove_filter:r-0:f0")
    assert len(draft["rules"][0]["filters"]) == 1
    builder.draft_apply(draft, "remove:r-1")
    assert [node["type"] for node in draft["rules"]] == ["event_count", "group"]
    before = repr(draft)
    for stale in (
        "remove:r-9",
        "up:r-0",
        "down:r-1",
        "add:r-0:streak",
        "remove:r",
        "bogus",
        "add:x:y",
    ):
        builder.draft_apply(draft, stale)
    assert repr(draft) == before


# --------------------------------------------------------------------------- summaries


@pytest.mark.parametrize(
    ("definition", "text"),
    [
        (
            {
                "type": "event_count",
                "event": "order_completed",
                "count": 2,
                "window": {"last_days": 7},
            },
            "People who did order_completed at least twice in the last 7 days",
        ),
        (
            {"type": "event_count", "event": "order_completed", "op": "eq", "count": 0},
            "People who did not do order_completed",
        ),
        (
            DEMO_SEGMENTS[0][2],
            "People who did logged_in every day for 10 days in a row starting on their signup day",
        ),
        (
            DEMO_SEGMENTS[1][2],
            "People who did order_completed (counting from their first order_completed), "
            "then order_completed within 1 week",
        ),
        (
            NESTED,
            "People who did order_completed where total is at least 50 at least twice in the "
            "last 30 days and not (whose plan is one of free, 3 or who did logged_in every day "
            "for 3 days in a row) and not (whose email is set)",
        ),
        (
            {"type": "not", "rule": {"type": "membership", "segment_id": 7}},
            "Everyone except people who are in VIPs",
        ),
    ],
)
def test_rules_read_as_plain_english(definition, text):
    assert rule_summary(definition, segment_names={7: "VIPs"}) == text


# --------------------------------------------------------------------------- references


def test_membership_rules_cannot_loop_or_point_outside(workspace, other_workspace):
    a = Segment.objects.create(
        workspace=workspace,
        name="A",
        definition={"type": "attribute", "trait": "x", "op": "exists"},
    )
    b = Segment.objects.create(
        workspace=workspace, name="B", definition={"type": "membership", "segment_id": a.pk}
    )
    theirs = Segment.objects.create(workspace=other_workspace, name="T", definition=a.definition)
    with pytest.raises(RuleError, match="names 'B', which depends on this segment"):
        segment_definition_check(
            workspace=workspace, definition={"type": "membership", "segment_id": b.pk}, segment=a
        )
    with pytest.raises(RuleError, match="cannot name the segment itself"):
        segment_definition_check(
            workspace=workspace, definition={"type": "membership", "segment_id": a.pk}, segment=a
        )
    with pytest.raises(RuleError, match=f"names segment {theirs.pk}, which does not exist"):
        segment_definition_check(
            workspace=workspace, definition={"type": "membership", "segment_id": theirs.pk}
        )


# --------------------------------------------------------------------------- static segments


def _profiles(workspace, count: int) -> list[Profile]:
    profiles = []
    for number in range(count):
        profile = Profile.objects.create(
            workspace=workspace, user_id=f"u{number}", email=f"Person{number}@Example.com"
        )
        Identity.objects.create(
            workspace=workspace, kind="user_id", value=f"u{number}", profile=profile
        )
        profiles.append(profile)
    return profiles


def test_a_static_segment_from_a_csv_of_emails_and_user_ids(workspace, other_workspace):
    people = _profiles(workspace, 4)
    Profile.objects.create(workspace=other_workspace, user_id="u9", email="theirs@example.com")
    data = "email,plan\nperson0@example.com,pro\nPERSON2@example.com,x\nperson2@example.com,y\ntheirs@example.com,z\n"
    segment, report = static_segment_create_from_csv(
        workspace=workspace, name="Emails", data=data.encode(), filename="vip.csv", context=CONTEXT
    )
    assert (report.column, report.rows, report.matched, report.duplicates, report.unmatched) == (
        "email", 4, 2, 1, 1,
    )  # fmt: skip
    assert report.unmatched_examples == ["theirs@example.com"]
    assert segment.kind == "static" and segment.source == "CSV upload: vip.csv"
    assert segment.member_count == 2
    assert set(segment.memberships.values_list("profile_id", flat=True)) == {
        people[0].pk,
        people[2].pk,
    }
    assert SegmentSize.objects.get(segment=segment).entered == 2
    assert (
        AuditLog.objects.get(workspace=workspace, action="segment.create").changes["matched"] == 2
    )

    # One unnamed column of user ids; a merged-away id finds the survivor.
    profiles_merge(workspace=workspace, winner=people[1], loser=people[3])
    segment, report = static_segment_create_from_csv(
        workspace=workspace,
        name="Ids",
        data=b"u1\nu3\nnobody\n",
        filename="ids.csv",
        context=CONTEXT,
    )
    assert (report.column, report.matched, report.unmatched) == ("user_id", 2, 1)
    assert set(segment.memberships.values_list("profile_id", flat=True)) == {people[1].pk}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty."),
        (b"\x00\x01\x02", "The file is binary, not CSV text."),
        (b"\xff\xfe\xfa", "The file is not UTF-8 text."),
        (b"name,plan\nada,pro\n", "No identifier column"),
        (b"email\n\n", "The email column holds no values."),
        (b"user_id\nnobody\n", "None of the 1 values in the user_id column is a known profile."),
    ],
)
def test_a_bad_csv_is_refused_and_stores_nothing(workspace, data, message):
    _profiles(workspace, 1)
    with pytest.raises(ValidationError) as caught:
        static_segment_create_from_csv(
            workspace=workspace, name="Bad", data=data, filename="bad.csv", context=CONTEXT
        )
    assert message in " ".join(caught.value.messages)
    assert not Segment.objects.filter(workspace=workspace).exists()
    assert not AuditLog.objects.filter(workspace=workspace, action="segment.create").exists()


def test_snapshot_and_member_changes(workspace):
    people = _profiles(workspace, 3)
    dynamic = Segment.objects.create(
        workspace=workspace,
        name="Example",
        definition={"type": "attribute", "column": "email", "op": "exists"},
    )
    segment_membership_refresh(segment=dynamic)
    snapshot = static_segment_snapshot(segment=dynamic, name="Frozen", context=CONTEXT)
    assert snapshot.member_count == 3 and snapshot.source == "Snapshot of Example"

    entered, exited = static_segment_members_change(
        segment=snapshot, remove=[people[0].pk], context=CONTEXT
    )
    assert (entered, exited) == (set(), {people[0].pk})
    # Idempotent: nothing changes the second time, and no audit row is written for it.
    assert static_segment_members_change(
        segment=snapshot, remove=[people[0].pk], context=CONTEXT
    ) == (set(), set())
    assert AuditLog.objects.filter(workspace=workspace, action="segment.members").count() == 1
    assert static_segment_members_change(segment=snapshot, add=[people[0].pk]) == (
        {people[0].pk},
        set(),
    )
    assert SegmentMembership.objects.filter(segment=snapshot, profile=people[0]).count() == 2
    snapshot.refresh_from_db()
    assert snapshot.member_count == 3
    with pytest.raises(ValidationError, match="Only a static segment"):
        static_segment_members_change(segment=dynamic, add=[people[0].pk])


# --------------------------------------------------------------------------- history and errors


def test_refreshes_keep_an_hourly_size_history(workspace):
    people = _profiles(workspace, 3)
    segment = Segment.objects.create(
        workspace=workspace,
        name="Pro",
        definition={"type": "attribute", "trait": "plan", "op": "eq", "value": "pro"},
    )
    at = datetime(2026, 11, 20, 9, 10, tzinfo=UTC)
    segment_membership_refresh(segment=segment, now=at)  # nobody yet: a zero row
    Profile.objects.filter(pk__in=[people[0].pk, people[1].pk]).update(traits={"plan": "pro"})
    segment_membership_refresh(
        segment=segment, profile_ids=[people[0].pk, people[1].pk], now=at + timedelta(minutes=20)
    )
    Profile.objects.filter(pk=people[0].pk).update(traits={})
    segment_membership_refresh(segment=segment, now=at + timedelta(minutes=45))
    segment_membership_refresh(segment=segment, now=at + timedelta(hours=1))
    rows = list(
        SegmentSize.objects.filter(segment=segment).values_list(
            "hour", "member_count", "entered", "exited"
        )
    )
    assert rows == [
        (datetime(2026, 11, 20, 9, tzinfo=UTC), 1, 2, 1),
        (datetime(2026, 11, 20, 10, tzinfo=UTC), 1, 0, 0),
    ]


def test_a_recompute_that_cannot_run_keeps_the_reason(workspace):
    other = Segment.objects.create(
        workspace=workspace,
        name="Other",
        definition={"type": "attribute", "trait": "x", "op": "exists"},
    )
    segment = Segment.objects.create(
        workspace=workspace,
        name="Reader",
        definition={"type": "membership", "segment_id": other.pk},
    )
    Segment.objects.filter(pk=other.pk).delete()
    segment_recompute(segment.pk)
    segment.refresh_from_db()
    assert segment.last_error == f"membership: segment {other.pk} is not in this workspace"
    assert segment.last_computed_at is not None


# --------------------------------------------------------------------------- pages


def test_the_builder_endpoint_previews_and_reshapes(workspace, make_member):
    people = _profiles(workspace, 3)
    now = timezone.now()
    for index, profile in enumerate(people[:2]):
        Event.objects.create(
            workspace=workspace, profile=profile, name="order_completed", timestamp=now - timedelta(days=1),
            properties={"total": 10 * (index + 1)}, message_id=f"m{index}",
        )  # fmt: skip
    client = logged_in(make_member("marketer"))
    form = {
        "r-kind": "group",
        "r-match": "all",
        "r-0-kind": "leaf",
        "r-0-type": "event_count",
        "r-0-event": "order_completed",
        "r-0-op": "gte",
        "r-0-count": "1",
        "r-0-window": "last_days",
        "r-0-window_days": "7",
        "r-0-f0-property": "total",
        "r-0-f0-op": "gt",
        "r-0-f0-value": "15",
    }
    preview = client.post(url("segment_builder"), form, headers={"HX-Request": "true"})
    assert preview.status_code == 200
    assert preview.context["preview"].count == 1
    assert [p.pk for p in preview.context["preview"].sample] == [people[1].pk]
    assert preview.context["preview"].summary == (
        "People who did order_completed where total is more than 15 in the last 7 days"
    )

    reshaped = client.post(url("segment_builder"), {**form, "action": "add_group:r"})
    html = reshaped.content.decode()
    assert 'data-path="r-1"' in html and 'name="r-1-0-type"' in html
    assert 'id="segment-preview"' in html and 'hx-swap-oob="true"' in html

    broken = client.post(url("segment_builder"), {**form, "r-0-count": "-1"})
    assert broken.context["preview"].error == "root (event_count): count must be ≥ 0"
    assert broken.context["preview"].error_path == "r-0"


def test_save_from_the_builder_and_the_pages_that_follow(workspace, make_member):
    _profiles(workspace, 2)
    client = logged_in(make_member("marketer"))
    form = {
        "name": "Has email",
        "description": "",
        "interval": "900",
        "r-kind": "group",
        "r-match": "all",
        "r-0-kind": "leaf",
        "r-0-type": "attribute",
        "r-0-target": "email",
        "r-0-op": "exists",
    }
    bad = client.post(url("segment_new"), {**form, "interval": "5"})
    assert bad.status_code == 400
    assert bad.context["errors"]["recompute_interval_seconds"] == [
        "Must be between 60 and 604800 seconds."
    ]
    assert not Segment.objects.exists()

    response = client.post(url("segment_new"), form)
    segment = Segment.objects.get(workspace=workspace, name="Has email")
    assert response.status_code == 302
    assert segment.definition == {"type": "attribute", "op": "exists", "column": "email"}
    assert segment.recompute_interval_seconds == 900
    segment_recompute(segment.pk)

    reader = client.post(
        url("segment_new"),
        {
            **form,
            "name": "Reader",
            "r-0-type": "membership",
            "r-0-segment": str(segment.pk),
            "r-0-in": "not_in",
        },
    )
    assert reader.status_code == 302
    detail = client.get(url("segment_detail", segment_id=segment.pk))
    assert [other.name for other in detail.context["used_by"]] == ["Reader"]
    assert detail.context["chart"].points
    listing = client.get(url("segment_list")).content.decode()
    assert "People who are not in Has email" in listing

    # A marketer may not export; an analyst may, and the export is audited.
    assert client.get(url("segment_export", segment_id=segment.pk)).status_code == 403
    analyst = logged_in(make_member("analyst"))
    export = analyst.get(url("segment_export", segment_id=segment.pk))
    lines = b"".join(export.streaming_content).decode().splitlines()
    assert lines[0] == "profile_id,user_id,email,phone,time_zone,entered_at"
    assert sorted(line.split(",")[2] for line in lines[1:]) == [
        "Person0@Example.com",
        "Person1@Example.com",
    ]
    assert AuditLog.objects.filter(workspace=workspace, action="segment.export").count() == 1

    # In use: deleting is refused, and nothing is deleted.
    refused = client.post(url("segment_delete", segment_id=segment.pk), follow=True)
    assert "is used by Reader" in refused.content.decode()
    assert Segment.objects.filter(pk=segment.pk).exists()


def test_a_viewer_cannot_open_the_builder(workspace, make_member):
    client = logged_in(make_member("viewer"))
    assert client.get(url("segment_new")).status_code == 403
    assert client.post(url("segment_builder"), {}).status_code == 403
