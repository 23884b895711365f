"""The scheduler SIGKILLed and restarted while scheduled work falls due.

The scheduler (`manage.py run_scheduler`, as runstack starts it) is what wakes waiting
enrollments and fires scheduled triggers. Here people wait in a journey (a wait node,
then an email to a real SMTP server) and a second journey's scheduled trigger (one date,
over a static segment) falls due; the scheduler is killed before those fall due, stays
down while they do, is restarted, and is killed again right after its restart (in the
middle of its first ticks), then restarted for good. Afterwards every wake-up happened
once (one step per node, one email per person, by idempotency key) and the scheduled
trigger fired exactly once over its segment."""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from django.db.models import Count
from django.utils import timezone

from content import services as content_services
from delivery.models import Message
from engagement_site.workspaces.services import AuditContext
from journeys import executor, services
from journeys.models import Enrollment, ScheduleRun, StepLog
from segments.models import Profile, Segment, SegmentMembership
from tests.delivery.conftest import SmtpSink
from tests.faults.postgres_faults import soak_size, start, worker_command
from tests.servers import free_port, stop

pytestmark = pytest.mark.django_db(transaction=True)

EDITOR = AuditContext.system("fault test")
WAVE = soak_size(40, 400)  # people entering the waiting journey per wave
WAVES = 3
MEMBERS = soak_size(50, 500)  # people in the scheduled journey's segment
WAIT_SECONDS = 4
# Seconds after the start: when each wave enters (and so wakes WAIT_SECONDS later), when
# the scheduler is killed, when the scheduled trigger falls due, when it comes back.
WAVES_AT = (0, 3, 5)
KILL_AT = 6
FIRE_AT = 11
RESTART_AT = 14


def _publish(workspace, name: str, nodes: list, edges: list):
    journey = services.journey_create(
        workspace=workspace, name=name, context=EDITOR, definition={"nodes": nodes, "edges": edges}
    )
    services.journey_publish(journey=journey, context=EDITOR)
    journey.refresh_from_db()
    return journey


def _steps(journey) -> dict[str, int]:
    return dict(
        StepLog.objects.filter(enrollment__journey=journey)
        .values_list("node_id")
        .annotate(n=Count("pk"))
    )


def _at(started: float, seconds: float) -> None:
    time.sleep(max(0.0, started + seconds - time.monotonic()))


