"""The Segment-compatible tracking API: /v1/batch and /v1/track|identify|page|screen|group|alias.

Plain function views rather than DRF: this is the hottest path of the product. What
clients rely on (see docs and DESIGN.md, Interfaces):

- the write key comes by HTTP Basic (the username; the password is empty, and a
  missing colon is tolerated) or as `writeKey` in the body;
- bodies may be gzip (`Content-Encoding: gzip`, decompressed up to the 4 MB limit and
  no further) and may be sent as `text/plain` (browsers do, to avoid a preflight);
- browsers get CORS headers on every answer, and 204 to a preflight;
- success is exactly HTTP 200 `{"success": true}` (Segment's Python client treats
  anything else as a failure); errors are JSON with `code` and `message`:
  400 invalid_json (empty, not JSON, not UTF-8, not an object, NaN / Infinity, nested
  over MAX_JSON_DEPTH levels, a key repeated in one object) / invalid_gzip /
  invalid_batch, 401 invalid_write_key, 413 request_too_large / batch_too_large /
  event_too_large, 415 unsupported_media_type (not application/json or text/plain) /
  unsupported_content_encoding, 429 rate_limited (with Retry-After, in seconds),
  500 internal_error (the batch was rolled back; a retry is safe), 503
  database_unavailable (with Retry-After: the database connection was lost and the
  batch's own retries on a new one failed too; nothing was stored, or all of it when
  the loss came during COMMIT: a retry is safe either way) / database_busy (with
  Retry-After: a statement ran past INGESTION_STATEMENT_TIMEOUT_MS and the batch was
  rolled back).

A refused request stores nothing. Inside an accepted batch, an event over 32 KB or one
that fails validation is quarantined (see segments.ingestion) and the rest is stored;
on a single-event endpoint an event over 32 KB refuses the request (413).

The write key's workspace and ingestion settings are cached in process memory for
settings.INGESTION_WRITE_KEY_CACHE_SECONDS (at most 5), so a warm request costs no
query before ingestion itself; a revoked key is refused within that time.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import time
import zlib
from dataclasses import dataclass
from functools import cache

import orjson
import psycopg.errors
import redis
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from engagement_site.database import connection_lost
from engagement_site.jobs import redis_connection
from engagement_site.workspaces.models import ApiKey, Workspace
from engagement_site.workspaces.services import api_key_authenticate
from segments.ingestion import SOURCE_TRACKING_API, ingest_batch, ingestion_settings_get
from segments.models import IngestionSettings

logger = logging.getLogger(__name__)

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Content-Encoding",
    "Access-Control-Max-Age": "86400",
}
SUCCESS = orjson.dumps({"success": True})
# Entries beyond this are dropped all at once (random keys must not grow memory).
WRITE_KEY_CACHE_MAX_ENTRIES = 10_000
# Browsers post JSON as text/plain to avoid a CORS preflight; nothing else is JSON to us.
ACCEPTED_MEDIA_TYPES = ("application/json", "text/plain")
# How deeply a body's objects and lists may nest. Well below orjson's limits (1,024 levels
# read, 254 written), so every event of an accepted body can be written back out with its
# batch's context merged in, and the duplicate-key scan stays clear of Python's recursion
# limit; real events nest a few levels.
MAX_JSON_DEPTH = 100


class TrackingError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def _respond(status: int, content: bytes = b"", headers: dict | None = None) -> HttpResponse:
    response = HttpResponse(content, status=status, content_type="application/json")
    for name, value in {**CORS_HEADERS, **(headers or {})}.items():
        response[name] = value
    return response


def _error(error: TrackingError) -> HttpResponse:
    body = orjson.dumps({"code": error.code, "message": error.message})
    return _respond(error.status, body, error.headers)


# --------------------------------------------------------------------------- body


def _gunzip(data: bytes, limit: int) -> bytes:
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        body = decompressor.decompress(data, limit + 1)
    except zlib.error:
        raise TrackingError(400, "invalid_gzip", "The body is not valid gzip.") from None
    if len(body) > limit or decompressor.unconsumed_tail:
        raise TrackingError(
            413, "request_too_large", f"The body is over {limit} bytes once decompressed."
        )
    if not decompressor.eof:
        raise TrackingError(400, "invalid_gzip", "The gzip body is truncated.")
    if decompressor.unused_data:
        raise TrackingError(
            400, "invalid_gzip", "The body has data after the end of its gzip stream."
        )
    return body


def _check_media_type(request: HttpRequest) -> None:
    media_type = request.META.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
    if media_type in ACCEPTED_MEDIA_TYPES:
        return
    problem = f"Content-Type {media_type!r}" if media_type else "Content-Type is missing"
    raise TrackingError(415, "unsupported_media_type", f"{problem}: send application/json.")


def _read_body(request: HttpRequest) -> bytes:
    limit = settings.INGESTION_MAX_REQUEST_BYTES
    too_large = TrackingError(413, "request_too_large", f"The request is over {limit} bytes.")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_large
    # read(), not .body: the body may exceed DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB).
    body = request.read(limit + 1)
    if len(body) > limit:
        raise too_large
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding == "gzip":
        return _gunzip(body, limit)
    if encoding not in ("", "identity"):
        raise TrackingError(
            415, "unsupported_content_encoding", f"Content-Encoding {encoding!r}: use gzip."
        )
    return body


def _json_problem(body: bytes, error: orjson.JSONDecodeError) -> str:
    """orjson's account of the error, or a plainer one for NaN and Infinity (which
    JavaScript's JSON.stringify never writes but other encoders do)."""
    for literal in (b"NaN", b"Infinity"):
        if body.startswith(literal, error.pos):
            if literal == b"Infinity" and body[error.pos - 1 : error.pos] == b"-":
                literal, column = b"-Infinity", error.colno - 1
            else:
                column = error.colno
            return (
                f"The body is not valid JSON: {literal.decode()} is not a JSON number"
                f" (line {error.lineno} column {column})."
            )
    return f"The body is not valid JSON: {error}"


