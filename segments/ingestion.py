"""Ingestion of tracking calls (Segment's spec): validate, deduplicate, resolve
identities, update profiles, store events, then hand the batch to the real-time hooks.

`ingest_batch` is the one entry point: the /v1/* tracking views call it, and so can
importers and tests. Per batch, whatever its size, it costs a handful of statements:
the schemas of the batch's event names, one INSERT ... ON CONFLICT DO NOTHING RETURNING
that claims the messageIds, one identity lookup (two more when some ids are new), one
SELECT ... FOR UPDATE of the profiles involved, one INSERT of new profiles, one of new
identities, one UPDATE of changed profiles, two for trait history, one INSERT of the
events and one of the quarantined ones. A merge adds a few statements of its own.

What an event becomes:
- `Event.properties` holds the properties of track / page / screen, the traits of
  identify (root `traits`, or `context.traits` where RudderStack puts them), the traits
  of group plus its `groupId`, and `{"previousId": ...}` for alias.
- `Event.name` is the event of a track and the name of a page or screen (blank for the
  others); a page's category goes into its properties.
- `Event.context` is the event's context over the batch's (the event's keys win, nested
  objects merged); batch and event `integrations`, merged the same way, are kept under
  `context["integrations"]` (the events table has no column for them).
- `Event.timestamp` corrects the device clock as Segment does:
  receivedAt - (sentAt - originalTimestamp), where originalTimestamp is the event's
  `originalTimestamp` or `timestamp` and sentAt the event's or the batch's. Without
  sentAt the original timestamp is kept; without either, receivedAt.

Refused events go to the quarantine (RejectedEvent) with a code and a reason naming the
field: `invalid_event` (fails validation), `event_too_large` (over 32 KB),
`schema_violation` (breaks its EventSchema when the workspace quarantines violations).
The rest of the batch is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, Literal
from uuid import uuid4

import orjson
import psycopg.errors
from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    ValidationError,
    model_validator,
)

from engagement_site.database import connection_lost, connection_replace, pool_exhausted
from engagement_site.workspaces.models import Workspace
from segments.identity import ANONYMOUS_ID, USER_ID, IdentityGraph, ProfileState
from segments.models import EventMessageId, EventSchema, IngestionSettings, RejectedEvent

logger = logging.getLogger(__name__)

# Labels of where a batch came from (`source`). Trait history says "identify" for the
# tracking API, as the calls are named; other sources are recorded as they are.
SOURCE_TRACKING_API = "tracking_api"
SOURCE_IMPORT = "import"

# Conflicts between concurrent batches that a new attempt resolves (see identity.py).
INGEST_ATTEMPTS = 3


class RejectCode:
    INVALID_EVENT = "invalid_event"
    EVENT_TOO_LARGE = "event_too_large"
    SCHEMA_VIOLATION = "schema_violation"


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    rejected: int
    profile_ids: list[int] = field(default_factory=list)
    event_ids: list[int] = field(default_factory=list)


# --------------------------------------------------------------------------- validation


def _tracking_id(value: Any) -> str | None:
    """Ids are strings; numbers are accepted as their decimal text; "" means absent."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("must be a string")
    if isinstance(value, int):
        value = str(value)
    elif isinstance(value, float) and value.is_integer():
        value = str(int(value))
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if len(value) > 255:
        raise ValueError("is longer than 255 characters")
    return value or None


def _message_id(value: Any) -> str | None:
    value = _tracking_id(value)
    if value is not None and len(value) > 100:
        raise ValueError("is longer than 100 characters")
    return value


def parse_timestamp(value: Any) -> datetime | None:
    """Any ISO-8601 date-time (offsets, Z, fractions of a second, basic format) or date
    (midnight); without an offset, UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value[:40]!r} is not an ISO-8601 date-time") from None
    else:
        raise ValueError("must be an ISO-8601 date-time string")
    # In UTC from here on: PostgreSQL keeps UTC anyway, and orjson then writes plain +00:00.
    try:
        return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before the year 1 in UTC
        raise ValueError(f"{str(value)[:40]!r} is out of the supported range of dates") from None


TrackingId = Annotated[str | None, BeforeValidator(_tracking_id)]
MessageId = Annotated[str | None, BeforeValidator(_message_id)]
Timestamp = Annotated[datetime | None, BeforeValidator(parse_timestamp)]
Name = Annotated[str, StringConstraints(max_length=200)]


class TrackingCall(BaseModel):
    """One call of Segment's spec. Unknown fields are ignored (clients add their own,
    such as RudderStack's `channel`)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["track", "identify", "page", "screen", "group", "alias"]
    userId: TrackingId = None
    anonymousId: TrackingId = None
    previousId: TrackingId = None
    groupId: TrackingId = None
    event: Name | None = None
    name: Name | None = None
    category: Name | None = None
    properties: dict | None = None
    traits: dict | None = None
    context: dict | None = None
    integrations: dict | None = None
    messageId: MessageId = None
    timestamp: Timestamp = None
    originalTimestamp: Timestamp = None
    sentAt: Timestamp = None

    @model_validator(mode="after")
    def _required_fields(self) -> TrackingCall:
        if self.type == "alias":
            if not self.previousId:
                raise ValueError("previousId: is required for alias")
            if not self.userId:
                raise ValueError("userId: is required for alias")
        elif not (self.userId or self.anonymousId):
            raise ValueError("userId or anonymousId: one of them is required")
        if self.type == "track" and not (self.event and self.event.strip()):
            raise ValueError("event: is required for track")
        if self.type == "group" and not self.groupId:
            raise ValueError("groupId: is required for group")
        return self


