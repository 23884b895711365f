"""Journey executor benchmark: `python -m bench --only journeys [--quick]`.

Measures, in its own database (`engagement_bench_journeys`, or `..._quick`) on the
server the app uses and the benchmark's Redis database:

- throughput: user-steps per second through a 3-node journey (API trigger -> email
  message action -> exit) for N profiles (100,000; 1,000 with --quick), queued in jobs
  of BATCH enrollments, with 1 and with 2 worker processes (`manage.py rqworker
  journeys`, RQ's non-forking SimpleWorker, as `make run` runs them), several
  repetitions each. Each step is a StepLog row; the action writes a Message row. Timed
  from the first job's start to the last job's end (RQ's own timestamps; the workers
  are already listening), and checked: every enrollment exited, 3 StepLogs and one
  Message per person;
- event-to-message latency: an event-triggered journey (event `bench_signal` -> email
  -> exit), one worker listening on the ingest, journeys and delivery-email queues (as
  `make run` runs its worker), a real SMTP server (aiosmtpd) in this process. One event
  at a time is POSTed to /v1/batch (the Django stack in process, with a write key);
  the latency runs from the 200 answer (the event stored, its ingestion job queued)
  to the SMTP server receiving the email: three RQ jobs (ingestion hooks, the journey
  step, the send) and the SMTP exchange. p50 / p95 / p99, and the same to the
  message's `sent_at` (server clock) from the event's `received_at`;
- the baseline: empty RQ jobs per second through the same worker class on the same
  Redis (one worker, first job's start to last job's end), before and after the
  throughput runs; the median of the two.

ratio = median user-steps/s with 1 worker / empty jobs/s: how many steps one worker
moves in the time RQ alone takes to run one job. docs/performance.md explains it.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.bench_segments import _bench_database, _django_setup, _server_connection
from bench.measure import before_after, load_average, percentile, spread, wait_for

ROOT = Path(__file__).resolve().parents[1]
STEPS_PER_USER = 3
SLUG = "bench-journeys"
SIGNAL = "bench_signal"
WARM_EVENTS = 2  # latency: first events of a fresh worker, not counted
# Jobs keep their timestamps until measured: RQ's default (500 s) let the first jobs of
# a full-size run expire before the last ended, and the run then waited for ever.
RESULT_TTL = 4 * 3600


@dataclass(frozen=True)
class Plan:
    database: str
    profiles: int
    batch: int  # enrollments per advance job
    repetitions: int
    empty_jobs: int
    latency_events: int


FULL = Plan("engagement_bench_journeys", 100_000, 500, 3, 20_000, 200)
QUICK = Plan("engagement_bench_journeys_quick", 300, 75, 3, 100, 12)


def noop_job() -> None:
    """The baseline's job: RQ's own cost per job, nothing else."""


def _database_url(name: str) -> str:
    from django.conf import settings

    parsed = urlsplit(settings.DATABASE_URL)
    return urlunsplit(parsed._replace(path=f"/{name}"))


def _prepare_database(plan) -> None:
    """Create the database `plan.database` when missing and bring its schema up to date
    (kept between runs). Migrates in this process, and only when a migration is
    missing: a fresh `manage.py migrate` costs seconds of Python start-up."""
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    with _server_connection() as server:
        exists = server.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [plan.database]
        ).fetchone()
        if not exists:
            server.execute(f'CREATE DATABASE "{plan.database}"')
    with _bench_database(plan.database):
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            call_command("migrate", verbosity=0, interactive=False)


def _workers(
    count: int,
    plan: Plan,
    *,
    burst: bool = False,
    queues: tuple[str, ...] = ("journeys",),
    environment: dict[str, str] | None = None,
    wait: bool = True,
) -> list[subprocess.Popen]:
    """Start `count` SimpleWorker processes on `queues` and (unless `wait` is false:
    then call _registered) wait until each has registered and listens, so start-up is
    never timed."""
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(plan.database),
        "LOG_LEVEL": "WARNING",
        "DEBUG": "false",
        **(environment or {}),
    }
    names = [f"bench-{os.getpid()}-{time.monotonic_ns()}-{i}" for i in range(count)]
    command = [sys.executable, "manage.py", "rqworker", *queues, "--worker-class",
               "rq.worker.SimpleWorker", *(["--burst"] if burst else [])]  # fmt: skip
    processes = [
        subprocess.Popen(
            [*command, "--name", name],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in names
    ]
    for process, name in zip(processes, names, strict=True):
        process.bench_name = name  # type: ignore[attr-defined]
    if wait and not burst:
        _registered(processes)
    return processes


def _registered(processes: list[subprocess.Popen]) -> None:
    """Wait until these (non-burst) workers have registered in Redis."""
    from django_rq import get_connection
    from rq import Worker

    connection = get_connection("default")
    names = {process.bench_name for process in processes}  # type: ignore[attr-defined]

    def registered() -> bool:
        if any(process.poll() is not None for process in processes):
            raise RuntimeError("a worker stopped while starting")
        return names <= {worker.name for worker in Worker.all(connection=connection)}

    wait_for(registered, timeout=180, what=f"{len(names)} worker(s)", interval=0.1)


def _stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


def _jobs_span(queue, jobs: list) -> float:
    """Seconds from the first job's start to the last job's end (RQ's timestamps),
    after checking that every job finished."""
    from rq.job import Job

    fetched = Job.fetch_many([job.id for job in jobs], connection=queue.connection)
    if any(job is None or job.ended_at is None for job in fetched):
        raise RuntimeError("a job has no end: it failed or its result expired")
    failed = [job.id for job in fetched if job.get_status(refresh=False) != "finished"]
    if failed:
        raise RuntimeError(f"{len(failed)} job(s) failed, e.g. {failed[0]}")
    first = min(job.started_at for job in fetched)
    last = max(job.ended_at for job in fetched)
    return (last - first).total_seconds()


def _wait_finished(queue, jobs: list, *, timeout: float, what: str) -> None:
    """Wait until every job has ended. Polls five times a second, and only the jobs not
    seen ended yet once the queue is empty: fetching all 20,000 jobs every 20 ms (as
    this did before) took more than half a core from the workers being measured."""
    from rq.job import Job

    pending = [job.id for job in jobs]

    def ended() -> bool:
        nonlocal pending
        if queue.count:
            return False  # still queued: nothing has to be fetched yet
        fetched = Job.fetch_many(pending, connection=queue.connection)
        if any(job is None for job in fetched):
            raise RuntimeError(f"{what}: a job is gone from Redis (its result expired?)")
        if any(job.get_status(refresh=False) == "failed" for job in fetched):
            raise RuntimeError(f"{what}: a job failed (see RQ's failed registry)")
        pending = [job.id for job in fetched if job.ended_at is None]
        return not pending

    wait_for(ended, timeout=timeout, what=what, interval=0.2)


def _setup(plan: Plan) -> dict[str, Any]:
    """A fresh workspace with N profiles (with their user-id identities), an email
    template, a live API-triggered journey and a live event-triggered one, and a write
    key for /v1/batch."""
    from django.db import connection

    from content.services import template_create
    from engagement_site.workspaces.models import ApiKey, Workspace
    from engagement_site.workspaces.services import AuditContext, api_key_create
    from journeys import services
    from segments.models import IngestionSettings
    from segments.partitions import event_partitions_ensure

    context = AuditContext.system("benchmark")
    with connection.cursor() as cursor:
        # The benchmark's own database: start from empty tables each run.
        cursor.execute(
            "TRUNCATE journeys_steplog, journeys_enrollment, journeys_schedulerun, journeys_journey,"
            " journeys_journeyversion, journeys_journeydraft, delivery_message, segments_profile,"
            " segments_identity, segments_event, segments_eventmessageid, content_assetusage,"
            " content_template, content_templateversion, workspaces_apikey CASCADE"
        )
    event_partitions_ensure()
    workspace, _ = Workspace.objects.get_or_create(slug=SLUG, defaults={"name": "Bench journeys"})
    IngestionSettings.objects.update_or_create(
        workspace=workspace, defaults={"rate_limit_per_second": 0}
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO segments_profile (workspace_id, user_id, anonymous_ids, traits, email, phone,
                                          time_zone, locale, first_seen, last_seen, created_at)
            SELECT %s, 'u' || i, '{}', '{}'::jsonb, 'u' || i || '@example.com', '', '', '', now(), now(), now()
            FROM generate_series(1, %s) AS i
            """,
            [workspace.pk, plan.profiles],
        )
        cursor.execute(
            "INSERT INTO segments_identity (workspace_id, kind, value, profile_id, created_at)"
            " SELECT workspace_id, 'user_id', user_id, id, now() FROM segments_profile"
            " WHERE workspace_id = %s",
            [workspace.pk],
        )
        cursor.execute("ANALYZE segments_profile")
        cursor.execute("ANALYZE segments_identity")
    template = template_create(
        workspace=workspace, name="Hello", channel="email",
        content={"default": {"subject": "Hi", "html": "<p>Hi</p>"}}, context=context,
    )  # fmt: skip
    journeys = {}
    for name, trigger in (("api", {"kind": "api"}), ("event", {"kind": "event", "event": SIGNAL})):
        definition = {
            "nodes": [
                {"id": "start", "type": "trigger", "trigger": trigger},
                {"id": "mail", "type": "action", "action": {"kind": "message", "channel": "email", "template_id": template.pk}},
                {"id": "end", "type": "exit"},
            ],
            "edges": [{"source": "start", "target": "mail"}, {"source": "mail", "target": "end"}],
        }  # fmt: skip
        journey = services.journey_create(
            workspace=workspace, name=f"Bench {name}", context=context, definition=definition
        )
        version = services.journey_publish(journey=journey, context=context)
        journeys[name] = (journey, version)
    _, key = api_key_create(
        workspace=workspace, kind=ApiKey.Kind.WRITE, name="bench", context=context
    )
    return {"workspace": workspace, "journeys": journeys, "write_key": key}


