"""Analytics benchmark: `python -m bench --only analytics [--quick]`.

Two measurements, each in its own database on the server the app uses
(`eng_bench_analytics_stream` and `eng_bench_analytics`, `..._quick` for --quick):

- counters: message events per second stored through the real service,
  `delivery.services.message_status_record` (a transaction per call: the message row
  locked and moved on, its event inserted; the database trigger of analytics
  migration 0001 then upserts analytics_messagecounter), from 1, 2 and 4 writer
  processes at once. Each writer replays a deterministic stream of provider callbacks
  (sent, delivered, opened, clicked) in which about one call in ten repeats one already
  made: a repeat must store and count nothing. "hot": every message belongs to one
  journey / node and every event to one day, so all writers update the same few counter
  rows; "spread": each writer's messages belong to a journey of their own (no shared
  counter row), which shows what the hot rows cost. A sampler reads pg_stat_activity
  every 5 ms and reports the share of the writers' active samples spent waiting on a
  lock. After every run the counters are checked against the stored events (and both
  against the stream's expected number); the run fails loudly when they differ.
  Baseline: the same stream through the same service with the trigger disabled
  (ALTER TABLE ... DISABLE TRIGGER, in the benchmark's database only), so
  ratio = events/s counted / events/s not counted.
- overview: the analytics overview page `GET /w/<slug>/analytics/` (URL name
  `analytics_home`) through a logged-in Django test client, on a workspace with
  1,000,000 messages (100,000 with --quick) and their events over 90 days, four
  journeys of three channels each plus messages outside journeys; p50 / p95 of the
  default range (last 30 days) and of a 90-day range, with the clock moved to the
  dataset's fixed ANCHOR (time-machine) so "today" is the data's last day. Baseline:
  `SELECT count(*) FROM delivery_message WHERE workspace_id = ...` on the same data,
  the least a page that counted messages itself would pay.

Repetitions are interleaved (each repetition runs every configuration once) so that
noise from other work on the machine spreads over all of them; medians, min and max
are reported. docs/performance.md explains the numbers.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.bench_journeys import _prepare_database
from bench.bench_segments import (
    UNIFORM_FUNCTION,
    _bench_database,
    _dataset_marker,
    _django_setup,
    _server_connection,
)
from bench.measure import before_after, load_average, log, percentile, spread

SEED = 20261205
DATASET_VERSION = 2  # 2: past days' counter shards folded, as the scheduler folds them
# The overview's data lies in the DAYS before ANCHOR; the page is requested with the
# clock at ANCHOR, so its default range (the last 30 days) is the data's last 30 days.
ANCHOR = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
DAYS = 90
TIME_ZONE = "Europe/Berlin"
OVERVIEW_SLUG = "bench-analytics"
STREAM_SLUG = "bench-stream"
WRITERS = (1, 2, 4)
REPEAT_SHARE = 0.10  # provider callbacks that repeat one already made
TRIGGER = "analytics_count_message_event"
# Four journeys of three message nodes each (node id, channel, share of the journey's
# messages); a tenth of all messages are outside journeys (API sends, email).
JOURNEYS = ("Welcome", "Cart recovery", "Win-back", "Weekly digest")
NODES = (("mail", "email", 0.60), ("text", "sms", 0.25), ("push", "push", 0.15))
BASELINE_SQL = "SELECT count(*) FROM delivery_message WHERE workspace_id = %s"


@dataclass(frozen=True)
class Plan:
    database: str
    messages: int  # overview workspace
    profiles: int
    stream_messages: int  # per counters run, all writers together
    repetitions: int  # counters runs per configuration
    requests: int  # overview requests per range (after 3 untimed)
    writers: tuple[int, ...] = WRITERS

    @property
    def stream_database(self) -> str:
        return f"{self.database}_stream"


FULL = Plan("eng_bench_analytics", 1_000_000, 100_000, 600, 3, 40)
# --quick: a smoke-size run (about 15 s once its dataset exists): 1 and 2 writers.
QUICK = Plan("eng_bench_analytics_quick", 100_000, 10_000, 30, 3, 10, (1, 2))


def _journeys(workspace, *, count: int) -> list:
    """`count` live journeys (api trigger -> email -> SMS -> push -> exit), made with
    the journey services as a marketer would, with one template per channel."""
    from content.services import template_create
    from engagement_site.workspaces.services import AuditContext
    from journeys import services

    context = AuditContext.system("benchmark")
    contents = {
        "email": {"subject": "Hi {{ profile.first_name }}", "html": "<p>Hi</p>"},
        "sms": {"body": "Hi"},
        "push": {"title": "Hi"},
    }
    templates = {
        channel: template_create(
            workspace=workspace, name=f"Bench {channel}", channel=channel,
            content={"default": content}, context=context,
        )
        for channel, content in contents.items()
    }  # fmt: skip
    made = []
    for index in range(count):
        nodes = [{"id": "api", "type": "trigger", "trigger": {"kind": "api"}}]
        nodes += [
            {"id": node, "type": "action",
             "action": {"kind": "message", "channel": channel, "template_id": templates[channel].pk}}
            for node, channel, _ in NODES
        ]  # fmt: skip
        nodes.append({"id": "end", "type": "exit"})
        order = ["api", *(node for node, _, _ in NODES), "end"]
        edges = [{"source": a, "target": b} for a, b in itertools.pairwise(order)]
        name = JOURNEYS[index] if index < len(JOURNEYS) else f"Journey {index + 1}"
        journey = services.journey_create(
            workspace=workspace, name=name, context=context,
            definition={"nodes": nodes, "edges": edges},
        )  # fmt: skip
        version = services.journey_publish(journey=journey, context=context)
        made.append((journey.pk, version.pk))
    return made


# --------------------------------------------------------------------------- counters


def _stream(message_ids: list[int], seed: int) -> tuple[list[tuple[int, str]], int]:
    """One writer's callbacks for its messages, in phases as providers report them
    (all sends, then deliveries, opens, clicks): every message is sent and delivered,
    half are opened, a fifth clicked; about REPEAT_SHARE of the calls repeat the call
    just made for that message (a provider retrying its callback). Returns the calls
    and how many of them repeat."""
    chooser = random.Random(seed)
    phases: dict[str, list[int]] = {"sent": [], "delivered": [], "opened": [], "clicked": []}
    for message_id in message_ids:
        phases["sent"].append(message_id)
        phases["delivered"].append(message_id)
        if chooser.random() < 0.5:
            phases["opened"].append(message_id)
            if chooser.random() < 0.4:
                phases["clicked"].append(message_id)
    calls: list[tuple[int, str]] = []
    repeats = 0
    for status, ids in phases.items():
        for message_id in ids:
            calls.append((message_id, status))
            if chooser.random() < REPEAT_SHARE / (1 - REPEAT_SHARE):
                calls.append((message_id, status))
                repeats += 1
    return calls, repeats


def _writer(calls: list[tuple[int, str]], at: datetime, barrier, results) -> None:
    """A writer process: wait for the others, then make every call through the service."""
    from django.db import connections

    from delivery.services import message_status_record

    connections.close_all()  # never share the parent's socket
    stored = 0
    try:
        barrier.wait(timeout=120)
        for message_id, status in calls:
            stored += message_status_record(message_id=message_id, status=status, at=at)
        results.put(("ok", stored))
    except Exception as error:  # reported by the parent, which fails the run
        results.put(("error", repr(error)))
    finally:
        connections.close_all()


class LockSampler:
    """Samples pg_stat_activity of the benchmark database every 5 ms from its own
    connection: how many of the writers' active samples wait on a lock (and which)."""

    def __init__(self, database: str):
        self.database = database
        self.active = 0
        self.waiting: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psycopg
        from django.db import connections

        params = connections["default"].get_connection_params()
        params = {k: v for k, v in params.items() if k not in {"cursor_factory", "context"}}
        params["dbname"] = self.database
        with psycopg.connect(autocommit=True, **params) as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT wait_event_type, wait_event FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid() AND state = 'active'"
                    " AND backend_type = 'client backend'",
                    [self.database],
                ).fetchall()
                for wait_type, wait_event in rows:
                    self.active += 1
                    if wait_type == "Lock":
                        self.waiting[wait_event] = self.waiting.get(wait_event, 0) + 1
                time.sleep(0.005)

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def share(self) -> float:
        return round(sum(self.waiting.values()) / self.active, 3) if self.active else 0.0