def _reason(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        location = ".".join(str(part) for part in item["loc"])
        if item["type"] == "missing":
            message = "is required"
        elif item["type"] == "literal_error" and location == "type":
            message = "must be one of track, identify, page, screen, group, alias"
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)


# --------------------------------------------------------------------------- schemas

_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda value: isinstance(value, str),
    "number": lambda value: isinstance(value, int | float) and not isinstance(value, bool),
    "integer": lambda value: (
        (isinstance(value, int) and not isinstance(value, bool))
        or (isinstance(value, float) and value.is_integer())
    ),
    "boolean": lambda value: isinstance(value, bool),
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "null": lambda value: value is None,
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def schema_violations(schema: EventSchema, properties: dict) -> list[dict]:
    """What is wrong with these properties under the schema, as
    [{"property", "code": missing|wrong_type|unexpected, "message"}]. Rules the checker
    does not understand (unknown type names) are not held against the event."""
    rules = schema.properties if isinstance(schema.properties, dict) else {}
    violations = []
    for name, rule in rules.items():
        if not isinstance(rule, dict):
            continue
        if name not in properties:
            if rule.get("required"):
                violations.append(
                    {"property": name, "code": "missing", "message": f"{name} is required"}
                )
            continue
        expected = rule.get("type")
        expected = [expected] if isinstance(expected, str) else expected
        if not isinstance(expected, list) or not expected:
            continue
        value = properties[name]
        checks = [_TYPE_CHECKS.get(kind) for kind in expected]
        if any(check is None or check(value) for check in checks):
            continue
        violations.append(
            {
                "property": name,
                "code": "wrong_type",
                "message": f"{name} should be {' or '.join(expected)}, not {_json_type(value)}",
            }
        )
    if not schema.allow_additional_properties:
        for name in properties:
            if name not in rules:
                violations.append(
                    {
                        "property": name,
                        "code": "unexpected",
                        "message": f"{name} is not in the schema",
                    }
                )
    return violations


# --------------------------------------------------------------------------- preparing


