"""Analytics writes: rebuilding the message counters from the message events, and
folding the shards of past days together."""

from __future__ import annotations

from datetime import date, timedelta

from django.db import connection, transaction
from django.utils import timezone

from analytics.models import MessageCounter
from engagement_site.workspaces.models import Workspace

_REBUILD = """
INSERT INTO analytics_messagecounter
    (workspace_id, day, journey_id, journey_version_id, node_id, variant, channel, kind, shard,
     count)
SELECT event.workspace_id, (event.at AT TIME ZONE workspace.time_zone)::date,
       COALESCE(message.journey_id, 0), COALESCE(message.journey_version_id, 0),
       message.node_id, message.variant, message.channel, event.kind,
       event.message_id %% 8, count(*)
  FROM delivery_messageevent AS event
  JOIN delivery_message AS message ON message.id = event.message_id
  JOIN workspaces_workspace AS workspace ON workspace.id = event.workspace_id
 WHERE event.workspace_id = %s
 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
"""


def metrics_rebuild(*, workspace: Workspace) -> int:
    """Recompute the workspace's message counters from its message events, in one
    transaction (readers see the old numbers or the new, never half); the counters of
    events erased with their people (privacy) go with them. Returns the rows written.
    New events wait while it runs (the events table is share-locked), so none is
    counted twice or lost: an operator's command, seconds per million events."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("LOCK TABLE delivery_messageevent IN SHARE MODE")
        # Folding (counters_compact) waits meanwhile, so it cannot add a row this misses.
        cursor.execute("LOCK TABLE analytics_messagecounter IN SHARE ROW EXCLUSIVE MODE")
        MessageCounter.objects.filter(workspace=workspace).delete()
        cursor.execute(_REBUILD, [workspace.pk])
        return cursor.rowcount


# Days this far behind today (UTC) take almost no new events, so their counters no
# longer need shards: one row a key is what the reports read. A workspace's day may be
# up to 14 hours ahead of UTC's, so the cut-off leaves two whole days sharded.
COMPACT_AFTER_DAYS = 2

_COMPACT = """
WITH folded AS (
    DELETE FROM analytics_messagecounter
     WHERE day < %(before)s AND shard <> 0 AND (%(workspace)s::bigint IS NULL OR workspace_id = %(workspace)s)
 RETURNING workspace_id, day, journey_id, journey_version_id, node_id, variant, channel, kind, count
)
INSERT INTO analytics_messagecounter
    (workspace_id, day, journey_id, journey_version_id, node_id, variant, channel, kind, shard,
     count)
SELECT workspace_id, day, journey_id, journey_version_id, node_id, variant, channel, kind, 0,
       sum(count)
  FROM folded
 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    ON CONFLICT (workspace_id, day, journey_id, journey_version_id, node_id, variant, channel,
                 kind, shard)
    DO UPDATE SET count = analytics_messagecounter.count + EXCLUDED.count
"""


def counters_compact(*, before: date, workspace_id: int | None = None) -> int:
    """Fold every counter's shards of the days before `before` into its shard 0 (one
    statement: the rows removed and the sums added commit together, so a reader's sum
    never changes). A late event of such a day is counted in its shard again by the
    trigger and folded by the next run. Returns the keys folded. Without it every
    report reads up to 8 rows a key (docs/performance.md, Analytics)."""
    with transaction.atomic(), connection.cursor() as cursor:
        # A late event's transaction may hold some of these rows and want others: the
        # fold gives up first (before PostgreSQL's deadlock check, 1 s, could pick the
        # event's transaction) and the next run folds them.
        cursor.execute("SET LOCAL lock_timeout = '200ms'")
        cursor.execute(_COMPACT, {"before": before, "workspace": workspace_id})
        return cursor.rowcount


def scheduler_duty() -> None:
    """At most hourly (across scheduler restarts): fold the shards of past days."""
    from django.core.cache import cache

    if cache.get("duty:counters_compact"):
        return
    counters_compact(before=timezone.now().date() - timedelta(days=COMPACT_AFTER_DAYS))
    cache.set("duty:counters_compact", "1", timeout=3600)  # a failure retries next tick


def conversion_record(*, enrollment, event: dict, window_seconds: int, now) -> None:
    """The journey's goal was reached (journeys.executor): store the conversion with
    its revenue (the event's `revenue` property, else `total`, when a number) and its
    first- and last-touch messages: the journey's messages to the person sent within
    `window_seconds` before the event. In the caller's transaction; a repeat for the
    same enrollment changes nothing."""
    from datetime import datetime, timedelta
    from decimal import Decimal, InvalidOperation

    from analytics.models import Conversion
    from delivery.models import Message

    stamp = event.get("timestamp")
    try:
        at = datetime.fromisoformat(stamp) if isinstance(stamp, str) else now
    except ValueError:
        at = now
    properties = event.get("properties") or {}
    revenue = Decimal(0)
    for name in ("revenue", "total"):
        value = properties.get(name)
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            try:
                revenue = Decimal(str(value)).quantize(Decimal("0.01"))
                break
            except InvalidOperation:
                continue
    touches = list(
        Message.objects.filter(
            workspace_id=enrollment.workspace_id,
            journey_id=enrollment.journey_id,
            profile_id=enrollment.profile_id,
            sent_at__isnull=False,
            sent_at__lte=at,
            sent_at__gte=at - timedelta(seconds=window_seconds),
        )
        .order_by("sent_at", "pk")
        .values_list("pk", flat=True)
    )
    Conversion.objects.get_or_create(
        enrollment=enrollment,
        defaults={
            "workspace_id": enrollment.workspace_id,
            "journey_id": enrollment.journey_id,
            "journey_version_id": enrollment.version_id,
            "profile_id": enrollment.profile_id,
            "event_name": str(event.get("name", ""))[:200],
            "event_id": event.get("id"),
            "revenue": revenue,
            "at": at,
            "first_touch_id": touches[0] if touches else None,
            "last_touch_id": touches[-1] if touches else None,
        },
    )


class ExperimentRefused(ValueError):
    """The winner cannot be declared as asked; the text says why."""


def experiment_winner_declare(*, journey, node_id: str, variant: str, context) -> None:
    """From now on everyone reaching the split takes `variant` (the holdout stays, so
    the journey's lift is still measured). Audited with the variant's numbers then."""
    from analytics.experiments import split_reports
    from engagement_site.workspaces.models import AuditAction
    from engagement_site.workspaces.services import audit_record
    from journeys.models import Journey

    reports = {
        report["node"]: report
        for report in split_reports(workspace=journey.workspace, journey=journey)
    }
    report = reports.get(node_id)
    if report is None:
        raise ExperimentRefused(f"The live version has no split node {node_id!r}.")
    keys = [row["key"] for row in report["variants"]]
    if variant not in keys:
        raise ExperimentRefused(f"{variant!r} is not a variant of {node_id!r} ({', '.join(keys)}).")
    with transaction.atomic():
        locked = Journey.objects.select_for_update().get(pk=journey.pk)
        winners = {**(locked.split_winners or {}), node_id: variant}
        Journey.objects.filter(pk=journey.pk).update(split_winners=winners)
        journey.split_winners = winners
        chosen = next(row for row in report["variants"] if row["key"] == variant)
        audit_record(
            context=context,
            action=AuditAction.JOURNEY_DECLARE_WINNER,
            workspace=journey.workspace,
            target=journey,
            changes={
                "operation": "declare_winner",
                "node": node_id,
                "variant": variant,
                "entered": chosen["entered"],
                "converted": chosen["converted"],
                "probability_best": chosen["probability_best"],
            },
        )
