"""ingest_batch: validation and quarantine, dedup, timestamps, context merging, event
schemas, profile columns, the post-commit job and its hooks, and the statement count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import django_rq
import orjson
import pytest
from django.db import transaction
from rq import SimpleWorker

from segments.ingestion import SOURCE_TRACKING_API, IngestResult, ingest_batch
from segments.models import (
    Event,
    EventMessageId,
    EventSchema,
    Identity,
    IngestionSettings,
    Profile,
    ProfileMerge,
    RejectedEvent,
    TraitChange,
)
from segments.tasks import INGEST_QUEUE, ingested_batch_process
from tests.segments.stored import STORED_MODELS, stored

RECEIVED = datetime(2026, 11, 20, 12, 0, 10, tzinfo=UTC)


def ingest(workspace, messages, **options) -> IngestResult:
    options.setdefault("received_at", RECEIVED)
    options.setdefault("context", None)
    options.setdefault("integrations", None)
    options.setdefault("source", SOURCE_TRACKING_API)
    return ingest_batch(workspace=workspace, messages=messages, **options)


def event(message_id: str) -> Event:
    return Event.objects.select_related("profile").get(message_id=message_id)


def track(message_id: str, **fields) -> dict:
    return {
        "type": "track",
        "userId": "user-1",
        "event": "Order Completed",
        "messageId": message_id,
        **fields,
    }


# --------------------------------------------------------------------------- shapes


def test_every_call_type_is_stored_as_the_spec_describes_it(workspace):
    result = ingest(
        workspace,
        [
            track("m-track", properties={"total": 30}, timestamp="2026-11-20T11:00:00Z"),
            {
                "type": "page",
                "anonymousId": "anon-1",
                "name": "Pricing",
                "category": "Docs",
                "properties": {"path": "/pricing"},
                "messageId": "m-page",
            },
            {"type": "screen", "userId": "user-1", "name": "Home", "messageId": "m-screen"},
            {
                "type": "identify",
                "userId": "user-1",
                "traits": {"plan": "pro"},
                "messageId": "m-identify",
            },
            {
                "type": "group",
                "userId": "user-1",
                "groupId": "g-1",
                "traits": {"name": "Acme"},
                "messageId": "m-group",
            },
            {"type": "alias", "previousId": "anon-1", "userId": "user-1", "messageId": "m-alias"},
        ],
    )

    profile = Profile.objects.get()
    assert (result.accepted, result.duplicates, result.rejected) == (6, 0, 0)
    assert result.profile_ids == [profile.pk]
    assert sorted(result.event_ids) == sorted(Event.objects.values_list("id", flat=True))
    rows = {
        row[0]: row[1:]
        for row in Event.objects.values_list("message_id", "type", "name", "properties", "profile")
    }
    assert rows == {
        "m-track": ("track", "Order Completed", {"total": 30}, profile.pk),
        "m-page": ("page", "Pricing", {"path": "/pricing", "category": "Docs"}, profile.pk),
        "m-screen": ("screen", "Home", {}, profile.pk),
        "m-identify": ("identify", "", {"plan": "pro"}, profile.pk),
        "m-group": ("group", "", {"name": "Acme", "groupId": "g-1"}, profile.pk),
        "m-alias": ("alias", "", {"previousId": "anon-1"}, profile.pk),
    }
    # The page came first from an anonymous visitor; alias folded them together in memory,
    # so no stored profile disappeared and there is no merge to record.
    assert (profile.user_id, profile.anonymous_ids, profile.traits) == (
        "user-1",
        ["anon-1"],
        {"plan": "pro"},
    )
    assert ProfileMerge.objects.count() == 0
    assert sorted(Identity.objects.values_list("kind", "value", "profile")) == [
        ("anonymous_id", "anon-1", profile.pk),
        ("user_id", "user-1", profile.pk),
    ]
    assert EventMessageId.objects.filter(workspace=workspace).count() == 6


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("2026-11-20T11:00:00Z", datetime(2026, 11, 20, 11, 0, tzinfo=UTC)),
        ("2026-11-20T12:30:00+01:30", datetime(2026, 11, 20, 11, 0, tzinfo=UTC)),
        ("2026-11-20T06:00:00-0500", datetime(2026, 11, 20, 11, 0, tzinfo=UTC)),
        ("2026-11-20T11:00:00.123456789Z", datetime(2026, 11, 20, 11, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-20T11:00:00.5+00:00", datetime(2026, 11, 20, 11, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-20T11:00:00", datetime(2026, 11, 20, 11, 0, tzinfo=UTC)),
        ("20261120T110000Z", datetime(2026, 11, 20, 11, 0, tzinfo=UTC)),
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
    ],
)
def test_timestamps_in_any_iso_8601_form(workspace, sent, expected):
    ingest(workspace, [track("m-1", timestamp=sent)])

    stored_event = event("m-1")
    assert (stored_event.timestamp, stored_event.original_timestamp) == (expected, expected)
    assert (stored_event.sent_at, stored_event.received_at) == (None, RECEIVED)


def test_clock_skew_is_corrected_from_sent_at(workspace):
    # The device's clock is 1 h 0 min 5 s behind: it stamped the call 11:00:00 and sent
    # the batch at 11:00:05 by its clock; the server received it at 12:00:10.
    ingest(
        workspace,
        [
            track("m-batch-sent-at", timestamp="2026-11-20T11:00:00Z"),
            track(
                "m-own-sent-at",
                originalTimestamp="2026-11-20T10:59:00Z",
                timestamp="2026-11-20T09:00:00Z",
                sentAt="2026-11-20T11:00:00Z",
            ),
            track("m-no-timestamp"),
        ],
        sent_at="2026-11-20T11:00:05Z",
    )

    first, second, third = event("m-batch-sent-at"), event("m-own-sent-at"), event("m-no-timestamp")
    assert first.timestamp == datetime(2026, 11, 20, 12, 0, 5, tzinfo=UTC)
    assert (first.original_timestamp, first.sent_at, first.received_at) == (
        datetime(2026, 11, 20, 11, 0, tzinfo=UTC),
        datetime(2026, 11, 20, 11, 0, 5, tzinfo=UTC),
        RECEIVED,
    )
    # originalTimestamp beats timestamp, the call's sentAt beats the batch's.
    assert second.timestamp == RECEIVED - timedelta(minutes=1)
    assert third.timestamp == RECEIVED
    assert third.original_timestamp is None


def test_batch_context_and_integrations_merge_into_each_event(workspace):
    ingest(
        workspace,
        [
            track("m-1", context={"ip": "10.0.0.2", "library": {"version": "2.0"}}),
            track("m-2", integrations={"Mixpanel": True}),
        ],
        context={"ip": "10.0.0.1", "library": {"name": "analytics-python", "version": "1.0"}},
        integrations={"All": False},
    )

    assert event("m-1").context == {
        "ip": "10.0.0.2",
        "library": {"name": "analytics-python", "version": "2.0"},
        "integrations": {"All": False},
    }
    assert event("m-2").context == {
        "ip": "10.0.0.1",
        "library": {"name": "analytics-python", "version": "1.0"},
        "integrations": {"All": False, "Mixpanel": True},
    }


def test_ids_may_be_numbers_and_a_call_without_message_id_gets_one(workspace):
    ingest(workspace, [{"type": "track", "userId": 42, "event": "Signed Up"}])

    stored_event = Event.objects.get()
    assert stored_event.profile.user_id == "42"
    assert len(stored_event.message_id) == 36  # a generated uuid4
    assert EventMessageId.objects.get().message_id == stored_event.message_id


# --------------------------------------------------------------------------- quarantine


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"type": "track", "event": "X"}, "userId or anonymousId: one of them is required"),
        ({"type": "track", "userId": "u"}, "event: is required for track"),
        ({"type": "track", "userId": "u", "event": "  "}, "event: is required for track"),
        (
            {"type": "track", "userId": "u", "event": "X", "timestamp": "yesterday"},
            "timestamp: 'yesterday' is not an ISO-8601 date-time",
        ),
        (
            {"type": "track", "userId": "u", "event": "X", "timestamp": 1700000000},
            "timestamp: must be an ISO-8601 date-time string",
        ),
        (
            {"type": "track", "userId": "u", "event": "X", "properties": [1]},
            "properties: Input should be a valid dictionary",
        ),
        (
            {"type": "identify", "userId": "u", "traits": "vip"},
            "traits: Input should be a valid dictionary",
        ),
        (
            {"type": "launch", "userId": "u"},
            "type: must be one of track, identify, page, screen, group, alias",
        ),
        ({"userId": "u", "event": "X"}, "type: is required"),
        ({"type": "alias", "userId": "u"}, "previousId: is required for alias"),
        ({"type": "alias", "previousId": "p"}, "userId: is required for alias"),
        ({"type": "group", "userId": "u"}, "groupId: is required for group"),
        ({"type": "track", "userId": {"id": 1}, "event": "X"}, "userId: must be a string"),
        (
            {"type": "track", "userId": "u", "event": "X" * 201},
            "event: String should have at most 200 characters",
        ),
        ("not an object", "event: must be a JSON object"),
    ],
)
def test_an_invalid_event_is_quarantined_and_its_batch_mates_are_stored(workspace, bad, reason):
    result = ingest(workspace, [track("m-good-1"), bad, track("m-good-2")])

    assert (result.accepted, result.duplicates, result.rejected) == (2, 0, 1)
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["m-good-1", "m-good-2"]
    rejected = RejectedEvent.objects.get()
    assert (rejected.workspace, rejected.code, rejected.reason) == (
        workspace,
        "invalid_event",
        reason,
    )
    assert (rejected.payload, rejected.raw, rejected.received_at) == (bad, "", RECEIVED)
    # A refused call leaves no trace but the quarantine: its messageId stays free.
    assert sorted(EventMessageId.objects.values_list("message_id", flat=True)) == [
        "m-good-1",
        "m-good-2",
    ]


def test_an_event_over_32_kb_in_a_batch_is_quarantined(workspace):
    big = track("m-big", properties={"blob": "x" * (32 * 1024)})
    size = len(orjson.dumps(big))

    result = ingest(workspace, [track("m-small"), big])

    assert (result.accepted, result.rejected) == (1, 1)
    assert list(Event.objects.values_list("message_id", flat=True)) == ["m-small"]
    rejected = RejectedEvent.objects.get()
    assert (rejected.code, rejected.reason, rejected.message_id, rejected.event_name) == (
        "event_too_large",
        f"event: {size} bytes, over the limit of 32768 bytes",
        "m-big",
        "Order Completed",
    )
    assert rejected.payload == big


def test_a_nul_character_is_quarantined_rather_than_failing_the_batch(workspace):
    # PostgreSQL's jsonb and text cannot hold U+0000: storing it would abort the batch.
    bad = track("m-nul", properties={"note": "a\x00b"})

    result = ingest(workspace, [bad, track("m-fine")])

    assert (result.accepted, result.rejected) == (1, 1)
    rejected = RejectedEvent.objects.get()
    assert (rejected.code, rejected.payload) == ("invalid_event", None)
    assert rejected.reason == "event: contains a NUL character (\\u0000), which cannot be stored"
    assert orjson.loads(rejected.raw) == bad


# --------------------------------------------------------------------------- dedup


def test_a_replayed_batch_stores_nothing_new(workspace):
    batch = [
        track("m-1"),
        {"type": "identify", "userId": "user-1", "traits": {"plan": "pro"}, "messageId": "m-2"},
        {"type": "page", "anonymousId": "anon-9", "name": "Home", "messageId": "m-3"},
    ]
    first = ingest(workspace, batch)
    before = stored()

    replay = ingest(workspace, batch, received_at=RECEIVED + timedelta(minutes=5))

    assert (first.accepted, first.duplicates) == (3, 0)
    assert replay == IngestResult(
        accepted=0, duplicates=3, rejected=0, profile_ids=[], event_ids=[]
    )
    assert stored() == before
    assert Profile.objects.get(user_id="user-1").last_seen == RECEIVED


def test_the_same_message_id_twice_in_one_batch_is_stored_once(workspace, other_workspace):
    result = ingest(workspace, [track("m-1"), track("m-1", event="Other")])
    elsewhere = ingest(other_workspace, [track("m-1")])

    assert (result.accepted, result.duplicates) == (1, 1)
    assert event_names(workspace) == ["Order Completed"]
    # Dedup is per workspace: another tenant's m-1 is its own.
    assert (elsewhere.accepted, elsewhere.duplicates) == (1, 0)


def event_names(workspace) -> list[str]:
    return list(Event.objects.filter(workspace=workspace).values_list("name", flat=True))


# --------------------------------------------------------------------------- schemas


@pytest.fixture
def order_schema(workspace) -> EventSchema:
    return EventSchema.objects.create(
        workspace=workspace,
        event_name="Order Completed",
        properties={
            "total": {"type": "number", "required": True},
            "currency": {"type": "string"},
        },
        allow_additional_properties=False,
    )


SCHEMA_BATCH = [
    track("m-good", properties={"total": 30.5, "currency": "EUR"}),
    track("m-wrong", properties={"total": "30", "coupon": "WELCOME"}),
    track("m-missing", properties={"currency": "EUR"}),
    track("m-other", event="Signed Up", properties={"anything": True}),
]


def test_schema_violations_are_flagged_by_default(workspace, order_schema):
    result = ingest(workspace, SCHEMA_BATCH)

    assert (result.accepted, result.rejected) == (4, 0)
    violations = dict(Event.objects.values_list("message_id", "violations"))
    assert violations == {
        "m-good": [],
        "m-wrong": [
            {
                "property": "total",
                "code": "wrong_type",
                "message": "total should be number, not string",
            },
            {"property": "coupon", "code": "unexpected", "message": "coupon is not in the schema"},
        ],
        "m-missing": [{"property": "total", "code": "missing", "message": "total is required"}],
        "m-other": [],
    }
    assert RejectedEvent.objects.count() == 0


def test_schema_violations_are_quarantined_when_the_workspace_says_so(workspace, order_schema):
    IngestionSettings.objects.create(workspace=workspace, schema_violation_action="quarantine")

    result = ingest(workspace, SCHEMA_BATCH)

    assert (result.accepted, result.duplicates, result.rejected) == (2, 0, 2)
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["m-good", "m-other"]
    assert sorted(RejectedEvent.objects.values_list("message_id", "code", "reason")) == [
        ("m-missing", "schema_violation", "properties.total is required"),
        (
            "m-wrong",
            "schema_violation",
            "properties.total should be number, not string; properties.coupon is not in the schema",
        ),
    ]
    assert RejectedEvent.objects.get(message_id="m-wrong").payload == SCHEMA_BATCH[1]
    # Quarantined calls are not remembered (a corrected resend must be stored), so a
    # retried batch stores nothing twice but quarantines its bad calls again.
    retry = ingest(workspace, SCHEMA_BATCH)
    assert (retry.accepted, retry.duplicates, retry.rejected) == (0, 2, 2)
    assert Event.objects.count() == 2
    assert RejectedEvent.objects.count() == 4


# --------------------------------------------------------------------------- profiles


def test_profile_columns_come_from_traits_and_the_device_context(workspace):
    ingest(
        workspace,
        [
            {
                "type": "identify",
                "userId": "ada",
                "traits": {
                    "email": " ada@example.com ",
                    "phone": "+49 151 1234-5678",
                    "timezone": "Europe/Berlin",
                    "locale": "de_DE",
                },
                "messageId": "m-1",
            },
            {
                "type": "page",
                "anonymousId": "visitor",
                "context": {"timezone": "America/New_York", "locale": "en-US"},
                "messageId": "m-2",
            },
            {
                "type": "identify",
                "userId": "bob",
                "traits": {"phone": "call me", "timezone": "Mars/Olympus"},
                "context": {"timezone": "Asia/Tokyo"},
                "messageId": "m-3",
            },
        ],
    )

    columns = {
        profile.user_id or profile.anonymous_ids[0]: (
            profile.email,
            profile.phone,
            profile.time_zone,
            profile.locale,
        )
        for profile in Profile.objects.all()
    }
    assert columns == {
        "ada": ("ada@example.com", "+4915112345678", "Europe/Berlin", "de-DE"),
        "visitor": ("", "", "America/New_York", "en-US"),
        # Unusable values leave the columns alone; the device's zone fills the gap.
        "bob": ("", "", "Asia/Tokyo", ""),
    }
    assert Profile.objects.get(user_id="bob").traits["phone"] == "call me"


def test_first_and_last_seen_follow_the_event_times(workspace):
    ingest(workspace, [track("m-1", timestamp="2026-11-18T08:00:00Z")])
    ingest(
        workspace,
        [
            track("m-2", timestamp="2026-11-19T09:00:00Z"),
            track("m-3", timestamp="2026-11-01T07:00:00Z"),
        ],
    )

    profile = Profile.objects.get()
    assert (profile.first_seen, profile.last_seen) == (
        datetime(2026, 11, 1, 7, 0, tzinfo=UTC),
        datetime(2026, 11, 19, 9, 0, tzinfo=UTC),
    )


# --------------------------------------------------------------------------- after commit


def ingest_queue():
    return django_rq.get_queue(INGEST_QUEUE)


def test_one_job_per_batch_is_enqueued_after_commit(workspace, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = ingest(
            workspace,
            [track("m-1"), track("m-2", userId="user-2"), track("m-3")],
        )
        assert ingest_queue().count == 0  # nothing before the commit

    assert len(callbacks) == 1
    jobs = ingest_queue().jobs
    assert [(job.func_name, job.args) for job in jobs] == [
        (
            "segments.tasks.ingested_batch_process",
            (workspace.pk, result.profile_ids, result.event_ids),
        )
    ]
    assert len(result.profile_ids) == 2
    assert len(result.event_ids) == 3


def test_no_job_when_the_transaction_rolls_back_or_nothing_is_stored(
    workspace, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            ingest(workspace, [track("m-1")])
            raise RuntimeError("the caller's transaction fails")
        ingest(workspace, [{"type": "track"}])  # quarantined only

    assert callbacks == []
    assert ingest_queue().count == 0
    assert stored() == {**{model.__name__: 0 for model in STORED_MODELS}, "RejectedEvent": 1}


calls: list[dict] = []


def recording_hook(**arguments) -> None:
    calls.append(arguments)


def failing_hook(**arguments) -> None:
    raise ValueError("segment evaluation crashed")


def test_the_job_calls_every_configured_hook(
    workspace, settings, django_capture_on_commit_callbacks
):
    settings.INGESTION_HOOKS = [
        "tests.segments.test_ingestion.recording_hook",
        "tests.segments.test_ingestion.recording_hook",
    ]
    calls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        result = ingest(workspace, [track("m-1")])

    SimpleWorker([ingest_queue()], connection=ingest_queue().connection).work(burst=True)

    expected = {
        "workspace_id": workspace.pk,
        "profile_ids": result.profile_ids,
        "event_ids": result.event_ids,
    }
    assert calls == [expected, expected]


def test_a_failing_hook_does_not_stop_the_others_and_fails_the_job(workspace, settings):
    settings.INGESTION_HOOKS = [
        "tests.segments.test_ingestion.failing_hook",
        "tests.segments.test_ingestion.recording_hook",
    ]
    calls.clear()

    with pytest.raises(ValueError, match="segment evaluation crashed"):
        ingested_batch_process(workspace.pk, [1], [2])

    assert calls == [{"workspace_id": workspace.pk, "profile_ids": [1], "event_ids": [2]}]


# --------------------------------------------------------------------------- cost


@pytest.mark.parametrize("size", [10, 100])
def test_a_batch_of_a_known_user_costs_the_same_few_statements_at_any_size(
    workspace, size, django_assert_num_queries
):
    ingest(workspace, [track("m-first")])
    batch = [track(f"m-{number}") for number in range(size)]

    # savepoint, messageId claim, schemas, identities, profile lock, profile update,
    # event insert, release.
    with django_assert_num_queries(8):
        result = ingest(workspace, batch)

    assert result.accepted == size


def test_a_batch_of_new_people_costs_a_fixed_number_of_statements(
    workspace, django_assert_num_queries
):
    batch = [
        {
            "type": "identify",
            "userId": f"user-{number}",
            "anonymousId": f"anon-{number}",
            "traits": {"email": f"user-{number}@example.com", "plan": "free"},
            "messageId": f"m-{number}",
        }
        for number in range(100)
    ]

    # savepoint, messageId claim, identities, advisory locks, identities again, profile
    # insert, identity insert, trait history insert and trim, event insert, release.
    with django_assert_num_queries(11):
        result = ingest(workspace, batch)

    assert (result.accepted, len(result.profile_ids)) == (100, 100)
    assert Identity.objects.count() == 200
    assert TraitChange.objects.count() == 200
