"""Live numbers benchmark: `python -m bench --only live [--quick]`.

Measures the time from a message event to the websocket frame that shows it at the
builders that have the journey open: 100 real websocket clients (the `websockets`
package) connected to `/ws/journeys/<id>/` on a real Daphne process serving the
project's ASGI application, each with the session cookie of a logged-in member of
the journey's workspace (the socket refuses anyone else) and the Origin a browser
sends.

Own database `eng_inbox_live` (emptied and set up again on every run): one workspace,
its owner, one live journey (api trigger -> email -> SMS -> push -> exit, made with
the journey services) and one queued email message of its email node per event.

- system: every GAP seconds, `delivery.services.message_status_record(status="sent")`
  on the next message, called in this process as a provider callback or the send job
  would call it. Its commit upserts the message counters and pings the journey's
  group on the channel layer (journeys.live.journey_touched, Redis); every consumer
  then recomputes the journey's numbers and sends a frame. Latency per (client,
  event) = from just before the call to the arrival of the first frame whose
  totals.sent includes the event (the frame is parsed and its count checked: a
  client that never sees it fails the run). Reported: p50 / p95 over all clients and
  events, and p50 / p95 of the slowest client per event (when the last builder
  catches up);
- baseline: a raw Redis pub/sub round trip on the same Redis: 100 subscriber
  connections (redis-py asyncio) on one channel, a publish from this process's
  thread, time until each subscriber has the message; the same number of events,
  before and after the system measurement (the median of the two).

ratio = system p95 / baseline p95. With BENCH_PROFILE=1 a py-spy profile of the Daphne
process during the system events is written to bench/results/live-profile.txt.
docs/performance.md explains the numbers.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any

from bench.bench_inbox import daphne, load_average, percentile, profiled
from bench.measure import log

SEED = 20261207
CLIENTS = 100
GAP = 1.0  # seconds between two events: longer than a frame burst (0.25 s + 0.3 s trailing)
BASELINE_GAP = 0.05
SLUG = "bench-live"


@dataclass(frozen=True)
class Plan:
    database: str
    events: int


FULL = Plan("eng_inbox_live", 40)
QUICK = Plan("eng_inbox_live", 8)


class Loop:
    """An asyncio loop in a thread of its own, where the clients live; the events are
    made from the main thread, as another process would make them."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def _setup(plan: Plan) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from bench.bench_analytics import _journeys, _stream_messages
    from engagement_site.workspaces.services import AuditContext, workspace_create
    from segments.models import Profile

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE delivery_messageevent, delivery_message, analytics_messagecounter,"
            " journeys_steplog, journeys_enrollment, journeys_journey, journeys_journeyversion,"
            " journeys_journeydraft, segments_profile, content_assetusage, content_template,"
            " content_templateversion, workspaces_workspace, django_session, auth_user CASCADE"
        )
    owner = get_user_model().objects.create_user(username="bench-live", password=None)
    workspace = workspace_create(
        name="Bench live", slug=SLUG, owner=owner, context=AuditContext.system("benchmark")
    )
    profile = Profile.objects.create(workspace=workspace, user_id="live", email="l@example.com")
    journeys = _journeys(workspace, count=1)
    (messages,) = _stream_messages(workspace.pk, profile.pk, journeys, plan.events, 1, "hot")
    browser = Client()
    browser.force_login(owner)  # a session row in this database, as a login makes
    return {
        "journey_id": journeys[0][0],
        "messages": messages,
        "session": browser.cookies["sessionid"].value,
    }


async def _connect(url: str, origin: str, session: str, frames: list) -> Any:
    import orjson
    from websockets.asyncio.client import connect

    socket = await connect(
        url, origin=origin, additional_headers={"Cookie": f"sessionid={session}"},
        max_size=None, open_timeout=60,
    )  # fmt: skip

    async def read() -> None:
        async for message in socket:
            arrived = time.perf_counter()
            document = orjson.loads(message)
            frames.append((arrived, document["totals"]["sent"]))

    asyncio.get_running_loop().create_task(read())
    return socket


def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _summary(latencies: list[float], slowest: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "max_ms": round(max(latencies), 1),
        "slowest_client_p50_ms": round(statistics.median(slowest), 1),
        "slowest_client_p95_ms": round(percentile(slowest, 0.95), 1),
        "samples": len(latencies),
    }


