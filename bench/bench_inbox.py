"""In-app inbox benchmark: `python -m bench --only inbox [--quick]`.

Measures `GET /api/v1/inbox/<user_id>` (delivery.inbox_api.inbox_list) served by a
real Daphne process, called by real HTTP clients (httpx, HTTP/1.1 keep-alive) with the
workspace's write key in `X-Write-Key`, as the snippet and mobile apps call it.

Data (own database `eng_inbox_inbox`, `..._quick` with --quick; kept between runs and
regenerated when its marker differs): one workspace with 100,000 profiles (10,000),
each with a user_id; 95% of them hold 0-20 in-app cards, 5% a long inbox of 60-99
(more than one page of 50, so the listing's second query, the unread count, runs);
a fifth of all messages are email to the same people (the listing must skip them).
Cards were sent over the 30 days before ANCHOR; 40% were read, 10% of those clicked,
10% dismissed (not listed). Everything follows from SEED (a hash per row).

- system: p50 / p99 latency per request at 1, 4 and 8 concurrent clients (each a
  coroutine on one httpx.AsyncClient with that many connections), users drawn from a
  seeded random stream; every answer is checked against the database (status 200,
  the number of cards and the unread count the user must see), and the run fails
  loudly on a difference;
- baseline: an empty Django view (`/bench/empty`, a sync view that answers `{}`)
  added to the same URL configuration and served by the same Daphne process through
  the same middleware, at the same concurrency, before and after the system runs (the
  median of the two). It is what Daphne + Django cost before the inbox does anything;
- also the inbox's own work without HTTP (delivery.inbox.inbox_list called in this
  process, one client): what the query and the JSON document cost.
(The web process now shares a psycopg connection pool, as engagement_site/asgi.py sets
it; the pool experiment this benchmark used to run separately is the product's setting.)

Repetitions are interleaved (baseline, system, baseline, for every concurrency level);
medians with min and max are reported. ratio = inbox p99 / empty-view p99 at 4
clients. With BENCH_PROFILE=1 a py-spy profile of the Daphne process under the 4-client
load is written to bench/results/inbox-profile.txt (the hottest frames).
docs/performance.md explains the numbers.

The module doubles as the ASGI application the benchmark's Daphne serves
(`bench.bench_inbox:application`): the project's own application with ROOT_URLCONF
pointed at this module's `urlpatterns` (the project's URLs plus /bench/empty).
bench_live uses the same server helpers.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.measure import log

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SEED = 20261206
DATASET_VERSION = 1
ANCHOR = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SLUG = "bench-inbox"
LEVELS = (1, 4, 8)
HEADLINE_LEVEL = 4
PAGE = 50  # delivery.inbox.DEFAULT_LIMIT


@dataclass(frozen=True)
class Plan:
    database: str
    profiles: int
    requests: int  # per run (one concurrency level, one endpoint)
    repetitions: int
    service_calls: int


FULL = Plan("eng_inbox_inbox", 100_000, 3_000, 3, 2_000)
QUICK = Plan("eng_inbox_inbox_quick", 10_000, 100, 2, 300)


# --------------------------------------------------------------------------- server


def _empty_view(request):
    from django.http import HttpResponse

    return HttpResponse(b"{}", content_type="application/json")


@functools.cache
def _urlpatterns() -> list:
    from django.urls import include, path
    from django.views.decorators.csrf import csrf_exempt

    return [
        path("bench/empty", csrf_exempt(_empty_view)),
        path("", include("engagement_site.urls")),
    ]


@functools.cache
def _application():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "engagement_site.settings")
    from django.conf import settings

    from engagement_site.asgi import application

    settings.ROOT_URLCONF = __name__
    return application


def __getattr__(name: str):
    # Lazy, so that importing the benchmark does not set Django up: Daphne asks for
    # `application`, Django's resolver for `urlpatterns`.
    if name == "application":
        return _application()
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def daphne(
    database: str, *, app: str = "bench.bench_inbox:application", env: dict | None = None
) -> Iterator[dict]:
    """A Daphne process serving `app` on a free port against `database` (and this
    process's REDIS_URL); yields {"url", "pid"}. Stopped (and waited for) on exit."""
    import httpx

    from bench.bench_journeys import _database_url

    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": _database_url(database),
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "engagement_site.settings",
        **(env or {}),
    }
    RESULTS.mkdir(exist_ok=True)
    log = (RESULTS / "daphne.log").open("w")
    command = [
        str(Path(sys.executable).with_name("daphne")),
        "--bind", "127.0.0.1", "--port", str(port), "-v", "0", app,
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"daphne exited ({process.returncode}); see {log.name}")
            try:
                if httpx.get(f"{url}/login/", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"daphne did not answer within 60 s; see {log.name}")
            time.sleep(0.2)
        yield {"url": url, "pid": process.pid, "port": port}
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextmanager
def profiled(pid: int, name: str) -> Iterator[None]:
    """py-spy record of `pid` while the block runs, when BENCH_PROFILE=1: the hottest
    frames (own and total samples) written to bench/results/<name>-profile.txt."""
    if os.environ.get("BENCH_PROFILE") != "1":
        yield
        return
    raw = RESULTS / f"{name}-profile.raw"
    spy = subprocess.Popen(
        [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
         "--format", "raw", "--output", str(raw), "--rate", "250", "--threads", "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        spy.send_signal(2)
        spy.wait(timeout=60)
        (RESULTS / f"{name}-profile.txt").write_text(profile_summary(raw))


def profile_summary(raw: Path, top: int = 40) -> str:
    """Hottest frames of a py-spy raw (collapsed) profile: by own samples, and by
    samples with the frame anywhere on the stack; idle frames (waiting in select,
    a lock, a queue) are counted apart."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        leaf = frames[-1]
        if any(word in leaf for word in ("select (", "wait (", "_worker (", "acquire", "poll (")):
            idle += n
            continue
        samples += n
        own[leaf] = own.get(leaf, 0) + n
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + n
    lines = [f"busy samples: {samples}, idle samples: {idle}", "", "own:"]
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{n / max(samples, 1):6.1%}  {frame}")
    lines += ["", "total:"]
    for frame, n in sorted(total.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{n / max(samples, 1):6.1%}  {frame}")
    return "\n".join(lines) + "\n"


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (share in (0, 1])."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))]


def spread(values: list[float], digits: int = 2) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


# --------------------------------------------------------------------------- dataset


def _wanted_marker(plan: Plan) -> dict:
    return {"version": DATASET_VERSION, "seed": SEED, "profiles": plan.profiles}


def _generate(plan: Plan) -> dict[str, Any]:
    """Empty the benchmark database's tables and generate the dataset; returns the
    marker stored with it (including the write key, which only this database holds)."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from bench.bench_segments import UNIFORM_FUNCTION
    from engagement_site.workspaces.services import AuditContext, api_key_create, workspace_create

    context = AuditContext.system("benchmark")
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE delivery_messageevent, delivery_message, analytics_messagecounter,"
            " segments_profile, workspaces_apikey, workspaces_workspace, auth_user CASCADE"
        )
        cursor.execute(UNIFORM_FUNCTION)
    owner = get_user_model().objects.create_user(username="bench-inbox", password=None)
    workspace = workspace_create(
        name="Bench inbox", slug=SLUG, owner=owner, context=context, time_zone="UTC"
    )
    _, write_key = api_key_create(workspace=workspace, kind="write", name="app", context=context)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO segments_profile (workspace_id, user_id, anonymous_ids, traits, email,
                phone, time_zone, locale, first_seen, last_seen, created_at)
            SELECT %(workspace)s, 'user-' || n, '{}', jsonb_build_object('first_name', 'P' || n),
                   'p' || n || '@example.com', '', 'UTC', 'en', %(anchor)s, %(anchor)s, %(anchor)s
              FROM generate_series(1, %(profiles)s) AS n
             ORDER BY n
            """,
            {"workspace": workspace.pk, "profiles": plan.profiles, "anchor": ANCHOR},
        )
        # Per profile n: how many messages (0-20, or 60-99 for one in twenty), then one
        # row per message k with its channel, send time and what the person did.
        cursor.execute(
            """
            INSERT INTO delivery_message (workspace_id, idempotency_key, profile_id, node_id,
                chain_index, variant, channel, status, reason, is_shadow, topic, transactional,
                purpose, hold_reason, rendered, provider_message_id, attempts, last_error,
                created_at, updated_at, sent_at, opened_at, clicked_at, dismissed_at)
            SELECT %(workspace)s, 'inbox:' || p.id || ':' || k, p.id, '', 0, '', m.channel,
                   CASE WHEN m.clicked THEN 'clicked' WHEN m.opened THEN 'opened' ELSE 'sent' END,
                   '', false, '', false, '', '',
                   CASE WHEN m.channel = 'in_app' THEN jsonb_build_object(
                       'title', 'Hi P' || p.n, 'body', 'Card ' || k || ' for you: your plan renews soon.',
                       'image_url', 'https://cdn.example.com/cards/' || k || '.png',
                       'cta_label', 'Open', 'cta_url', 'https://app.example.com/cards/' || k)
                   ELSE jsonb_build_object('subject', 'Hi', 'html', '<p>Hi</p>') END,
                   '', 1, '', m.sent, m.sent, m.sent,
                   CASE WHEN m.opened THEN m.sent + interval '1 hour' END,
                   CASE WHEN m.clicked THEN m.sent + interval '61 minutes' END,
                   CASE WHEN m.dismissed THEN m.sent + interval '2 hours' END
              FROM (SELECT id, substr(user_id, 6)::bigint AS n FROM segments_profile
                     WHERE workspace_id = %(workspace)s) AS p
             CROSS JOIN LATERAL generate_series(1,
                   CASE WHEN bench_uniform(p.n, %(seed)s) < 0.05
                        THEN 60 + floor(bench_uniform(p.n, %(seed)s + 1) * 40)::int
                        ELSE floor(bench_uniform(p.n, %(seed)s + 1) * 21)::int END) AS k
             CROSS JOIN LATERAL (
                   SELECT CASE WHEN bench_uniform(p.n * 1000 + k, %(seed)s + 2) < 0.2
                               THEN 'email' ELSE 'in_app' END AS channel,
                          %(anchor)s::timestamptz - make_interval(
                              secs => bench_uniform(p.n * 1000 + k, %(seed)s + 3) * 30 * 86400) AS sent,
                          bench_uniform(p.n * 1000 + k, %(seed)s + 4) < 0.4 AS opened,
                          bench_uniform(p.n * 1000 + k, %(seed)s + 4) < 0.04 AS clicked,
                          bench_uniform(p.n * 1000 + k, %(seed)s + 5) < 0.1 AS dismissed) AS m
             ORDER BY p.id, k
            """,
            {"workspace": workspace.pk, "seed": SEED, "anchor": ANCHOR},
        )
        cursor.execute("VACUUM ANALYZE segments_profile")
        cursor.execute("VACUUM ANALYZE delivery_message")
        marker = {
            **_wanted_marker(plan),
            "write_key": write_key,
            "workspace_id": workspace.pk,
            "generation_seconds": round(time.monotonic() - started, 1),
        }
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_dataset (key text PRIMARY KEY, value jsonb)"
        )
        cursor.execute(
            "INSERT INTO bench_dataset VALUES ('dataset', %s::jsonb)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            [json.dumps(marker)],
        )
    return marker


def _expected(workspace_id: int) -> dict[str, tuple[int, int]]:
    """Per user_id: (cards on the first page, unread), from the rows themselves."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT p.user_id,
                   count(m.id) FILTER (WHERE m.channel = 'in_app' AND m.dismissed_at IS NULL),
                   count(m.id) FILTER (WHERE m.channel = 'in_app' AND m.dismissed_at IS NULL
                                         AND m.opened_at IS NULL)
              FROM segments_profile p LEFT JOIN delivery_message m ON m.profile_id = p.id
             WHERE p.workspace_id = %s
             GROUP BY p.user_id
            """,
            [workspace_id],
        )
        return {user: (min(visible, PAGE), unread) for user, visible, unread in cursor.fetchall()}


def _dataset_facts(workspace_id: int) -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE channel = 'in_app'),"
            " count(*) FILTER (WHERE channel = 'in_app' AND dismissed_at IS NULL),"
            " count(*) FILTER (WHERE channel <> 'in_app')"
            " FROM delivery_message WHERE workspace_id = %s",
            [workspace_id],
        )
        in_app, visible, other = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM segments_profile WHERE workspace_id = %s", [workspace_id]
        )
        profiles = cursor.fetchone()[0]
    return {"profiles": profiles, "in_app_messages": in_app, "visible_cards": visible,
            "other_channel_messages": other}  # fmt: skip


# --------------------------------------------------------------------------- load


async def _load(
    url: str, paths: list[str], concurrency: int, headers: dict, check=None
) -> tuple[list[float], float, dict[int, int]]:
    """GET every path, `concurrency` at a time over as many keep-alive connections;
    returns each request's latency (ms), the requests per second and the answers that
    were not 200, by status (a 200 with wrong content fails the run)."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timings: list[float] = []
    errors: dict[int, int] = {}
    queue = iter(paths)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=30
    ) as client:

        async def worker() -> None:
            for path in queue:
                started = time.perf_counter()
                response = await client.get(path)
                timings.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    errors[response.status_code] = errors.get(response.status_code, 0) + 1
                elif check is not None:
                    check(path, response.content)

        # Warm the connections (and the server's threads) untimed.
        await asyncio.gather(*(client.get(paths[i % len(paths)]) for i in range(concurrency)))
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return timings, len(paths) / elapsed, errors


