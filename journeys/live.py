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

import logging

from django.db.models import Count, Exists, OuterRef, Q

logger = logging.getLogger(__name__)

PING_INTERVAL_MS = 100
FRAME_INTERVAL = 0.25  # seconds between two frames to one builder
GROUP = "journey-{}"
WORKSPACE_GROUP = "workspace-metrics-{}"


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
    if not pings:
        return
    try:
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        from engagement_site.jobs import redis_connection

        redis = redis_connection("default")
        layer = get_channel_layer()
        for key, group, kind in pings:
            if redis.set(key, 1, nx=True, px=PING_INTERVAL_MS):
                async_to_sync(layer.group_send)(group, {"type": kind})
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