def _nested_too_deeply(document: dict, body: bytes) -> bool:
    if body.count(b"{") + body.count(b"[") <= MAX_JSON_DEPTH:
        return False  # cannot nest deeper than its brackets (the common small body)
    # orjson writes at most 254 levels: wrapped in 254 - MAX_JSON_DEPTH lists, the
    # document can be written only if it nests at most MAX_JSON_DEPTH levels (in C, at a
    # fraction of the cost of walking the document in Python).
    wrapped: object = document
    for _ in range(254 - MAX_JSON_DEPTH):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped)
    except orjson.JSONEncodeError:
        return True
    return False


class _RepeatedKey(Exception):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _refuse_repeats(pairs: list[tuple[str, object]]) -> None:
    if len(pairs) > 1 and len(dict(pairs)) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    # Returns None: the scan's own result is thrown away, so it builds nothing.


_REPEAT_SCANNER = json.JSONDecoder(object_pairs_hook=_refuse_repeats)


def _repeated_key(body: bytes) -> str | None:
    """The first key repeated within one object, if any. orjson keeps the last value
    silently, other parsers the first: a proxy or a client library that read the other
    value would disagree with what we store, so such a body is refused. Called on a
    body orjson has read (valid UTF-8, at most MAX_JSON_DEPTH levels)."""
    try:
        _REPEAT_SCANNER.decode(body.decode())
    except _RepeatedKey as repeated:
        return repeated.key
    except ValueError:
        return None  # what orjson reads and the standard library does not (huge numbers)
    return None


def _parse(body: bytes) -> dict:
    body = body.removeprefix(b"\xef\xbb\xbf")
    if not body or body.isspace():
        raise TrackingError(400, "invalid_json", "The body is empty.")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise TrackingError(400, "invalid_json", _json_problem(body, error)) from None
    if not isinstance(document, dict):
        raise TrackingError(400, "invalid_json", "The body must be a JSON object.")
    if _nested_too_deeply(document, body):
        raise TrackingError(
            400, "invalid_json", f"The body is nested deeper than {MAX_JSON_DEPTH} levels."
        )
    repeated = _repeated_key(body)
    if repeated is not None:
        raise TrackingError(
            400, "invalid_json", f"The body repeats the key {repeated[:100]!r} in one object."
        )
    return document


