"""Warehouse exports: messages, message events and events of two UTC days (with rows a
moment either side of midnight) written as CSV and Parquet partitions, read back and
compared with hand-written rows; chunked writing; idempotent re-exports; the schedule
exporting finished days once; the CSV download API; refusals that name the argument;
another workspace's rows never leak."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import django_rq
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import time_machine
from asgiref.sync import async_to_sync
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import AsyncClient
from rq import SimpleWorker

from analytics import exports
from delivery.models import Message, MessageEvent
from engagement_site.workspaces.models import AuditLog
from engagement_site.workspaces.roles import Role
from engagement_site.workspaces.services import AuditContext
from journeys.models import Journey, JourneyVersion
from segments.models import Event, Profile
from tests.conftest import logged_in

NOW = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)  # 12-04 is finished (an hour's grace)
DAY3, DAY4 = date(2026, 12, 3), date(2026, 12, 4)
CONTEXT = AuditContext.system("test")


def at(day: int, hour: int, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, second, micro, tzinfo=UTC)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def data(workspace, other_workspace):
    """Three messages, three message events and two events of acme over 12-03 and
    12-04 UTC (one message half a second before midnight, one at midnight, an event a
    microsecond before it), and one of each for globex on the same days."""
    ada = Profile.objects.create(workspace=workspace, user_id="ada")
    anonymous = Profile.objects.create(workspace=workspace, anonymous_ids=["anon-1"])
    journey = Journey.objects.create(workspace=workspace, name="Welcome")
    version = JourneyVersion.objects.create(journey=journey, number=1, definition={})
    m1 = Message.objects.create(
        workspace=workspace, profile=ada, idempotency_key="m1", channel="email",
        journey=journey, journey_version=version, node_id="welcome", variant="a",
        status="sent", topic="news", attempts=1, provider_message_id="prov-1",
        created_at=at(3, 10), sent_at=at(3, 10, 0, 5),
        rendered={"subject": "Hello", "html": "<p>secret body</p>"},
    )  # fmt: skip
    m2 = Message.objects.create(
        workspace=workspace, profile=anonymous, idempotency_key="m2", channel="sms",
        status="failed", reason="no consent", transactional=True,
        created_at=at(3, 23, 59, 59, 500000), failed_at=at(4, 0, 0, 0, 250000),
    )  # fmt: skip
    m3 = Message.objects.create(
        workspace=workspace, profile=ada, idempotency_key="m3", channel="push",
        journey=journey, journey_version=version, node_id="nudge", chain_index=1,
        is_shadow=True, created_at=at(4, 0),
    )  # fmt: skip
    e1 = MessageEvent.objects.create(
        workspace=workspace, message=m1, kind="sent", at=at(3, 10, 0, 5)
    )
    e2 = MessageEvent.objects.create(
        workspace=workspace, message=m1, kind="opened", at=at(4, 8, 30), data={"ua": "Mail", "b": 1}
    )
    e3 = MessageEvent.objects.create(
        workspace=workspace, message=m2, kind="failed", at=at(4, 0, 0, 0, 250000),
        data={"error": "no consent"},
    )  # fmt: skip
    v1 = Event.objects.create(
        workspace=workspace, profile=ada, type="track", name="Order Completed",
        message_id="evt-1", timestamp=at(3, 23, 59, 59, 999999), received_at=at(4, 0, 0, 1),
        properties={"total": 42.5, "currency": "EUR"}, context={"ip": "203.0.113.9"},
    )  # fmt: skip
    v2 = Event.objects.create(
        workspace=workspace, profile=anonymous, type="page", name="", message_id="evt-2",
        timestamp=at(4, 12), received_at=at(4, 12, 0, 2),
    )  # fmt: skip
    # The other tenant, on the same days.
    stranger = Profile.objects.create(workspace=other_workspace, user_id="ada")
    theirs = Message.objects.create(
        workspace=other_workspace, profile=stranger, idempotency_key="x1", channel="email",
        created_at=at(3, 12),
    )  # fmt: skip
    MessageEvent.objects.create(workspace=other_workspace, message=theirs, kind="sent", at=at(4, 1))
    Event.objects.create(
        workspace=other_workspace, profile=stranger, name="Order Completed",
        message_id="x-evt", timestamp=at(3, 13),
    )  # fmt: skip
    return {
        "ada": ada, "anonymous": anonymous, "journey": journey, "version": version,
        "messages": (m1, m2, m3), "message_events": (e1, e2, e3), "events": (v1, v2),
    }  # fmt: skip


def expected(workspace, data) -> dict[str, dict[date, list[dict]]]:
    """The rows of each table by day, as Parquet gives them back (typed)."""
    ws, ada, anonymous = workspace.pk, data["ada"].pk, data["anonymous"].pk
    journey, version = data["journey"].pk, data["version"].pk
    m1, m2, m3 = (m.pk for m in data["messages"])
    e1, e2, e3 = (e.pk for e in data["message_events"])
    v1, v2 = (e.id for e in data["events"])

    def message(**fields):
        row = {
            "workspace_id": ws, "journey_id": None, "journey_version_id": None, "node_id": "",
            "chain_index": 0, "variant": "", "template_version_id": None, "status": "queued",
            "reason": "", "topic": "", "transactional": False, "is_shadow": False,
            "attempts": 0, "provider_message_id": "", "sent_at": None, "delivered_at": None,
            "opened_at": None, "clicked_at": None, "failed_at": None,
        }  # fmt: skip
        return row | fields

    return {
        "messages": {
            DAY3: [
                message(
                    id=m1,
                    profile_id=ada,
                    user_id="ada",
                    journey_id=journey,
                    journey_version_id=version,
                    node_id="welcome",
                    variant="a",
                    channel="email",
                    status="sent",
                    topic="news",
                    attempts=1,
                    provider_message_id="prov-1",
                    created_at=at(3, 10),
                    sent_at=at(3, 10, 0, 5),
                ),
                message(
                    id=m2,
                    profile_id=anonymous,
                    user_id="",
                    channel="sms",
                    status="failed",
                    reason="no consent",
                    transactional=True,
                    created_at=at(3, 23, 59, 59, 500000),
                    failed_at=at(4, 0, 0, 0, 250000),
                ),
            ],
            DAY4: [
                message(
                    id=m3,
                    profile_id=ada,
                    user_id="ada",
                    journey_id=journey,
                    journey_version_id=version,
                    node_id="nudge",
                    chain_index=1,
                    channel="push",
                    is_shadow=True,
                    created_at=at(4, 0),
                )
            ],
        },
        "message_events": {
            DAY3: [
                {
                    "id": e1,
                    "workspace_id": ws,
                    "message_id": m1,
                    "profile_id": ada,
                    "user_id": "ada",
                    "journey_id": journey,
                    "journey_version_id": version,
                    "node_id": "welcome",
                    "variant": "a",
                    "channel": "email",
                    "kind": "sent",
                    "at": at(3, 10, 0, 5),
                    "data": "{}",
                },
            ],
            DAY4: [
                {
                    "id": e3,
                    "workspace_id": ws,
                    "message_id": m2,
                    "profile_id": anonymous,
                    "user_id": "",
                    "journey_id": None,
                    "journey_version_id": None,
                    "node_id": "",
                    "variant": "",
                    "channel": "sms",
                    "kind": "failed",
                    "at": at(4, 0, 0, 0, 250000),
                    "data": '{"error":"no consent"}',
                },
                {
                    "id": e2,
                    "workspace_id": ws,
                    "message_id": m1,
                    "profile_id": ada,
                    "user_id": "ada",
                    "journey_id": journey,
                    "journey_version_id": version,
                    "node_id": "welcome",
                    "variant": "a",
                    "channel": "email",
                    "kind": "opened",
                    "at": at(4, 8, 30),
                    "data": '{"b":1,"ua":"Mail"}',
                },
            ],
        },
        "events": {
            DAY3: [
                {
                    "id": v1,
                    "workspace_id": ws,
                    "type": "track",
                    "name": "Order Completed",
                    "profile_id": ada,
                    "user_id": "ada",
                    "message_id": "evt-1",
                    "timestamp": at(3, 23, 59, 59, 999999),
                    "received_at": at(4, 0, 0, 1),
                    "properties": '{"currency":"EUR","total":42.5}',
                    "context": '{"ip":"203.0.113.9"}',
                },
            ],
            DAY4: [
                {
                    "id": v2,
                    "workspace_id": ws,
                    "type": "page",
                    "name": "",
                    "profile_id": anonymous,
                    "user_id": "",
                    "message_id": "evt-2",
                    "timestamp": at(4, 12),
                    "received_at": at(4, 12, 0, 2),
                    "properties": "{}",
                    "context": "{}",
                },
            ],
        },
    }


def as_csv(row: dict, table: str) -> list[str]:
    """The CSV cells of a typed row, in the table's column order."""
    cells = []
    for column in exports.TABLES[table].columns:
        value = row[column.name]
        if value is None:
            cells.append("")
        elif isinstance(value, bool):
            cells.append("true" if value else "false")
        elif isinstance(value, datetime):
            cells.append(value.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        else:
            cells.append(str(value))
    return cells


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def tree(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


# --------------------------------------------------------------------------- files


def test_csv_and_parquet_partitions_hold_exactly_the_workspaces_rows_per_utc_day(
    workspace, data, tmp_path, frozen
):
    rows = expected(workspace, data)
    for file_format in ("csv", "parquet"):
        root = tmp_path / file_format
        written = exports.warehouse_export(
            workspace=workspace, tables=exports.TABLE_NAMES, since=DAY3, until=DAY4,
            file_format=file_format, root=root, context=CONTEXT,
        )  # fmt: skip
        assert [(p.table, p.day, p.rows) for p in written] == [
            ("messages", DAY3, 2), ("messages", DAY4, 1),
            ("message_events", DAY3, 1), ("message_events", DAY4, 2),
            ("events", DAY3, 1), ("events", DAY4, 1),
        ]  # fmt: skip
        assert tree(root) == sorted(
            f"acme/{table}/date={day}/{name}"
            for table in ("messages", "message_events", "events")
            for day in ("2026-12-03", "2026-12-04")
            for name in ("_SUCCESS", f"part-00000.{file_format}")
        )
        for table, by_day in rows.items():
            for day, day_rows in by_day.items():
                directory = root / "acme" / table / f"date={day}"
                part = directory / f"part-00000.{file_format}"
                if file_format == "csv":
                    assert read_csv(part) == [
                        exports.TABLES[table].header,
                        *(as_csv(row, table) for row in day_rows),
                    ]
                else:
                    parquet = pq.read_table(part)
                    assert parquet.schema == exports.TABLES[table].schema
                    assert parquet.to_pylist() == day_rows
                assert orjson.loads((directory / "_SUCCESS").read_bytes()) == {
                    "table": table, "date": day.isoformat(), "format": file_format,
                    "rows": len(day_rows), "exported_at": "2026-12-05T02:00:00+00:00",
                }  # fmt: skip
    # The rendered body is not exported; Parquet timestamps are UTC microseconds.
    assert "rendered" not in exports.TABLES["messages"].header
    assert exports.TABLES["messages"].schema.field("created_at").type == pa.timestamp(
        "us", tz="UTC"
    )
    audits = AuditLog.objects.filter(workspace=workspace, action="warehouse.export").order_by(
        "sequence"
    )
    assert [row.changes for row in audits] == [
        {
            "tables": {
                "messages": {"partitions": 2, "rows": 3},
                "message_events": {"partitions": 2, "rows": 3},
                "events": {"partitions": 2, "rows": 2},
            },
            "since": "2026-12-03",
            "until": "2026-12-04",
            "format": file_format,
            "destination": str(tmp_path / file_format),
        }
        for file_format in ("csv", "parquet")
    ]
    assert (
        AuditLog.objects.filter(action="warehouse.export").exclude(workspace=workspace).count() == 0
    )


def test_rows_are_read_and_written_in_chunks(workspace, tmp_path, frozen):
    ada = Profile.objects.create(workspace=workspace, user_id="ada")
    for number in range(5):
        Event.objects.create(
            workspace=workspace, profile=ada, name="Viewed", message_id=f"v{number}",
            timestamp=at(3, 9, number),
        )  # fmt: skip
    for file_format in ("parquet", "csv"):
        sizes: list[int] = []
        open_cursors: list[int] = []

        def chunk_written(size: int, sizes=sizes, open_cursors=open_cursors) -> None:
            sizes.append(size)
            # The rows come from a server-side cursor, open while the file is written
            # (closed once its last rows were fetched).
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_cursors WHERE name LIKE '_django_curs_%%'")
                open_cursors.append(cursor.fetchone()[0])

        written = exports.warehouse_partition_write(
            workspace=workspace, table="events", day=DAY3, file_format=file_format,
            root=tmp_path / file_format, chunk_size=2, on_chunk=chunk_written,
        )  # fmt: skip
        assert (written.rows, written.chunks, sizes, open_cursors) == (5, 3, [2, 2, 1], [1, 1, 0])
    # One Parquet row group per chunk: the day never was one batch in memory.
    parquet = pq.ParquetFile(tmp_path / "parquet/acme/events/date=2026-12-03/part-00000.parquet")
    assert [parquet.metadata.row_group(i).num_rows for i in range(3)] == [2, 2, 1]
    assert parquet.metadata.num_row_groups == 3
    assert [
        row[6] for row in read_csv(tmp_path / "csv/acme/events/date=2026-12-03/part-00000.csv")
    ] == ["message_id", "v0", "v1", "v2", "v3", "v4"]


def test_exporting_a_day_again_replaces_it_whole(workspace, data, tmp_path, frozen):
    args = dict(workspace=workspace, tables=["messages"], since=DAY3, until=DAY3, root=tmp_path,
                context=CONTEXT)  # fmt: skip
    exports.warehouse_export(file_format="csv", **args)
    part = tmp_path / "acme/messages/date=2026-12-03/part-00000.csv"
    first = part.read_bytes()
    exports.warehouse_export(file_format="csv", **args)
    assert part.read_bytes() == first
    assert len(read_csv(part)) == 3  # header + 2, no duplicates
    # A message deleted meanwhile is gone from the new file; another format replaces the old.
    data["messages"][0].delete()
    exports.warehouse_export(file_format="parquet", **args)
    assert tree(tmp_path) == [
        "acme/messages/date=2026-12-03/_SUCCESS",
        "acme/messages/date=2026-12-03/part-00000.parquet",
    ]
    assert pq.read_table(tmp_path / "acme/messages/date=2026-12-03/part-00000.parquet").column(
        "id"
    ).to_pylist() == [data["messages"][1].pk]


def test_a_failed_write_leaves_no_file_and_no_marker(workspace, data, tmp_path, frozen):
    exports.warehouse_export(
        workspace=workspace, tables=["events"], since=DAY3, until=DAY3, file_format="csv",
        root=tmp_path, context=CONTEXT,
    )  # fmt: skip
    directory = tmp_path / "acme/events/date=2026-12-03"
    before = (directory / "part-00000.csv").read_bytes()

    def interrupted(size: int) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        exports.warehouse_partition_write(
            workspace=workspace, table="events", day=DAY3, file_format="csv", root=tmp_path,
            on_chunk=interrupted,
        )  # fmt: skip
    # The old file stays whole, no temporary is left, and the day is no longer marked done.
    assert sorted(path.name for path in directory.iterdir()) == ["part-00000.csv"]
    assert (directory / "part-00000.csv").read_bytes() == before
    assert not exports.partition_is_done(
        root=tmp_path, workspace=workspace, table="events", day=DAY3
    )


# --------------------------------------------------------------------------- command


def test_the_command_exports_and_audits(workspace, data, tmp_path, frozen, capsys):
    call_command(
        "export_warehouse", "--workspace", "acme", "--table", "events", "--format", "csv",
        "--since", "2026-12-03", "--until", "2026-12-04", "--out", str(tmp_path),
    )  # fmt: skip
    rows = expected(workspace, data)["events"]
    for day in (DAY3, DAY4):
        assert read_csv(tmp_path / f"acme/events/date={day}/part-00000.csv")[1:] == [
            as_csv(row, "events") for row in rows[day]
        ]
    assert capsys.readouterr().out.splitlines()[-1] == "acme: 2 partitions, 2 rows"
    audit = AuditLog.objects.get(workspace=workspace, action="warehouse.export")
    assert (audit.actor_label, audit.changes["tables"]) == (
        "manage.py export_warehouse",
        {"events": {"partitions": 2, "rows": 2}},
    )


def test_the_command_defaults_to_the_last_finished_day_and_the_settings(
    workspace, data, tmp_path, frozen, settings
):
    settings.WAREHOUSE_EXPORT_DIR = str(tmp_path)
    settings.WAREHOUSE_EXPORT_FORMAT = "parquet"
    call_command("export_warehouse", "--workspace", "acme")
    assert tree(tmp_path) == sorted(
        f"acme/{table}/date=2026-12-04/{name}"
        for table in ("messages", "message_events", "events")
        for name in ("_SUCCESS", "part-00000.parquet")
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--workspace", "nope"], "--workspace: no workspace 'nope'."),
        (["--table", "users"], "--table: Unknown table 'users': expected one of messages, "
         "message_events, events."),
        (["--format", "xlsx"], "--format: Unknown format 'xlsx': expected one of csv, parquet."),
        (["--since", "2026-13-01"], "--since: since '2026-13-01' is not a date (YYYY-MM-DD)."),
        (["--since", "2026-12-04", "--until", "2026-12-03"],
         "--until: until 2026-12-03 is before since 2026-12-04."),
        (["--since", "2026-12-05"], "--until: until 2026-12-05 is not a finished day yet: files "
         "are written for days up to 2026-12-04 (UTC, 1 h after midnight)."),
        (["--out", ""], "--out: give a directory (WAREHOUSE_EXPORT_DIR is not set)."),
    ],
)  # fmt: skip
def test_the_command_refuses_bad_arguments_by_name(
    workspace, data, tmp_path, frozen, settings, arguments, message
):
    settings.WAREHOUSE_EXPORT_DIR = None
    options = {"--workspace": "acme", "--out": str(tmp_path)}
    for flag, value in zip(arguments[::2], arguments[1::2], strict=True):
        options[flag] = value
    with pytest.raises(CommandError) as refusal:
        call_command("export_warehouse", *[item for pair in options.items() for item in pair])
    assert str(refusal.value) == message
    assert tree(tmp_path) == []
    assert AuditLog.objects.filter(action="warehouse.export").count() == 0


# --------------------------------------------------------------------------- schedule


def run_worker() -> None:
    queue = django_rq.get_queue("analytics")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


@pytest.mark.django_db(transaction=True)
def test_the_schedule_exports_each_finished_day_once(
    workspace, other_workspace, data, tmp_path, settings
):
    settings.WAREHOUSE_EXPORT_DIR = str(tmp_path)
    settings.WAREHOUSE_EXPORT_FORMAT = "csv"
    queue = django_rq.get_queue("analytics")
    acme, globex = workspace.pk, other_workspace.pk
    with time_machine.travel(NOW, tick=False):
        exports.scheduler_duty()
        exports.scheduler_duty()  # same finished day: nothing queued again
        assert queue.job_ids == [
            f"warehouse-export-{acme}-2026-12-04",
            f"warehouse-export-{globex}-2026-12-04",
        ]
        run_worker()
    days = [f"{table}/date={day}" for table in ("events", "message_events", "messages")
            for day in ("2026-12-03", "2026-12-04")]  # fmt: skip
    assert tree(tmp_path / "acme") == sorted(
        f"{partition}/{name}" for partition in days for name in ("_SUCCESS", "part-00000.csv")
    )
    assert tree(tmp_path / "globex") == sorted(
        f"{partition}/{name}"
        # From each table's first day on, empty days included (its file has no rows).
        for partition in ("events/date=2026-12-03", "events/date=2026-12-04",
                          "message_events/date=2026-12-04",
                          "messages/date=2026-12-03", "messages/date=2026-12-04")
        for name in ("_SUCCESS", "part-00000.csv")
    )  # fmt: skip
    markers = {path: path.read_bytes() for path in tmp_path.rglob("_SUCCESS")}
    audit = AuditLog.objects.get(workspace=workspace, action="warehouse.export")
    assert (audit.actor_label, audit.changes["since"], audit.changes["until"]) == (
        "Scheduled warehouse export", "2026-12-03", "2026-12-04",
    )  # fmt: skip

    # Later that day: already queued today, nothing more.
    with time_machine.travel(NOW + timedelta(hours=20), tick=False):
        exports.scheduler_duty()
        assert queue.job_ids == []
    # Next day: a new event on the 5th, and one arriving late for the 4th, which stays
    # as it was exported (`--since` re-exports it on demand).
    Event.objects.create(
        workspace=workspace, profile=data["ada"], name="Late", message_id="late",
        timestamp=at(4, 20), received_at=at(5, 9),
    )  # fmt: skip
    Event.objects.create(
        workspace=workspace, profile=data["ada"], name="Viewed", message_id="new",
        timestamp=at(5, 9),
    )  # fmt: skip
    with time_machine.travel(NOW + timedelta(days=1), tick=False):
        exports.scheduler_duty()
        run_worker()
    assert {path: path.read_bytes() for path in markers} == markers
    assert [
        row[1:4] for row in read_csv(tmp_path / "acme/events/date=2026-12-05/part-00000.csv")
    ] == [["workspace_id", "type", "name"], [str(acme), "track", "Viewed"]]
    assert len(read_csv(tmp_path / "acme/events/date=2026-12-04/part-00000.csv")) == 2
    # A day without messages is exported too (done, no rows).
    assert read_csv(tmp_path / "acme/messages/date=2026-12-05/part-00000.csv") == [
        exports.TABLES["messages"].header
    ]
    assert AuditLog.objects.filter(workspace=workspace, action="warehouse.export").count() == 2


def test_the_schedule_is_off_without_a_directory(workspace, data, settings):
    settings.WAREHOUSE_EXPORT_DIR = None
    with time_machine.travel(NOW, tick=False):
        exports.scheduler_duty()
    assert django_rq.get_queue("analytics").job_ids == []


# --------------------------------------------------------------------------- API


def _api(user, slug: str = "acme"):
    client = logged_in(user)
    client.defaults["HTTP_X_WORKSPACE"] = slug
    return client


def _body(response) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(text.splitlines()))


