"""Ingestion benchmark: `python -m bench --only ingest [--quick]`.

Measures, in its own database (`eng_ingest`, or `eng_ingest_quick` for --quick) on the
server the app uses and the Redis of REDIS_URL (run it with its own database number),
the Segment-compatible `/v1/batch` endpoint served as `make run` serves it: one Daphne
process (`daphne engagement_site.asgi:application`, DEBUG off) and one RQ SimpleWorker
on every queue, so the per-batch ingestion job (segment and journey hooks) runs beside
the server, as in production.

- system: real HTTP clients (httpx.AsyncClient, keep-alive, one connection per client)
  post a deterministic stream of batches of 100 track calls of about 1 KB each (write
  key by HTTP Basic, batch `sentAt` and `context`) with 1, 8 and 32 clients at once (1
  shows the service time alone). One call in ten replays a messageId already sent in an
  earlier batch (a client retrying): it must be answered 200 and stored once. A fourth
  configuration sends the same stream with no replays, at 32 clients: the difference is
  what deduplication costs. Per configuration: events accepted per second (every call in
  a 200 answer, from the first request sent to the last answer), events stored per
  second, and p50 / p95 / p99 of the requests' latency (client side: the time in
  Daphne's queue included). After each stream the worker's queue is waited for (reported
  as `drain_s`), then checked: every unique messageId of the stream stored exactly once
  in segments_event and claimed once in segments_eventmessageid, no RQ job failed, no
  request answered anything but 200. The run fails loudly otherwise.
- baseline: psycopg COPY of the same rows (the stored columns of the 32-client
  stream's unique events, profile ids resolved) into a plain table without indexes in
  the same database, one COPY in one transaction; measured before every repetition
  and after the last; the median.

The profiles (one per 10 events) exist before the first stream (an identify of each,
stored through `ingest_batch`); the workspace has no rate limit (the default, 2,000
events/s over 10 s, would answer 429 long before the server's limit). Repetitions are
interleaved (each runs every configuration once); medians, min and max are reported.
BENCH_INGEST_PROFILE=<file> records Daphne with py-spy (raw collapsed stacks) during
the first 32-client stream. docs/performance.md explains the numbers.
"""

from __future__ import annotations

import asyncio
import base64
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.bench_journeys import ROOT, _database_url, _prepare_database, _stop
from bench.bench_segments import _bench_database, _django_setup, _server_connection
from bench.measure import log, percentile, spread

SLUG = "bench-ingest"
BATCH = 100
REPLAY_SHARE = 0.10
# Replays repeat a call from at least this many batches back (a client retrying a
# batch whose answer it missed), so the first copy is usually committed already.
REPLAY_DISTANCE = 5
# The device clock of every call: sentAt of the batch, call timestamps a few seconds to
# minutes before it (stored as received_at - (sentAt - timestamp), i.e. around now).
SENT_AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
EVENT_NAMES = ("Product Viewed", "Product Added", "Checkout Started", "Order Completed")
USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15"
)


