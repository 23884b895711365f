"""Live numbers for the builder: per node, how many people entered, wait there now,
and what its messages did (sent, delivered, opened, clicked, failed), plus goal
conversions; pushed over the websocket `/ws/journeys/<id>/` (journeys.consumers).

Whoever changes a journey's numbers (the executor committing steps, enrollment, a
message's status) calls `journey_touched`. That publishes a small "changed" ping on
the channel layer (Redis), at most one per journey every PING_INTERVAL_MS across all
processes; each connected builder recomputes the numbers (a few grouped queries on
indexed columns) at most FRAME_INTERVAL seconds apart, and once more just after a
burst, so a flood of thousands of events gives a few frames a second and the last
frame is always current.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time

from django.db.models import Count, Exists, OuterRef, Q

logger = logging.getLogger(__name__)

PING_INTERVAL_MS = 100
FRAME_INTERVAL = 0.25  # seconds between two frames to one builder
GROUP = "journey-{}"
WORKSPACE_GROUP = "workspace-metrics-{}"


# Pings this process sent, and until when (time.monotonic()) Redis refuses another for
# the same key: a send job finishing a hundred messages of one journey asks Redis once,
# not a hundred times, and nothing changes for the pages (Redis's NX would refuse the
# other ninety-nine the same way).
_pinged_until: dict[str, float] = {}


def _recently_pinged(key: str, now: float) -> bool:
    until = _pinged_until.get(key)
    if until is not None and now < until:
        return True
    if len(_pinged_until) > 10_000:
        # Threads of one process (Daphne's) may prune at once: copy, and pop.
        for stale in [k for k, expiry in list(_pinged_until.items()) if expiry <= now]:
            _pinged_until.pop(stale, None)
    return False


# The event loop this process publishes pings from, running in a thread of its own (and
# the pid that started it: a forked child starts its own). async_to_sync would make a
# new loop per call, and channels_redis a new connection per loop: several milliseconds
# a ping, paid inside every send job (bench/bench_delivery.py, docs/performance.md).
_publisher: tuple[int, asyncio.AbstractEventLoop] | None = None
_publisher_lock = threading.Lock()


def _publisher_loop() -> asyncio.AbstractEventLoop:
    global _publisher
    with _publisher_lock:
        if _publisher is None or _publisher[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="live-pings", daemon=True).start()
            _publisher = (os.getpid(), loop)
        return _publisher[1]


def _group_send(layer, group: str, message: dict) -> None:
    """Hand the ping to the publisher loop and go on: the caller (a send job, a step)
    does not wait for Redis; a ping that fails is logged, and the pages catch up on
    the next one."""
    future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), _publisher_loop())
    future.add_done_callback(_log_failure(group))


def _log_failure(group: str):
    def check(future) -> None:
        if not future.cancelled() and future.exception() is not None:
            logger.warning("could not publish live numbers to %s: %s", group, future.exception())

    return check


def group_name(journey_id: int) -> str:
    return GROUP.format(journey_id)


def workspace_group_name(workspace_id: int) -> str:
    return WORKSPACE_GROUP.format(workspace_id)


def journey_touched(journey_ids, *, workspace_ids=()) -> None:
    """Tell the open builders and journey reports of these journeys, and the open
    analytics overviews of these workspaces, that their numbers moved. Never raises:
    live numbers are a view, and must not fail a send or a step."""
    pings = [
        (f"journey-live:ping:{journey_id}", group_name(journey_id), "journey.changed")
        for journey_id in sorted({int(journey_id) for journey_id in journey_ids if journey_id})
    ] + [
        (
            f"workspace-live:ping:{workspace_id}",
            workspace_group_name(workspace_id),
            "metrics.changed",
        )
        for workspace_id in sorted(
            {int(workspace_id) for workspace_id in workspace_ids if workspace_id}
        )
    ]
    now = time.monotonic()
    pings = [ping for ping in pings if not _recently_pinged(ping[0], now)]
    if not pings:
        return
    try:
        from channels.layers import get_channel_layer

        from engagement_site.jobs import redis_connection

        redis = redis_connection("default")
        layer = get_channel_layer()
        for key, group, kind in pings:
            sent = redis.set(key, 1, nx=True, px=PING_INTERVAL_MS)
            # Whether this process set the key or another did, Redis refuses the same
            # key until it expires; at most PING_INTERVAL_MS from now.
            _pinged_until[key] = now + PING_INTERVAL_MS / 1000
            if sent:
                _group_send(layer, group, {"type": kind})
    except Exception:  # Redis away: the pages catch up on the next change
        logger.warning("could not publish live numbers (%s)", [group for _, group, _ in pings])


def journey_metrics(*, journey) -> dict:
    """{"nodes": {node id: {entered, waiting, sent, delivered, opened, clicked, failed,
    converted}}, "totals": {entered, active, converted, sent, opened, clicked}}."""
    from analytics.selectors import journey_node_counts
    from journeys.models import Enrollment, StepLog

    nodes: dict[str, dict[str, int]] = {}

    def node(node_id: str) -> dict[str, int]:
        return nodes.setdefault(
            node_id,
            dict.fromkeys(
                (
                    "entered",
                    "waiting",
                    "sent",
                    "delivered",
                    "opened",
                    "clicked",
                    "failed",
                    "converted",
                ),
                0,
            ),
        )

    steps = (
        StepLog.objects.filter(enrollment__journey_id=journey.pk)
        .values("node_id")
        .annotate(
            entered=Count("enrollment_id", distinct=True),
            converted=Count("id", filter=Q(outcome=StepLog.Outcome.CONVERTED)),
        )
    )
    for row in steps:
        node(row["node_id"]).update(entered=row["entered"], converted=row["converted"])
    # Someone waiting at a node has reached it even before its step is logged (a wait
    # logs when it ends): counted as entered too, once.
    waiting = (
        Enrollment.objects.filter(journey_id=journey.pk, state=Enrollment.State.WAITING)
        .values("current_node")
        .annotate(
            count=Count("id"),
            unlogged=Count("id", filter=~Exists(
                StepLog.objects.filter(enrollment_id=OuterRef("pk"), node_id=OuterRef("current_node"))
            )),
        )
    )  # fmt: skip
    for row in waiting:
        counts = node(row["current_node"])
        counts["waiting"] = row["count"]
        counts["entered"] += row["unlogged"]
    # What the nodes' messages did, from the message counters (each message event
    # counted once when stored): "failed" is failed or bounced.
    totals = {"sent": 0, "opened": 0, "clicked": 0}
    for (node_id, kind), count in journey_node_counts(
        workspace_id=journey.workspace_id, journey_id=journey.pk
    ).items():
        key = "failed" if kind == "bounced" else kind
        if key not in ("sent", "delivered", "opened", "clicked", "failed"):
            continue
        node(node_id)[key] += count
        if key in totals:
            totals[key] += count
    series = _hourly(journey_id=journey.pk)
    people = Enrollment.objects.filter(journey_id=journey.pk).aggregate(
        entered=Count("id"),
        active=Count("id", filter=Q(state__in=(Enrollment.State.ACTIVE, Enrollment.State.WAITING))),
        converted=Count("id", filter=Q(exit_reason="converted")),
    )
    # Everyone who entered passed the trigger, its step logged yet or not (an entry is
    # logged when the executor first takes it).
    live_nodes = (
        (journey.live_version.definition or {}).get("nodes", []) if journey.live_version_id else []
    )
    for raw in live_nodes:
        if isinstance(raw, dict) and raw.get("type") == "trigger" and raw.get("id"):
            counts = node(raw["id"])
            counts["entered"] = max(counts["entered"], people["entered"])
    return {"nodes": nodes, "totals": {**people, **totals}, "series": series}


SERIES_HOURS = 24


def _hourly(*, journey_id: int) -> list[dict]:
    """Sends and conversions per hour over the last SERIES_HOURS hours, oldest first,
    every hour present (0 when nothing happened)."""
    from datetime import timedelta

    from django.db.models.functions import TruncHour
    from django.utils import timezone

    from delivery.models import Message
    from journeys.models import Enrollment

    end = timezone.now().replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=SERIES_HOURS - 1)
    sent = dict(
        Message.objects.filter(journey_id=journey_id, sent_at__gte=start)
        .annotate(hour=TruncHour("sent_at"))
        .values("hour")
        .annotate(count=Count("id"))
        .values_list("hour", "count")
    )
    converted = dict(
        Enrollment.objects.filter(
            journey_id=journey_id, exit_reason="converted", exited_at__gte=start
        )
        .annotate(hour=TruncHour("exited_at"))
        .values("hour")
        .annotate(count=Count("id"))
        .values_list("hour", "count")
    )
    hours = [start + timedelta(hours=n) for n in range(SERIES_HOURS)]
    return [
        {"hour": hour.isoformat(), "sent": sent.get(hour, 0), "converted": converted.get(hour, 0)}
        for hour in hours
    ]