@pytest.mark.soak
@pytest.mark.timeout(soak_size(300, 3600))
def test_the_scheduler_killed_while_work_falls_due_loses_and_repeats_nothing(workspace, tmp_path):
    template = content_services.template_create(
        workspace=workspace, name="Hello", channel="email",
        content={"default": {"subject": "Hi", "html": "<p>Hi</p>"}}, context=EDITOR,
    )  # fmt: skip
    waiting = _publish(
        workspace, "Wait then mail",
        [
            {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "pause", "type": "wait", "wait": {"kind": "duration", "seconds": WAIT_SECONDS}},
            {"id": "mail", "type": "action", "action": {"kind": "message", "channel": "email", "template_id": template.pk}},
            {"id": "end", "type": "exit"},
        ],
        [{"source": "api", "target": "pause"}, {"source": "pause", "target": "mail"}, {"source": "mail", "target": "end"}],
    )  # fmt: skip
    people = Profile.objects.bulk_create(
        [
            Profile(workspace=workspace, user_id=f"w{index:04d}", email=f"w{index:04d}@example.com")
            for index in range(WAVE * WAVES)
        ]
    )
    segment = Segment.objects.create(
        workspace=workspace, name="Digest readers", kind=Segment.Kind.STATIC, definition={}
    )
    members = Profile.objects.bulk_create(
        [Profile(workspace=workspace, user_id=f"s{index:04d}") for index in range(MEMBERS)]
    )
    SegmentMembership.objects.bulk_create(
        [SegmentMembership(workspace=workspace, segment=segment, profile=p) for p in members]
    )

    sink = SmtpSink("127.0.0.1", free_port())
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    environment = {
        "EMAIL_URL": f"smtp://127.0.0.1:{sink.port}?timeout=10",
        "SCHEDULER_INTERVAL_SECONDS": "1",
    }
    worker = start(worker_command(), application_name="fault-worker", log=tmp_path / "worker.log", **environment)  # fmt: skip
    schedulers = []

    def scheduler():
        process = start(
            ["run_scheduler"], application_name="fault-scheduler",
            log=tmp_path / "scheduler.log", **environment,
        )  # fmt: skip
        schedulers.append(process)
        return process

    try:
        # Both processes up (a Django start takes seconds here) before the clock starts.
        current = scheduler()
        deadline = time.monotonic() + 60
        while "scheduler started" not in (tmp_path / "scheduler.log").read_text() or "Listening on" not in (tmp_path / "worker.log").read_text():  # fmt: skip
            assert time.monotonic() < deadline, "the worker or the scheduler did not start"
            time.sleep(0.2)
        started = time.monotonic()
        fire_at = timezone.now() + timedelta(seconds=FIRE_AT)
        scheduled = _publish(
            workspace, "Digest",
            [
                {"id": "when", "type": "trigger", "trigger": {"kind": "schedule", "segment_id": segment.pk, "at": fire_at.isoformat()}},
                {"id": "tag", "type": "action", "action": {"kind": "update_attribute", "trait": "digest", "value": True}},
                {"id": "end", "type": "exit"},
            ],
            [{"source": "when", "target": "tag"}, {"source": "tag", "target": "end"}],
        )  # fmt: skip
        for number, at in enumerate(WAVES_AT):
            _at(started, at)
            if at >= KILL_AT:
                break
            wave = people[number * WAVE : (number + 1) * WAVE]
            Enrollment.objects.bulk_create(
                [
                    Enrollment(
                        workspace=workspace, journey=waiting, version=waiting.live_version,
                        profile=person, state="active", current_node="api",
                        next_run_at=timezone.now(), context={"visits": {}},
                    )
                    for person in wave
                ]
            )  # fmt: skip
            executor.advance_enqueue(
                list(
                    Enrollment.objects.filter(journey=waiting, profile__in=wave).values_list(
                        "pk", flat=True
                    )
                )
            )

        _at(started, KILL_AT)
        current.send_signal(signal.SIGKILL)
        current.wait(timeout=10)
        _at(started, RESTART_AT)
        now = timezone.now()
        due_while_down = Enrollment.objects.filter(
            journey=waiting, state="waiting", next_run_at__lte=now
        ).count()
        fired_while_down = ScheduleRun.objects.filter(journey=scheduled).count()
        assert fire_at <= now
        assert fired_while_down == 0
        assert due_while_down > 0, "no wake-up fell due while the scheduler was down"

        # Back, then killed again in its first ticks (while it may be queueing), then back.
        current = scheduler()
        deadline = time.monotonic() + 60
        while (tmp_path / "scheduler.log").read_text().count("scheduler started") < 2:
            assert time.monotonic() < deadline, "the restarted scheduler did not start"
            time.sleep(0.05)
        time.sleep(0.5)
        current.send_signal(signal.SIGKILL)
        current.wait(timeout=10)
        current = scheduler()

        total = WAVE * WAVES
        deadline = time.monotonic() + 120
        while True:
            done = Enrollment.objects.filter(journey=waiting, state="exited").count()
            entered = Enrollment.objects.filter(journey=scheduled, state="exited").count()
            sent = Message.objects.filter(journey=waiting, status="sent").count()
            if done == total and entered == MEMBERS and sent == total:
                break
            assert worker.poll() is None, "the worker died"
            assert time.monotonic() < deadline, (
                f"stuck: {done} of {total} woke and finished, {sent} sent, {entered} of {MEMBERS} "
                "entered by the scheduled trigger\n"
                + (tmp_path / "scheduler.log").read_text()[-3000:]
            )
            time.sleep(0.3)
        time.sleep(3)  # three more ticks: a repeated fire or wake-up would show now
    finally:
        stop(worker, *schedulers)
        controller.stop()

    received = Counter(message["X-Engagement-Message"] for message in sink.received)
    duplicates = sum(n - 1 for n in received.values() if n > 1)
    total = WAVE * WAVES
    assert duplicates == 0
    assert len(sink.received) == total
    assert set(received) == set(
        Message.objects.filter(journey=waiting).values_list("idempotency_key", flat=True)
    )
    assert _steps(waiting) == {"api": total, "pause": total, "mail": total, "end": total}
    assert Message.objects.filter(journey=waiting).count() == total
    assert ScheduleRun.objects.filter(journey=scheduled).count() == 1
    run = ScheduleRun.objects.get(journey=scheduled)
    assert run.fire_at == fire_at
    assert run.entered == MEMBERS
    assert Enrollment.objects.filter(journey=scheduled).count() == MEMBERS
    assert _steps(scheduled) == {"when": MEMBERS, "tag": MEMBERS, "end": MEMBERS}
    assert Profile.objects.filter(workspace=workspace, traits__digest=True).count() == MEMBERS
    assert [process.returncode for process in schedulers[:2]] == [-signal.SIGKILL] * 2
    print(
        f"\nscheduler killed twice: wake-ups due while it was down={due_while_down} "
        f"woken={total} emails={len(sink.received)} duplicates={duplicates} "
        f"scheduled fires={ScheduleRun.objects.filter(journey=scheduled).count()} "
        f"entered={run.entered} of {MEMBERS}"
    )