def deep_merge(base: dict, over: dict) -> dict:
    """`over` on a copy of `base`; nested objects merge, anything else replaces."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass
class _Rejection:
    code: str
    reason: str
    payload: Any
    event_type: str = ""
    event_name: str = ""
    message_id: str = ""
    raw: str = ""

    def as_model(self, *, workspace: Workspace, received_at: datetime) -> RejectedEvent:
        return RejectedEvent(
            workspace=workspace,
            received_at=received_at,
            code=self.code,
            reason=self.reason,
            event_type=self.event_type[:20],
            event_name=self.event_name[:200],
            message_id=self.message_id[:100],
            payload=self.payload,
            raw=self.raw,
        )


@dataclass
class _Call:
    """A valid call, ready to store."""

    raw: dict
    type: str
    name: str
    user_id: str | None
    anonymous_id: str | None
    previous_id: str | None
    traits: dict | None
    properties: dict
    context: dict
    message_id: str
    timestamp: datetime
    original_timestamp: datetime | None
    sent_at: datetime | None
    violations: list = field(default_factory=list)
    state: ProfileState | None = None


def _payload(raw: dict) -> dict:
    return {key: value for key, value in raw.items() if key != "writeKey"}


def _rejection_of(raw: Any, code: str, reason: str, encoded: bytes | None = None) -> _Rejection:
    if isinstance(raw, dict):
        payload = _payload(raw)
        event_type = raw.get("type") if isinstance(raw.get("type"), str) else ""
        event_name = raw.get("event") if isinstance(raw.get("event"), str) else ""
        message_id = raw.get("messageId") if isinstance(raw.get("messageId"), str) else ""
    else:
        payload, event_type, event_name, message_id = raw, "", "", ""
    rejection = _Rejection(code, reason, payload, event_type, event_name, message_id)
    if encoded is not None and b"\\u0000" in encoded:
        # PostgreSQL's jsonb cannot hold NUL characters: keep the escaped text instead.
        rejection.payload, rejection.raw = None, encoded.decode()
        rejection.event_type = rejection.event_type.replace("\x00", "")
        rejection.event_name = rejection.event_name.replace("\x00", "")
        rejection.message_id = rejection.message_id.replace("\x00", "")
    return rejection


def _prepare(
    raw: Any,
    *,
    received_at: datetime,
    context: dict,
    integrations: dict,
    batch_sent_at: datetime | None,
    batch_sent_at_error: str,
    max_event_bytes: int,
) -> _Call | _Rejection:
    if not isinstance(raw, dict):
        return _rejection_of(raw, RejectCode.INVALID_EVENT, "event: must be a JSON object")
    try:
        encoded = orjson.dumps(raw)
    except TypeError as error:
        return _rejection_of(raw, RejectCode.INVALID_EVENT, f"event: not JSON: {error}")
    if len(encoded) > max_event_bytes:
        return _rejection_of(
            raw,
            RejectCode.EVENT_TOO_LARGE,
            f"event: {len(encoded)} bytes, over the limit of {max_event_bytes} bytes",
            encoded,
        )
    if b"\\u0000" in encoded:
        return _rejection_of(
            raw,
            RejectCode.INVALID_EVENT,
            "event: contains a NUL character (\\u0000), which cannot be stored",
            encoded,
        )
    try:
        call = TrackingCall.model_validate(raw)
    except ValidationError as error:
        return _rejection_of(raw, RejectCode.INVALID_EVENT, _reason(error))
    if call.sentAt is None and batch_sent_at_error:
        return _rejection_of(
            raw, RejectCode.INVALID_EVENT, f"sentAt (batch): {batch_sent_at_error}"
        )

    merged_context = deep_merge(context, call.context) if call.context else dict(context)
    merged_integrations = (
        deep_merge(integrations, call.integrations) if call.integrations else integrations
    )
    if merged_integrations:
        merged_context["integrations"] = merged_integrations

    original = call.originalTimestamp or call.timestamp
    sent_at = call.sentAt or batch_sent_at
    timestamp = original or received_at
    if original is not None and sent_at is not None:
        try:
            timestamp = received_at - (sent_at - original)
        except OverflowError:
            # Absurd clocks (year 1 vs year 9999): keep the device's own time, uncorrected.
            timestamp = original

    traits = None
    name = ""
    if call.type == "track":
        name, properties = call.event, call.properties or {}
    elif call.type in ("page", "screen"):
        name, properties = call.name or "", call.properties or {}
        if call.category and "category" not in properties:
            properties = {**properties, "category": call.category}
    elif call.type == "identify":
        context_traits = merged_context.get("traits")
        traits = call.traits if call.traits is not None else context_traits
        traits = traits if isinstance(traits, dict) else {}
        properties = traits
    elif call.type == "group":
        properties = {**(call.traits or {}), "groupId": call.groupId}
    else:
        properties = {"previousId": call.previousId}
    return _Call(
        raw=raw,
        type=call.type,
        name=name,
        user_id=call.userId,
        anonymous_id=call.anonymousId,
        previous_id=call.previousId,
        traits=traits,
        properties=properties,
        context=merged_context,
        message_id=call.messageId or str(uuid4()),
        timestamp=timestamp,
        original_timestamp=original,
        sent_at=sent_at,
    )


# --------------------------------------------------------------------------- service


def ingestion_settings_get(*, workspace: Workspace) -> IngestionSettings:
    """The workspace's settings, or the defaults (unsaved) when it has none."""
    found = IngestionSettings.objects.filter(workspace=workspace).first()
    return found or IngestionSettings(workspace=workspace)