def _throughput_run(plan: Plan, setup: dict, workers: int) -> dict[str, Any]:
    """One repetition: every profile enrolled afresh in the API journey, the
    enrollments queued in jobs of plan.batch, advanced by the listening workers."""
    import django_rq
    from django.db import connection

    from journeys.models import Enrollment, StepLog
    from journeys.tasks import enrollments_advance_job

    workspace = setup["workspace"]
    journey, version = setup["journeys"]["api"]
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE journeys_steplog, journeys_enrollment, delivery_message CASCADE")
        cursor.execute(
            """
            INSERT INTO journeys_enrollment (workspace_id, journey_id, version_id, profile_id, state,
                current_node, next_run_at, attempts, context, entered_at, exit_reason, last_error, updated_at)
            SELECT %s, %s, %s, id, 'active', 'start', now(), 0, '{"visits": {}}'::jsonb, now(), '', '', now()
            FROM segments_profile WHERE workspace_id = %s ORDER BY id
            """,
            [workspace.pk, journey.pk, version.pk, workspace.pk],
        )
        cursor.execute("ANALYZE journeys_enrollment")
    ids = list(
        Enrollment.objects.filter(journey=journey).order_by("pk").values_list("pk", flat=True)
    )
    queue = django_rq.get_queue("journeys")
    started = time.perf_counter()
    # What advance_enqueue queues, one job per chunk, all in one pipeline.
    jobs = queue.enqueue_many(
        [
            queue.prepare_data(
                enrollments_advance_job,
                args=(ids[start : start + plan.batch],),
                result_ttl=RESULT_TTL,
            )
            for start in range(0, len(ids), plan.batch)
        ]
    )
    _wait_finished(queue, jobs, timeout=3600, what="the advance jobs")
    wall = time.perf_counter() - started
    seconds = _jobs_span(queue, jobs)
    left = Enrollment.objects.filter(journey=journey).exclude(state="exited").count()
    logs = StepLog.objects.filter(enrollment__journey=journey).count()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM delivery_message WHERE journey_id = %s", [journey.pk])
        messages = cursor.fetchone()[0]
    if left or logs != len(ids) * STEPS_PER_USER or messages != len(ids):
        raise AssertionError(
            f"journeys: {left} enrollments not exited, {logs} step logs, {messages} messages"
            f" for {len(ids)} users"
        )
    django_rq.get_queue("delivery-email").empty()  # the sends these queued: not measured here
    steps = len(ids) * STEPS_PER_USER
    return {
        "workers": workers,
        "users": len(ids),
        "jobs": len(jobs),
        "seconds": round(seconds, 3),
        "wall_seconds": round(wall, 3),
        "user_steps_per_s": round(steps / seconds, 1),
        "load_average": load_average()[0],
    }