def _stream_setup(plan: Plan) -> tuple[int, list[tuple[int, int]], int]:
    """A fresh stream workspace: one profile and max(plan.writers) live journeys."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from engagement_site.workspaces.services import AuditContext, workspace_create
    from segments.models import Profile

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE delivery_messageevent, delivery_message, analytics_messagecounter,"
            " journeys_steplog, journeys_enrollment, journeys_journey, journeys_journeyversion,"
            " journeys_journeydraft, segments_profile, content_assetusage, content_template,"
            " content_templateversion, workspaces_workspace, auth_user CASCADE"
        )
    owner = get_user_model().objects.create_user(username="bench-stream", password=None)
    workspace = workspace_create(
        name="Bench stream", slug=STREAM_SLUG, owner=owner,
        context=AuditContext.system("benchmark"), time_zone=TIME_ZONE,
    )  # fmt: skip
    profile = Profile.objects.create(workspace=workspace, user_id="stream", email="s@example.com")
    return workspace.pk, _journeys(workspace, count=max(plan.writers)), profile.pk


def _stream_messages(
    workspace_id: int, profile_id: int, journeys: list[tuple[int, int]], count: int, writers: int,
    layout: str,
) -> list[list[int]]:  # fmt: skip
    """Empty the message tables and queue `count` email messages; message i goes to
    writer i % writers, and belongs to journey 1 ("hot") or to the writer's own journey
    ("spread"). Returns each writer's message ids."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE delivery_messageevent, delivery_message, analytics_messagecounter CASCADE"
        )
        journey_ids = [journey for journey, _ in journeys[:writers]]
        version_ids = [version for _, version in journeys[:writers]]
        cursor.execute(
            """
            INSERT INTO delivery_message (
                workspace_id, idempotency_key, profile_id, journey_id, journey_version_id,
                node_id, chain_index, variant, channel, status, reason, is_shadow, topic,
                transactional, purpose, hold_reason, rendered, provider_message_id, attempts,
                last_error, created_at, updated_at)
            SELECT %(workspace)s, 'stream:' || i, %(profile)s,
                   (%(journeys)s::bigint[])[1 + CASE WHEN %(spread)s THEN i %% %(writers)s ELSE 0 END],
                   (%(versions)s::bigint[])[1 + CASE WHEN %(spread)s THEN i %% %(writers)s ELSE 0 END],
                   'mail', 0, '', 'email', 'queued', '', false, '', false, '', '', '{}'::jsonb, '',
                   1, '', now(), now()
              FROM generate_series(0, %(count)s - 1) AS i
             ORDER BY i
            RETURNING id
            """,
            {
                "workspace": workspace_id, "profile": profile_id, "journeys": journey_ids,
                "versions": version_ids, "spread": layout == "spread", "writers": writers,
                "count": count,
            },
        )  # fmt: skip
        ids = sorted(row[0] for row in cursor.fetchall())
        cursor.execute("ANALYZE delivery_message")
    return [ids[w::writers] for w in range(writers)]


