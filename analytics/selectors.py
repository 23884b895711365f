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
