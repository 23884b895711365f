"""Segment evaluation benchmark: `python -m bench --only segments [--quick]`.

Measures, on a generated dataset in its own database (`engagement_bench`, or
`engagement_bench_quick` for --quick) on the server the app uses:

- full evaluation (`segment_evaluate_all`) of five typical rules over every profile:
  attribute, event count in a window with a property filter, sequence (the brief's
  second purchase within a week of the first), streak (the brief's ten days of logins
  since signup) and recency;
- materialisation of the five (`segment_membership_refresh` of every profile, from no
  membership rows);
- incremental evaluation: batches of 100 events for 100 profiles through the real
  ingestion path (`ingest_batch`), then the real ingestion hook
  (`segments_for_ingested_batch`) for the touched profiles; their sum is the freshness
  of a membership row (event arrival to committed row) without the RQ queue wait;
- the baseline: one raw scan `SELECT profile_id, count(*) FROM segments_event GROUP BY
  profile_id`, repeated before and after the measurements; the baseline is the median
  of the before-median and the after-median. ratio = the five full evaluations one
  after the other (median) / the baseline.

The data is deterministic (hashes of a fixed seed, no random state) and placed in the
90 days before a fixed ANCHOR, which is `now` of every evaluation (the incremental part
runs with the clock moved to ANCHOR, so the hook's own `now` agrees). A dataset is
reused while its marker table says it has the same sizes, seed and version.
docs/performance.md describes the dataset and the last numbers.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.measure import before_after, load_average

SEED = 20261101
DATASET_VERSION = 2
# `now` of every evaluation; events fill the DAYS before it. Fixed, so that reruns (and
# other machines) measure the same data.
ANCHOR = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
DAYS = 90
BATCH_EVENTS = 100


@dataclass(frozen=True)
class Plan:
    database: str
    profiles: int
    events: int
    repetitions: int
    baseline_repetitions: int
    batches: int


FULL = Plan("engagement_bench", 100_000, 5_000_000, 5, 3, 30)
QUICK = Plan("engagement_bench_quick", 10_000, 500_000, 3, 2, 5)

# The five typical rules (docs/segments.md), evaluated at ANCHOR.
RULES: dict[str, dict] = {
    "attribute": {"type": "attribute", "trait": "plan", "op": "in", "value": ["pro", "enterprise"]},
    "event_count": {
        "type": "event_count",
        "event": "order_completed",
        "op": "gte",
        "count": 2,
        "filters": [{"property": "total", "op": "gt", "value": 50}],
        "window": {"last_days": 30},
    },
    "sequence": {
        "type": "sequence",
        "first": {"event": "order_completed"},
        "then": {"event": "order_completed"},
        "within_hours": 168,
        "anchor": "first",
    },
    "streak": {"type": "streak", "event": "logged_in", "days": 10, "since_signup": True},
    "recency": {
        "type": "recency",
        "event": "logged_in",
        "which": "last",
        "op": "within_last_days",
        "value": 7,
    },
}

# Event names and their share of the events that are not streak logins.
EVENT_MIX = (
    ("product_viewed", 0.45),
    ("logged_in", 0.20),
    ("email_opened", 0.15),
    ("added_to_cart", 0.14),
    ("order_completed", 0.06),
)
TIME_ZONES = (
    "UTC",
    "America/New_York",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
    "",  # unknown: the workspace's time zone (UTC)
)
LOCALES = ("en-US", "en-GB", "de-DE", "fr-FR", "pt-BR", "ja-JP", "hi-IN", "es-ES")
USER_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36",
)
BASELINE_SQL = "SELECT profile_id, count(*) FROM segments_event GROUP BY profile_id"


def _sql_array(values: tuple[str, ...]) -> str:
    quoted = ", ".join("'" + value.replace("'", "''") + "'" for value in values)
    return f"ARRAY[{quoted}]::text[]"


# --------------------------------------------------------------------------- Django


def _django_setup() -> None:
    # Before settings load (ignored when another benchmark configured Django first):
    # queries are not recorded, the log stays quiet, and Redis database 2 keeps the
    # benchmark away from a dev stack's queues (0) and the tests' (1).
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "engagement_site.settings")
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if not os.environ.get("REDIS_URL"):
        from engagement_site import embedded

        url, _ = embedded.ensure_redis()
        os.environ["REDIS_URL"] = f"{url}?db=2"
    import django

    django.setup()


def _server_connection():
    """An autocommit connection to the maintenance database of the app's server."""
    import psycopg
    from django.db import connections

    params = connections["default"].get_connection_params()
    params = {
        key: value for key, value in params.items() if key not in {"cursor_factory", "context"}
    }
    params["dbname"] = "postgres"
    return psycopg.connect(autocommit=True, **params)