def _trigger(enabled: bool) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        state = "ENABLE" if enabled else "DISABLE"
        cursor.execute(f"ALTER TABLE delivery_messageevent {state} TRIGGER {TRIGGER}")


def _counters_run(
    plan: Plan, setup, *, writers: int, layout: str, counted: bool, at: datetime
) -> dict[str, Any]:
    from django.db import connection, connections

    workspace_id, journeys, profile_id = setup
    per_writer = _stream_messages(
        workspace_id, profile_id, journeys, plan.stream_messages, writers, layout
    )
    streams = [_stream(ids, SEED + w) for w, ids in enumerate(per_writer)]
    calls = sum(len(stream) for stream, _ in streams)
    repeats = sum(repeated for _, repeated in streams)
    _trigger(counted)
    connections.close_all()  # the children must not inherit an open connection
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(writers + 1)
    results = context.Queue()
    processes = [
        context.Process(target=_writer, args=(stream, at, barrier, results))
        for stream, _ in streams
    ]
    for process in processes:
        process.start()
    outcomes = []
    with LockSampler(plan.stream_database) as sampler:
        barrier.wait(timeout=120)
        started = time.perf_counter()
        for _ in processes:
            outcomes.append(results.get(timeout=1800))
        elapsed = time.perf_counter() - started
    for process in processes:
        process.join(timeout=60)
    errors = [detail for status, detail in outcomes if status != "ok"]
    if errors:
        raise RuntimeError(f"analytics counters: a writer failed: {errors[0]}")
    stored_by_service = sum(detail for _, detail in outcomes)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM delivery_messageevent")
        events = cursor.fetchone()[0]
        cursor.execute("SELECT coalesce(sum(count), 0), count(*) FROM analytics_messagecounter")
        counted_sum, counter_rows = cursor.fetchone()
    _trigger(True)
    expected = calls - repeats
    result = {
        "writers": writers,
        "layout": layout,
        "counted": counted,
        "calls": calls,
        "repeated_callbacks": repeats,
        "events_stored": events,
        "counter_sum": int(counted_sum),
        "counter_rows": counter_rows,
        "seconds": round(elapsed, 3),
        "events_per_s": round(events / elapsed, 1),
        "calls_per_s": round(calls / elapsed, 1),
        "lock_wait_share": sampler.share(),
        "lock_waits": dict(sampler.waiting),
        # The machine's 1-minute load average after the run (other work shows here).
        "load_average": round(os.getloadavg()[0], 2),
    }
    if events != expected or stored_by_service != expected:
        raise AssertionError(f"analytics counters: expected {expected} events stored: {result}")
    if counted_sum != (expected if counted else 0):
        raise AssertionError(f"analytics counters: counters {counted_sum} != events: {result}")
    return result