def test_the_api_streams_a_tables_rows_as_csv_and_audits(owner, workspace, data, frozen):
    response = _api(owner).get(
        "/api/v1/exports/message_events", {"since": "2026-12-03", "until": "2026-12-04"}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="acme-message_events-2026-12-03-2026-12-04.csv"'
    )
    rows = expected(workspace, data)["message_events"]
    assert _body(response) == [
        exports.TABLES["message_events"].header,
        *(as_csv(row, "message_events") for row in rows[DAY3] + rows[DAY4]),
    ]
    audit = AuditLog.objects.get(workspace=workspace, action="warehouse.export")
    assert (audit.actor_label, audit.changes) == (
        "olivia",
        {"tables": {"message_events": {}}, "since": "2026-12-03", "until": "2026-12-04",
         "format": "csv", "destination": "download"},
    )  # fmt: skip


def test_the_api_streams_under_asgi_as_it_goes(owner, workspace, data, frozen):
    """Production serves through Daphne (ASGI): the view hands Django an asynchronous
    iterator, pulled chunk by chunk in the request's thread."""
    client = AsyncClient()
    client.force_login(owner)

    async def download() -> tuple[bool, list[str]]:
        response = await client.get(
            "/api/v1/exports/events", {"since": "2026-12-03"}, headers={"X-Workspace": "acme"}
        )
        return response.is_async, [chunk.decode() async for chunk in response.streaming_content]

    is_async, chunks = async_to_sync(download)()
    assert is_async is True
    rows = expected(workspace, data)["events"][DAY3]
    assert [list(csv.reader(chunk.splitlines())) for chunk in chunks] == [
        [exports.TABLES["events"].header],
        [as_csv(row, "events") for row in rows],
    ]