def _dataset_marker(database: str) -> dict | None:
    import psycopg
    from django.db import connections

    params = connections["default"].get_connection_params()
    params = {
        key: value for key, value in params.items() if key not in {"cursor_factory", "context"}
    }
    params["dbname"] = database
    try:
        with psycopg.connect(autocommit=True, **params) as conn:
            row = conn.execute("SELECT value FROM bench_dataset WHERE key = 'dataset'").fetchone()
    except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
        return None
    return row[0] if row else None


def _wanted_marker(plan: Plan) -> dict:
    return {
        "version": DATASET_VERSION,
        "seed": SEED,
        "profiles": plan.profiles,
        "events": plan.events,
        "anchor": ANCHOR.isoformat(),
    }


def _database_prepare(plan: Plan) -> bool:
    """Make sure the benchmark database exists; drop and recreate it when its dataset is
    not the wanted one. Returns whether the dataset must be generated."""
    marker = _dataset_marker(plan.database)
    wanted = _wanted_marker(plan)
    if marker is not None and all(marker.get(key) == value for key, value in wanted.items()):
        return False
    with _server_connection() as server:
        exists = server.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [plan.database]
        ).fetchone()
        if exists:
            server.execute(f'DROP DATABASE "{plan.database}" WITH (FORCE)')
        server.execute(f'CREATE DATABASE "{plan.database}"')
    return True


@contextmanager
def _bench_database(name: str) -> Iterator[None]:
    """Point Django's default connection at `name` for the duration (the way test
    databases are swapped in), then back at the app's database."""
    from django.conf import settings
    from django.db import connections

    connection = connections["default"]
    original_name, original_debug = connection.settings_dict["NAME"], settings.DEBUG
    connection.close()
    connection.settings_dict["NAME"] = name
    settings.DEBUG = False  # no query log while timing
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["NAME"] = original_name
        settings.DEBUG = original_debug


# --------------------------------------------------------------------------- dataset

# A uniform number in [0, 1) from (i, salt): a hash, so that every row's values depend
# only on the seed and the row, never on the order PostgreSQL produces rows in.
UNIFORM_FUNCTION = """
CREATE OR REPLACE FUNCTION bench_uniform(i bigint, salt bigint) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT ((hashint8extended(i, salt) >> 11) & 4503599627370495)::float8
             / 4503599627370496.0 $$
"""


def _event_context_sql(alias: str, k: str) -> str:
    """The context of a generated event of profile row `alias` (its n and locale)."""
    n = f"{alias}.n"
    return (
        "jsonb_build_object("
        "'library', jsonb_build_object('name', 'analytics-python', 'version', '2.4.0'),"
        f" 'ip', '10.' || mod({n}, 250) || '.' || mod({n} / 250, 250) || '.' || mod({k}, 250),"
        f" 'locale', {alias}.locale, 'userAgent', ({_sql_array(USER_AGENTS)})[1 + mod({n}, 4)])"
    )