def _trigger_cost(setup, *, events: int, repetitions: int) -> dict[str, Any]:
    """The trigger's own time per event, from PostgreSQL's EXPLAIN ANALYZE of one
    INSERT of `events` sent events (hot: one journey / node / day), with the trigger and
    without: server time only, so the Python client's noise is not in it."""
    from django.db import connection

    workspace_id, journeys, profile_id = setup
    statement = (
        "EXPLAIN (ANALYZE, FORMAT JSON) INSERT INTO delivery_messageevent"
        " (workspace_id, message_id, kind, at, data)"
        " SELECT workspace_id, id, 'sent', now(), '{}'::jsonb FROM delivery_message"
    )
    counted: list[float] = []
    trigger: list[float] = []
    uncounted: list[float] = []
    for _ in range(repetitions):
        for enabled in (True, False):
            _stream_messages(workspace_id, profile_id, journeys, events, 1, "hot")
            _trigger(enabled)
            with connection.cursor() as cursor:
                cursor.execute(statement)
                plan = cursor.fetchone()[0][0]
            _trigger(True)
            per_event = plan["Execution Time"] / events
            if enabled:
                counted.append(per_event * 1000)
                calls = sum(
                    t["Calls"] for t in plan.get("Triggers", ()) if t["Trigger Name"] == TRIGGER
                )
                if calls != events:
                    raise AssertionError(f"analytics trigger: {calls} calls for {events} events")
                trigger.append(
                    sum(t["Time"] for t in plan["Triggers"] if t["Trigger Name"] == TRIGGER)
                    / events
                    * 1000
                )
            else:
                uncounted.append(per_event * 1000)
    return {
        "events": events,
        "insert_us_per_event_counted": spread(counted),
        "insert_us_per_event_uncounted": spread(uncounted),
        "trigger_us_per_event": spread(trigger),
    }


def _counters(plan: Plan) -> dict[str, Any]:
    # Side by side, the runs a ratio compares (counted / uncounted, hot / spread at the
    # same number of writers): a change in the machine's load between them moves both.
    configurations = []
    for writers in plan.writers:
        configurations += [("hot", writers, True), ("hot", writers, False)]
        if writers > 1:
            configurations.append(("spread", writers, True))
    with _bench_database(plan.stream_database):
        setup = _stream_setup(plan)
        # One moment for every event: they all fall on one day, in the hot rows.
        at = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
        cost = _trigger_cost(setup, events=plan.stream_messages * 5, repetitions=3)
        log(f"  trigger cost (EXPLAIN ANALYZE): {cost}")
        runs: dict[str, list[dict]] = {}
        for repetition in range(plan.repetitions):
            # Every other repetition in reverse order, so drift favours neither side.
            order = configurations if repetition % 2 == 0 else configurations[::-1]
            for layout, writers, counted in order:
                key = f"{'counted' if counted else 'uncounted'}_{layout}_{writers}"
                run = _counters_run(
                    plan, setup, writers=writers, layout=layout, counted=counted, at=at
                )
                runs.setdefault(key, []).append(run)
                log(
                    f"  counters {repetition + 1}/{plan.repetitions} {key}: "
                    f"{run['events_per_s']:,.0f} events/s, {run['calls']} calls "
                    f"({run['repeated_callbacks']} repeats), events {run['events_stored']}, "
                    f"counters {run['counter_sum']} in {run['counter_rows']} rows, "
                    f"lock waits {run['lock_wait_share']:.0%}, load {run['load_average']}"
                )
    summary: dict[str, Any] = {"trigger_cost": cost}
    for key, items in runs.items():
        last = items[-1]
        summary[key] = {
            "writers": last["writers"],
            "layout": last["layout"],
            "counted": last["counted"],
            "events_per_s": spread([item["events_per_s"] for item in items]),
            "lock_wait_share": spread([item["lock_wait_share"] for item in items], 3),
            "calls": last["calls"],
            "repeated_callbacks": last["repeated_callbacks"],
            "events_stored": last["events_stored"],
            "counter_sum": last["counter_sum"],
            "counter_rows": last["counter_rows"],
            "runs": items,
        }
    for writers in plan.writers:
        hot = runs[f"counted_hot_{writers}"]
        uncounted = runs[f"uncounted_hot_{writers}"]
        # Ratios of the runs made side by side in each repetition, then their median.
        summary[f"counted_hot_{writers}"]["ratio_to_uncounted"] = spread(
            [a["events_per_s"] / b["events_per_s"] for a, b in zip(hot, uncounted, strict=True)],
            3,
        )
        if writers > 1:
            spread_runs = runs[f"counted_spread_{writers}"]
            summary[f"counted_hot_{writers}"]["ratio_to_spread"] = spread(
                [
                    a["events_per_s"] / b["events_per_s"]
                    for a, b in zip(hot, spread_runs, strict=True)
                ],
                3,
            )
    return summary


# --------------------------------------------------------------------------- overview