@dataclass(frozen=True)
class Plan:
    database: str
    events: int  # posted per stream (replays included)
    clients: tuple[int, ...]
    repetitions: int
    drain_timeout: int

    @property
    def users(self) -> int:
        return max(100, self.events // 10)


FULL = Plan("eng_ingest", 200_000, (1, 8, 32), 3, 900)
QUICK = Plan("eng_ingest_quick", 3_000, (1, 8, 32), 2, 120)


# --------------------------------------------------------------------------- data


def _call(n: int, prefix: str, users: int) -> dict[str, Any]:
    """Call n of a stream: a track of about 1 KB, the same for the same (n, prefix)."""
    product = n * 7919 % 5000
    user = n * 104729 % users
    return {
        "type": "track",
        "messageId": f"{prefix}-{n:07d}",
        "userId": f"user-{user:06d}",
        "anonymousId": f"anon-{user:06d}",
        "event": EVENT_NAMES[n % len(EVENT_NAMES)],
        "timestamp": (SENT_AT - timedelta(seconds=n % 600)).isoformat(),
        "properties": {
            "product_id": f"prod-{product:05d}",
            "sku": f"SKU-{product:05d}-{n % 7}",
            "name": f"Organic cotton t-shirt, model {product}",
            "description": (
                f"Soft organic cotton t-shirt with a relaxed fit, model {product}, size"
                f" {('XS', 'S', 'M', 'L', 'XL')[n % 5]}; machine washable at 30 degrees."
            ),
            "category": ("Apparel", "Shoes", "Accessories", "Home")[product % 4],
            "brand": ("Northwind", "Contoso", "Fabrikam")[product % 3],
            "variant": ("red", "blue", "green", "black")[n % 4],
            "price": round(9.99 + product % 90, 2),
            "quantity": 1 + n % 3,
            "currency": "EUR",
            "coupon": "WINTER10" if n % 5 == 0 else None,
            "position": n % 24,
            "url": f"https://shop.example.com/products/{product}",
            "image_url": f"https://cdn.example.com/images/products/{product}/main-800x800.jpg",
        },
        "context": {
            "ip": f"10.{n % 250}.{n // 250 % 250}.{user % 250}",
            "userAgent": USER_AGENT,
            "locale": ("en-US", "de-DE", "fr-FR", "pt-BR")[user % 4],
            "page": {
                "path": f"/products/{product}",
                "referrer": "https://www.example.org/search?q=t-shirt",
                "title": f"Organic cotton t-shirt {product}",
                "url": f"https://shop.example.com/products/{product}?utm_source=newsletter",
            },
        },
    }


@dataclass
class Stream:
    prefix: str
    bodies: list[bytes]  # one /v1/batch body per request
    unique: int  # distinct messageIds in the stream
    replays: int  # calls repeating a messageId of an earlier batch
    call_bytes: float  # mean size of one call as JSON


def _stream(prefix: str, plan: Plan, replay_share: float) -> Stream:
    """plan.events calls in batches of BATCH. With replays, about replay_share of the
    calls of each batch (from batch REPLAY_DISTANCE on) repeat a call of an earlier
    batch, chosen deterministically; the rest are new."""
    import orjson

    context = {"library": {"name": "analytics-python", "version": "2.4.0"}}
    bodies, sent = [], []
    replays = new = 0
    call_bytes = 0
    per_batch = round(BATCH * replay_share)
    for number in range(plan.events // BATCH):
        calls = []
        replay_now = per_batch if number >= REPLAY_DISTANCE else 0
        for slot in range(BATCH):
            if slot < replay_now:
                # A call from a batch at least REPLAY_DISTANCE back (hash-chosen).
                pool = (number - REPLAY_DISTANCE + 1) * (BATCH - per_batch)
                calls.append(sent[(number * 2654435761 + slot * 40503) % pool])
                replays += 1
            else:
                call = _call(new, prefix, plan.users)
                sent.append(call)
                calls.append(call)
                new += 1
        body = orjson.dumps({"batch": calls, "sentAt": SENT_AT.isoformat(), "context": context})
        call_bytes += len(body)
        bodies.append(body)
    return Stream(prefix, bodies, new, replays, round(call_bytes / plan.events, 1))


# --------------------------------------------------------------------------- setup


def _setup(plan: Plan) -> tuple[int, str]:
    """Empty the benchmark database's tables, then a workspace without a rate limit, a
    write key, the event partitions, the baseline's plain table, and plan.users
    profiles (an identify of each, through ingest_batch). Returns (workspace id, key)."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from engagement_site.workspaces.models import ApiKey
    from engagement_site.workspaces.services import AuditContext, api_key_create, workspace_create
    from segments.ingestion import SOURCE_TRACKING_API, ingest_batch
    from segments.models import IngestionSettings
    from segments.partitions import event_partitions_ensure

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE workspaces_workspace, auth_user CASCADE")
        cursor.execute("DROP TABLE IF EXISTS bench_copy_event")
        cursor.execute(
            """
            CREATE TABLE bench_copy_event (
                workspace_id bigint NOT NULL, profile_id bigint NOT NULL,
                type varchar(10) NOT NULL, name varchar(200) NOT NULL,
                properties jsonb NOT NULL, context jsonb NOT NULL,
                message_id varchar(100) NOT NULL, timestamp timestamptz NOT NULL,
                original_timestamp timestamptz, sent_at timestamptz,
                received_at timestamptz NOT NULL, violations jsonb NOT NULL)
            """
        )
    event_partitions_ensure()
    context = AuditContext.system("benchmark")
    owner = get_user_model().objects.create_user(username="bench-ingest", password=None)
    workspace = workspace_create(name="Bench ingest", slug=SLUG, owner=owner, context=context)
    IngestionSettings.objects.update_or_create(
        workspace=workspace, defaults={"rate_limit_per_second": 0}
    )
    _, key = api_key_create(
        workspace=workspace, kind=ApiKey.Kind.WRITE, name="bench", context=context
    )
    for start in range(0, plan.users, 500):
        ingest_batch(
            workspace=workspace,
            messages=[
                {
                    "type": "identify",
                    "messageId": f"identify-{user:06d}",
                    "userId": f"user-{user:06d}",
                    "anonymousId": f"anon-{user:06d}",
                    "traits": {"email": f"user-{user:06d}@example.com", "plan": "free"},
                }
                for user in range(start, min(plan.users, start + 500))
            ],
            received_at=timezone.now(),
            context=None,
            integrations=None,
            source=SOURCE_TRACKING_API,
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE segments_profile")
        cursor.execute("VACUUM ANALYZE segments_identity")
    return workspace.pk, key


def _queue():
    import django_rq

    return django_rq.get_queue("ingest")


DAPHNE_LOG = Path("/tmp") / f"bench-ingest-daphne-{os.getpid()}.log"


def _daphne(plan: Plan, port: int) -> subprocess.Popen:
    daphne = str(Path(sys.executable).with_name("daphne"))
    environment = {
        **os.environ,
        "DATABASE_URL": _database_url(plan.database),
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        # A variant of the settings may be measured (see docs/performance.md).
        "DJANGO_SETTINGS_MODULE": os.environ.get(
            "BENCH_INGEST_SETTINGS", "engagement_site.settings"
        ),
    }
    return subprocess.Popen(
        [daphne, "--bind", "127.0.0.1", "--port", str(port), "--proxy-headers",
         "engagement_site.asgi:application"],
        cwd=ROOT, env=environment, stdout=subprocess.DEVNULL,
        stderr=DAPHNE_LOG.open("wb"),  # the server's errors, shown when a check fails
    )  # fmt: skip


def _worker(plan: Plan) -> subprocess.Popen:
    from django.conf import settings

    environment = {
        **os.environ,
        "DATABASE_URL": _database_url(plan.database),
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", *settings.RQ_QUEUES,
         "--worker-class", "rq.worker.SimpleWorker"],
        cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _daphne_log() -> str:
    try:
        return DAPHNE_LOG.read_text(errors="replace")[-4000:]
    except OSError:
        return ""


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_ready(url: str, server: subprocess.Popen) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"Daphne exited: {_daphne_log()}")
        try:
            if httpx.options(url, timeout=2).status_code == 204:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("Daphne did not answer within 60 s")


# --------------------------------------------------------------------------- measuring


async def _post_all(url: str, key: str, bodies: list[bytes], clients: int) -> dict[str, Any]:
    """Post every body with `clients` concurrent clients; each takes the next body when
    its previous request is answered. A 5xx is retried (at most 3 times; counted)."""
    import httpx

    headers = {
        "Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode(),
        "Content-Type": "application/json",
    }
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    retries = 0
    following = iter(range(len(bodies)))

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal retries
        for index in following:
            for attempt in range(4):
                started = time.perf_counter()
                response = await http.post(url, content=bodies[index], headers=headers)
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code < 500 or attempt == 3:
                    break
                # As Segment's clients do: a 5xx is retried after a pause (the batch was
                # rolled back; its messageIds make the retry safe).
                retries += 1
                await asyncio.sleep(0.1 * 2**attempt)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=120) as http:
        # One untimed request per connection, so that connecting is not measured.
        await asyncio.gather(*(http.options(url) for _ in range(clients)))
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "latencies": latencies, "statuses": statuses, "retries": retries}


def _drain(plan: Plan, worker: subprocess.Popen) -> float:
    """Seconds until the ingest queue is empty and no job is running."""
    from rq.registry import StartedJobRegistry

    queue = _queue()
    started = time.perf_counter()
    while queue.count or StartedJobRegistry(queue=queue).count:
        if worker.poll() is not None:
            raise RuntimeError("ingest: the RQ worker exited")
        if time.perf_counter() - started > plan.drain_timeout:
            raise RuntimeError(
                f"ingest: the worker did not drain its queue in {plan.drain_timeout} s"
            )
        time.sleep(0.1)
    return time.perf_counter() - started


def _check(workspace_id: int, stream: Stream, run: dict[str, Any]) -> dict[str, int]:
    """Every unique messageId stored once and claimed once; no request but 200; no
    failed job. Raises otherwise."""
    from django.db import connection

    if set(run["statuses"]) != {200}:
        raise AssertionError(
            f"ingest {stream.prefix}: answers {run['statuses']} (only 200 wanted); Daphne's"
            f" log ends with:\n{_daphne_log()}"
        )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT message_id) FROM segments_event"
            " WHERE workspace_id = %s AND message_id LIKE %s",
            [workspace_id, f"{stream.prefix}-%"],
        )
        stored, distinct = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM segments_eventmessageid WHERE workspace_id = %s"
            " AND message_id LIKE %s",
            [workspace_id, f"{stream.prefix}-%"],
        )
        claimed = cursor.fetchone()[0]
    failed = _queue().failed_job_registry.count
    facts = {"stored": stored, "distinct": distinct, "claimed": claimed, "failed_jobs": failed}
    wanted = {"stored": stream.unique, "distinct": stream.unique, "claimed": stream.unique,
              "failed_jobs": 0}  # fmt: skip
    if facts != wanted:
        raise AssertionError(f"ingest {stream.prefix}: found {facts}, wanted {wanted}")
    return facts


class ConnectionSampler:
    """Counts the benchmark database's connections every 50 ms from its own connection
    (Daphne opens one per request thread): the peak and the count at the end."""

    def __init__(self, database: str):
        self.database = database
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def count(self, conn) -> int:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [self.database],
        ).fetchone()[0]

    def _run(self) -> None:
        with _server_connection() as conn:
            while not self._stop.is_set():
                self.peak = max(self.peak, self.count(conn))
                time.sleep(0.05)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _measure(
    plan: Plan, url: str, key: str, workspace_id: int, stream: Stream, clients: int,
    daphne: subprocess.Popen, worker: subprocess.Popen, profile: str | None,
) -> dict[str, Any]:  # fmt: skip
    cpu_before = {"daphne": _cpu_seconds(daphne.pid), "worker": _cpu_seconds(worker.pid)}
    load_before = os.getloadavg()[0]
    spy = None
    if profile:
        spy = subprocess.Popen(
            [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(daphne.pid),
             "--format", "raw", "--rate", "500", "--output", profile, "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1)
    with ConnectionSampler(plan.database) as connections:
        run = asyncio.run(_post_all(url, key, stream.bodies, clients))
    if spy is not None:
        spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
        spy.wait(timeout=60)
    cpu_served = _cpu_seconds(daphne.pid) - cpu_before["daphne"]
    drain = _drain(plan, worker)
    cpu_worker = _cpu_seconds(worker.pid) - cpu_before["worker"]
    facts = _check(workspace_id, stream, run)
    latencies = run["latencies"]
    posted = len(stream.bodies) * BATCH
    return {
        "clients": clients,
        "requests": len(latencies),
        "events_posted": posted,
        "events_stored": stream.unique,
        "replays": stream.replays,
        "seconds": round(run["seconds"], 2),
        "accepted_events_per_s": round(posted / run["seconds"], 1),
        "stored_events_per_s": round(stream.unique / run["seconds"], 1),
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
        "retries_5xx": run["retries"],
        "peak_db_connections": connections.peak,
        "drain_s": round(drain, 2),
        "daphne_cpu_ms_per_batch": round(cpu_served * 1000 / len(stream.bodies), 2),
        "worker_cpu_ms_per_batch": round(cpu_worker * 1000 / len(stream.bodies), 2),
        "load_1min_before": round(load_before, 2),
        "checked": facts,
    }


def _copy_rows(workspace_id: int, stream: Stream) -> list[tuple]:
    """The stored columns of the stream's unique calls, as the system stores them (the
    device time corrected to now, the batch context merged, profile ids resolved)."""
    import orjson
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT value, profile_id FROM segments_identity"
            " WHERE workspace_id = %s AND kind = 'user_id'",
            [workspace_id],
        )
        profiles = dict(cursor.fetchall())
    received = datetime.now(UTC)
    rows, seen = [], set()
    library = {"library": {"name": "analytics-python", "version": "2.4.0"}}
    for body in stream.bodies:
        for call in orjson.loads(body)["batch"]:
            if call["messageId"] in seen:
                continue
            seen.add(call["messageId"])
            original = datetime.fromisoformat(call["timestamp"])
            rows.append((
                workspace_id, profiles[call["userId"]], "track", call["event"],
                orjson.dumps(call["properties"]).decode(),
                orjson.dumps({**library, **call["context"]}).decode(),
                call["messageId"], received - (SENT_AT - original), original, SENT_AT,
                received, "[]",
            ))  # fmt: skip
    return rows


def _copy(rows: list[tuple]) -> float:
    """Rows per second of one COPY of every row into the plain table (one transaction)."""
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE bench_copy_event")
        cursor.execute("CHECKPOINT")
    started = time.perf_counter()
    with (
        transaction.atomic(),
        connection.cursor() as cursor,
        cursor.copy(
            "COPY bench_copy_event (workspace_id, profile_id, type, name, properties, context,"
            " message_id, timestamp, original_timestamp, sent_at, received_at, violations)"
            " FROM STDIN"
        ) as copy,
    ):
        for row in rows:
            copy.write_row(row)
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bench_copy_event")
        if cursor.fetchone()[0] != len(rows):
            raise AssertionError("ingest baseline: COPY stored a different number of rows")
    return len(rows) / seconds


# --------------------------------------------------------------------------- run


def run(*, quick: bool) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    _django_setup()
    _prepare_database(plan)
    top = max(plan.clients)
    configurations = [(f"replay10_{n}", n, REPLAY_SHARE) for n in plan.clients]
    configurations.append((f"fresh_{top}", top, 0.0))
    profile = os.environ.get("BENCH_INGEST_PROFILE")
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in configurations}
    baseline: list[float] = []
    with _bench_database(plan.database):
        log(f"ingest: setup ({plan.users:,} profiles)")
        workspace_id, key = _setup(plan)
        _queue().empty()
        _queue().failed_job_registry.cleanup()
        port = _free_port()
        url = f"http://127.0.0.1:{port}/v1/batch"
        daphne, worker = _daphne(plan, port), _worker(plan)
        try:
            _wait_ready(url, daphne)
            for repetition in range(plan.repetitions):
                for name, clients, share in configurations:
                    stream = _stream(f"r{repetition}-{name}", plan, share)
                    if repetition == 0 and name == configurations[0][0]:
                        # The baseline copies the rows of a stream the server stores.
                        copied = _stream(f"r0-replay10_{top}", plan, REPLAY_SHARE)
                        rows = _copy_rows(workspace_id, copied)
                        baseline.append(_copy(rows))
                        log(f"  baseline COPY: {baseline[-1]:,.0f} rows/s ({len(rows):,} rows)")
                    measured = _measure(
                        plan, url, key, workspace_id, stream, clients, daphne, worker,
                        profile if (repetition == 0 and name == f"replay10_{top}") else None,
                    )  # fmt: skip
                    results[name].append(measured)
                    log(
                        f"  rep {repetition + 1} {name}: {measured['accepted_events_per_s']:,.0f}"
                        f" events/s accepted, p50 {measured['p50_ms']} p95 {measured['p95_ms']}"
                        f" p99 {measured['p99_ms']} ms, drain {measured['drain_s']} s,"
                        f" {measured['peak_db_connections']} connections at most,"
                        f" {measured['retries_5xx']} 5xx retried,"
                        f" load {measured['load_1min_before']}"
                    )
                baseline.append(_copy(rows))
                log(f"  baseline COPY: {baseline[-1]:,.0f} rows/s")
        finally:
            _stop([daphne, worker])
    summary = {}
    for name, runs in results.items():
        summary[name] = {
            "accepted_events_per_s": spread([r["accepted_events_per_s"] for r in runs]),
            "stored_events_per_s": spread([r["stored_events_per_s"] for r in runs]),
            "p50_ms": spread([r["p50_ms"] for r in runs]),
            "p95_ms": spread([r["p95_ms"] for r in runs]),
            "p99_ms": spread([r["p99_ms"] for r in runs]),
            "drain_s": spread([r["drain_s"] for r in runs], 2),
            "daphne_cpu_ms_per_batch": spread([r["daphne_cpu_ms_per_batch"] for r in runs], 2),
            "worker_cpu_ms_per_batch": spread([r["worker_cpu_ms_per_batch"] for r in runs], 2),
            "runs": runs,
        }
    copy_rate = statistics.median(baseline)
    main = summary[f"replay10_{top}"]
    fresh = summary[f"fresh_{top}"]
    # Deduplication's cost: stored events/s with 10% replays against the same stream
    # with none (both at `top` clients); below 1 means each stored event costs more.
    dedup = round(main["stored_events_per_s"]["median"] / fresh["stored_events_per_s"]["median"], 3)
    headline = (
        ", ".join(
            f"{summary[f'replay10_{n}']['accepted_events_per_s']['median']:,.0f} events/s"
            f" with {n} client{'s' if n > 1 else ''}"
            f" (p99 {summary[f'replay10_{n}']['p99_ms']['median']} ms)"
            for n in plan.clients
        )
        + f", 10% replays; {fresh['accepted_events_per_s']['median']:,.0f}/s with no replays;"
        f" COPY {copy_rate:,.0f} rows/s"
    )
    return {
        "headline": headline,
        "sizes": {
            "events_per_stream": plan.events,
            "batch": BATCH,
            "call_bytes": _call_bytes(plan),
            "clients": list(plan.clients),
            "replay_share": REPLAY_SHARE,
            "profiles": plan.users,
            "repetitions": plan.repetitions,
            "load_average": [round(value, 2) for value in os.getloadavg()],
        },
        "baseline": {
            "copy_rows_per_s": spread(baseline),
            "measurements": [round(value, 1) for value in baseline],
        },
        "system": {**summary, "dedup_stored_rate_ratio": dedup},
        "ratio": round(main["stored_events_per_s"]["median"] / copy_rate, 3),
    }


def _call_bytes(plan: Plan) -> float:
    """Mean bytes of one call of the stream as posted (the batch envelope included)."""
    return _stream("size", Plan(plan.database, BATCH * 10, plan.clients, 1, 0), 0.0).call_bytes