def _generate(plan: Plan, *, workspace_id: int, log: Callable[[str], None]) -> dict[str, float]:
    """Fill the benchmark database with plan.profiles profiles (with their user-id
    identities) and exactly plan.events events. Returns the seconds per step."""
    from django.db import DatabaseError, connection, transaction

    from segments.partitions import event_partitions_ensure

    steps: dict[str, float] = {}
    anchor, days = ANCHOR, DAYS
    seed = SEED * 100

    @contextmanager
    def step(name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        steps[name] = round(time.perf_counter() - started, 2)
        log(f"  {name}: {steps[name]} s")

    event_partitions_ensure(start=anchor - timedelta(days=days + 5), end=anchor)
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '512MB'")
        # The rows are consistent by construction: skip the per-row foreign-key triggers
        # (each would lock its profile row) when the role may; otherwise pay for them.
        try:
            with transaction.atomic():
                cursor.execute("SET session_replication_role = replica")
        except DatabaseError:
            log("  (foreign-key checks stay on: the role may not set session_replication_role)")
        cursor.execute(UNIFORM_FUNCTION)
        # Secondary indexes are built once after loading (far faster than row by row),
        # from their own definitions as the migrations made them.
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'segments_event'"
            " AND indexname NOT IN (SELECT conname FROM pg_constraint"
            " WHERE conrelid = 'segments_event'::regclass)"
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')

        with step("profiles"):
            # Signups spread over the DAYS; plan 55% free, 25% starter, 15% pro, 5%
            # enterprise; lifetime value skewed low and higher on paid plans.
            cursor.execute(
                f"""
                INSERT INTO segments_profile (workspace_id, user_id, anonymous_ids, traits, email,
                                              phone, time_zone, locale, first_seen, last_seen,
                                              created_at)
                SELECT %(workspace)s, 'user-' || n, '{{}}',
                       jsonb_build_object('name', 'Bench User ' || n,
                                          'email', 'user' || n || '@example.com',
                                          'plan', plan,
                                          'ltv', round((ltv_scale * u2 * u2)::numeric, 2)),
                       'user' || n || '@example.com', '', tz, locale, signup, signup, signup
                  FROM (SELECT n,
                               CASE WHEN u1 < 0.55 THEN 'free' WHEN u1 < 0.80 THEN 'starter'
                                    WHEN u1 < 0.95 THEN 'pro' ELSE 'enterprise' END AS plan,
                               CASE WHEN u1 < 0.55 THEN 50 WHEN u1 < 0.80 THEN 600
                                    WHEN u1 < 0.95 THEN 2500 ELSE 12000 END AS ltv_scale,
                               u2,
                               ({_sql_array(TIME_ZONES)})[1 + floor(u3 * {len(TIME_ZONES)})::int]
                                   AS tz,
                               ({_sql_array(LOCALES)})[1 + floor(u5 * {len(LOCALES)})::int]
                                   AS locale,
                               %(anchor)s::timestamptz
                                   - make_interval(secs => u4 * %(days)s * 86400) AS signup
                          FROM (SELECT n, bench_uniform(n, %(seed)s + 1) AS u1,
                                       bench_uniform(n, %(seed)s + 2) AS u2,
                                       bench_uniform(n, %(seed)s + 3) AS u3,
                                       bench_uniform(n, %(seed)s + 4) AS u4,
                                       bench_uniform(n, %(seed)s + 5) AS u5
                                  FROM generate_series(1, %(profiles)s) AS n) AS r) AS g
                 ORDER BY n
                """,
                {
                    "workspace": workspace_id,
                    "anchor": anchor,
                    "days": days,
                    "seed": seed,
                    "profiles": plan.profiles,
                },
            )
            cursor.execute(
                "INSERT INTO segments_identity (workspace_id, kind, value, profile_id, created_at)"
                " SELECT workspace_id, 'user_id', user_id, id, first_seen FROM segments_profile"
                " WHERE workspace_id = %s",
                [workspace_id],
            )
            cursor.execute(
                "CREATE TEMPORARY TABLE bench_profile AS SELECT substr(user_id, 6)::int AS n, id,"
                " first_seen, NULLIF(time_zone, '') AS time_zone, locale FROM segments_profile"
                " WHERE workspace_id = %s",
                [workspace_id],
            )
            cursor.execute("ALTER TABLE bench_profile ADD PRIMARY KEY (n)")
            cursor.execute("ANALYZE bench_profile")

        columns = (
            "workspace_id, profile_id, type, name, properties, context, message_id, timestamp,"
            " original_timestamp, sent_at, received_at, violations"
        )
        with step("streak logins"):
            # 6% of profiles log in every day from their signup day for 1 to 20 days (at a
            # local time between 07:00 and 21:00): about half of them make the streak.
            cursor.execute(
                f"""
                INSERT INTO segments_event ({columns})
                SELECT %(workspace)s, m.id, 'track', 'logged_in',
                       jsonb_build_object('method', 'password'), {_event_context_sql("m", "d")},
                       'bench-streak-' || m.n || '-' || d, t.ts, t.ts, t.ts + interval '1 second',
                       t.ts + interval '1.2 seconds', '[]'::jsonb
                  FROM bench_profile m
                 CROSS JOIN LATERAL generate_series(0, floor(bench_uniform(m.n, %(seed)s + 21)
                                                             * 20)::int) AS d
                 CROSS JOIN LATERAL (
                       SELECT ((m.first_seen AT TIME ZONE COALESCE(m.time_zone, 'UTC'))::date + d
                               + make_interval(secs => 25200 + 50400
                                               * bench_uniform(m.n * 100 + d, %(seed)s + 22)))
                              AT TIME ZONE COALESCE(m.time_zone, 'UTC') AS ts) AS t
                 WHERE bench_uniform(m.n, %(seed)s + 20) < 0.06 AND t.ts <= %(anchor)s
                """,
                {"workspace": workspace_id, "anchor": anchor, "seed": seed},
            )
            streak_events = cursor.rowcount

        with step("events"):
            # The rest. Each profile acts at its own steady rate from signup to ANCHOR:
            # a log-normal activity level (sigma 1.1: the busiest 1% of profiles send
            # about a tenth of the events) times its days since signup sets its share;
            # shares are rounded (largest remainder) to exactly the wanted total. Each
            # event gets a time in the profile's life, a name from EVENT_MIX and
            # properties that go with the name.
            count = plan.events - streak_events
            cursor.execute(
                """
                ALTER TABLE bench_profile ADD COLUMN weight double precision,
                                          ADD COLUMN events int, ADD COLUMN first_k bigint
                """
            )
            cursor.execute(
                """
                UPDATE bench_profile SET weight =
                       exp(1.1 * sqrt(-2 * ln(1 - bench_uniform(n, %(seed)s + 40)))
                           * cos(2 * pi() * bench_uniform(n, %(seed)s + 41)))
                       * extract(epoch FROM %(anchor)s::timestamptz - first_seen) / 86400
                """,
                {"seed": seed, "anchor": anchor},
            )
            cursor.execute(
                """
                WITH shares AS (
                       SELECT n, %(count)s * weight / sum(weight) OVER () AS exact
                         FROM bench_profile),
                     ranked AS (
                       SELECT n, floor(exact)::int AS base,
                              row_number() OVER (ORDER BY exact - floor(exact) DESC, n) AS rank,
                              %(count)s - sum(floor(exact)) OVER () AS remainder
                         FROM shares),
                     counted AS (
                       SELECT n, base + (rank <= remainder)::int AS events FROM ranked)
                UPDATE bench_profile b
                   SET events = c.events,
                       first_k = c.offset_k
                  FROM (SELECT n, events, sum(events) OVER (ORDER BY n) - events AS offset_k
                          FROM counted) AS c
                 WHERE c.n = b.n
                """,
                {"count": count},
            )
            thresholds, cumulative = [], 0.0
            for name, share in EVENT_MIX:
                cumulative += share
                thresholds.append((name, cumulative))
            name_case = " ".join(
                f"WHEN u_name < {limit:.4f} THEN '{name}'" for name, limit in thresholds[:-1]
            )
            name_case = f"CASE {name_case} ELSE '{thresholds[-1][0]}' END"
            categories = _sql_array(("shoes", "shirts", "bags", "hats", "books", "games", "toys"))
            cursor.execute(
                f"""
                INSERT INTO segments_event ({columns})
                SELECT %(workspace)s, e.id, 'track', e.name,
                       CASE e.name
                         WHEN 'order_completed' THEN jsonb_build_object(
                           'order_id', 'order-' || e.k,
                           'total', round((5 + 295 * e.u_prop * e.u_prop)::numeric, 2),
                           'currency', 'USD', 'items', 1 + floor(e.u_prop * 4)::int)
                         WHEN 'product_viewed' THEN jsonb_build_object(
                           'product_id', 'sku-' || floor(e.u_prop * 2000)::int,
                           'category', ({categories})[1 + floor(e.u_prop * 7)::int],
                           'price', round((5 + 195 * e.u_prop)::numeric, 2))
                         WHEN 'added_to_cart' THEN jsonb_build_object(
                           'product_id', 'sku-' || floor(e.u_prop * 2000)::int,
                           'price', round((5 + 195 * e.u_prop)::numeric, 2), 'quantity', 1)
                         WHEN 'logged_in' THEN jsonb_build_object(
                           'method', (ARRAY['password', 'google', 'apple'])[
                                     1 + floor(e.u_prop * 3)::int])
                         ELSE jsonb_build_object(
                           'campaign', 'campaign-' || floor(e.u_prop * 40)::int,
                           'channel', 'email')
                       END,
                       {_event_context_sql("e", "e.k")},
                       'bench-' || e.k, e.ts, e.ts, e.ts + interval '1 second',
                       e.ts + interval '1.2 seconds', '[]'::jsonb
                  FROM (SELECT k, m.n, m.id, m.locale, {name_case} AS name, u_prop,
                               m.first_seen + (%(anchor)s::timestamptz - m.first_seen) * u_time
                                   AS ts
                          FROM bench_profile m
                         CROSS JOIN LATERAL generate_series(m.first_k + 1, m.first_k + m.events) AS k
                         CROSS JOIN LATERAL (
                               SELECT bench_uniform(k, %(seed)s + 32) AS u_time,
                                      bench_uniform(k, %(seed)s + 33) AS u_name,
                                      bench_uniform(k, %(seed)s + 34) AS u_prop) AS u) AS e
                """,
                {"workspace": workspace_id, "anchor": anchor, "seed": seed},
            )

        with step("indexes"):
            for _, definition in indexes:
                # pg_indexes shows a partitioned index as ON ONLY (the parent alone).
                cursor.execute(definition.replace(" ON ONLY ", " ON ", 1))

        with step("profile first/last seen"):
            # first_seen / last_seen as ingestion would have left them: the earliest and
            # latest event (the streak's signup day is first_seen's local date).
            cursor.execute(
                """
                UPDATE segments_profile p SET first_seen = s.first, last_seen = s.last,
                                              created_at = s.first
                  FROM (SELECT profile_id, min(timestamp) AS first, max(timestamp) AS last
                          FROM segments_event GROUP BY profile_id) AS s
                 WHERE s.profile_id = p.id
                """
            )
            cursor.execute(
                "UPDATE segments_identity SET created_at = p.first_seen FROM"
                " segments_profile p WHERE p.id = segments_identity.profile_id"
            )
            cursor.execute("DROP TABLE bench_profile")

    with step("vacuum analyze"), connection.cursor() as cursor:
        cursor.execute("RESET session_replication_role")
        for table in ("segments_event", "segments_profile", "segments_identity"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    return steps


def _marker_write(plan: Plan, *, workspace_id: int, steps: dict[str, float]) -> None:
    import json

    from django.db import connection

    value = {
        **_wanted_marker(plan),
        "workspace_id": workspace_id,
        "generation_seconds": steps,
    }
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_dataset (key text PRIMARY KEY, value jsonb)"
        )
        cursor.execute(
            "INSERT INTO bench_dataset VALUES ('dataset', %s::jsonb) ON CONFLICT (key)"
            " DO UPDATE SET value = EXCLUDED.value",
            [json.dumps(value)],
        )


def _dataset_counts() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM segments_profile")
        profiles = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM segments_event")
        events = cursor.fetchone()[0]
        cursor.execute(
            "SELECT pg_total_relation_size(relid) FROM pg_partition_tree('segments_event')"
        )
        event_bytes = sum(row[0] for row in cursor.fetchall())
    return {"profiles": profiles, "events": events, "events_table_mb": round(event_bytes / 2**20)}


def _workspace_get_or_create():
    from django.contrib.auth import get_user_model

    from engagement_site.workspaces.models import Workspace
    from engagement_site.workspaces.services import AuditContext, workspace_create

    workspace = Workspace.objects.filter(slug="bench").first()
    if workspace is None:
        owner, _ = get_user_model().objects.get_or_create(username="bench")
        workspace = workspace_create(
            name="Bench", slug="bench", owner=owner, context=AuditContext.system("segment bench")
        )
    return workspace


def _segments_reset(workspace) -> dict[str, Any]:
    """The five rules as dynamic segments, with no membership rows yet. Created directly,
    not through segment_create: that would queue a recompute job for a worker."""
    from segments.models import Segment

    Segment.objects.filter(workspace=workspace).delete()
    return {
        name: Segment.objects.create(
            workspace=workspace, name=name, kind=Segment.Kind.DYNAMIC, definition=definition
        )
        for name, definition in RULES.items()
    }


# --------------------------------------------------------------------------- measuring


def _timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def _summary(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "median_s": round(statistics.median(ordered), 4),
        "min_s": round(ordered[0], 4),
        "max_s": round(ordered[-1], 4),
        "p95_s": round(p95, 4),
        "samples_s": [round(sample, 4) for sample in samples],
    }


def _baseline_scan() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(BASELINE_SQL)
        return len(cursor.fetchall())


def _incremental(plan: Plan, *, workspace, log: Callable[[str], None]) -> dict[str, Any]:
    """Batches of BATCH_EVENTS events, one each for as many distinct profiles, through
    ingest_batch and then the ingestion hook, the clock at ANCHOR. Everything they
    stored is removed afterwards, so the dataset stays as generated."""
    import time_machine
    from django.db import connection

    import segments.tasks
    from segments.ingestion import SOURCE_TRACKING_API, ingest_batch
    from segments.membership import segments_for_ingested_batch
    from segments.models import EventMessageId, Profile

    rng = random.Random(SEED)
    names = [name for name, _ in EVENT_MIX]
    weights = [share for _, share in EVENT_MIX]
    run_tag = f"{os.getpid()}-{time.time_ns()}"
    stored_events: list[int] = []
    touched: set[int] = set()
    last_seen = dict(Profile.objects.filter(workspace=workspace).values_list("pk", "last_seen"))
    ingest_times, hook_times, fresh_times = [], [], []

    def properties(name: str) -> dict:
        if name == "order_completed":
            return {
                "order_id": f"order-{rng.randrange(10**9)}",
                "total": round(rng.uniform(5, 300), 2),
                "currency": "USD",
            }
        if name in ("product_viewed", "added_to_cart"):
            return {
                "product_id": f"sku-{rng.randrange(2000)}",
                "price": round(rng.uniform(5, 200), 2),
            }
        if name == "logged_in":
            return {"method": "password"}
        return {"campaign": f"campaign-{rng.randrange(40)}", "channel": "email"}

    # The hook runs right here rather than from an RQ job: no job goes to Redis.
    enqueue = segments.tasks.ingested_batch_enqueue
    segments.tasks.ingested_batch_enqueue = lambda **kwargs: None
    try:
        with time_machine.travel(ANCHOR, tick=True):
            for batch in range(plan.batches + 1):  # batch 0 warms up, not counted
                sent_at = ANCHOR + timedelta(seconds=batch)
                users = rng.sample(range(1, plan.profiles + 1), BATCH_EVENTS)
                messages = []
                for index, user in enumerate(users):
                    name = rng.choices(names, weights)[0]
                    messages.append(
                        {
                            "type": "track",
                            "userId": f"user-{user}",
                            "event": name,
                            "properties": properties(name),
                            "messageId": f"bench-incremental-{run_tag}-{batch}-{index}",
                            "timestamp": (
                                sent_at - timedelta(seconds=rng.uniform(0, 60))
                            ).isoformat(),
                            "context": {
                                "library": {"name": "analytics-python", "version": "2.4.0"}
                            },
                        }
                    )
                started = time.perf_counter()
                result = ingest_batch(
                    workspace=workspace,
                    messages=messages,
                    received_at=sent_at + timedelta(milliseconds=150),
                    context=None,
                    integrations=None,
                    source=SOURCE_TRACKING_API,
                    sent_at=sent_at.isoformat(),
                )
                ingested = time.perf_counter()
                segments_for_ingested_batch(
                    workspace_id=workspace.pk,
                    profile_ids=result.profile_ids,
                    event_ids=result.event_ids,
                )
                finished = time.perf_counter()
                if result.accepted != BATCH_EVENTS or len(result.profile_ids) != BATCH_EVENTS:
                    raise RuntimeError(f"batch {batch}: unexpected ingest result {result}")
                stored_events += result.event_ids
                touched.update(result.profile_ids)
                if batch:
                    ingest_times.append(ingested - started)
                    hook_times.append(finished - ingested)
                    fresh_times.append(finished - started)
    finally:
        segments.tasks.ingested_batch_enqueue = enqueue
        ids = sorted(touched)
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM segments_event WHERE id = ANY(%s) AND timestamp >= %s",
                [stored_events, ANCHOR - timedelta(days=1)],
            )
            cursor.execute(
                "UPDATE segments_profile p SET last_seen = old.last_seen"
                " FROM unnest(%s::bigint[], %s::timestamptz[]) AS old(id, last_seen)"
                " WHERE p.id = old.id",
                [ids, [last_seen[profile_id] for profile_id in ids]],
            )
        EventMessageId.objects.filter(
            workspace=workspace, message_id__startswith=f"bench-incremental-{run_tag}-"
        ).delete()
        with connection.cursor() as cursor:
            # Leave no dead rows for the next run's scans (cheap: only touched pages).
            for table in ("segments_event", "segments_profile"):
                cursor.execute(f"VACUUM {table}")
    log(f"  incremental: {plan.batches} batches of {BATCH_EVENTS} events")
    hook = _summary(hook_times)
    return {
        "batches": plan.batches,
        "events_per_batch": BATCH_EVENTS,
        "profiles_per_batch": BATCH_EVENTS,
        "ingest": _summary(ingest_times),
        "membership_refresh": hook,
        "freshness": _summary(fresh_times),
        "refresh_events_per_s": round(BATCH_EVENTS / hook["median_s"]),
    }


