"""Importers: CSV / JSON / JSON Lines files of profiles, events or purchases, with a
column mapping, a dry run, and an import that goes through the same ingestion service
as the tracking API (so identity resolution, traits, schemas and dedup behave alike).

Each row becomes one Segment-spec message: profiles -> identify, events -> track,
purchases -> track "order_completed". A row's messageId is its mapped `message_id`
column or a hash of (kind, row), so importing the same file again stores nothing new.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from django.db import models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.timezone import make_aware

from segments.models import FileFormat, ImportJob, ImportKind

# Target fields per kind: name -> (required, type). "trait:<name>" / "property:<name>"
# targets are open-ended (any column can become a trait or an event property).
FIELDS: dict[str, dict[str, tuple[bool, str]]] = {
    ImportKind.PROFILES: {
        "user_id": (True, "string"),
        "anonymous_id": (False, "string"),
        "email": (False, "email"),
        "phone": (False, "string"),
        "first_name": (False, "string"),
        "last_name": (False, "string"),
        "name": (False, "string"),
        "time_zone": (False, "string"),
        "locale": (False, "string"),
        "created_at": (False, "datetime"),
        "message_id": (False, "string"),
    },
    ImportKind.EVENTS: {
        "user_id": (False, "string"),
        "anonymous_id": (False, "string"),
        "event": (True, "string"),
        "timestamp": (True, "datetime"),
        "message_id": (False, "string"),
    },
    ImportKind.PURCHASES: {
        "user_id": (True, "string"),
        "order_id": (True, "string"),
        "revenue": (True, "number"),
        "currency": (False, "string"),
        "timestamp": (True, "datetime"),
        "product_id": (False, "string"),
        "quantity": (False, "number"),
        "message_id": (False, "string"),
    },
}
OPEN_PREFIXES = {
    ImportKind.PROFILES: "trait:",
    ImportKind.EVENTS: "property:",
    ImportKind.PURCHASES: "property:",
}
IGNORE = ""  # a column mapped to "" is skipped
MAX_ERRORS_KEPT = 200
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


logger = logging.getLogger(__name__)


class ImportFileError(ValueError):
    """The file as a whole cannot be read (not a row problem)."""


@dataclass
class RowError:
    row: int
    column: str
    message: str

    def as_dict(self) -> dict[str, object]:
        return {"row": self.row, "column": self.column, "message": self.message}


@dataclass
class DryRun:
    rows: int = 0
    valid: int = 0
    errors: list[RowError] = field(default_factory=list)
    sample: list[dict[str, Any]] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        return self.rows - self.valid


def detect_format(filename: str, head: bytes) -> str:
    lowered = filename.lower()
    if lowered.endswith((".jsonl", ".ndjson")):
        return FileFormat.JSONL
    if lowered.endswith(".json"):
        return FileFormat.JSON
    if lowered.endswith(".csv"):
        return FileFormat.CSV
    stripped = head.removeprefix(b"\xef\xbb\xbf").lstrip()  # a UTF-8 byte order mark
    if stripped.startswith(b"["):
        return FileFormat.JSON
    if stripped.startswith(b"{"):
        return FileFormat.JSONL
    return FileFormat.CSV


def read_rows(data: bytes, file_format: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (row number as a person counts it, row). CSV row 1 is the header, so data
    starts at 2; JSON arrays count from 1; JSON Lines count lines."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportFileError(
            f"The file is not UTF-8 text (byte {error.start} is invalid)."
        ) from None
    if file_format == FileFormat.CSV:
        try:
            yield from _csv_rows(csv.DictReader(io.StringIO(text, newline="")))
        except csv.Error as error:  # e.g. a field over the csv module's size limit
            raise ImportFileError(f"The CSV file cannot be read: {error}") from None
    elif file_format == FileFormat.JSON:
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            raise ImportFileError(f"The file is not valid JSON: {error}") from None
        if not isinstance(items, list):
            raise ImportFileError("A JSON import must be an array of objects.")
        for number, item in enumerate(items, start=1):
            yield number, item if isinstance(item, dict) else {"__error__": "not a JSON object"}
    elif file_format == FileFormat.JSONL:
        # Only \n ends a line: str.splitlines() would also split on U+2028 and friends,
        # which may stand unescaped inside JSON strings.
        for number, line in enumerate(text.split("\n"), start=1):
            line = line.removesuffix("\r")
            if not line.strip():
                continue
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError as error:
                yield number, {"__error__": f"not valid JSON: {error}"}
                continue
            yield number, item if isinstance(item, dict) else {"__error__": "not a JSON object"}
    else:
        raise ImportFileError(f"Unknown file format {file_format!r}.")


def _csv_rows(reader: csv.DictReader) -> Iterator[tuple[int, dict[str, Any]]]:
    if not reader.fieldnames:
        raise ImportFileError("The CSV file has no header row.")
    duplicates = {name for name in reader.fieldnames if reader.fieldnames.count(name) > 1}
    if duplicates:
        raise ImportFileError(
            f"The CSV header repeats the column(s) {', '.join(sorted(duplicates))}."
        )
    for number, row in enumerate(reader, start=2):
        extra = row.pop(None, None)
        if extra:
            yield (
                number,
                {"__error__": f"row has {len(extra)} more value(s) than the header has columns"},
            )
        else:
            yield number, {key: (value if value != "" else None) for key, value in row.items()}


def columns_of(data: bytes, file_format: str, *, sample_rows: int = 50) -> list[str]:
    """Column names, in file order (JSON: the keys of the first rows)."""
    seen: dict[str, None] = {}
    for index, (_, row) in enumerate(read_rows(data, file_format)):
        for key in row:
            if key != "__error__":
                seen.setdefault(key, None)
        if index + 1 >= sample_rows:
            break
    return list(seen)


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


SYNONYMS = {
    "userid": "user_id", "customer_id": "user_id", "customerid": "user_id", "external_id": "user_id", "id": "user_id",
    "anonymousid": "anonymous_id", "e_mail": "email", "email_address": "email", "mobile": "phone", "phone_number": "phone",
    "firstname": "first_name", "lastname": "last_name", "full_name": "name", "timezone": "time_zone", "tz": "time_zone",
    "language": "locale", "signup_date": "created_at", "signed_up_at": "created_at", "createdat": "created_at",
    "event_name": "event", "name_of_event": "event", "time": "timestamp", "date": "timestamp", "occurred_at": "timestamp",
    "messageid": "message_id", "order": "order_id", "orderid": "order_id", "amount": "revenue", "total": "revenue",
    "price": "revenue", "productid": "product_id", "qty": "quantity",
}  # fmt: skip


def suggest_mapping(kind: str, columns: list[str]) -> dict[str, str]:
    """A first guess that the person then corrects: known names map to fields, the rest
    become traits (profiles) or properties (events, purchases)."""
    fields = FIELDS[kind]
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for column in columns:
        key = _normalise(column)
        target = key if key in fields else SYNONYMS.get(key, "")
        if target in fields and target not in taken:
            mapping[column] = target
            taken.add(target)
        else:
            mapping[column] = OPEN_PREFIXES[kind] + (key or "column")
    return mapping


def validate_mapping(kind: str, mapping: dict[str, str]) -> list[str]:
    """Problems with the mapping itself, each naming the column or field."""
    fields = FIELDS[kind]
    problems = []
    targets = [target for target in mapping.values() if target != IGNORE]
    for column, target in mapping.items():
        if target == IGNORE:
            continue
        if target not in fields and not (
            target.startswith(OPEN_PREFIXES[kind]) and len(target) > len(OPEN_PREFIXES[kind])
        ):
            problems.append(f"column {column!r}: unknown field {target!r} for a {kind} import")
    for target in set(targets):
        if target in fields and targets.count(target) > 1:
            problems.append(f"field {target!r} is mapped from more than one column")
    open_targets = sorted({t for t in targets if t not in fields})
    for target in open_targets:
        nested = [other for other in open_targets if other.startswith(target + ".")]
        if nested:
            problems.append(f"{target!r} cannot be both a value and the parent of {nested[0]!r}")
        elif targets.count(target) > 1:
            problems.append(f"{target!r} is mapped from more than one column")
    for name, (required, _) in fields.items():
        if required and name not in targets:
            problems.append(f"required field {name!r} is not mapped to any column")
    if kind == ImportKind.EVENTS and "user_id" not in targets and "anonymous_id" not in targets:
        problems.append("map a column to 'user_id' or 'anonymous_id': events need a person")
    return problems


def _convert(value: Any, field_type: str) -> Any:
    if value is None:
        return None
    if field_type == "string":
        if isinstance(value, (dict, list)):
            raise ValueError("expected text, got a nested value")
        return str(value).strip()
    if field_type == "email":
        text = str(value).strip()
        if not EMAIL_PATTERN.match(text):
            raise ValueError(f"{text!r} is not an email address")
        return text
    if field_type == "number":
        if isinstance(value, bool):
            raise ValueError("expected a number, got true/false")
        if isinstance(value, int) and abs(value) >= 10**18:
            raise ValueError(f"{value!r} is too large (at most 18 digits before the decimal point)")
        if isinstance(value, float) and (value != value or abs(value) >= 1e18):
            raise ValueError(f"{value!r} is not a finite number of at most 18 digits")
        if isinstance(value, (int, float)):
            return value
        try:
            number = Decimal(str(value).strip().replace(",", ""))
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
        if not number.is_finite():
            raise ValueError(f"{value!r} is not a finite number")
        # Checked before converting: 1e999999999 would take forever as an int.
        if number.adjusted() >= 18:
            raise ValueError(f"{value!r} is too large (at most 18 digits before the decimal point)")
        return int(number) if number == number.to_integral_value() else float(number)
    if field_type == "datetime":
        text = str(value).strip()
        invalid = ValueError(f"{text!r} is not a date or an ISO-8601 time")
        try:
            parsed = (
                parse_datetime(text.replace("Z", "+00:00")) if "T" in text or " " in text else None
            )
            day = None if parsed else parse_date(text)
        except ValueError:  # well-formed but impossible, e.g. February 30th
            raise invalid from None
        if parsed is None:
            if day is None:
                raise invalid
            parsed = datetime(day.year, day.month, day.day)
        if parsed.tzinfo is None:
            parsed = make_aware(parsed, timezone=UTC)
        return parsed.isoformat()
    raise AssertionError(field_type)


def _nested_set(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            return
    target[parts[-1]] = value


def row_to_message(
    kind: str, mapping: dict[str, str], row: dict[str, Any], row_number: int
) -> tuple[dict | None, list[RowError]]:
    """One row -> one Segment message, or the row's errors (each naming its column)."""
    if "__error__" in row:
        return None, [RowError(row_number, "", row["__error__"])]
    fields = FIELDS[kind]
    prefix = OPEN_PREFIXES[kind]
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    errors: list[RowError] = []
    columns_of_field = {target: column for column, target in mapping.items() if target in fields}
    for column, target in mapping.items():
        if target == IGNORE or column not in row:
            continue
        raw = row[column]
        if target in fields:
            try:
                values[target] = _convert(raw, fields[target][1])
            except ValueError as error:
                errors.append(RowError(row_number, column, str(error)))
        elif raw is not None:
            _nested_set(extra, target[len(prefix) :], raw)
    unconvertible = {mapping[error.column] for error in errors}
    for name, (required, _) in fields.items():
        if required and name not in unconvertible and values.get(name) in (None, ""):
            errors.append(
                RowError(
                    row_number, columns_of_field.get(name, name), f"{name} is required and empty"
                )
            )
    if kind == ImportKind.EVENTS and not values.get("user_id") and not values.get("anonymous_id"):
        errors.append(RowError(row_number, "", "needs a user_id or an anonymous_id"))
    if errors:
        return None, errors

    identity = {key: values[key] for key in ("user_id", "anonymous_id") if values.get(key)}
    message: dict[str, Any] = {
        **({"userId": identity["user_id"]} if "user_id" in identity else {}),
        **({"anonymousId": identity["anonymous_id"]} if "anonymous_id" in identity else {}),
        "context": {"library": {"name": "engagement-importer", "version": "1"}},
    }
    if kind == ImportKind.PROFILES:
        traits = {
            key: values[key]
            for key in ("email", "phone", "first_name", "last_name", "name", "created_at")
            if values.get(key) is not None
        }
        traits.update(extra)
        message.update({"type": "identify", "traits": traits})
        if values.get("time_zone"):
            message["context"]["timezone"] = values["time_zone"]
        if values.get("locale"):
            message["context"]["locale"] = values["locale"]
    elif kind == ImportKind.EVENTS:
        message.update(
            {
                "type": "track",
                "event": values["event"],
                "properties": extra,
                "timestamp": values["timestamp"],
            }
        )
    else:
        properties = {
            key: values[key]
            for key in ("order_id", "revenue", "currency", "product_id", "quantity")
            if values.get(key) is not None
        }
        properties.update(extra)
        message.update(
            {
                "type": "track",
                "event": "order_completed",
                "properties": properties,
                "timestamp": values["timestamp"],
            }
        )
    message["messageId"] = (
        values.get("message_id")
        or "import-"
        + hashlib.sha256(orjson.dumps([kind, message], option=orjson.OPT_SORT_KEYS)).hexdigest()[
            :40
        ]
    )
    return message, []