def _system(plan: Plan, loop: Loop, server: dict, setup: dict) -> dict[str, Any]:
    from delivery.services import message_status_record

    url = server["url"].replace("http://", "ws://") + f"/ws/journeys/{setup['journey_id']}/"
    frames: list[list] = [[] for _ in range(CLIENTS)]

    async def connect_all():
        return [
            await _connect(url, server["url"], setup["session"], frames[i]) for i in range(CLIENTS)
        ]

    started = time.perf_counter()
    sockets = loop.run(connect_all())
    connected = time.perf_counter() - started
    if not _wait(lambda: all(frames_ for frames_ in frames), 60):
        raise AssertionError("live: not every client had its first frame within 60 s")
    if any(got[0][1] != 0 for got in frames):
        raise AssertionError("live: a first frame counted sends before any was made")
    time.sleep(1.0)  # the connect frames are all out
    latencies: list[float] = []
    slowest: list[float] = []
    with profiled(server["pid"], "live"):
        for index, message_id in enumerate(setup["messages"]):
            sent = index + 1
            marks = [len(got) for got in frames]
            t0 = time.perf_counter()
            if not message_status_record(message_id=message_id, status="sent"):
                raise AssertionError(f"live: message {message_id} was already sent")

            def arrivals(marks=marks, sent=sent) -> list[float | None]:
                found = []
                for got, mark in zip(frames, marks, strict=True):
                    hit = next((at for at, count in got[mark:] if count >= sent), None)
                    found.append(hit)
                return found

            if not _wait(lambda: all(at is not None for at in arrivals()), 30):
                missing = sum(at is None for at in arrivals())
                raise AssertionError(f"live: {missing} clients never saw send {sent}")
            event = [(at - t0) * 1000 for at in arrivals()]
            latencies += event
            slowest.append(max(event))
            time.sleep(max(0.0, GAP - (time.perf_counter() - t0)))

    async def close_all():
        await asyncio.gather(*(socket.close() for socket in sockets))

    loop.run(close_all())
    return {**_summary(latencies, slowest), "connect_seconds": round(connected, 2),
            "frames_received": sum(len(got) for got in frames)}  # fmt: skip


def _baseline(plan: Plan, loop: Loop, redis_url: str) -> dict[str, Any]:
    """Raw pub/sub: CLIENTS subscribers, a publish per event from this thread."""
    import redis
    import redis.asyncio as aioredis

    channel = f"bench-live-baseline-{time.time_ns()}"
    received: list[list] = [[] for _ in range(CLIENTS)]

    async def subscribe_all():
        subscribers = []
        for index in range(CLIENTS):
            client = aioredis.Redis.from_url(redis_url)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(channel)

            async def read(pubsub=pubsub, sink=received[index]):
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        sink.append((time.perf_counter(), int(message["data"])))

            task = asyncio.get_running_loop().create_task(read())
            subscribers.append((client, pubsub, task))
        return subscribers

    subscribers = loop.run(subscribe_all())
    publisher = redis.Redis.from_url(redis_url)
    time.sleep(0.2)
    latencies: list[float] = []
    slowest: list[float] = []
    for index in range(plan.events):
        t0 = time.perf_counter()
        if publisher.publish(channel, index) != CLIENTS:
            raise AssertionError("live baseline: not every subscriber is subscribed")
        if not _wait(lambda index=index: all(len(got) > index for got in received), 10):
            raise AssertionError(f"live baseline: a subscriber missed message {index}")
        event = [(got[index][0] - t0) * 1000 for got in received]
        latencies += event
        slowest.append(max(event))
        time.sleep(BASELINE_GAP)

    async def close_all():
        for client, pubsub, task in subscribers:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await pubsub.aclose()
            await client.aclose()

    loop.run(close_all())
    publisher.close()
    return _summary(latencies, slowest)


def run(*, quick: bool) -> dict[str, Any]:
    from django.conf import settings

    from bench.bench_journeys import _prepare_database
    from bench.bench_segments import _bench_database, _django_setup

    plan = QUICK if quick else FULL
    _django_setup()
    log(f"live: database {plan.database}, {CLIENTS} clients, {plan.events} events")
    _prepare_database(plan)
    loads = [load_average()]
    loop = Loop()
    try:
        before = _baseline(plan, loop, settings.REDIS_URL)
        log(f"  baseline (pub/sub) before: {before}")
        with _bench_database(plan.database):
            setup = _setup(plan)
            with daphne(plan.database, app="engagement_site.asgi:application") as server:
                loads.append(load_average())
                system = _system(plan, loop, server, setup)
                loads.append(load_average())
        log(f"  system: {system}")
        after = _baseline(plan, loop, settings.REDIS_URL)
        log(f"  baseline (pub/sub) after: {after}")
    finally:
        loop.close()
    loads.append(load_average())
    baseline = {
        key: round(statistics.median([before[key], after[key]]), 1)
        for key in ("p50_ms", "p95_ms", "slowest_client_p50_ms", "slowest_client_p95_ms")
    }
    headline = (
        f"message event -> websocket frame at {CLIENTS} clients: p50 {system['p50_ms']} ms, "
        f"p95 {system['p95_ms']} ms (last client p95 {system['slowest_client_p95_ms']} ms); "
        f"Redis pub/sub to {CLIENTS} subscribers p50 {baseline['p50_ms']} / "
        f"p95 {baseline['p95_ms']} ms"
    )
    return {
        "headline": headline,
        "sizes": {"clients": CLIENTS, "events": plan.events, "gap_s": GAP},
        "load_average": loads,
        "baseline": {"pubsub": baseline, "before": before, "after": after},
        "system": system,
        "ratio": round(system["p95_ms"] / baseline["p95_ms"], 1),
    }
