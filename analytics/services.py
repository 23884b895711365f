"""Analytics writes: rebuilding the message counters from the message events."""

from __future__ import annotations

from django.db import connection, transaction

from analytics.models import MessageCounter
from engagement_site.workspaces.models import Workspace

_REBUILD = """
INSERT INTO analytics_messagecounter
    (workspace_id, day, journey_id, journey_version_id, node_id, variant, channel, kind, count)
SELECT event.workspace_id, (event.at AT TIME ZONE workspace.time_zone)::date,
       COALESCE(message.journey_id, 0), COALESCE(message.journey_version_id, 0),
       message.node_id, message.variant, message.channel, event.kind, count(*)
  FROM delivery_messageevent AS event
  JOIN delivery_message AS message ON message.id = event.message_id
  JOIN workspaces_workspace AS workspace ON workspace.id = event.workspace_id
 WHERE event.workspace_id = %s
 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
"""


def metrics_rebuild(*, workspace: Workspace) -> int:
    """Recompute the workspace's message counters from its message events, in one
    transaction (readers see the old numbers or the new, never half); the counters of
    events erased with their people (privacy) go with them. Returns the rows written.
    New events wait while it runs (the events table is share-locked), so none is
    counted twice or lost: an operator's command, seconds per million events."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("LOCK TABLE delivery_messageevent IN SHARE MODE")
        MessageCounter.objects.filter(workspace=workspace).delete()
        cursor.execute(_REBUILD, [workspace.pk])
        return cursor.rowcount
