"""Warehouse exports: a workspace's messages, message events and events as CSV or
Parquet files, one partition per UTC day, for Spark, DuckDB or a warehouse's external
tables; and the same rows as a streamed CSV download (docs/analytics.md).

Layout: `<root>/<workspace slug>/<table>/date=YYYY-MM-DD/part-00000.<csv|parquet>`
plus `_SUCCESS` once the day's file is complete. Rows are read with a server-side
cursor and written chunk by chunk (a Parquet row group per chunk), so a day never sits
in memory whole. A file is written under a temporary name and renamed into place;
exporting a day again replaces its file.
"""

from __future__ import annotations

import csv
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.db.models import Min, QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone

from delivery.models import Message, MessageEvent
from engagement_site.streaming import Echo, streamed
from engagement_site.workspaces.models import AuditAction, Workspace
from engagement_site.workspaces.services import AuditContext, audit_record
from segments.models import Event

logger = logging.getLogger(__name__)

FORMATS = ("csv", "parquet")
# Rows fetched from the cursor and written at a time (one Parquet row group each).
CHUNK_ROWS = 10_000
# The API's download covers at most this many days at once.
MAX_DOWNLOAD_DAYS = 31
# A UTC day is exported by the schedule (and may be by the command) only this long
# after it ended, so events that arrive a little late are in its file.
LATE_DATA_GRACE = timedelta(hours=1)
# An RQ job catching up a workspace's days may run long (a first backfill).
EXPORT_JOB_TIMEOUT = 6 * 3600
PART_NAME = "part-00000"
MARKER_NAME = "_SUCCESS"

_TIMESTAMP = pa.timestamp("us", tz="UTC")


class ExportRefused(ValueError):
    """Bad export arguments; `field` names the argument at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Column:
    name: str
    source: str  # the ORM path read with values_list
    type: pa.DataType
    nullable: bool = False
    is_json: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    model: type
    time_column: str  # the column whose UTC day is the partition
    columns: tuple[Column, ...]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(
            [
                pa.field(column.name, column.type, nullable=column.nullable)
                for column in self.columns
            ]
        )

    @property
    def header(self) -> list[str]:
        return [column.name for column in self.columns]


def _int(name: str, source: str | None = None, *, nullable: bool = False) -> Column:
    return Column(name, source or name, pa.int64(), nullable)


def _text(name: str, source: str | None = None) -> Column:
    return Column(name, source or name, pa.string())


def _timestamp(name: str, *, nullable: bool = False) -> Column:
    return Column(name, name, _TIMESTAMP, nullable)


def _json(name: str) -> Column:
    return Column(name, name, pa.string(), is_json=True)


TABLES: dict[str, Table] = {
    "messages": Table(
        name="messages",
        model=Message,
        time_column="created_at",
        columns=(
            _int("id"),
            _int("workspace_id"),
            _int("profile_id"),
            _text("user_id", "profile__user_id"),
            _int("journey_id", nullable=True),
            _int("journey_version_id", nullable=True),
            _text("node_id"),
            Column("chain_index", "chain_index", pa.int32()),
            _text("variant"),
            _text("channel"),
            _int("template_version_id", nullable=True),
            _text("status"),
            _text("reason"),
            _text("topic"),
            Column("transactional", "transactional", pa.bool_()),
            Column("is_shadow", "is_shadow", pa.bool_()),
            Column("attempts", "attempts", pa.int32()),
            _text("provider_message_id"),
            _timestamp("created_at"),
            _timestamp("sent_at", nullable=True),
            _timestamp("delivered_at", nullable=True),
            _timestamp("opened_at", nullable=True),
            _timestamp("clicked_at", nullable=True),
            _timestamp("failed_at", nullable=True),
        ),
    ),
    "message_events": Table(
        name="message_events",
        model=MessageEvent,
        time_column="at",
        columns=(
            _int("id"),
            _int("workspace_id"),
            _int("message_id"),
            _int("profile_id", "message__profile_id"),
            _text("user_id", "message__profile__user_id"),
            _int("journey_id", "message__journey_id", nullable=True),
            _int("journey_version_id", "message__journey_version_id", nullable=True),
            _text("node_id", "message__node_id"),
            _text("variant", "message__variant"),
            _text("channel", "message__channel"),
            _text("kind"),
            _timestamp("at"),
            _json("data"),
        ),
    ),
    "events": Table(
        name="events",
        model=Event,
        time_column="timestamp",
        columns=(
            _int("id"),
            _int("workspace_id"),
            _text("type"),
            _text("name"),
            _int("profile_id"),
            _text("user_id", "profile__user_id"),
            _text("message_id"),
            _timestamp("timestamp"),
            _timestamp("received_at"),
            _json("properties"),
            _json("context"),
        ),
    ),
}
TABLE_NAMES = tuple(TABLES)


# --------------------------------------------------------------------------- checks


def table_get(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise ExportRefused(
            "table", f"Unknown table {name!r}: expected one of {', '.join(TABLE_NAMES)}."
        ) from None


def format_check(file_format: str) -> str:
    if file_format not in FORMATS:
        raise ExportRefused(
            "format", f"Unknown format {file_format!r}: expected one of {', '.join(FORMATS)}."
        )
    return file_format


def day_parse(field: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ExportRefused(field, f"{field} {value!r} is not a date (YYYY-MM-DD).") from None


def range_check(*, since: date, until: date, max_days: int | None = None) -> None:
    if until < since:
        raise ExportRefused("until", f"until {until} is before since {since}.")
    days = (until - since).days + 1
    if max_days is not None and days > max_days:
        raise ExportRefused(
            "until", f"The range {since} to {until} is {days} days; at most {max_days} at once."
        )


def last_finished_day(*, now: datetime) -> date:
    """The latest UTC day that ended at least LATE_DATA_GRACE ago."""
    return (now.astimezone(UTC) - LATE_DATA_GRACE).date() - timedelta(days=1)


def _day_bounds(since: date, until: date) -> tuple[datetime, datetime]:
    start = datetime.combine(since, time.min, tzinfo=UTC)
    return start, datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC)


# --------------------------------------------------------------------------- reads


def export_rows(*, workspace: Workspace, table: Table, since: date, until: date) -> QuerySet:
    """The workspace's rows of the table whose time column falls on the UTC days since
    to until (inclusive), oldest first, as tuples in the table's column order."""
    start, end = _day_bounds(since, until)
    return (
        table.model.objects.filter(
            workspace=workspace,
            **{f"{table.time_column}__gte": start, f"{table.time_column}__lt": end},
        )
        .order_by(table.time_column, "id")
        .values_list(*(column.source for column in table.columns))
    )


