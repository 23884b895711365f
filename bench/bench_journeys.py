"""Journey executor benchmark: `python -m bench --only journeys [--quick]`.

Measures, in its own database (`engagement_bench_journeys`, or `..._quick`) on the
server the app uses and Redis database 2:

- user-steps per second through a 3-node journey (trigger -> message action -> exit)
  for N profiles (100,000; 10,000 with --quick), with 1 and with 2 worker processes
  (`manage.py rqworker journeys`, RQ's non-forking SimpleWorker, as `make run` runs
  them). Each step is a StepLog row; the action writes a Message row. Timed from the
  workers' start until every enrollment has left the journey;
- the baseline: empty RQ jobs per second through the same worker class on the same
  Redis (measured before and after; the median of the two).

ratio = user-steps/s with 1 worker / empty jobs/s: how many steps one worker moves in
the time RQ alone takes to run one job. docs/performance.md explains the numbers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.bench_segments import _bench_database, _django_setup, _server_connection

ROOT = Path(__file__).resolve().parents[1]
STEPS_PER_USER = 3
BATCH = 500


@dataclass(frozen=True)
class Plan:
    database: str
    profiles: int
    empty_jobs: int


FULL = Plan("engagement_bench_journeys", 100_000, 20_000)
QUICK = Plan("engagement_bench_journeys_quick", 10_000, 5_000)


def noop_job() -> None:
    """The baseline's job: RQ's own cost per job, nothing else."""


def _database_url(name: str) -> str:
    from django.conf import settings

    parsed = urlsplit(settings.DATABASE_URL)
    return urlunsplit(parsed._replace(path=f"/{name}"))


def _prepare_database(plan: Plan) -> None:
    """Create the database when missing and migrate it (kept between runs)."""
    with _server_connection() as server:
        exists = server.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [plan.database]
        ).fetchone()
        if not exists:
            server.execute(f'CREATE DATABASE "{plan.database}"')
    environment = {**os.environ, "DATABASE_URL": _database_url(plan.database)}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT, env=environment, check=True, timeout=600,
    )  # fmt: skip


def _workers(count: int, plan: Plan, *, burst: bool = False) -> list[subprocess.Popen]:
    environment = {
        **os.environ,
        "DATABASE_URL": _database_url(plan.database),
        "LOG_LEVEL": "WARNING",
        "DEBUG": "false",
    }
    command = [
        sys.executable,
        "manage.py",
        "rqworker",
        "journeys",
        "--worker-class",
        "rq.worker.SimpleWorker",
    ]
    if burst:
        command.append("--burst")
    return [
        subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(count)
    ]


def _stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


def _setup_journey(plan: Plan):
    """A fresh workspace with N profiles and a live 3-node journey."""
    from django.db import connection

    from content.services import template_create
    from engagement_site.workspaces.models import Workspace
    from engagement_site.workspaces.services import AuditContext
    from journeys import services

    context = AuditContext.system("benchmark")
    with connection.cursor() as cursor:
        # The benchmark's own database: start from empty tables each run.
        cursor.execute(
            "TRUNCATE journeys_steplog, journeys_enrollment, journeys_schedulerun, journeys_journey,"
            " journeys_journeyversion, journeys_journeydraft, delivery_message, segments_profile,"
            " content_assetusage, content_template, content_templateversion CASCADE"
        )
    workspace, _ = Workspace.objects.get_or_create(
        slug="bench-journeys", defaults={"name": "Bench journeys"}
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
    template = template_create(
        workspace=workspace, name="Hello", channel="email",
        content={"default": {"subject": "Hi", "html": "<p>Hi</p>"}}, context=context,
    )  # fmt: skip
    definition = {
        "nodes": [
            {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "mail", "type": "action", "action": {"kind": "message", "channel": "email", "template_id": template.pk}},
            {"id": "end", "type": "exit"},
        ],
        "edges": [{"source": "api", "target": "mail"}, {"source": "mail", "target": "end"}],
    }  # fmt: skip
    journey = services.journey_create(
        workspace=workspace, name="Bench", context=context, definition=definition
    )
    version = services.journey_publish(journey=journey, context=context)
    return workspace, journey, version


def _run_journey(plan: Plan, workers: int, log) -> dict[str, Any]:
    from django.db import connection

    from journeys.executor import advance_enqueue
    from journeys.models import Enrollment

    workspace, journey, version = _setup_journey(plan)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO journeys_enrollment (workspace_id, journey_id, version_id, profile_id, state,
                current_node, next_run_at, attempts, context, entered_at, exit_reason, last_error, updated_at)
            SELECT %s, %s, %s, id, 'active', 'api', now(), 0, '{"visits": {}}'::jsonb, now(), '', '', now()
            FROM segments_profile WHERE workspace_id = %s
            """,
            [workspace.pk, journey.pk, version.pk, workspace.pk],
        )
    ids = list(
        Enrollment.objects.filter(journey=journey).order_by("pk").values_list("pk", flat=True)
    )
    for start in range(0, len(ids), BATCH):
        advance_enqueue(ids[start : start + BATCH])
    log(f"  {len(ids)} enrollments queued in {len(ids) // BATCH} jobs; {workers} worker(s)")
    started = time.perf_counter()
    processes = _workers(workers, plan)
    try:
        while Enrollment.objects.filter(journey=journey, state="exited").count() < len(ids):
            if all(process.poll() is not None for process in processes):
                raise RuntimeError("the workers stopped before the journey finished")
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
    finally:
        _stop(processes)
    steps = len(ids) * STEPS_PER_USER
    return {
        "seconds": round(elapsed, 3),
        "user_steps_per_s": round(steps / elapsed, 1),
        "users": len(ids),
    }


def _empty_jobs(plan: Plan) -> float:
    import django_rq

    queue = django_rq.get_queue("journeys")
    queue.empty()
    for _ in range(plan.empty_jobs):
        queue.enqueue(noop_job)
    started = time.perf_counter()
    processes = _workers(1, plan, burst=True)
    for process in processes:
        process.wait(timeout=1800)
    return plan.empty_jobs / (time.perf_counter() - started)


def run(*, quick: bool) -> dict[str, Any]:
    plan = QUICK if quick else FULL

    def log(message: str) -> None:
        print(message, flush=True)

    _django_setup()
    _prepare_database(plan)
    with _bench_database(plan.database):
        log("journeys: empty-job baseline")
        before = _empty_jobs(plan)
        one = _run_journey(plan, 1, log)
        log(f"  1 worker: {one['user_steps_per_s']} user-steps/s")
        two = _run_journey(plan, 2, log)
        log(f"  2 workers: {two['user_steps_per_s']} user-steps/s")
        after = _empty_jobs(plan)
    baseline = (before + after) / 2  # the median of the two
    headline = (
        f"{one['user_steps_per_s']:,.0f} user-steps/s with 1 worker, "
        f"{two['user_steps_per_s']:,.0f} with 2 ({plan.profiles:,} users x {STEPS_PER_USER} nodes); "
        f"empty RQ jobs: {baseline:,.0f}/s"
    )
    return {
        "headline": headline,
        "sizes": {
            "profiles": plan.profiles,
            "nodes": STEPS_PER_USER,
            "batch": BATCH,
            "empty_jobs": plan.empty_jobs,
        },
        "baseline": {
            "empty_jobs_per_s": round(baseline, 1),
            "before": round(before, 1),
            "after": round(after, 1),
        },
        "system": {"one_worker": one, "two_workers": two},
        "ratio": round(one["user_steps_per_s"] / baseline, 2),
    }
