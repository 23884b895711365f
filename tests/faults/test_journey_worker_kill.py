"""Workers SIGKILLed lose nothing and do nothing twice.

One kill in the middle of a batch: the steps it committed stay, the enrollments it held
are re-claimed when their lease expires, and every enrollment ends at its expected node
with one step per node and one message each (asserted from StepLog and the message
table).

Kills again and again, of journey workers and send workers (two of each, one killed
while its twin works on; paced by the work, so each lands mid-run: every few seconds on
a quiet machine), while people move through a journey that emails them and calls a
webhook, a fifth of them opted out: afterwards every enrollment is at its exit, every
step is logged once, the receiving servers (a real SMTP server, a real HTTP receiver)
got one message per person and step, and nothing reached a person who had opted out
(see tests/faults/stack.py)."""

from __future__ import annotations

import os
import random
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

from delivery.models import Message
from engagement_site.workspaces.services import AuditContext
from journeys import executor
from journeys.models import Enrollment, StepLog
from segments.models import Profile
from tests.delivery.local_http import Receiver
from tests.faults.stack import (
    SmtpServer,
    Stack,
    Tally,
    audience,
    enroll_all,
    greeting_journey,
    sending_journey,
    soak_size,
    wait_until,
    webhook_arrivals,
)
from tests.servers import database_url_of

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
PEOPLE = 400
EDITOR = AuditContext.system("fault test")


def _worker() -> subprocess.Popen:
    environment = {**os.environ, "DATABASE_URL": database_url_of(connection.settings_dict)}
    environment.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", "journeys", "--worker-class", "engagement_site.jobs.Worker"],
        cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_a_worker_killed_mid_batch_loses_nothing_and_repeats_nothing(workspace):
    journey, version = greeting_journey(workspace)
    profiles = Profile.objects.bulk_create(
        [Profile(workspace=workspace, user_id=f"u{index:04d}") for index in range(PEOPLE)]
    )
    ids = enroll_all(journey, version, [profile.pk for profile in profiles])
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


# `make test`: 200 people and about 4 kills of each kind of worker; `make soak`: 2,000
# and about 30. (A kill costs a worker's start-up: seconds on a quiet machine, a minute on
# a shared one at a load of 10, where the default run took 4 minutes at 400 people.)
PEOPLE_UNDER_KILLS = soak_size(200, 2000)
KILLS = soak_size(4, 30)  # of each kind
# Short leases, so the killed workers' claims come back within the run.
LEASES = {"JOURNEY_LEASE_SECONDS": "4", "DELIVERY_SEND_LEASE_SECONDS": "6"}
WORKERS = {
    "journeys-1": ["journeys"], "journeys-2": ["journeys"],
    "delivery-1": ["delivery-email", "delivery-webhook", "delivery"],
    "delivery-2": ["delivery-email", "delivery-webhook", "delivery"],
}  # fmt: skip