def _wanted_marker(plan: Plan) -> dict:
    return {
        "version": DATASET_VERSION,
        "seed": SEED,
        "messages": plan.messages,
        "profiles": plan.profiles,
        "anchor": ANCHOR.isoformat(),
    }


def _overview_prepare(plan: Plan) -> bool:
    """Create (or recreate) the overview database unless it holds the wanted dataset;
    returns whether the dataset must be generated."""
    marker = _dataset_marker(plan.database)
    if marker is not None and all(marker.get(k) == v for k, v in _wanted_marker(plan).items()):
        return False
    with _server_connection() as server:
        server.execute(f'DROP DATABASE IF EXISTS "{plan.database}" WITH (FORCE)')
    _prepare_database(plan)  # creates and migrates
    return True


def _generate(plan: Plan) -> dict[str, float]:
    """Fill the overview database: a workspace with plan.profiles profiles, four live
    journeys, plan.messages messages over the DAYS before ANCHOR and their events;
    then the counters through the real rebuild (`metrics_rebuild`, what
    `manage.py rebuild_metrics` runs). Returns the seconds per step."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from analytics.models import MessageCounter
    from analytics.services import COMPACT_AFTER_DAYS, counters_compact, metrics_rebuild
    from engagement_site.workspaces.services import AuditContext, workspace_create

    steps: dict[str, float] = {}
    seed = SEED * 100

    @contextmanager
    def step(name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        steps[name] = round(time.perf_counter() - started, 2)
        log(f"  {name}: {steps[name]} s")

    owner = get_user_model().objects.create_user(username="bench-analyst", password=None)
    workspace = workspace_create(
        name="Bench analytics", slug=OVERVIEW_SLUG, owner=owner,
        context=AuditContext.system("benchmark"), time_zone=TIME_ZONE,
    )  # fmt: skip
    journeys = _journeys(workspace, count=len(JOURNEYS))
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '512MB'")
        # Consistent by construction: no per-row foreign-key checks, and no counting
        # trigger (the counters are rebuilt from the events at the end, as an operator
        # would after an import).
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(UNIFORM_FUNCTION)
        indexes = []
        for table in ("delivery_message", "delivery_messageevent"):
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname"
                " NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
                [table, table],
            )
            indexes += cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        with step("profiles"):
            cursor.execute(
                """
                INSERT INTO segments_profile (workspace_id, user_id, anonymous_ids, traits, email,
                                              phone, time_zone, locale, first_seen, last_seen,
                                              created_at)
                SELECT %s, 'user-' || n, '{}', jsonb_build_object('first_name', 'User ' || n),
                       'user' || n || '@example.com', '', '', '', %s, %s, %s
                  FROM generate_series(1, %s) AS n ORDER BY n
                """,
                [workspace.pk, *[ANCHOR - timedelta(days=DAYS + 30)] * 3, plan.profiles],
            )
            cursor.execute(
                "SELECT min(id), max(id) FROM segments_profile WHERE workspace_id = %s",
                [workspace.pk],
            )
            first_profile, last_profile = cursor.fetchone()
            if last_profile - first_profile + 1 != plan.profiles:
                raise RuntimeError("the generated profiles' ids are not contiguous")
        journey_ids = [journey for journey, _ in journeys]
        version_ids = [version for _, version in journeys]
        with step("messages"):
            # Per message (hashes of n): a journey (or none, 10%), a node of it (email
            # 60%, SMS 25%, push 15%), a time uniform over the DAYS, a person; 1.5% fail,
            # 2% bounce after sending, the rest are delivered with 96% chance; opens
            # (email 35%, push 12%, SMS none) and clicks (a fifth of opens; SMS 5%).
            cursor.execute(
                """
                INSERT INTO delivery_message (
                    workspace_id, idempotency_key, profile_id, journey_id, journey_version_id,
                    node_id, chain_index, variant, channel, status, reason, is_shadow, topic,
                    transactional, purpose, hold_reason, rendered, provider_message_id,
                    attempts, last_error, created_at, updated_at, sent_at, delivered_at,
                    opened_at, clicked_at, failed_at)
                SELECT %(workspace)s, 'bench:' || n, %(first_profile)s + floor(u_person * %(profiles)s)::bigint,
                       journey_id, version_id, node_id, 0, '', channel,
                       CASE WHEN failed THEN 'failed' WHEN bounced THEN 'bounced'
                            WHEN clicked THEN 'clicked' WHEN opened THEN 'opened'
                            WHEN delivered THEN 'delivered' ELSE 'sent' END,
                       '', false, '', journey_id IS NULL, '', '', '{}'::jsonb,
                       CASE WHEN failed THEN '' ELSE 'provider-' || n END, 1,
                       CASE WHEN failed THEN 'provider refused' ELSE '' END,
                       created, created,
                       CASE WHEN NOT failed THEN created + interval '4 seconds' END,
                       CASE WHEN delivered THEN created + interval '40 seconds' END,
                       CASE WHEN opened THEN created + make_interval(secs => 60 + u_open * 86400) END,
                       CASE WHEN clicked THEN created + make_interval(secs => 120 + u_open * 86400) END,
                       CASE WHEN failed THEN created + interval '4 seconds'
                            WHEN bounced THEN created + interval '90 seconds' END
                  FROM (
                    SELECT n, u_person, u_open, journey_id, version_id, node_id, channel, created,
                           failed, bounced, delivered,
                           delivered AND u_engage < open_rate AS opened,
                           delivered AND u_engage < click_rate AS clicked
                      FROM (
                        SELECT n, u_person, u_open, u_engage, created,
                               CASE WHEN journey_slot < 0 THEN NULL ELSE (%(journeys)s::bigint[])[1 + journey_slot] END AS journey_id,
                               CASE WHEN journey_slot < 0 THEN NULL ELSE (%(versions)s::bigint[])[1 + journey_slot] END AS version_id,
                               CASE WHEN journey_slot < 0 THEN '' ELSE node END AS node_id,
                               CASE WHEN journey_slot < 0 THEN 'email' ELSE channel END AS channel,
                               u_outcome < 0.015 AS failed,
                               u_outcome >= 0.015 AND u_outcome < 0.035 AS bounced,
                               u_outcome >= 0.035 AND u_deliver < 0.96 AS delivered,
                               CASE WHEN journey_slot >= 0 AND channel = 'sms' THEN 0.05
                                    WHEN journey_slot >= 0 AND channel = 'push' THEN 0.12
                                    ELSE 0.35 END AS open_rate,
                               CASE WHEN journey_slot >= 0 AND channel = 'sms' THEN 0.05
                                    WHEN journey_slot >= 0 AND channel = 'push' THEN 0.024
                                    ELSE 0.07 END AS click_rate
                          FROM (
                            SELECT n,
                                   CASE WHEN bench_uniform(n, %(seed)s + 1) < 0.1 THEN -1
                                        ELSE floor(bench_uniform(n, %(seed)s + 2) * %(journey_count)s)::int END AS journey_slot,
                                   CASE WHEN bench_uniform(n, %(seed)s + 3) < 0.60 THEN 'mail'
                                        WHEN bench_uniform(n, %(seed)s + 3) < 0.85 THEN 'text'
                                        ELSE 'push' END AS node,
                                   CASE WHEN bench_uniform(n, %(seed)s + 3) < 0.60 THEN 'email'
                                        WHEN bench_uniform(n, %(seed)s + 3) < 0.85 THEN 'sms'
                                        ELSE 'push' END AS channel,
                                   %(anchor)s::timestamptz - make_interval(secs => bench_uniform(n, %(seed)s + 4) * %(days)s * 86400) AS created,
                                   bench_uniform(n, %(seed)s + 5) AS u_person,
                                   bench_uniform(n, %(seed)s + 6) AS u_outcome,
                                   bench_uniform(n, %(seed)s + 7) AS u_deliver,
                                   bench_uniform(n, %(seed)s + 8) AS u_engage,
                                   bench_uniform(n, %(seed)s + 9) AS u_open
                              FROM generate_series(1, %(messages)s) AS n) AS r) AS s) AS m
                 ORDER BY n
                """,
                {
                    "workspace": workspace.pk, "first_profile": first_profile,
                    "profiles": plan.profiles, "journeys": journey_ids, "versions": version_ids,
                    "journey_count": len(journey_ids), "seed": seed, "anchor": ANCHOR,
                    "days": DAYS, "messages": plan.messages,
                },
            )  # fmt: skip
        with step("events"):
            # One event per stage a message reached, at the time it reached it; 0.3% of
            # delivered emails are unsubscribed from a day later. Events after ANCHOR
            # (an open of the last day's mail) are left out, as they have not happened.
            cursor.execute(
                """
                INSERT INTO delivery_messageevent (workspace_id, message_id, kind, at, data)
                SELECT m.workspace_id, m.id, e.kind, e.at, e.data
                  FROM delivery_message m
                 CROSS JOIN LATERAL (VALUES
                       ('sent', CASE WHEN m.status <> 'failed' THEN m.sent_at END, '{}'::jsonb),
                       ('delivered', m.delivered_at, '{}'::jsonb),
                       ('opened', m.opened_at, '{}'::jsonb),
                       ('clicked', m.clicked_at, '{}'::jsonb),
                       ('bounced', CASE WHEN m.status = 'bounced' THEN m.failed_at END,
                        '{"reason": "mailbox unavailable", "code": "550"}'::jsonb),
                       ('failed', CASE WHEN m.status = 'failed' THEN m.failed_at END,
                        '{"reason": "provider refused"}'::jsonb),
                       ('unsubscribed',
                        CASE WHEN m.delivered_at IS NOT NULL AND m.channel = 'email'
                              AND bench_uniform(m.id, %(seed)s + 10) < 0.003
                             THEN m.delivered_at + interval '1 day' END, '{}'::jsonb)
                       ) AS e(kind, at, data)
                 WHERE m.workspace_id = %(workspace)s AND e.at IS NOT NULL AND e.at <= %(anchor)s
                 ORDER BY e.at
                """,
                {"workspace": workspace.pk, "seed": seed, "anchor": ANCHOR},
            )
            cursor.execute(
                "UPDATE delivery_message SET opened_at = NULL, clicked_at = NULL,"
                " status = CASE WHEN delivered_at IS NOT NULL THEN 'delivered' ELSE status END"
                " WHERE workspace_id = %s AND opened_at > %s",
                [workspace.pk, ANCHOR],
            )
        with step("indexes"):
            for _, definition in indexes:
                cursor.execute(definition)
            cursor.execute("SET session_replication_role = DEFAULT")
            cursor.execute("VACUUM ANALYZE delivery_message")
            cursor.execute("VACUUM ANALYZE delivery_messageevent")
        with step("counters (metrics_rebuild)"):
            rows = metrics_rebuild(workspace=workspace)
        with step("counter shards of past days folded (counters_compact)"):
            # What the scheduler's hourly duty has done by ANCHOR.
            counters_compact(
                before=ANCHOR.date() - timedelta(days=COMPACT_AFTER_DAYS), workspace_id=workspace.pk
            )
            rows = MessageCounter.objects.filter(workspace=workspace).count()
        cursor.execute("ANALYZE analytics_messagecounter")
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_dataset (key text PRIMARY KEY, value jsonb)"
        )
        cursor.execute(
            "INSERT INTO bench_dataset VALUES ('dataset', %s::jsonb)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            [__import__("json").dumps({**_wanted_marker(plan), "counter_rows": rows})],
        )
    return steps


def _dataset_facts(workspace_id: int) -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(BASELINE_SQL, [workspace_id])
        messages = cursor.fetchone()[0]
        cursor.execute(
            "SELECT kind, count(*) FROM delivery_messageevent WHERE workspace_id = %s"
            " GROUP BY kind ORDER BY kind",
            [workspace_id],
        )
        events = dict(cursor.fetchall())
        cursor.execute(
            "SELECT kind, sum(count) FROM analytics_messagecounter WHERE workspace_id = %s"
            " GROUP BY kind ORDER BY kind",
            [workspace_id],
        )
        counted = {kind: int(total) for kind, total in cursor.fetchall()}
        cursor.execute(
            "SELECT count(*) FROM analytics_messagecounter WHERE workspace_id = %s",
            [workspace_id],
        )
        counter_rows = cursor.fetchone()[0]
    if counted != events:
        raise AssertionError(f"analytics overview: counters {counted} != events {events}")
    return {
        "messages": messages,
        "events": sum(events.values()),
        "events_by_kind": events,
        "counter_rows": counter_rows,
    }


def _range_days(query: dict, last_day) -> tuple:
    """The page's range: the query's, or its default (the last 30 days to today)."""
    if query:
        return datetime.fromisoformat(query["start"]).date(), last_day
    return last_day - timedelta(days=29), last_day


def _sent_between(workspace_id: int, start, end) -> int:
    """Sent events in [start, end] (days in the workspace's zone), from the events
    themselves: what the page must show, found independently of the counters."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM delivery_messageevent WHERE workspace_id = %s AND kind = 'sent'"
            " AND (at AT TIME ZONE %s)::date BETWEEN %s AND %s",
            [workspace_id, TIME_ZONE, start, end],
        )
        return cursor.fetchone()[0]