def _latency(timings: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(timings), 2),
        "p99_ms": round(percentile(timings, 0.99), 2),
        "max_ms": round(max(timings), 2),
        "requests": len(timings),
    }


def _service_only(plan: Plan, workspace_id: int, users: list[str]) -> dict[str, float]:
    """delivery.inbox.inbox_list called in this process, no HTTP: the query, the card
    tokens and the document, then orjson as the view serialises it."""
    import orjson

    from delivery import inbox

    def call(user: str) -> None:
        orjson.dumps(inbox.inbox_list(workspace_id=workspace_id, user_id=user))

    for user in users[:50]:
        call(user)
    timings = []
    for user in users[: plan.service_calls]:
        started = time.perf_counter()
        call(user)
        timings.append((time.perf_counter() - started) * 1000)
    return _latency(timings)


def _errors_note(errors: int) -> str:
    return f", {errors} errors" if errors else ""


def run(*, quick: bool) -> dict[str, Any]:
    import orjson

    from bench.bench_journeys import _prepare_database
    from bench.bench_segments import _bench_database, _dataset_marker, _django_setup

    plan = QUICK if quick else FULL
    _django_setup()
    log(f"inbox: database {plan.database}")
    _prepare_database(plan)
    marker = _dataset_marker(plan.database)
    with _bench_database(plan.database):
        generated = not (
            marker and all(marker.get(k) == v for k, v in _wanted_marker(plan).items())
        )
        if generated:
            log(f"  generating {plan.profiles:,} profiles and their messages")
            marker = _generate(plan)
        workspace_id = marker["workspace_id"]
        facts = _dataset_facts(workspace_id)
        log(f"  dataset: {facts}")
        expected = _expected(workspace_id)
        chooser = random.Random(SEED)
        users = sorted(expected)
        stream = [chooser.choice(users) for _ in range(plan.requests)]
        service = _service_only(plan, workspace_id, stream)
    log(f"  inbox_list in process (no HTTP): {service}")

    checked = {"responses": 0, "cards": 0}

    def check(path: str, body: bytes) -> None:
        user = path.rsplit("/", 1)[1]
        document = orjson.loads(body)
        got = (len(document["messages"]), document["unread"])
        if got != expected[user]:
            raise AssertionError(f"inbox: {user} got (cards, unread) {got}, "
                                 f"the database says {expected[user]}")  # fmt: skip
        checked["responses"] += 1
        checked["cards"] += got[0]

    inbox_paths = [f"/api/v1/inbox/{user}" for user in stream]
    empty_paths = ["/bench/empty"] * plan.requests
    headers = {"X-Write-Key": marker["write_key"]}
    runs: dict[str, dict[int, list]] = {"empty": {n: [] for n in LEVELS},
                                        "inbox": {n: [] for n in LEVELS}}  # fmt: skip
    loads = []
    with daphne(plan.database) as server:
        url = server["url"]

        def measure(kind: str, level: int) -> None:
            paths = inbox_paths if kind == "inbox" else empty_paths
            timings, rate, errors = asyncio.run(
                _load(url, paths, level, headers, check if kind == "inbox" else None)
            )
            runs[kind][level].append(
                {**_latency(timings), "requests_per_s": round(rate), "errors": errors}
            )

        for repetition in range(plan.repetitions):
            loads.append(load_average())
            for level in LEVELS:
                measure("empty", level)
                if level == HEADLINE_LEVEL and repetition == 0:
                    with profiled(server["pid"], "inbox"):
                        measure("inbox", level)
                else:
                    measure("inbox", level)
                measure("empty", level)
                log(
                    f"  rep {repetition + 1} x{level}: inbox {runs['inbox'][level][-1]}, "
                    f"empty {runs['empty'][level][-1]}"
                )
        loads.append(load_average())

    def summary(kind: str, level: int) -> dict[str, Any]:
        samples = runs[kind][level]
        return {
            "p50_ms": spread([s["p50_ms"] for s in samples]),
            "p99_ms": spread([s["p99_ms"] for s in samples]),
            "requests_per_s": spread([s["requests_per_s"] for s in samples], 0),
            "errors": sum(sum(s["errors"].values()) for s in samples),
            "runs": samples,
        }

    system = {f"{n}_clients": summary("inbox", n) for n in LEVELS}
    baseline = {f"{n}_clients": summary("empty", n) for n in LEVELS}
    for n in LEVELS:
        system[f"{n}_clients"]["ratio_p99_to_empty"] = round(
            system[f"{n}_clients"]["p99_ms"]["median"]
            / baseline[f"{n}_clients"]["p99_ms"]["median"],
            2,
        )
    head = system[f"{HEADLINE_LEVEL}_clients"]
    base = baseline[f"{HEADLINE_LEVEL}_clients"]
    headline = (
        f"GET /api/v1/inbox/<user> ({facts['profiles']:,} profiles, "
        f"{facts['in_app_messages']:,} cards): "
        + ", ".join(
            f"{n} clients p50 {system[f'{n}_clients']['p50_ms']['median']} / "
            f"p99 {system[f'{n}_clients']['p99_ms']['median']} ms "
            f"({system[f'{n}_clients']['requests_per_s']['median']:,.0f}/s"
            f"{_errors_note(system[f'{n}_clients']['errors'])})"
            for n in LEVELS
        )
        + f"; empty view at {HEADLINE_LEVEL}: p50 {base['p50_ms']['median']} / p99 "
        f"{base['p99_ms']['median']} ms; inbox_list alone p50 {service['p50_ms']} ms"
    )
    return {
        "headline": headline,
        "sizes": {
            **facts,
            "requests_per_run": plan.requests,
            "repetitions": plan.repetitions,
            "levels": list(LEVELS),
        },
        "dataset": {"generated": generated, "generation_seconds": marker.get("generation_seconds")},
        "checked": checked,
        "load_average": loads,
        "baseline": {"empty_view": baseline},
        "system": {
            "inbox": system,
            "inbox_list_in_process": service,
        },
        "ratio": head["ratio_p99_to_empty"],
    }