def test_the_api_gives_each_workspace_its_own_rows(outsider, other_workspace, data, frozen):
    response = _api(outsider, "globex").get("/api/v1/exports/messages", {"since": "2026-12-03"})
    body = _body(response)
    assert [(row[0], row[3], row[9]) for row in body[1:]] == [
        (str(Message.objects.get(idempotency_key="x1").pk), "ada", "email")
    ]


def test_the_api_allows_31_days(owner, workspace, data, frozen):
    response = _api(owner).get(
        "/api/v1/exports/events", {"since": "2026-11-04", "until": "2026-12-04"}
    )
    assert response.status_code == 200
    assert [row[7] for row in _body(response)] == [
        "timestamp",
        "2026-12-03T23:59:59.999999Z",
        "2026-12-04T12:00:00.000000Z",
    ]


def test_the_api_needs_the_export_permission(make_member, workspace, data, frozen):
    viewer = make_member(Role.VIEWER)
    response = _api(viewer).get("/api/v1/exports/events", {"since": "2026-12-03"})
    assert response.status_code == 403
    assert response.json() == {
        "code": "permission_denied",
        "message": "This role (viewer) lacks the permission analytics.export.",
    }
    assert AuditLog.objects.filter(action="warehouse.export").count() == 0


@pytest.mark.parametrize(
    ("path", "query", "errors"),
    [
        ("users", {"since": "2026-12-03"},
         {"table": ["Unknown table 'users': expected one of messages, message_events, events."]}),
        ("events", {}, {"since": ["This field is required."]}),
        ("events", {"since": "yesterday"},
         {"since": ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]}),
        ("events", {"since": "2026-12-04", "until": "2026-12-03"},
         {"until": ["until 2026-12-03 is before since 2026-12-04."]}),
        ("events", {"since": "2026-11-01", "until": "2026-12-02"},
         {"until": ["The range 2026-11-01 to 2026-12-02 is 32 days; at most 31 at once."]}),
        ("events", {"since": "2026-12-03", "format": "parquet"},
         {"format": ['"parquet" is not a valid choice.']}),
    ],
)  # fmt: skip
def test_the_api_refuses_bad_arguments_by_name(owner, workspace, data, frozen, path, query, errors):
    response = _api(owner).get(f"/api/v1/exports/{path}", query)
    assert response.status_code == 400
    assert response.json()["errors"] == errors
    assert AuditLog.objects.filter(action="warehouse.export").count() == 0