def _streamed_rows(rows: QuerySet, chunk_size: int) -> Iterator[tuple]:
    # .iterator() reads through a server-side cursor, chunk_size rows per fetch.
    return rows.iterator(chunk_size=chunk_size)


def first_day(*, workspace: Workspace, table: Table) -> date | None:
    earliest = table.model.objects.filter(workspace=workspace).aggregate(
        first=Min(table.time_column)
    )["first"]
    return earliest.astimezone(UTC).date() if earliest else None


# --------------------------------------------------------------------------- writers


def _csv_value(value: Any, column: Column) -> Any:
    if value is None:
        return ""
    if column.is_json:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    if column.type == _TIMESTAMP:
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class CsvWriter:
    """UTF-8, comma-separated, a header line, `\\r\\n` line ends (RFC 4180); NULL is an
    empty field, booleans true / false, timestamps ISO 8601 in UTC with microseconds."""

    extension = "csv"

    def __init__(self, handle, table: Table):
        self.table = table
        self.writer = csv.writer(handle)
        self.writer.writerow(table.header)

    def write_chunk(self, rows: list[tuple]) -> None:
        columns = self.table.columns
        self.writer.writerows(
            [_csv_value(value, column) for value, column in zip(row, columns, strict=True)]
            for row in rows
        )

    def close(self) -> None:
        """The caller owns the text handle and closes it."""


class ParquetWriter:
    """One row group per chunk, with the table's explicit Arrow schema."""

    extension = "parquet"

    def __init__(self, handle, table: Table):
        self.table = table
        self.schema = table.schema
        self.writer = pq.ParquetWriter(handle, self.schema)

    def write_chunk(self, rows: list[tuple]) -> None:
        arrays = []
        for index, column in enumerate(self.table.columns):
            values = [row[index] for row in rows]
            if column.is_json:
                values = [orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode() for v in values]
            arrays.append(pa.array(values, type=column.type))
        self.writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


WRITERS: dict[str, type] = {"csv": CsvWriter, "parquet": ParquetWriter}


