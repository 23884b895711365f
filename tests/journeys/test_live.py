"""The live numbers the builder shows, computed from the journey's steps, waits and
message counters (journeys.live.journey_metrics), with exact values for a known history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from delivery.models import Message
from delivery.services import message_status_record
from journeys import live
from journeys.models import Enrollment, StepLog
from segments.models import Profile
from tests.journeys.test_executor import _run_journey

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 12, 4, 10, 30, tzinfo=UTC)


def test_metrics_count_people_waits_messages_and_conversions(workspace, other_workspace):
    journey = _run_journey(
        workspace, "Counted",
        [
            {"id": "start", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "hold", "type": "wait", "wait": {"kind": "duration", "seconds": 3600}},
            {"id": "end", "type": "exit"},
        ],
        [{"source": "start", "target": "hold"}, {"source": "hold", "target": "end"}],
    )  # fmt: skip
    other = _run_journey(
        other_workspace, "Elsewhere",
        [{"id": "start", "type": "trigger", "trigger": {"kind": "api"}}, {"id": "end", "type": "exit"}],
        [{"source": "start", "target": "end"}],
    )  # fmt: skip
    people = [Profile.objects.create(workspace=workspace, user_id=f"p{n}") for n in range(4)]
    with time_machine.travel(T0, tick=False):
        rows = []
        for n, person in enumerate(people):
            state = "waiting" if n < 2 else "exited"
            enrollment = Enrollment.objects.create(
                workspace=workspace, journey=journey, version=journey.live_version, profile=person,
                state=state, current_node="hold" if n < 2 else "end",
                exit_reason="converted" if n == 3 else "", exited_at=T0 if n >= 2 else None,
            )  # fmt: skip
            rows.append(StepLog(enrollment=enrollment, node_id="start", outcome="entered"))
            if n >= 2:
                rows.append(StepLog(enrollment=enrollment, node_id="hold", outcome="continued"))
        StepLog.objects.bulk_create(rows)
        for n, person in enumerate(people[:3]):
            message = Message.objects.create(
                workspace=workspace, profile=person, journey=journey, node_id="hold",
                channel="email", idempotency_key=f"live:{n}",
            )  # fmt: skip
            # Through the service, as a send and a tracked open record them: the node
            # numbers come from the message counters the stored events feed.
            message_status_record(message_id=message.pk, status="sent", at=T0 - timedelta(hours=1))
            if n == 0:
                message_status_record(message_id=message.pk, status="opened", at=T0)
        metrics = live.journey_metrics(journey=journey)
    blank = dict.fromkeys(
        ("entered", "waiting", "sent", "delivered", "opened", "clicked", "failed", "converted"), 0
    )
    assert metrics["nodes"] == {
        "start": {**blank, "entered": 4},
        # Two passed the wait, two wait there now (their step is not logged yet).
        # The open implies the delivery (counted once, as its own event).
        "hold": {**blank, "entered": 4, "waiting": 2, "sent": 3, "delivered": 1, "opened": 1},
    }
    assert metrics["totals"] == {
        "entered": 4, "active": 2, "converted": 1, "sent": 3, "opened": 1, "clicked": 0,
    }  # fmt: skip
    series = metrics["series"]
    assert len(series) == live.SERIES_HOURS
    assert series[-1] == {"hour": "2026-12-04T10:00:00+00:00", "sent": 0, "converted": 1}
    assert series[-2] == {"hour": "2026-12-04T09:00:00+00:00", "sent": 3, "converted": 0}
    assert sum(point["sent"] for point in series) == 3
    assert live.journey_metrics(journey=other)["totals"]["entered"] == 0