@pytest.mark.soak
@pytest.mark.timeout(soak_size(900, 3600))
def test_workers_killed_again_and_again_send_once_and_never_to_the_opted_out(workspace):
    seed = random.randrange(1_000_000)
    chance = random.Random(seed)
    with SmtpServer() as smtp, Receiver() as receiver:
        journey, version = sending_journey(workspace, receiver)
        people = audience(workspace, people=PEOPLE_UNDER_KILLS, prefix="k")
        ids = enroll_all(journey, version, people.profile_ids)
        stack = Stack("faults-worker-kills", environment={"EMAIL_URL": smtp.url, **LEASES})
        for role, queues in WORKERS.items():
            stack.worker(role, *queues)
        stack.start("scheduler", ["run_scheduler"])
        for start in range(0, len(ids), executor.COMMIT_GROUP):  # as the API's bulk entry
            executor.advance_enqueue(ids[start : start + executor.COMMIT_GROUP])
        enrollments = Enrollment.objects.filter(journey=journey)
        messages = Message.objects.filter(journey=journey)
        # Kills are paced by the work, so they land in the middle of it however fast the
        # machine is: whenever about another 1/(KILLS + 1) of the people have finished (of
        # the messages, for send workers), a worker of that kind that is up and working
        # dies by SIGKILL and is started again (its twin works on, unless it is still
        # starting from its own kill). On a quiet machine that is a kill every few seconds.
        kinds = {
            "journeys": (lambda: enrollments.filter(state="exited").count(), PEOPLE_UNDER_KILLS),
            "delivery": (lambda: messages.exclude(status="queued").count(), 2 * PEOPLE_UNDER_KILLS),
        }
        kill_at = {kind: total / (KILLS + 1) for kind, (_, total) in kinds.items()}
        started = time.monotonic()

        def finished() -> bool:
            return (
                enrollments.filter(state="exited").count() == PEOPLE_UNDER_KILLS
                and messages.count() == 2 * PEOPLE_UNDER_KILLS
                and not messages.filter(status="queued").exists()
            )

        def killer() -> None:
            ready = stack.ready()
            for kind, (progress, total) in kinds.items():
                done = progress()
                mine = sorted(role for role in ready if role.startswith(kind))
                if done >= kill_at[kind] and done < total and mine:
                    stack.kill(chance.choice(mine))
                    kill_at[kind] = done + total / (KILLS + 1) * chance.uniform(0.6, 1.0)

        try:
            wait_until(
                finished, timeout=soak_size(420, 1800), interval=0.25, tick=killer,
                message=lambda: (
                    f"stuck (seed {seed}, kills {dict(stack.kills)}): "
                    f"{enrollments.filter(state='exited').count()} of {PEOPLE_UNDER_KILLS} exited, "
                    f"{messages.filter(status='queued').count()} of {messages.count()} messages queued"
                ),
            )  # fmt: skip
        finally:
            stack.stop()
        seconds = time.monotonic() - started
        email, hooks = Tally.of(smtp.arrivals), Tally.of(webhook_arrivals(receiver))

    kills = {
        kind: sum(n for role, n in stack.kills.items() if role.startswith(kind)) for kind in kinds
    }
    # (The last share of the work can finish before its kill comes.)
    assert kills["journeys"] >= KILLS // 2 and kills["delivery"] >= KILLS // 2, kills
    assert dict(enrollments.values_list("state").annotate(n=Count("pk"))) == {
        "exited": PEOPLE_UNDER_KILLS
    }
    assert set(enrollments.values_list("current_node", flat=True)) == {"end"}
    per_node = dict(
        StepLog.objects.filter(enrollment__journey=journey)
        .values_list("node_id")
        .annotate(n=Count("pk"))
    )
    assert per_node == dict.fromkeys(["api", "tag", "mail", "hook", "end"], PEOPLE_UNDER_KILLS)
    assert (
        Profile.objects.filter(workspace=workspace, traits__greeted=True).count()
        == PEOPLE_UNDER_KILLS
    )
    # The log: one message per person and step, the opted-out ones suppressed at send time.
    outcomes = {
        (row["channel"], row["status"], row["reason"]): row["n"]
        for row in messages.values("channel", "status", "reason").annotate(n=Count("pk")).order_by()
    }
    emailed, hooked = people.emailed, people.hooked
    assert outcomes == {
        ("email", "sent", ""): len(emailed),
        ("email", "suppressed", "unsubscribed"): len(people.no_email),
        ("email", "suppressed", "unsubscribed_topic"): len(people.no_topic),
        ("webhook", "sent", ""): len(hooked),
        ("webhook", "suppressed", "unsubscribed_topic"): len(people.no_topic),
    }
    # At the servers: every message that was to go arrived, as one message per person.
    sent_keys = set(messages.filter(status="sent").values_list("idempotency_key", flat=True))
    assert email.keys | hooks.keys == sent_keys
    assert set(email.recipients) == emailed and email.duplicates == 0
    assert set(hooks.recipients) == hooked and hooks.duplicates == 0
    # Nobody who opted out got anything, on either channel.
    assert not set(email.recipients) & people.opted_out_addresses
    assert not set(hooks.recipients) & {f"/crm/{user_id}" for user_id in people.no_topic}
    # A repeat (the same key again) needs a send worker killed after the server took the
    # message and before its outcome was committed: at most one per kill of that worker.
    assert email.repeats + hooks.repeats <= kills["delivery"]
    print(
        f"\n{PEOPLE_UNDER_KILLS} people ({len(people.no_email)} unsubscribed from email, "
        f"{len(people.no_topic)} from the topic), seed {seed}, {seconds:.0f} s; "
        f"kills: journey workers {kills['journeys']}, send workers {kills['delivery']}; "
        f"steps {sum(per_node.values())}; "
        f"SMTP server: {email.arrivals} arrivals, {len(email.keys)} messages, "
        f"{email.repeats} repeated keys, {email.duplicates} duplicates, 0 to the opted out; "
        f"webhook receiver: {hooks.arrivals} arrivals, {len(hooks.keys)} messages, "
        f"{hooks.repeats} repeated keys, {hooks.duplicates} duplicates, 0 to the opted out"
    )