def dry_run(
    *, kind: str, mapping: dict[str, str], data: bytes, file_format: str, sample_size: int = 5
) -> DryRun:
    result = DryRun()
    for row_number, row in read_rows(data, file_format):
        result.rows += 1
        message, errors = row_to_message(kind, mapping, row, row_number)
        if message is None:
            if len(result.errors) < MAX_ERRORS_KEPT:
                result.errors.extend(errors[: MAX_ERRORS_KEPT - len(result.errors)])
            continue
        result.valid += 1
        if len(result.sample) < sample_size:
            result.sample.append(message)
    return result


# --------------------------------------------------------------------------- jobs

IMPORT_CHUNK_ROWS = 500
IMPORT_STALE_AFTER = timedelta(minutes=30)
MAX_IMPORT_BYTES = 200 * 1024 * 1024


def import_draft_create(*, workspace, kind: str, uploaded_file, context) -> ImportJob:
    """Store an uploaded file as a draft import with a suggested mapping, for the person
    to check (and dry-run) before it runs. The file must be readable."""
    from engagement_site.workspaces.models import AuditAction
    from engagement_site.workspaces.services import audit_record

    if kind not in ImportKind.values:
        raise ImportFileError(f"Unknown import kind {kind!r}: use profiles, events or purchases.")
    if uploaded_file.size > MAX_IMPORT_BYTES:
        raise ImportFileError(
            f"The file is {uploaded_file.size} bytes; imports take at most {MAX_IMPORT_BYTES} bytes."
        )
    data = uploaded_file.read()
    uploaded_file.seek(0)
    file_format = detect_format(uploaded_file.name, data[:512])
    columns = columns_of(data, file_format)  # raises ImportFileError for an unreadable file
    if not columns:
        raise ImportFileError("The file has no rows.")
    with transaction.atomic():
        job = ImportJob.objects.create(
            workspace=workspace,
            kind=kind,
            file_format=file_format,
            file=uploaded_file,
            original_name=uploaded_file.name[:255],
            size=uploaded_file.size,
            mapping=suggest_mapping(kind, columns),
            created_by=context.actor,
        )
        audit_record(
            context=context,
            action=AuditAction.IMPORT_CREATE,
            workspace=workspace,
            target=job,
            changes={"kind": kind, "file": job.original_name, "size": job.size},
        )
    return job