def _empty_jobs(plan: Plan) -> float:
    """Empty jobs per second through the listening worker(s) of the journeys queue."""
    import django_rq

    queue = django_rq.get_queue("journeys")
    jobs = queue.enqueue_many(
        [queue.prepare_data(noop_job, result_ttl=RESULT_TTL) for _ in range(plan.empty_jobs)]
    )
    _wait_finished(queue, jobs, timeout=1800, what="the empty jobs")
    return plan.empty_jobs / _jobs_span(queue, jobs)


class _SmtpSink:
    """A real SMTP server in this process: when each recipient's mail arrived."""

    def __init__(self):
        self.arrived: dict[str, float] = {}
        self.changed = threading.Condition()

    async def handle_DATA(self, server, session, envelope):
        at = time.time()
        with self.changed:
            for recipient in envelope.rcpt_tos:
                self.arrived.setdefault(recipient, at)
            self.changed.notify_all()
        return "250 Message accepted for delivery"

    def wait(self, recipient: str, timeout: float) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: recipient in self.arrived, timeout=timeout):
                raise RuntimeError(f"journeys latency: no email for {recipient} in {timeout} s")
            return self.arrived[recipient]


LATENCY_QUEUES = ("ingest", "journeys", "delivery-email")


def _latency(plan: Plan, setup: dict, sink: _SmtpSink, log) -> dict[str, Any]:
    """Events one at a time to /v1/batch; each enters the event journey, whose email
    must reach the SMTP server. The workers listen already."""
    from django.test import Client

    from delivery.models import Message
    from segments.models import Event

    client = Client()
    auth = "Basic " + base64.b64encode(f"{setup['write_key']}:".encode()).decode()
    to_smtp: list[float] = []
    accepted_at: dict[str, float] = {}
    for index in range(WARM_EVENTS + plan.latency_events):
        user = f"u{index + 1}"
        body = {"batch": [{
            "type": "track", "userId": user, "event": SIGNAL,
            "messageId": f"bench-signal-{os.getpid()}-{time.time_ns()}-{index}",
            "properties": {"index": index},
        }]}  # fmt: skip
        response = client.post(
            "/v1/batch", json.dumps(body), content_type="application/json",
            HTTP_AUTHORIZATION=auth, HTTP_HOST="localhost",
        )  # fmt: skip
        accepted = time.time()
        if response.status_code != 200:
            raise RuntimeError(f"/v1/batch answered {response.status_code}: {response.content}")
        arrived = sink.wait(f"{user}@example.com", timeout=60)
        accepted_at[user] = accepted
        if index >= WARM_EVENTS:
            to_smtp.append((arrived - accepted) * 1000)
    journey, _ = setup["journeys"]["event"]
    # The worker records sent_at after the SMTP server answered: wait for the last one.
    messages = Message.objects.filter(journey=journey)
    wait_for(
        lambda: not messages.filter(sent_at=None).exists(), timeout=30, what="sent_at recorded"
    )
    sent = {
        message.profile.user_id: message.sent_at for message in messages.select_related("profile")
    }
    received = {
        event.profile.user_id: event.received_at
        for event in Event.objects.filter(workspace=setup["workspace"], name=SIGNAL).select_related(
            "profile"
        )
    }
    users = [f"u{index + 1}" for index in range(WARM_EVENTS, WARM_EVENTS + plan.latency_events)]
    if any(sent.get(user) is None for user in users) or len(sent) != len(accepted_at):
        raise AssertionError(f"journeys latency: {len(sent)} messages sent for {len(accepted_at)}")
    to_sent = [(sent[user] - received[user]).total_seconds() * 1000 for user in users]

    def summary(values: list[float]) -> dict[str, float]:
        return {
            "p50_ms": round(percentile(values, 0.50), 1),
            "p95_ms": round(percentile(values, 0.95), 1),
            "p99_ms": round(percentile(values, 0.99), 1),
            "min_ms": round(min(values), 1),
            "max_ms": round(max(values), 1),
        }

    result = {
        "events": plan.latency_events,
        "warm_up_events": WARM_EVENTS,
        "accepted_to_smtp": summary(to_smtp),
        "received_to_sent_at": summary(to_sent),
        "load_average": load_average()[0],
    }
    log(f"  event to message: {result}")
    return result


