"""Monthly partitions of segments_event, and retention.

The events table is `PARTITION BY RANGE (timestamp)` with one partition per calendar
month (UTC) named segments_event_pYYYYMM, plus a DEFAULT partition that catches any
event outside the months that exist (far past imports, clocks in the future), so no
accepted event is ever refused for its time. Creating a month moves that month's rows
out of the DEFAULT partition first, so it never fails on rows already there.

Retention (IngestionSettings.event_retention_days, 0 = keep forever): a month whose
every row is older than every workspace's retention is dropped whole (instant, no
vacuum); workspaces with a shorter retention than others get their old rows deleted
in batches from the partitions that must stay.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

PARENT = "segments_event"
DEFAULT_PARTITION = "segments_event_default"
MONTHS_AHEAD = 2
RETENTION_DELETE_BATCH = 50_000


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def partition_name(month: date) -> str:
    return f"{PARENT}_p{month:%Y%m}"


def _bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end_month = _next_month(month)
    return start, datetime(end_month.year, end_month.month, 1, tzinfo=UTC)


def existing_partitions() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT child.relname FROM pg_inherits
              JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
              JOIN pg_class child ON child.oid = pg_inherits.inhrelid
             WHERE parent.relname = %s
            """,
            [PARENT],
        )
        return {row[0] for row in cursor.fetchall()}


def _create_month(month: date) -> None:
    name = partition_name(month)
    start, end = _bounds(month)
    with transaction.atomic(), connection.cursor() as cursor:
        # Lock order: parent then default, as ATTACH PARTITION takes them. Inserts into
        # the default partition wait until the new month is attached (a moment), so none
        # can land there in between and make the ATTACH fail.
        cursor.execute(f"LOCK TABLE {PARENT} IN SHARE UPDATE EXCLUSIVE MODE")
        cursor.execute(f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(
            f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE timestamp >= %s AND timestamp < %s RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved",
            [start, end],
        )
        moved = cursor.rowcount
        cursor.execute(
            f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)",
            [start, end],
        )
    logger.info(
        "created events partition %s (%d rows moved from the default partition)",
        name,
        max(moved, 0),
    )


def event_partitions_ensure(
    *, start: datetime | None = None, end: datetime | None = None
) -> list[str]:
    """Make sure a partition exists for every month from `start` to `end` (defaults:
    this month to MONTHS_AHEAD months ahead). Returns the names created."""
    now = timezone.now()
    first = _month_start((start or now).astimezone(UTC).date())
    last = _month_start((end or now + timedelta(days=31 * MONTHS_AHEAD)).astimezone(UTC).date())
    present = existing_partitions()
    created = []
    month = first
    while month <= last:
        name = partition_name(month)
        if name not in present:
            _create_month(month)
            created.append(name)
        month = _next_month(month)
    return created


def event_retention_apply(*, now: datetime | None = None) -> dict[str, int]:
    """Drop whole months past every workspace's retention; delete older rows of
    workspaces whose retention is shorter. Returns what was done."""
    from segments.models import IngestionSettings

    now = now or timezone.now()
    retention = dict(IngestionSettings.objects.values_list("workspace_id", "event_retention_days"))
    from engagement_site.workspaces.models import Workspace

    workspace_ids = list(Workspace.objects.values_list("pk", flat=True))
    days = [retention.get(pk, 0) for pk in workspace_ids]
    dropped = 0
    if days and all(day > 0 for day in days):
        keep_from = now - timedelta(days=max(days))
        for name in sorted(existing_partitions() - {DEFAULT_PARTITION}):
            month = date(int(name[-6:-2]), int(name[-2:]), 1)
            _, end = _bounds(month)
            if end <= keep_from:
                with connection.cursor() as cursor:
                    # Inside a larger transaction, deferred foreign-key checks on the
                    # partition would block the DROP: run them now.
                    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                    cursor.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {name}")
                    cursor.execute(f"DROP TABLE {name}")
                dropped += 1
                logger.info("dropped events partition %s (past every workspace's retention)", name)
    deleted = 0
    for workspace_id, day_count in retention.items():
        if day_count <= 0:
            continue
        cutoff = now - timedelta(days=day_count)
        while True:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"DELETE FROM {PARENT} WHERE (id, timestamp) IN (SELECT id, timestamp FROM {PARENT} "
                    "WHERE workspace_id = %s AND timestamp < %s LIMIT %s)",
                    [workspace_id, cutoff, RETENTION_DELETE_BATCH],
                )
                deleted += cursor.rowcount
                if cursor.rowcount < RETENTION_DELETE_BATCH:
                    break
    return {"partitions_dropped": dropped, "rows_deleted": deleted}


def event_message_ids_prune(*, now: datetime | None = None) -> int:
    """Forget messageIds older than each workspace's dedup window (default 30 days)."""
    from segments.models import EventMessageId, IngestionSettings

    now = now or timezone.now()
    default_days = IngestionSettings._meta.get_field("dedup_window_days").default
    windows = dict(IngestionSettings.objects.values_list("workspace_id", "dedup_window_days"))
    deleted, _ = (
        EventMessageId.objects.exclude(workspace_id__in=windows)
        .filter(received_at__lt=now - timedelta(days=default_days))
        .delete()
    )
    for workspace_id, days in windows.items():
        # A window of 0 would switch deduplication off: a day is the least kept.
        count, _ = EventMessageId.objects.filter(
            workspace_id=workspace_id, received_at__lt=now - timedelta(days=max(days, 1))
        ).delete()
        deleted += count
    return deleted


def scheduler_duty() -> None:
    """At most hourly (across scheduler restarts): next months' partitions exist,
    retention applied, old messageIds forgotten."""
    from django.core.cache import cache

    if cache.get("duty:event_partitions"):
        return
    event_partitions_ensure()
    event_retention_apply()
    event_message_ids_prune()
    cache.set(
        "duty:event_partitions", "1", timeout=3600
    )  # only after success: a failure retries next tick