def import_job_start(
    *, job: ImportJob, mapping: dict[str, str], context, enqueue: bool = True
) -> ImportJob:
    """Fix the mapping and queue the import (after commit), unless the caller runs it
    itself, as the command line does."""
    from engagement_site.workspaces.models import AuditAction
    from engagement_site.workspaces.services import audit_record

    problems = validate_mapping(job.kind, mapping)
    if problems:
        raise ImportFileError("; ".join(problems))
    with transaction.atomic():
        started = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.DRAFT).update(
            mapping=mapping, status=ImportJob.Status.PENDING
        )
        if not started:
            raise ImportFileError("This import has already been started.")
        job.refresh_from_db()
        audit_record(
            context=context,
            action=AuditAction.IMPORT_START,
            workspace=job.workspace,
            target=job,
            changes={"status": {"before": "draft", "after": "pending"}, "mapping": mapping},
        )
        if enqueue:
            # robust: if Redis is down the job stays pending, and the scheduler queues it again.
            transaction.on_commit(lambda: import_job_enqueue(import_job_id=job.pk), robust=True)
    return job


def import_job_mapping_preview(*, job: ImportJob, mapping: dict[str, str]) -> DryRun:
    with job.file.open("rb") as handle:
        return dry_run(
            kind=job.kind, mapping=mapping, data=handle.read(), file_format=job.file_format
        )


