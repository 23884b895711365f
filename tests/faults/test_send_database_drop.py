"""PostgreSQL connections dropped while an RQ worker runs a journey and sends its email.

The worker and the scheduler run as `make run` runs them (runstack's worker class and
flags), against the test database and a real SMTP server (aiosmtpd). A separate admin
connection terminates the worker's busy backends (a query running or a transaction
open) every few tenths of a second, and all of them now and then. Some of the audience
unsubscribed from email, some are on the suppression list. Afterwards every person
has exactly one message recorded; the SMTP server got exactly one email per person who
may get one (counted by the idempotency key header) and none for the others; the
journey is still live and every enrollment finished."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from aiosmtpd.controller import Controller
from django.db.models import Count

from delivery import services as delivery_services
from delivery.models import Message
from engagement_site.workspaces.services import AuditContext
from journeys import executor
from journeys.models import Enrollment, Journey, StepLog
from segments.models import Profile
from tests.delivery.conftest import SmtpSink
from tests.faults.postgres_faults import BackendKiller, soak_size, start, worker_command
from tests.faults.stack import enroll_all, greeting_journey
from tests.servers import free_port, stop

pytestmark = pytest.mark.django_db(transaction=True)

PEOPLE = soak_size(240, 2000)
EDITOR = AuditContext.system("fault test")
WORKER = "fault-worker"
SCHEDULER = "fault-scheduler"


def _unsubscribed(index: int) -> bool:
    return index % 10 == 3


def _suppressed(index: int) -> bool:
    return index % 10 == 7


@pytest.mark.soak
@pytest.mark.timeout(soak_size(300, 3600))
def test_database_connections_dropped_during_sends_double_nothing_and_skip_no_consent(
    workspace, tmp_path
):
    journey, version = greeting_journey(workspace)
    profiles = Profile.objects.bulk_create(
        [
            Profile(workspace=workspace, user_id=f"p{index:04d}", email=f"p{index:04d}@example.com")
            for index in range(PEOPLE)
        ]
    )
    for index, profile in enumerate(profiles):
        if _unsubscribed(index):
            delivery_services.consent_set(
                profile=profile, channel="email", status="unsubscribed", source="test"
            )
        elif _suppressed(index):
            delivery_services.suppression_add(
                workspace=workspace, channel="email", address=profile.email, reason="complaint"
            )
    allowed = {p.email for i, p in enumerate(profiles) if not (_unsubscribed(i) or _suppressed(i))}
    opted_out = {p.email for p in profiles} - allowed

    sink = SmtpSink("127.0.0.1", free_port())
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    environment = {
        "EMAIL_URL": f"smtp://127.0.0.1:{sink.port}?timeout=10",
        "SCHEDULER_INTERVAL_SECONDS": "1",
    }
    ids = enroll_all(journey, version, [profile.pk for profile in profiles])
    for start_at in range(0, len(ids), 40):
        executor.advance_enqueue(ids[start_at : start_at + 40])

    worker = scheduler = None
    # Busy backends whose statement touches the message table (the journey creating a
    # message, the send job claiming, checking and recording them), and now and then all.
    killer = BackendKiller(WORKER, interval=1.0, all_every=7.0, query_like="%delivery_message%")
    try:
        worker = start(worker_command(), application_name=WORKER, log=tmp_path / "worker.log", **environment)  # fmt: skip
        scheduler = start(["run_scheduler"], application_name=SCHEDULER, log=tmp_path / "scheduler.log", **environment)  # fmt: skip
        killer.start()
        deadline = time.monotonic() + 150
        while True:
            finished = Enrollment.objects.filter(journey=journey, state="exited").count()
            settled = Message.objects.filter(journey=journey).exclude(status="queued").count()
            if finished == PEOPLE and settled == PEOPLE:
                break
            assert worker.poll() is None, (
                "the worker died:\n" + (tmp_path / "worker.log").read_text()[-3000:]
            )
            assert time.monotonic() < deadline, (
                f"stuck: {finished} of {PEOPLE} finished, {settled} messages settled; "
                f"journey {Journey.objects.get(pk=journey.pk).status}; "
                f"faults {Counter(killer.killed)}\n" + (tmp_path / "worker.log").read_text()[-4000:]
            )
            time.sleep(0.3)
        killed = killer.stop()
        # A little longer: a repeat send would show up now.
        time.sleep(2)
    finally:
        if killer.is_alive():
            killer.stopping.set()
        stop(worker, scheduler)
        controller.stop()

    received = Counter(message["X-Engagement-Message"] for message in sink.received)
    duplicates = sum(n - 1 for n in received.values() if n > 1)
    recipients = Counter(message["To"] for message in sink.received)
    to_opted_out = sum(recipients[address] for address in opted_out)
    messages = Message.objects.filter(journey=journey)
    per_profile = Counter(messages.values_list("profile_id", flat=True))
    statuses = Counter(messages.values_list("status", flat=True))
    keys = set(messages.filter(status="sent").values_list("idempotency_key", flat=True))

    assert Journey.objects.get(pk=journey.pk).status == Journey.Status.LIVE
    assert duplicates == 0
    assert to_opted_out == 0
    assert set(received) == keys
    assert set(recipients) == allowed
    assert len(sink.received) == len(allowed)
    assert set(per_profile.values()) == {1} and len(per_profile) == PEOPLE
    assert statuses == {"sent": len(allowed), "suppressed": len(opted_out)}
    assert dict(
        StepLog.objects.filter(enrollment__journey=journey)
        .values_list("node_id")
        .annotate(n=Count("pk"))
    ) == {"api": PEOPLE, "tag": PEOPLE, "mail": PEOPLE, "end": PEOPLE}
    assert Enrollment.objects.filter(journey=journey, attempts__gt=0).count() == 0
    busy = Counter(killed)
    assert busy["active"] + busy["idle in transaction"] >= 3, f"too few faults: {busy}"
    # Those that hit the send job itself (not the journey inserting the message rows).
    in_send_job = sum(
        1
        for statement in killer.statements
        if "delivery_message" in statement and not statement.lstrip().startswith("INSERT")
    )
    assert in_send_job >= 2, f"too few faults in the send job: {killer.statements}"
    print(
        f"\nsends under PostgreSQL drops: people={PEOPLE} emails_received={len(sink.received)} "
        f"allowed={len(allowed)} duplicates={duplicates} to_opted_out={to_opted_out} "
        f"messages={dict(statuses)} backends_terminated={len(killed)} ({dict(busy)}, "
        f"{in_send_job} in the send job)"
    )
