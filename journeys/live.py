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


def group_name(journey_id: int) -> str:
    return GROUP.format(journey_id)


def journey_touched(journey_ids) -> None:
    """Tell the open builders of these journeys that their numbers moved. Never raises:
    live numbers are a view, and must not fail a send or a step."""
    ids = {int(journey_id) for journey_id in journey_ids if journey_id}
    if not ids:
        return
    try:
        import django_rq
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        redis = django_rq.get_connection("default")
        layer = get_channel_layer()
        for journey_id in ids:
            if redis.set(f"journey-live:ping:{journey_id}", 1, nx=True, px=PING_INTERVAL_MS):
                async_to_sync(layer.group_send)(group_name(journey_id), {"type": "journey.changed"})
    except Exception:  # Redis away: the builders catch up on the next change
        logger.warning("could not publish the live numbers of journeys %s", sorted(ids))


def journey_metrics(*, journey) -> dict:
    """{"nodes": {node id: {entered, waiting, sent, delivered, opened, clicked, failed,
    converted}}, "totals": {entered, active, converted, sent, opened, clicked}}."""
    from delivery.models import Message
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
    messages = (
        Message.objects.filter(journey_id=journey.pk)
        .exclude(node_id="")
        .values("node_id")
        .annotate(
            sent=Count("id", filter=Q(sent_at__isnull=False)),
            delivered=Count("id", filter=Q(delivered_at__isnull=False)),
            opened=Count("id", filter=Q(opened_at__isnull=False)),
            clicked=Count("id", filter=Q(clicked_at__isnull=False)),
            failed=Count("id", filter=Q(status__in=("failed", "bounced"))),
        )
    )
    totals = {"sent": 0, "opened": 0, "clicked": 0}
    for row in messages:
        counts = node(row.pop("node_id"))
        counts.update(row)
        for key in totals:
            totals[key] += row[key]
    series = _hourly(journey_id=journey.pk)
    people = Enrollment.objects.filter(journey_id=journey.pk).aggregate(
        entered=Count("id"),
        active=Count("id", filter=Q(state__in=(Enrollment.State.ACTIVE, Enrollment.State.WAITING))),
        converted=Count("id", filter=Q(exit_reason="converted")),
    )
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