def run(*, quick: bool) -> dict[str, Any]:
    plan = QUICK if quick else FULL

    def log(message: str) -> None:
        print(f"[segments] {message}", flush=True)

    _django_setup()
    from django.core.management import call_command

    from segments.evaluation import segment_evaluate_all
    from segments.membership import segment_membership_refresh

    generate = _database_prepare(plan)
    with _bench_database(plan.database):
        call_command("migrate", verbosity=0, interactive=False)
        workspace = _workspace_get_or_create()
        if generate:
            log(
                f"generating {plan.profiles:,} profiles and {plan.events:,} events"
                f" in database {plan.database} (once; later runs reuse it)"
            )
            started = time.perf_counter()
            steps = _generate(plan, workspace_id=workspace.pk, log=log)
            steps["total"] = round(time.perf_counter() - started, 1)
            _marker_write(plan, workspace_id=workspace.pk, steps=steps)
        generation = _dataset_marker(plan.database)["generation_seconds"]
        sizes = {
            **_dataset_counts(),
            "events_per_profile": round(plan.events / plan.profiles),
            "repetitions": plan.repetitions,
            "baseline_repetitions": plan.baseline_repetitions,
            "incremental_batches": plan.batches,
            "load_average": [load_average()[0]],
        }
        segments = _segments_reset(workspace)

        def evaluate(name: str) -> set[int]:
            return segment_evaluate_all(
                segment_or_definition=segments[name], workspace=workspace, now=ANCHOR
            )

        rule_samples: dict[str, list[float]] = {name: [] for name in RULES}
        members: dict[str, int] = {}

        def evaluate_all_five() -> None:
            # One after the other, as a scheduled recompute of five segments; each
            # rule's own time is a sample of that rule.
            for name in RULES:
                seconds, matching = _timed(lambda name=name: evaluate(name))
                rule_samples[name].append(seconds)
                members[name] = len(matching)

        log("warming up")
        _baseline_scan()
        evaluate_all_five()
        for samples in rule_samples.values():
            samples.clear()

        log("baseline scan (before)")
        baseline_before = [_timed(_baseline_scan)[0] for _ in range(plan.baseline_repetitions)]

        all_five = _summary([_timed(evaluate_all_five)[0] for _ in range(plan.repetitions)])
        rules: dict[str, Any] = {}
        for name in RULES:
            rules[name] = {"members": members[name], **_summary(rule_samples[name])}
            log(f"  {name}: {members[name]:,} members, median {rules[name]['median_s']} s")
        log(f"  all five: median {all_five['median_s']} s")

        log("materialising membership of the five (full refresh from empty)")
        materialise = {}
        for name, segment in segments.items():
            seconds, (entered, _) = _timed(
                lambda segment=segment: segment_membership_refresh(segment=segment, now=ANCHOR)
            )
            materialise[name] = {"seconds": round(seconds, 3), "rows_opened": len(entered)}

        incremental = _incremental(plan, workspace=workspace, log=log)

        log("baseline scan (after)")
        baseline_after = [_timed(_baseline_scan)[0] for _ in range(plan.baseline_repetitions)]

    sizes["load_average"].append(load_average()[0])
    baseline = _summary(baseline_before + baseline_after)
    halves = before_after(
        statistics.median(baseline_before), statistics.median(baseline_after), digits=4
    )
    baseline_median = halves["median"]
    for result in rules.values():
        result["ratio_to_baseline"] = round(result["median_s"] / baseline_median, 2)
        result["events_per_s"] = round(sizes["events"] / result["median_s"])
        result["profiles_per_s"] = round(sizes["profiles"] / result["median_s"])
    ratio = round(all_five["median_s"] / baseline_median, 2)
    fresh = incremental["freshness"]
    headline = (
        f"5 rules over {sizes['profiles']:,} profiles / {sizes['events']:,} events:"
        f" {all_five['median_s']:.2f} s (raw scan {baseline_median:.2f} s);"
        f" batch of {BATCH_EVENTS} events: hook p50 {incremental['membership_refresh']['median_s'] * 1000:.0f} ms,"
        f" freshness p50 {fresh['median_s'] * 1000:.0f} ms / p95 {fresh['p95_s'] * 1000:.0f} ms"
    )
    return {
        "sizes": sizes,
        "dataset": {
            "database": plan.database,
            "seed": SEED,
            "anchor": ANCHOR.isoformat(),
            "days": DAYS,
            "generated_this_run": generate,
            "generation_seconds": generation,
        },
        "baseline": {
            "query": BASELINE_SQL,
            **baseline,
            "median_s": baseline_median,
            "before_median_s": halves["before"],
            "after_median_s": halves["after"],
            "before_s": [round(sample, 4) for sample in baseline_before],
            "after_s": [round(sample, 4) for sample in baseline_after],
            "events_per_s": round(sizes["events"] / baseline_median),
        },
        "system": {
            "rules": rules,
            "all_five": {
                **all_five,
                "events_per_s": round(sizes["events"] / all_five["median_s"]),
            },
            "materialise": materialise,
            "incremental": incremental,
        },
        "ratio": ratio,
        "ratio_means": "median of the five full evaluations run one after the other"
        " / the raw scan (median of its before-median and after-median)",
        "headline": headline,
    }
