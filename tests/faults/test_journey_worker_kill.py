"""A journey worker SIGKILLed in the middle of a batch loses nothing and does nothing
twice: the steps it committed stay, the enrollments it held are re-claimed when their
lease expires, and every enrollment ends at its expected node with one step per node
and one message each (asserted from StepLog and the message table)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import django_rq
import pytest
import time_machine
from django.db import connection
from django.db.models import Count
from django.utils import timezone
from rq import SimpleWorker

from content import services as content_services
from delivery.models import Message
from engagement_site.workspaces.services import AuditContext
from journeys import executor, services
from journeys.models import Enrollment, StepLog
from segments.models import Profile
from tests.e2e.conftest import database_url_of

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
PEOPLE = 400
EDITOR = AuditContext.system("fault test")


def _journey(workspace):
    template = content_services.template_create(
        workspace=workspace, name="Hello", channel="email",
        content={"default": {"subject": "Hi", "html": "<p>Hi</p>"}}, context=EDITOR,
    )  # fmt: skip
    definition = {
        "nodes": [
            {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "tag", "type": "action", "action": {"kind": "update_attribute", "trait": "greeted", "value": True}},
            {"id": "mail", "type": "action", "action": {"kind": "message", "channel": "email", "template_id": template.pk}},
            {"id": "end", "type": "exit"},
        ],
        "edges": [
            {"source": "api", "target": "tag"}, {"source": "tag", "target": "mail"}, {"source": "mail", "target": "end"},
        ],
    }  # fmt: skip
    journey = services.journey_create(
        workspace=workspace, name="Greeting", context=EDITOR, definition=definition
    )
    version = services.journey_publish(journey=journey, context=EDITOR)
    journey.refresh_from_db()
    return journey, version


def _worker() -> subprocess.Popen:
    environment = {**os.environ, "DATABASE_URL": database_url_of(connection.settings_dict)}
    environment.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", "journeys", "--worker-class", "rq.worker.SimpleWorker"],
        cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_a_worker_killed_mid_batch_loses_nothing_and_repeats_nothing(workspace):
    journey, version = _journey(workspace)
    profiles = Profile.objects.bulk_create(
        [Profile(workspace=workspace, user_id=f"u{index:04d}") for index in range(PEOPLE)]
    )
    now = timezone.now()
    Enrollment.objects.bulk_create(
        [
            Enrollment(
                workspace=workspace, journey=journey, version=version, profile=profile,
                state="active", current_node="api", next_run_at=now, context={"visits": {}},
            )
            for profile in profiles
        ]
    )  # fmt: skip
    ids = list(Enrollment.objects.filter(journey=journey).values_list("pk", flat=True))
    executor.advance_enqueue(ids)  # one job, one batch of 400

    worker = _worker()
    try:
        deadline = time.monotonic() + 120
        while StepLog.objects.filter(enrollment__journey=journey, node_id="end").count() < 40:
            assert worker.poll() is None, "the worker stopped before it could be killed"
            assert time.monotonic() < deadline, "the worker made no progress"
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()

    done_at_kill = Enrollment.objects.filter(journey=journey, state="exited").count()
    assert 40 <= done_at_kill < PEOPLE, f"{done_at_kill} of {PEOPLE} finished before the kill"
    held = Enrollment.objects.filter(
        journey=journey, state="active", locked_until__gt=timezone.now()
    ).count()
    assert held == PEOPLE - done_at_kill  # the dead worker's lease still holds the rest

    # The same job enqueued again now does nothing: the rows are leased.
    queue = django_rq.get_queue("journeys")
    queue.empty()
    executor.advance_enqueue(ids)
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    assert Enrollment.objects.filter(journey=journey, state="exited").count() == done_at_kill

    # After the lease expires the scheduler hands the rest to a worker.
    with time_machine.travel(timezone.now() + executor.LEASE + timedelta(seconds=1), tick=False):
        executor.scheduler_duty()
        SimpleWorker([queue], connection=queue.connection).work(burst=True)

    states = dict(
        Enrollment.objects.filter(journey=journey).values_list("state").annotate(n=Count("pk"))
    )
    assert states == {"exited": PEOPLE}
    assert set(
        Enrollment.objects.filter(journey=journey).values_list("current_node", flat=True)
    ) == {"end"}
    per_node = dict(
        StepLog.objects.filter(enrollment__journey=journey)
        .values_list("node_id")
        .annotate(n=Count("pk"))
    )
    assert per_node == {"api": PEOPLE, "tag": PEOPLE, "mail": PEOPLE, "end": PEOPLE}
    messages = Message.objects.filter(journey=journey)
    assert messages.count() == PEOPLE
    assert messages.values("profile").distinct().count() == PEOPLE
    assert Profile.objects.filter(workspace=workspace, traits__greeted=True).count() == PEOPLE
    print(
        f"\nkilled after {done_at_kill} of {PEOPLE}; recovered {PEOPLE - done_at_kill}; steps {sum(per_node.values())}; messages {messages.count()}"
    )