def _time(call: Callable[[], object], repetitions: int, warm: int = 3) -> list[float]:
    for _ in range(warm):
        call()
    timings = []
    for _ in range(repetitions):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _latency(timings: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(timings), 1),
        "p95_ms": round(percentile(timings, 0.95), 1),
        "min_ms": round(min(timings), 1),
        "max_ms": round(max(timings), 1),
        "requests": len(timings),
    }


def _overview(plan: Plan) -> dict[str, Any]:
    import time_machine
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from engagement_site.workspaces.models import Workspace

    generated = _overview_prepare(plan)
    with _bench_database(plan.database):
        steps = _generate(plan) if generated else {}
        if not generated:
            log("  overview: reusing the generated dataset")
        workspace = Workspace.objects.get(slug=OVERVIEW_SLUG)
        facts = _dataset_facts(workspace.pk)
        log(f"  overview dataset: {facts}")
        from django.contrib.auth import get_user_model

        client = Client()
        client.force_login(get_user_model().objects.get(username="bench-analyst"))
        url = reverse("analytics_home", kwargs={"workspace_slug": OVERVIEW_SLUG})
        last_day = ANCHOR.date()
        ranges = {
            "default_30_days": {},
            "90_days": {
                "start": (last_day - timedelta(days=DAYS - 1)).isoformat(),
                "end": last_day.isoformat(),
            },
        }
        sizes: dict[str, int] = {}
        expected_sent = {
            name: _sent_between(workspace.pk, *_range_days(query, last_day))
            for name, query in ranges.items()
        }

        def baseline() -> None:
            with connection.cursor() as cursor:
                cursor.execute(BASELINE_SQL, [workspace.pk])
                cursor.fetchone()

        def page(query: dict) -> Callable[[], None]:
            def get() -> None:
                response = client.get(url, query)
                if response.status_code != 200:
                    raise AssertionError(f"analytics overview: {url} {query} answered "
                                         f"{response.status_code}")  # fmt: skip
                sizes[str(query)] = len(response.content)
                name = next(key for key, value in ranges.items() if value == query)
                shown = f"{expected_sent[name]:,}"
                if shown.encode() not in response.content:
                    raise AssertionError(
                        f"analytics overview: the page for {query} does not show the "
                        f"{shown} messages sent in its range (counted from the events)"
                    )

            return get

        with time_machine.travel(ANCHOR, tick=True):
            before = _time(baseline, plan.requests)
            pages = {name: _time(page(query), plan.requests) for name, query in ranges.items()}
            after = _time(baseline, plan.requests)
    result = {name: _latency(timings) for name, timings in pages.items()}
    for name, query in ranges.items():
        result[name]["query"] = query
        result[name]["bytes"] = sizes[str(query)]
        result[name]["sent_shown"] = expected_sent[name]
    return {
        "dataset": {**facts, "generated": generated, "generation_seconds": steps},
        "pages": result,
        "baseline": {
            "sql": BASELINE_SQL,
            **_latency(before + after),
            # The baseline's p50: the median of its p50 before and its p50 after the pages.
            "p50_ms": before_after(statistics.median(before), statistics.median(after))["median"],
            "before_p50_ms": round(statistics.median(before), 1),
            "after_p50_ms": round(statistics.median(after), 1),
        },
    }


