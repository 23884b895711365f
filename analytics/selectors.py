"""Analytics reads, each scoped to the workspace."""

from __future__ import annotations

from django.db.models import QuerySet, Sum

from analytics.models import MessageCounter
from engagement_site.workspaces.models import Workspace


def message_counters(*, workspace: Workspace) -> QuerySet[MessageCounter]:
    return MessageCounter.objects.filter(workspace=workspace)


def counter_totals(*, workspace: Workspace, **dimensions) -> dict[str, int]:
    """{kind: count} over the workspace's counters matching the dimensions given
    (journey_id, node_id, variant, channel, day__gte, ...)."""
    rows = (
        message_counters(workspace=workspace)
        .filter(**dimensions)
        .values("kind")
        .annotate(total=Sum("count"))
    )
    return {row["kind"]: row["total"] for row in rows}


def journey_node_counts(*, workspace_id: int, journey_id: int) -> dict[tuple[str, str], int]:
    """{(node id, kind): count} of the journey's message events over all days and
    versions (the live numbers of the builder and the journey report)."""
    rows = (
        MessageCounter.objects.filter(workspace_id=workspace_id, journey_id=journey_id)
        .exclude(node_id="")
        .values_list("node_id", "kind")
        .annotate(total=Sum("count"))
    )
    return {(node_id, kind): total for node_id, kind, total in rows}


def workspace_conversions(*, workspace: Workspace, starts_at, ends_before, journey_id=None):
    """The workspace's conversions at or after `starts_at` and before `ends_before`
    (one journey's when given)."""
    from analytics.models import Conversion

    rows = Conversion.objects.filter(workspace=workspace, at__gte=starts_at, at__lt=ends_before)
    return rows.filter(journey_id=journey_id) if journey_id else rows


def conversion_attribution(*, workspace: Workspace, journey_id: int) -> dict:
    """The journey's conversions and revenue credited by first and by last touch:
    {"conversions", "revenue", "first_touch": {(node, channel): {conversions, revenue}},
    "last_touch": {...}}; conversions without a message in the window credit
    ("", "") (the journey itself)."""
    from django.db.models import Count

    from analytics.models import Conversion

    conversions = Conversion.objects.filter(workspace=workspace, journey_id=journey_id)
    totals = conversions.aggregate(conversions=Count("id"), revenue=Sum("revenue"))
    result = {
        "conversions": totals["conversions"],
        "revenue": totals["revenue"] or 0,
        "first_touch": {},
        "last_touch": {},
    }
    for touch in ("first_touch", "last_touch"):
        rows = (
            conversions.values(f"{touch}__node_id", f"{touch}__channel")
            .annotate(conversions=Count("id"), revenue=Sum("revenue"))
            .order_by(f"{touch}__node_id", f"{touch}__channel")
        )
        for row in rows:
            key = (row[f"{touch}__node_id"] or "", row[f"{touch}__channel"] or "")
            result[touch][key] = {"conversions": row["conversions"], "revenue": row["revenue"]}
    return result