def ingest_batch(
    *,
    workspace: Workspace,
    messages: list,
    received_at: datetime,
    context: dict | None,
    integrations: dict | None,
    source: str,
    sent_at: Any = None,
    ingestion_settings: IngestionSettings | None = None,
    statement_timeout_ms: int = 0,
) -> IngestResult:
    """Store a batch of tracking calls in one transaction and, after it commits,
    enqueue one `segments.tasks.ingested_batch_process` job for it (not when nothing
    was stored).

    `messages` are the calls as parsed from JSON; `context` / `integrations` / `sent_at`
    are the batch's own, merged into each call. `ingestion_settings` may be passed by a
    caller that caches them (the tracking views); otherwise they are read.
    `statement_timeout_ms` (0: none) bounds each statement of the batch's transaction;
    past it the batch rolls back and the error's cause is psycopg's QueryCanceled.

    A messageId seen before in the workspace makes its call a duplicate: counted, not
    stored again. Calls that fail validation are quarantined and not remembered, so a
    corrected resend is accepted."""
    max_event_bytes = settings.INGESTION_MAX_EVENT_BYTES
    try:
        batch_sent_at, batch_sent_at_error = parse_timestamp(sent_at), ""
    except ValueError as error:
        batch_sent_at, batch_sent_at_error = None, str(error)
    batch_context = context if isinstance(context, dict) else {}
    batch_integrations = integrations if isinstance(integrations, dict) else {}

    calls: list[_Call] = []
    rejections: list[_Rejection] = []
    seen: set[str] = set()
    duplicates = 0
    for raw in messages:
        prepared = _prepare(
            raw,
            received_at=received_at,
            context=batch_context,
            integrations=batch_integrations,
            batch_sent_at=batch_sent_at,
            batch_sent_at_error=batch_sent_at_error,
            max_event_bytes=max_event_bytes,
        )
        if isinstance(prepared, _Rejection):
            rejections.append(prepared)
        elif prepared.message_id in seen:
            duplicates += 1  # the same messageId twice in one batch: the first counts
        else:
            seen.add(prepared.message_id)
            calls.append(prepared)

    for attempt in range(1, INGEST_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                if statement_timeout_ms:
                    with connection.cursor() as cursor:
                        cursor.execute(
                            "SELECT set_config('statement_timeout', %s, true)",
                            [str(statement_timeout_ms)],
                        )
                return _ingest(
                    workspace=workspace,
                    calls=calls,
                    rejections=rejections,
                    duplicates=duplicates,
                    received_at=received_at,
                    source=source,
                    ingestion_settings=ingestion_settings,
                )
        except (IntegrityError, OperationalError, InterfaceError) as error:
            # A lost connection rolled the batch back (or, lost during COMMIT, stored it
            # whole): either way its messageIds make running it again on a new
            # connection safe. Not inside a caller's transaction, which is gone too.
            # Not after the pool's wait ran out: every try would wait its timeout again.
            lost = (
                connection_lost(error)
                and not pool_exhausted(error)
                and not connection.in_atomic_block
            )
            retryable = lost or isinstance(
                error.__cause__, psycopg.errors.UniqueViolation | psycopg.errors.DeadlockDetected
            )
            if not retryable or attempt == INGEST_ATTEMPTS:
                raise
            if lost:
                logger.warning("ingest batch lost its database connection (%s); retrying", error)
                connection_replace()  # the next query takes a new connection
            else:
                logger.info("ingest batch conflicted with a concurrent one (%s); retrying", error)
    raise AssertionError("unreachable")  # pragma: no cover


def _ingest(
    *,
    workspace: Workspace,
    calls: list[_Call],
    rejections: list[_Rejection],
    duplicates: int,
    received_at: datetime,
    source: str,
    ingestion_settings: IngestionSettings | None,
) -> IngestResult:
    rejections = list(rejections)
    fresh_ids = _message_ids_claim(
        workspace_id=workspace.pk,
        message_ids=[call.message_id for call in calls],
        received_at=received_at,
    )
    duplicates += len(calls) - len(fresh_ids)
    calls = [call for call in calls if call.message_id in fresh_ids]

    names = {call.name for call in calls if call.type == "track"}
    schemas = (
        {
            schema.event_name: schema
            for schema in EventSchema.objects.filter(workspace=workspace, event_name__in=names)
        }
        if names
        else {}
    )
    if schemas:
        quarantine = (
            ingestion_settings or ingestion_settings_get(workspace=workspace)
        ).schema_violation_action == IngestionSettings.ViolationAction.QUARANTINE
        kept = []
        for call in calls:
            schema = schemas.get(call.name) if call.type == "track" else None
            call.violations = schema_violations(schema, call.properties) if schema else []
            if call.violations and quarantine:
                rejections.append(
                    _Rejection(
                        RejectCode.SCHEMA_VIOLATION,
                        "; ".join(f"properties.{v['message']}" for v in call.violations),
                        _payload(call.raw),
                        call.type,
                        call.name,
                        call.message_id,
                    )
                )
            else:
                kept.append(call)
        kept_ids = {call.message_id for call in kept}
        quarantined_ids = [call.message_id for call in calls if call.message_id not in kept_ids]
        if quarantined_ids:
            # Quarantined calls are not remembered, so a corrected resend is stored.
            EventMessageId.objects.filter(
                workspace_id=workspace.pk, message_id__in=quarantined_ids
            ).delete()
        calls = kept

    profile_ids: list[int] = []
    event_ids: list[int] = []
    if calls:
        graph = IdentityGraph.load(workspace_id=workspace.pk, keys=_identity_keys(calls))
        trait_source = "identify" if source == SOURCE_TRACKING_API else source
        for call in calls:
            if call.type == "alias":
                state = graph.alias(
                    previous_id=call.previous_id,
                    user_id=call.user_id,
                    message_id=call.message_id,
                    at=call.timestamp,
                )
            else:
                state = graph.resolve(
                    user_id=call.user_id,
                    anonymous_id=call.anonymous_id,
                    message_id=call.message_id,
                    at=call.timestamp,
                )
            state.saw(call.timestamp)
            state.note_context(call.context)
            if call.traits:
                graph.apply_traits(
                    state,
                    call.traits,
                    source=trait_source,
                    message_id=call.message_id,
                    at=call.timestamp,
                )
            call.state = state
        profile_ids = graph.save()
        event_ids = _events_insert(workspace_id=workspace.pk, calls=calls, received_at=received_at)

    if rejections:
        RejectedEvent.objects.bulk_create(
            [
                rejection.as_model(workspace=workspace, received_at=received_at)
                for rejection in rejections
            ]
        )
    if event_ids:
        from segments.tasks import ingested_batch_enqueue

        transaction.on_commit(
            partial(
                ingested_batch_enqueue,
                workspace_id=workspace.pk,
                profile_ids=profile_ids,
                event_ids=event_ids,
            ),
            robust=True,
        )
    return IngestResult(
        accepted=len(event_ids),
        duplicates=duplicates,
        rejected=len(rejections),
        profile_ids=profile_ids,
        event_ids=event_ids,
    )


def _identity_keys(calls: list[_Call]) -> set[tuple[str, str]]:
    keys = set()
    for call in calls:
        if call.user_id:
            keys.add((USER_ID, call.user_id))
        if call.anonymous_id:
            keys.add((ANONYMOUS_ID, call.anonymous_id))
        if call.previous_id:
            # previousId is a former user id or an anonymous id: look for both.
            keys.add((USER_ID, call.previous_id))
            keys.add((ANONYMOUS_ID, call.previous_id))
    return keys


def _message_ids_claim(
    *, workspace_id: int, message_ids: list[str], received_at: datetime
) -> set[str]:
    """Record the messageIds; return those not seen before (one statement)."""
    if not message_ids:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO segments_eventmessageid (workspace_id, message_id, received_at)
            SELECT %s, claimed.message_id, %s
              FROM jsonb_array_elements_text(%s::jsonb) AS claimed(message_id)
            ON CONFLICT DO NOTHING
            RETURNING message_id
            """,
            # Sorted: two batches claiming overlapping ids lock them in the same order.
            [workspace_id, received_at, orjson.dumps(sorted(message_ids)).decode()],
        )
        return {row[0] for row in cursor.fetchall()}


def _events_insert(*, workspace_id: int, calls: list[_Call], received_at: datetime) -> list[int]:
    """All the batch's events in one INSERT ... SELECT FROM jsonb_to_recordset (ids from
    the table's sequence); returns their ids. The rows go as one JSON document: one
    parameter however many events, and properties / context travel as they are."""
    document = orjson.dumps(
        [
            {
                "profile_id": call.state.survivor().pk,
                "type": call.type,
                "name": call.name,
                "properties": call.properties,
                "context": call.context,
                "message_id": call.message_id,
                "timestamp": call.timestamp,
                "original_timestamp": call.original_timestamp,
                "sent_at": call.sent_at,
                "violations": call.violations,
            }
            for call in calls
        ]
    ).decode()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO segments_event (workspace_id, profile_id, type, name, properties, context,
                                        message_id, timestamp, original_timestamp, sent_at,
                                        received_at, violations)
            SELECT %s, new.profile_id, new.type, new.name, new.properties, new.context,
                   new.message_id, new.timestamp, new.original_timestamp, new.sent_at, %s,
                   new.violations
              FROM jsonb_to_recordset(%s::jsonb) AS new(
                       profile_id bigint, type text, name text, properties jsonb, context jsonb,
                       message_id text, timestamp timestamptz, original_timestamp timestamptz,
                       sent_at timestamptz, violations jsonb)
            RETURNING id
            """,
            [workspace_id, received_at, document],
        )
        return [row[0] for row in cursor.fetchall()]