def run(*, quick: bool) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    _django_setup()
    for database in (plan.stream_database,):
        _prepare_database(Plan(database, 0, 0, 0, 0, 0))
    loads = [load_average()[0]]
    log("analytics: counters")
    counters = _counters(plan)
    log("analytics: overview")
    overview = _overview(plan)
    hot_one = counters["counted_hot_1"]["events_per_s"]["median"]
    base_one = counters["uncounted_hot_1"]["events_per_s"]["median"]
    top = max(plan.writers)
    page = overview["pages"]["default_30_days"]
    wide = overview["pages"]["90_days"]
    hot_top = counters[f"counted_hot_{top}"]
    headline = (
        f"counters (one journey/node/day): {hot_one:,.0f} events/s with 1 writer, "
        + ", ".join(
            f"{counters[f'counted_hot_{n}']['events_per_s']['median']:,.0f} with {n}"
            for n in plan.writers[1:]
        )
        + f"; x{counters['counted_hot_1']['ratio_to_uncounted']['median']} of uncounted "
        f"({base_one:,.0f}/s) with 1; {top} writers wait on a lock in "
        f"{hot_top['lock_wait_share']['median']:.0%} of samples "
        f"(x{hot_top['ratio_to_spread']['median']} of spread over {top} journeys); "
        f"overview on {overview['dataset']['messages']:,} messages: p50 {page['p50_ms']} ms "
        f"(p95 {page['p95_ms']}), 90 days p50 {wide['p50_ms']} ms; "
        f"count(*) {overview['baseline']['p50_ms']} ms"
    )
    return {
        "headline": headline,
        "sizes": {
            "stream_messages_per_run": plan.stream_messages,
            "writers": list(plan.writers),
            "repeat_share": REPEAT_SHARE,
            "repetitions": plan.repetitions,
            "overview_messages": plan.messages,
            "overview_profiles": plan.profiles,
            "overview_days": DAYS,
            "overview_requests_per_range": plan.requests,
            "load_average": [*loads, load_average()[0]],
        },
        "baseline": {
            "counters_uncounted": {
                f"{n}_writers": counters[f"uncounted_hot_{n}"]["events_per_s"] for n in plan.writers
            },
            "overview_count_sql": overview["baseline"],
        },
        "system": {"counters": counters, "overview": overview},
        # Counting's cost with one writer: the median of the side-by-side ratios.
        "ratio": counters["counted_hot_1"]["ratio_to_uncounted"]["median"],
    }