def rows_write(
    *,
    rows: Iterable[tuple],
    table: Table,
    file_format: str,
    handle,
    chunk_size: int = CHUNK_ROWS,
    on_chunk: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Write rows to an open binary (Parquet) or text (CSV) handle, chunk_size at a
    time. Returns (rows, chunks); `on_chunk(size)` is called after each chunk."""
    writer = WRITERS[file_format](handle, table)
    total = chunks = 0
    iterator = iter(rows)
    try:
        while chunk := list(islice(iterator, chunk_size)):
            writer.write_chunk(chunk)
            total += len(chunk)
            chunks += 1
            if on_chunk is not None:
                on_chunk(len(chunk))
    finally:
        writer.close()
    return total, chunks


# --------------------------------------------------------------------------- files


def partition_dir(*, root: Path | str, workspace: Workspace, table: str, day: date) -> Path:
    return Path(root) / workspace.slug / table / f"date={day.isoformat()}"


def partition_is_done(*, root: Path | str, workspace: Workspace, table: str, day: date) -> bool:
    return (
        partition_dir(root=root, workspace=workspace, table=table, day=day) / MARKER_NAME
    ).exists()


@dataclass(frozen=True)
class PartitionWritten:
    table: str
    day: date
    rows: int
    chunks: int
    path: Path


def _replace_atomically(directory: Path, name: str, write: Callable[[Any], Any], mode: str):
    temporary = directory / f".{name}.{uuid.uuid4().hex}.tmp"  # hidden from readers' globs
    try:
        open_args = {"newline": "", "encoding": "utf-8"} if "b" not in mode else {}
        with open(temporary, mode, **open_args) as handle:
            result = write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, directory / name)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return result


def warehouse_partition_write(
    *,
    workspace: Workspace,
    table: str,
    day: date,
    file_format: str,
    root: Path | str,
    chunk_size: int = CHUNK_ROWS,
    on_chunk: Callable[[int], None] | None = None,
) -> PartitionWritten:
    """Write one table's UTC day for the workspace, replacing what was there. The
    marker goes first and comes back last: a reader (or the schedule) never takes a
    half-written day for a finished one."""
    spec = table_get(table)
    format_check(file_format)
    directory = partition_dir(root=root, workspace=workspace, table=table, day=day)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER_NAME).unlink(missing_ok=True)
    part = f"{PART_NAME}.{WRITERS[file_format].extension}"
    rows = _streamed_rows(
        export_rows(workspace=workspace, table=spec, since=day, until=day), chunk_size
    )
    total, chunks = _replace_atomically(
        directory,
        part,
        lambda handle: rows_write(
            rows=rows,
            table=spec,
            file_format=file_format,
            handle=handle,
            chunk_size=chunk_size,
            on_chunk=on_chunk,
        ),
        "wb" if file_format == "parquet" else "w",
    )
    for stale in directory.glob(f"{PART_NAME}.*"):  # the other format's file of an earlier run
        if stale.name != part:
            stale.unlink()
    marker = {
        "table": table,
        "date": day.isoformat(),
        "format": file_format,
        "rows": total,
        "exported_at": timezone.now().astimezone(UTC).isoformat(),
    }
    _replace_atomically(
        directory, MARKER_NAME, lambda handle: handle.write(orjson.dumps(marker)), "wb"
    )
    return PartitionWritten(table=table, day=day, rows=total, chunks=chunks, path=directory / part)


def _days(since: date, until: date) -> Iterator[date]:
    day = since
    while day <= until:
        yield day
        day += timedelta(days=1)


def _summary(written: list[PartitionWritten]) -> dict[str, dict[str, int]]:
    summary: dict[str, dict[str, int]] = {}
    for partition in written:
        totals = summary.setdefault(partition.table, {"partitions": 0, "rows": 0})
        totals["partitions"] += 1
        totals["rows"] += partition.rows
    return summary


def warehouse_export(
    *,
    workspace: Workspace,
    tables: Iterable[str],
    since: date,
    until: date,
    file_format: str,
    root: Path | str,
    context: AuditContext,
    now: datetime | None = None,
    chunk_size: int = CHUNK_ROWS,
) -> list[PartitionWritten]:
    """Export the tables' finished UTC days since..until (inclusive) to files under
    root, each day replaced whole; one audit row (export) says what was written."""
    names = [table_get(name).name for name in tables]
    format_check(file_format)
    range_check(since=since, until=until)
    latest = last_finished_day(now=now or timezone.now())
    if until > latest:
        raise ExportRefused(
            "until",
            f"until {until} is not a finished day yet: files are written for days up to "
            f"{latest} (UTC, {int(LATE_DATA_GRACE.total_seconds() // 3600)} h after midnight).",
        )
    written = [
        warehouse_partition_write(
            workspace=workspace,
            table=name,
            day=day,
            file_format=file_format,
            root=root,
            chunk_size=chunk_size,
        )
        for name in names
        for day in _days(since, until)
    ]
    _audit(
        workspace=workspace,
        context=context,
        written=written,
        file_format=file_format,
        destination=str(root),
        since=since,
        until=until,
    )
    return written


def _audit(
    *,
    workspace: Workspace,
    context: AuditContext,
    written: list[PartitionWritten],
    file_format: str,
    destination: str,
    since: date,
    until: date,
) -> None:
    audit_record(
        context=context,
        action=AuditAction.WAREHOUSE_EXPORT,
        workspace=workspace,
        object_type="analytics.warehouse_export",
        object_repr=f"Warehouse export {since} to {until}",
        changes={
            "tables": _summary(written),
            "since": since.isoformat(),
            "until": until.isoformat(),
            "format": file_format,
            "destination": destination,
        },
    )


def warehouse_export_pending(
    *,
    workspace: Workspace,
    file_format: str,
    root: Path | str,
    now: datetime | None = None,
    chunk_size: int = CHUNK_ROWS,
) -> list[PartitionWritten]:
    """Export every finished UTC day of each table, from its first row on, that has
    no marker yet; audited (as the schedule) when anything was written. Days already
    exported cost one file check each."""
    latest = last_finished_day(now=now or timezone.now())
    written: list[PartitionWritten] = []
    for name, spec in TABLES.items():
        start = first_day(workspace=workspace, table=spec)
        if start is None or start > latest:
            continue
        for day in _days(start, latest):
            if partition_is_done(root=root, workspace=workspace, table=name, day=day):
                continue
            written.append(
                warehouse_partition_write(
                    workspace=workspace,
                    table=name,
                    day=day,
                    file_format=file_format,
                    root=root,
                    chunk_size=chunk_size,
                )
            )
    if written:
        _audit(
            workspace=workspace,
            context=AuditContext.system("Scheduled warehouse export"),
            written=written,
            file_format=file_format,
            destination=str(root),
            since=min(partition.day for partition in written),
            until=max(partition.day for partition in written),
        )
    return written


# --------------------------------------------------------------------------- schedule


def warehouse_export_task(workspace_id: int) -> int:
    """RQ entry point: catch the workspace's files up to the last finished day. One run
    per workspace at a time (a second one returns at once). Returns partitions written."""
    from django.core.cache import cache

    root = settings.WAREHOUSE_EXPORT_DIR
    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if not root or workspace is None:
        return 0
    lock = f"warehouse-export-running:{workspace_id}"
    if not cache.add(lock, "1", timeout=EXPORT_JOB_TIMEOUT):
        return 0
    try:
        written = warehouse_export_pending(
            workspace=workspace, file_format=settings.WAREHOUSE_EXPORT_FORMAT, root=root
        )
    finally:
        cache.delete(lock)
    return len(written)


def scheduler_duty() -> None:
    """Once per finished UTC day (across scheduler restarts), when WAREHOUSE_EXPORT_DIR
    is set: one RQ job per workspace exporting its days not yet exported."""
    import django_rq
    from django.core.cache import cache

    if not settings.WAREHOUSE_EXPORT_DIR:
        return
    day = last_finished_day(now=timezone.now())
    if not cache.add(f"duty:warehouse_export:{day.isoformat()}", "1", timeout=3 * 86400):
        return
    queue = django_rq.get_queue("analytics")
    for workspace_id in Workspace.objects.order_by("pk").values_list("pk", flat=True):
        queue.enqueue(
            "analytics.exports.warehouse_export_task",
            workspace_id,
            job_id=f"warehouse-export-{workspace_id}-{day.isoformat()}",
            job_timeout=EXPORT_JOB_TIMEOUT,
        )
    logger.info("warehouse export of %s queued", day)


# --------------------------------------------------------------------------- download


def _csv_chunks(rows: Iterator[tuple], table: Table, chunk_size: int) -> Iterator[str]:
    writer = csv.writer(Echo())
    yield writer.writerow(table.header)
    columns = table.columns
    while chunk := list(islice(rows, chunk_size)):
        yield "".join(
            writer.writerow(
                [_csv_value(value, column) for value, column in zip(row, columns, strict=True)]
            )
            for row in chunk
        )


def warehouse_csv_download(
    *,
    request: HttpRequest,
    workspace: Workspace,
    table: str,
    since: date,
    until: date,
    context: AuditContext,
    chunk_size: int = CHUNK_ROWS,
) -> StreamingHttpResponse:
    """One table's rows of the UTC days since..until (at most MAX_DOWNLOAD_DAYS, today
    included so far) as a streamed CSV with the files' columns; audited (export)."""
    spec = table_get(table)
    range_check(since=since, until=until, max_days=MAX_DOWNLOAD_DAYS)
    audit_record(
        context=context,
        action=AuditAction.WAREHOUSE_EXPORT,
        workspace=workspace,
        object_type="analytics.warehouse_export",
        object_repr=f"Warehouse download of {table} {since} to {until}",
        changes={
            "tables": {table: {}},
            "since": since.isoformat(),
            "until": until.isoformat(),
            "format": "csv",
            "destination": "download",
        },
    )
    rows = _streamed_rows(
        export_rows(workspace=workspace, table=spec, since=since, until=until), chunk_size
    )
    response = StreamingHttpResponse(
        streamed(_csv_chunks(rows, spec, chunk_size), request),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = (
        f'attachment; filename="{workspace.slug}-{table}-{since}-{until}.csv"'
    )
    return response
