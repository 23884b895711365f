"""Message counters: a known sequence of message events (with a provider's repeated
callbacks, which must not count twice) gives counters worked out by hand, per day in
the workspace's time zone, journey, node, variant and channel; rebuild_metrics gives
the same numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db.models import Sum

from analytics.models import MessageCounter
from analytics.selectors import counter_totals
from delivery.models import Message, MessageEvent
from delivery.services import message_event_record, message_status_record
from segments.models import Profile
from tests.journeys.test_executor import _run_journey

pytestmark = pytest.mark.django_db(transaction=True)
# 23:30 UTC on the 3rd is already the 4th in Berlin.
LATE = datetime(2026, 12, 3, 23, 30, tzinfo=UTC)


def _rows(workspace) -> list[tuple]:
    """The counts per key, summed over the shards."""
    return sorted(
        MessageCounter.objects.filter(workspace=workspace)
        .values_list("day", "journey_id", "node_id", "variant", "channel", "kind")
        .annotate(total=Sum("count"))
    )


def _stored(workspace) -> list[tuple]:
    """The counter rows as stored, shard by shard."""
    return sorted(
        MessageCounter.objects.filter(workspace=workspace).values_list(
            "day", "journey_id", "node_id", "variant", "channel", "kind", "shard", "count"
        )
    )


def test_counts_once_per_event_by_day_journey_node_variant_channel(workspace, other_workspace):
    workspace.time_zone = "Europe/Berlin"
    workspace.save(update_fields=["time_zone"])
    journey = _run_journey(
        workspace, "Counted",
        [{"id": "start", "type": "trigger", "trigger": {"kind": "api"}}, {"id": "end", "type": "exit"}],
        [{"source": "start", "target": "end"}],
    )  # fmt: skip
    ada = Profile.objects.create(workspace=workspace, user_id="ada", email="ada@example.com")
    bob = Profile.objects.create(workspace=workspace, user_id="bob", email="bob@example.com")

    def message(profile, key, **fields):
        return Message.objects.create(
            workspace=workspace, profile=profile, idempotency_key=key, channel="email",
            journey=journey, journey_version=journey.live_version, node_id="hello", **fields,
        )  # fmt: skip

    a = message(ada, "a", variant="a")
    b = message(bob, "b", variant="b")
    outside = Message.objects.create(
        workspace=workspace, profile=bob, idempotency_key="o", channel="sms"
    )
    for m in (a, b):
        message_status_record(message_id=m.pk, status="sent", at=LATE)
    message_status_record(message_id=a.pk, status="delivered", at=LATE + timedelta(minutes=1))
    # The provider says "delivered" three times: one event, one count.
    for _ in range(2):
        assert message_status_record(message_id=a.pk, status="delivered") is False
    message_status_record(message_id=a.pk, status="opened", at=LATE + timedelta(hours=2))
    message_status_record(message_id=b.pk, status="bounced", at=LATE - timedelta(hours=1))
    # Retries repeat, each counted.
    for attempt in (1, 2):
        message_event_record(message=outside, kind="retried", at=LATE, data={"attempt": attempt})
    message_event_record(message=a, kind="machine_opened", at=LATE)
    message_event_record(message=a, kind="machine_opened", at=LATE)  # once only
    # Another workspace's events are its own.
    other = Profile.objects.create(workspace=other_workspace, user_id="x")
    elsewhere = Message.objects.create(
        workspace=other_workspace, profile=other, idempotency_key="x", channel="email"
    )
    message_status_record(message_id=elsewhere.pk, status="sent", at=LATE)

    day3, day4 = LATE.date(), (LATE + timedelta(hours=1)).date()
    j = journey.pk
    expected = sorted([
        (day4, j, "hello", "a", "email", "sent", 1),
        (day4, j, "hello", "b", "email", "sent", 1),
        (day4, j, "hello", "a", "email", "delivered", 1),
        (day4, j, "hello", "a", "email", "opened", 1),
        (day4, j, "hello", "a", "email", "machine_opened", 1),
        (day3, j, "hello", "b", "email", "bounced", 1),  # 22:30 UTC: still the 3rd in Berlin
        (day4, 0, "", "", "sms", "retried", 2),
    ])  # fmt: skip
    assert _rows(workspace) == expected
    assert counter_totals(workspace=workspace, journey_id=j) == {
        "sent": 2, "delivered": 1, "opened": 1, "machine_opened": 1, "bounced": 1,
    }  # fmt: skip
    assert counter_totals(workspace=workspace, journey_id=j, variant="a")["sent"] == 1
    assert counter_totals(workspace=other_workspace) == {"sent": 1}
    assert MessageEvent.objects.filter(message=a, kind="delivered").count() == 1

    # Each message counts in its shard (its id modulo 8).
    assert {shard for *_, shard, _ in _stored(workspace)} == {a.pk % 8, b.pk % 8, outside.pk % 8}
    # The rebuild from the events gives the same rows, shard by shard, and only for that
    # workspace.
    stored = _stored(workspace)
    MessageCounter.objects.filter(workspace=workspace).update(count=99)
    call_command("rebuild_metrics", "--workspace", workspace.slug)
    assert _rows(workspace) == expected
    assert _stored(workspace) == stored
    assert counter_totals(workspace=other_workspace) == {"sent": 1}


def test_past_days_shards_fold_into_one_row_and_every_sum_stays(workspace, other_workspace):
    from django.conf import settings
    from django.core.cache import cache
    from django.utils import timezone

    from analytics.services import COMPACT_AFTER_DAYS, counters_compact, scheduler_duty

    now = timezone.now()
    old, recent = now - timedelta(days=5), now - timedelta(hours=1)
    sent: dict[str, list] = {"old": [], "recent": [], "elsewhere": []}
    for index in range(12):
        for when, space, label in (
            (old, workspace, "old"),
            (recent, workspace, "recent"),
            (old, other_workspace, "elsewhere"),
        ):
            person = Profile.objects.create(workspace=space, user_id=f"{label}{index}")
            message = Message.objects.create(
                workspace=space, profile=person, idempotency_key=f"{label}{index}", channel="email"
            )
            message_status_record(message_id=message.pk, status="sent", at=when)
            sent[label].append(message)
    shards = {label: {m.pk % 8 for m in messages} for label, messages in sent.items()}
    assert all(len(found) > 1 for found in shards.values())  # the rows to fold exist
    sums, sums_elsewhere = _rows(workspace), _rows(other_workspace)
    old_day, recent_day = old.date(), recent.date()
    assert sums == [
        (old_day, 0, "", "", "email", "sent", 12),
        (recent_day, 0, "", "", "email", "sent", 12),
    ]
    before = now.date() - timedelta(days=COMPACT_AFTER_DAYS)

    # One workspace: its old day becomes one row in shard 0; its recent day and the
    # other workspace keep their shards; every sum is what it was.
    assert counters_compact(before=before, workspace_id=workspace.pk) == 1
    assert _rows(workspace) == sums
    stored = _stored(workspace)
    assert [row for row in stored if row[0] == old_day] == [
        (old_day, 0, "", "", "email", "sent", 0, 12)
    ]
    assert {row[6] for row in stored if row[0] == recent_day} == shards["recent"]
    assert {row[6] for row in _stored(other_workspace)} == shards["elsewhere"]

    # Nothing left to fold there: a second run changes nothing.
    assert counters_compact(before=before, workspace_id=workspace.pk) == 0
    assert _stored(workspace) == stored

    # A late event of the folded day is counted in its shard by the trigger, and the next
    # run folds it too.
    late = sent["old"][5]
    message_status_record(message_id=late.pk, status="delivered", at=old + timedelta(minutes=5))
    assert _rows(workspace) == sorted([*sums, (old_day, 0, "", "", "email", "delivered", 1)])
    if late.pk % 8:
        assert (old_day, 0, "", "", "email", "delivered", late.pk % 8, 1) in _stored(workspace)

    # The scheduler's duty folds every workspace's past days, at most hourly.
    assert "analytics.services.scheduler_duty" in settings.SCHEDULER_DUTIES
    cache.delete("duty:counters_compact")
    scheduler_duty()
    assert [row for row in _stored(workspace) if row[0] == old_day] == [
        (old_day, 0, "", "", "email", "delivered", 0, 1),
        (old_day, 0, "", "", "email", "sent", 0, 12),
    ]
    assert _stored(other_workspace) == [(old_day, 0, "", "", "email", "sent", 0, 12)]
    assert _rows(other_workspace) == sums_elsewhere
    assert counter_totals(workspace=workspace) == {"sent": 24, "delivered": 1}