def test_the_export_endpoint_is_in_the_openapi_schema(client, db):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/exports/{table}"]["get"]
    assert list(operation["responses"]["200"]["content"]) == ["text/csv"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert sorted(parameters) == ["format", "since", "table", "until"]
    assert parameters["table"]["schema"]["enum"] == ["events", "message_events", "messages"]


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"WAREHOUSE_EXPORT_DIR": "exports"},
         "WAREHOUSE_EXPORT_DIR='exports' is not an absolute path"),
        ({"WAREHOUSE_EXPORT_FORMAT": "xlsx"},
         "WAREHOUSE_EXPORT_FORMAT='xlsx' is not valid: expected one of csv, parquet"),
        ({"WAREHOUSE_EXPORT_DIR": "/srv/exports", "WAREHOUSE_EXPORT_FORMAT": "csv"}, None),
    ],
)  # fmt: skip
def test_the_export_settings_are_parsed_strictly(environment, message):
    loaded = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
         "print(settings.WAREHOUSE_EXPORT_DIR, settings.WAREHOUSE_EXPORT_FORMAT)"],
        cwd=Path(__file__).resolve().parents[2], env={**os.environ, **environment},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if message is None:
        assert (loaded.returncode, loaded.stdout) == (0, "/srv/exports csv\n")
    else:
        assert loaded.returncode == 1
        assert f"ImproperlyConfigured: {message}" in loaded.stderr
