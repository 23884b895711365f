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