def import_jobs_requeue_waiting() -> int:
    """Scheduler duty: queue again the jobs left waiting (their enqueue was lost, e.g.
    Redis was down at commit) or whose runner died. Running one twice is harmless."""
    now = timezone.now()
    waiting = ImportJob.objects.filter(
        models.Q(status=ImportJob.Status.PENDING, created_at__lt=now - timedelta(minutes=2))
        | models.Q(status=ImportJob.Status.RUNNING, started_at__lt=now - IMPORT_STALE_AFTER)
    ).values_list("pk", flat=True)
    count = 0
    for import_job_id in waiting:
        import_job_enqueue(import_job_id=import_job_id)
        count += 1
    return count


def scheduler_duty() -> None:
    """At most once a minute, so a queue without workers is not flooded with copies."""
    from django.core.cache import cache

    if cache.add("duty:imports_requeue", "1", timeout=60):
        import_jobs_requeue_waiting()


def import_job_enqueue(*, import_job_id: int) -> None:
    import django_rq

    django_rq.get_queue("ingest").enqueue(
        "segments.tasks.import_job_process", import_job_id, job_timeout=3600
    )


def import_job_run(*, import_job_id: int, progress=None) -> ImportJob:
    """Import the job's file in chunks through the ingestion service. Safe to run twice:
    rows already imported are duplicates by messageId. `progress(job)` is called after
    each chunk (the command line draws a bar with it)."""
    from segments.ingestion import ingest_batch

    # Claim a waiting job, or one whose runner died (a stale start): never two at once.
    now = timezone.now()
    claimable = models.Q(status=ImportJob.Status.PENDING) | models.Q(
        status=ImportJob.Status.RUNNING, started_at__lt=now - IMPORT_STALE_AFTER
    )
    claimed = ImportJob.objects.filter(claimable, pk=import_job_id).update(
        status=ImportJob.Status.RUNNING, started_at=now
    )
    job = ImportJob.objects.select_related("workspace").get(pk=import_job_id)
    if not claimed:
        return job
    job.processed_rows = job.imported = job.duplicates = job.rejected = 0
    job.errors = []
    try:
        with job.file.open("rb") as handle:
            data = handle.read()
        job.total_rows = sum(1 for _ in read_rows(data, job.file_format))
        job.save(
            update_fields=[
                "total_rows",
                "processed_rows",
                "imported",
                "duplicates",
                "rejected",
                "errors",
            ]
        )
        chunk: list[dict] = []
        for row_number, row in read_rows(data, job.file_format):
            message, errors = row_to_message(job.kind, job.mapping, row, row_number)
            job.processed_rows += 1
            if message is None:
                job.rejected += 1
                room = MAX_ERRORS_KEPT - len(job.errors)
                job.errors.extend(error.as_dict() for error in errors[: max(room, 0)])
            else:
                chunk.append(message)
            if len(chunk) >= IMPORT_CHUNK_ROWS:
                _import_chunk(job, chunk, ingest_batch)
                chunk = []
                if progress:
                    progress(job)
        if chunk:
            _import_chunk(job, chunk, ingest_batch)
        job.status = ImportJob.Status.DONE
    except ImportFileError as error:
        job.status = ImportJob.Status.FAILED
        job.failure = str(error)
    except Exception as error:  # never leave a job "running" forever
        logger.exception("import %s failed", job.pk)
        job.status = ImportJob.Status.FAILED
        job.failure = (
            f"The import stopped after {job.processed_rows} rows: {type(error).__name__}: {error}"[
                :2000
            ]
        )
    job.finished_at = timezone.now()
    job.save(
        update_fields=[
            "status",
            "failure",
            "finished_at",
            "processed_rows",
            "imported",
            "duplicates",
            "rejected",
            "errors",
        ]
    )
    if progress:
        progress(job)
    return job


def _import_chunk(job: ImportJob, messages: list[dict], ingest_batch) -> None:
    result = ingest_batch(
        workspace=job.workspace,
        messages=messages,
        received_at=timezone.now(),
        context=None,
        integrations=None,
        source=f"import:{job.pk}",
    )
    job.imported += result.accepted
    job.duplicates += result.duplicates
    job.rejected += result.rejected
    # started_at doubles as this run's heartbeat: a job is only reclaimed when it is stale.
    job.started_at = timezone.now()
    job.save(
        update_fields=[
            "processed_rows",
            "imported",
            "duplicates",
            "rejected",
            "errors",
            "started_at",
        ]
    )