# --------------------------------------------------------------------------- write keys


@dataclass(frozen=True)
class _Access:
    workspace: Workspace
    ingestion_settings: IngestionSettings


@dataclass(frozen=True)
class _CachedKey:
    expires_at: float
    access: _Access | None


_write_keys: dict[str, _CachedKey] = {}


def write_key_cache_clear() -> None:
    _write_keys.clear()


def _write_key_of(request: HttpRequest, document: dict) -> str:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic" and credentials.strip():
        encoded = credentials.strip()
        try:
            decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        username = decoded.partition(":")[0]  # "key:" or, from some clients, "key"
        if username:
            return username
    key = document.get("writeKey")
    return key if isinstance(key, str) else ""


def _access_for(raw_key: str, request: HttpRequest) -> _Access | None:
    if not raw_key or len(raw_key) > 200:
        return None
    now = time.time()
    cache_key = ApiKey.hash_key(raw_key)
    cached = _write_keys.get(cache_key)
    if cached is not None and cached.expires_at > now:
        return cached.access
    # No request: a write key is used from end users' browsers and phones, whose IP
    # addresses and user agents must not land in the append-only audit log.
    api_key = api_key_authenticate(raw_key=raw_key, kind=ApiKey.Kind.WRITE, request=None)
    access = None
    if api_key is not None:
        workspace = api_key.workspace
        access = _Access(workspace, ingestion_settings_get(workspace=workspace))
    if len(_write_keys) >= WRITE_KEY_CACHE_MAX_ENTRIES:
        _write_keys.clear()
    _write_keys[cache_key] = _CachedKey(now + settings.INGESTION_WRITE_KEY_CACHE_SECONDS, access)
    return access


# --------------------------------------------------------------------------- rate limit


@cache
def _redis() -> redis.Redis:
    # One client (and its connection pool) per process, not one per request.
    return redis_connection("default")


