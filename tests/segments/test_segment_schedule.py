"""The scheduler queues a full recompute for each due dynamic segment, once, and a real
worker runs it."""

from __future__ import annotations

from datetime import timedelta

import django_rq
import pytest
from django.utils import timezone
from rq import SimpleWorker

from segments.membership import scheduler_duty, segments_due_for_recompute
from segments.models import Event, Profile, Segment, SegmentMembership

RULE = {
    "type": "event_count",
    "event": "order_completed",
    "op": "gte",
    "count": 1,
    "window": {"last_days": 7},
}


def test_due_segments_are_the_never_computed_and_the_stale_ones(workspace):
    now = timezone.now()
    never = Segment.objects.create(workspace=workspace, name="never", definition=RULE)
    stale = Segment.objects.create(
        workspace=workspace,
        name="stale",
        definition=RULE,
        last_computed_at=now - timedelta(seconds=301),
    )
    Segment.objects.create(
        workspace=workspace,
        name="fresh",
        definition=RULE,
        last_computed_at=now - timedelta(seconds=30),
    )
    Segment.objects.create(
        workspace=workspace, name="static", kind="static", definition={}, last_computed_at=None
    )
    quick = Segment.objects.create(
        workspace=workspace,
        name="quick",
        definition=RULE,
        recompute_interval_seconds=10,
        last_computed_at=now - timedelta(seconds=30),
    )
    assert segments_due_for_recompute(now=now) == [never.pk, stale.pk, quick.pk]


@pytest.mark.django_db(transaction=True)
def test_the_duty_queues_each_due_segment_once_and_a_worker_recomputes_it(workspace):
    buyer = Profile.objects.create(workspace=workspace, user_id="buyer")
    Event.objects.create(
        workspace=workspace,
        profile=buyer,
        name="order_completed",
        message_id="o1",
        timestamp=timezone.now() - timedelta(days=1),
    )
    segment = Segment.objects.create(workspace=workspace, name="Buyers", definition=RULE)

    scheduler_duty()
    scheduler_duty()  # the job is still waiting: not queued again
    queue = django_rq.get_queue("default")
    assert queue.job_ids == [f"segment-recompute-{segment.pk}"]

    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    segment.refresh_from_db()
    assert segment.last_computed_at is not None
    assert list(
        SegmentMembership.objects.filter(segment=segment, exited_at=None).values_list(
            "profile__user_id", flat=True
        )
    ) == ["buyer"]
    scheduler_duty()  # just computed: nothing due
    assert queue.job_ids == []