def run(*, quick: bool) -> dict[str, Any]:
    plan = QUICK if quick else FULL

    begun = time.monotonic()

    def log(message: str) -> None:
        print(f"[journeys {time.monotonic() - begun:5.1f} s] {message}", flush=True)

    _django_setup()
    import django_rq
    from aiosmtpd.controller import Controller

    from bench.bench_delivery import _free_port

    _prepare_database(plan)
    log("database ready")
    loads = [load_average()[0]]
    for name in LATENCY_QUEUES:
        django_rq.get_queue(name).empty()
    sink = _SmtpSink()
    port = _free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    runs: dict[int, list[dict]] = {1: [], 2: []}
    # The first throughput worker and the latency worker start together (start-up is
    # the slow part of a short run); the latency is measured first, with both
    # listening on the journeys queue, then its worker stops.
    latency_worker = _workers(
        1, plan, queues=LATENCY_QUEUES, environment={"EMAIL_URL": f"smtp://127.0.0.1:{port}"},
        wait=False,
    )  # fmt: skip
    first = _workers(1, plan, wait=False)
    try:
        with _bench_database(plan.database):
            setup = _setup(plan)
            log("set up")
            _registered(latency_worker + first)
            log("workers listening")
            try:
                latency = _latency(plan, setup, sink, log)
            finally:
                _stop(latency_worker)
            for name in LATENCY_QUEUES:
                django_rq.get_queue(name).empty()
            before = _empty_jobs(plan)
            log(f"empty jobs (before): {before:,.0f}/s")
            for _ in range(plan.repetitions):
                runs[1].append(_throughput_run(plan, setup, 1))
                log(f"  1 worker: {runs[1][-1]}")
            second = _workers(1, plan)
            log("second worker listening")
            try:
                for _ in range(plan.repetitions):
                    runs[2].append(_throughput_run(plan, setup, 2))
                    log(f"  2 workers: {runs[2][-1]}")
            finally:
                _stop(second)
            after = _empty_jobs(plan)
            log(f"empty jobs (after): {after:,.0f}/s")
    finally:
        _stop(first + latency_worker)
        controller.stop()
    loads.append(load_average()[0])
    baseline = before_after(before, after)
    system: dict[str, Any] = {}
    for count, label in ((1, "one_worker"), (2, "two_workers")):
        system[label] = {
            "user_steps_per_s": spread(run["user_steps_per_s"] for run in runs[count]),
            "runs": runs[count],
        }
    system["event_to_message"] = latency
    one = system["one_worker"]["user_steps_per_s"]
    two = system["two_workers"]["user_steps_per_s"]
    smtp = latency["accepted_to_smtp"]
    headline = (
        f"{one['median']:,.0f} user-steps/s with 1 worker ({one['min']:,.0f}-{one['max']:,.0f}), "
        f"{two['median']:,.0f} with 2 ({two['min']:,.0f}-{two['max']:,.0f}); "
        f"event to email p50 {smtp['p50_ms']:.0f} ms, p99 {smtp['p99_ms']:.0f} ms; "
        f"empty RQ jobs {baseline['median']:,.0f}/s"
    )
    return {
        "headline": headline,
        "sizes": {
            "profiles": plan.profiles,
            "nodes": STEPS_PER_USER,
            "batch": plan.batch,
            "repetitions": plan.repetitions,
            "empty_jobs": plan.empty_jobs,
            "latency_events": plan.latency_events,
            "load_average": loads,
        },
        "baseline": {"empty_jobs_per_s": baseline},
        "system": system,
        "ratio": round(one["median"] / baseline["median"], 2),
        "ratio_means": "median user-steps/s with 1 worker / empty RQ jobs/s (median of before"
        " and after)",
    }