def _retry_after(*, workspace_id: int, per_second: int, events: int) -> int | None:
    """Count the events against the workspace's budget for the current fixed window
    (IngestionSettings.rate_limit_per_second x INGESTION_RATE_WINDOW_SECONDS); over it,
    the seconds until the window ends. A refused request does not use the budget.
    0 events per second means no limit; Redis down means no limit (logged)."""
    if per_second <= 0 or events <= 0:
        return None
    window = settings.INGESTION_RATE_WINDOW_SECONDS
    now = time.time()
    number = int(now // window)
    key = f"ingest:rate:{workspace_id}:{number}"
    try:
        client = _redis()
        pipeline = client.pipeline(transaction=False)
        pipeline.incrby(key, events)
        pipeline.expire(key, window * 2)
        used, _ = pipeline.execute()
        if used <= per_second * window:
            return None
        client.decrby(key, events)
    except redis.RedisError:
        logger.warning("rate limit not applied: Redis is unreachable", exc_info=True)
        return None
    return max(1, math.ceil((number + 1) * window - now))


# --------------------------------------------------------------------------- views


def _take(request: HttpRequest, call_type: str | None) -> HttpResponse:
    received_at = timezone.now()
    try:
        _check_media_type(request)
        body = _read_body(request)
        document = _parse(body)
        if call_type is None:
            messages = document.get("batch")
            if not isinstance(messages, list):
                raise TrackingError(400, "invalid_batch", "`batch` must be a list of events.")
            maximum = settings.INGESTION_MAX_BATCH_EVENTS
            if len(messages) > maximum:
                raise TrackingError(
                    413,
                    "batch_too_large",
                    f"The batch holds {len(messages)} events; the limit is {maximum}.",
                )
            context, integrations = document.get("context"), document.get("integrations")
            for name, value in (("context", context), ("integrations", integrations)):
                if value is not None and not isinstance(value, dict):
                    raise TrackingError(400, "invalid_batch", f"`{name}` must be an object.")
            sent_at = document.get("sentAt")
        else:
            limit = settings.INGESTION_MAX_EVENT_BYTES
            if len(body) > limit:
                raise TrackingError(
                    413, "event_too_large", f"The event is {len(body)} bytes; the limit is {limit}."
                )
            message = {key: value for key, value in document.items() if key != "writeKey"}
            message["type"] = call_type
            messages, context, integrations, sent_at = [message], None, None, None
        access = _access_for(_write_key_of(request, document), request)
        if access is None:
            raise TrackingError(401, "invalid_write_key", "The write key is unknown or revoked.")
        retry_after = _retry_after(
            workspace_id=access.workspace.pk,
            per_second=access.ingestion_settings.rate_limit_per_second,
            events=len(messages),
        )
        if retry_after is not None:
            raise TrackingError(
                429,
                "rate_limited",
                "The workspace is over its event rate; retry later.",
                headers={"Retry-After": str(retry_after)},
            )
    except TrackingError as error:
        return _error(error)
    try:
        ingest_batch(
            workspace=access.workspace,
            messages=messages,
            received_at=received_at,
            context=context,
            integrations=integrations,
            sent_at=sent_at,
            source=SOURCE_TRACKING_API,
            ingestion_settings=access.ingestion_settings,
            statement_timeout_ms=settings.INGESTION_STATEMENT_TIMEOUT_MS,
        )
    except Exception as error:
        # Clients retry a 5xx; the batch rolled back, and messageIds make the retry safe.
        if connection_lost(error):
            return _database_unavailable(error)
        if isinstance(error.__cause__, psycopg.errors.QueryCanceled):
            return _database_busy(error)
        logger.exception("ingesting a batch for workspace %s failed", access.workspace.pk)
        return _error(
            TrackingError(500, "internal_error", "The events could not be stored; retry later.")
        )
    return _respond(200, SUCCESS)


def _database_unavailable(error: Exception) -> HttpResponse:
    """503: the database connection was lost (and ingest_batch's retries with it), or
    none could be had. The batch was stored whole or not at all; the client's retry is
    safe (messageIds)."""
    logger.warning("tracking request answered 503: the database is unavailable (%s)", error)
    return _error(
        TrackingError(
            503,
            "database_unavailable",
            "The database is unavailable; retry later.",
            headers={"Retry-After": "1"},
        )
    )


def _database_busy(error: Exception) -> HttpResponse:
    """503: a statement of the batch ran past INGESTION_STATEMENT_TIMEOUT_MS (a lock
    held elsewhere, an overloaded database) and the batch was rolled back."""
    logger.warning("tracking request answered 503: a statement timed out (%s)", error)
    timeout = settings.INGESTION_STATEMENT_TIMEOUT_MS
    return _error(
        TrackingError(
            503,
            "database_busy",
            f"The database did not answer within {timeout} ms; retry later.",
            headers={"Retry-After": "1"},
        )
    )


def _dispatch(request: HttpRequest, call_type: str | None) -> HttpResponse:
    if request.method == "OPTIONS":
        response = HttpResponse(status=204)
        for name, value in CORS_HEADERS.items():
            response[name] = value
        return response
    if request.method != "POST":
        return _error(
            TrackingError(
                405, "method_not_allowed", "Send events with POST.", {"Allow": "POST, OPTIONS"}
            )
        )
    try:
        return _take(request, call_type)
    except DatabaseError as error:  # finding the write key needs the database
        if not connection_lost(error):
            raise
        return _database_unavailable(error)


@csrf_exempt
def batch(request: HttpRequest) -> HttpResponse:
    """POST /v1/batch: {"batch": [calls], "context"?, "integrations"?, "sentAt"?}."""
    return _dispatch(request, None)


@csrf_exempt
def single(request: HttpRequest, call_type: str) -> HttpResponse:
    """POST /v1/track (identify, page, screen, group, alias): one call; its type is the
    endpoint's."""
    return _dispatch(request, call_type)
