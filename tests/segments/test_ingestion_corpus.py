"""A corpus of malformed payloads for the /v1/* tracking API.

Two rules, each tested over every case:

- A malformed *request* (body, encoding, media type, JSON syntax, the batch's shape, a
  size limit) is refused with a 4xx JSON error whose `message` names the problem, and
  stores nothing at all: no event, no quarantined event, no messageId, no profile, no
  identity, no trait change.
- A malformed *event* inside a well-formed request is quarantined by design
  (docs/ingestion.md): the request answers 200, exactly one RejectedEvent holds the
  event with a reason naming the field, and nothing else of it is stored (its
  messageId stays free, so a corrected resend is accepted). The good events of the
  same batch are stored (the mixed-batch rule).
"""

from __future__ import annotations

import base64
import gzip
import tracemalloc
import zlib

import orjson
import pytest

from engagement_site.workspaces.services import api_key_create
from segments.models import Event, EventMessageId, Profile, RejectedEvent
from tests.conftest import SETUP
from tests.segments.stored import NOTHING, stored

JSON = "application/json"
GZIP = {"Content-Encoding": "gzip"}
MB = 1024 * 1024


@pytest.fixture
def write_key(workspace) -> str:
    _, raw_key = api_key_create(workspace=workspace, kind="write", name="Website", context=SETUP)
    return raw_key


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def send(client, path: str, body: bytes, *, key: str, content_type: str | None = JSON, **headers):
    headers["Authorization"] = basic(key)
    # Set whatever the body (the test client drops the header of an empty body); an
    # empty one is how a missing header reaches Django.
    return client.generic("POST", path, body, headers=headers, CONTENT_TYPE=content_type or "")


def good(message_id: str = "good-1") -> dict:
    return {"type": "track", "userId": "ada", "event": "Signed Up", "messageId": message_id}


def nested(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


def gzip_of(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


# --------------------------------------------------------------------------- requests

# (id, path, body, content type, extra headers, status, code, message)
REQUESTS = [
    # The body itself
    ("empty body", "/v1/batch", b"", JSON, {}, 400, "invalid_json", "The body is empty."),
    ("empty track", "/v1/track", b"", JSON, {}, 400, "invalid_json", "The body is empty."),
    ("whitespace", "/v1/batch", b" \r\n\t ", JSON, {}, 400, "invalid_json", "The body is empty."),
    (
        "truncated JSON",
        "/v1/batch",
        b'{"batch": [',
        JSON,
        {},
        400,
        "invalid_json",
        "The body is not valid JSON: unexpected end of data: line 1 column 12 (char 11)",
    ),
    (
        "trailing garbage",
        "/v1/batch",
        b'{"batch": []} {"batch": []}',
        JSON,
        {},
        400,
        "invalid_json",
        "The body is not valid JSON: unexpected content after document: line 1 column 15 (char 14)",
    ),
    (
        "single quotes",
        "/v1/track",
        b"{'userId': 'ada'}",
        JSON,
        {},
        400,
        "invalid_json",
        "The body is not valid JSON: unexpected character, expected a string key:"
        " line 1 column 2 (char 1)",
    ),
    *[
        (
            f"top level {name}",
            path,
            body,
            JSON,
            {},
            400,
            "invalid_json",
            "The body must be a JSON object.",
        )
        for name, body in [
            ("array", b"[]"),
            ("string", b'"batch"'),
            ("number", b"42"),
            ("null", b"null"),
            ("true", b"true"),
        ]
        for path in ("/v1/batch", "/v1/identify")
    ],
    # Numbers JSON does not have
    *[
        (
            f"{literal.decode()} in {path}",
            path,
            b'{"type": "track", "userId": "ada", "event": "X", "properties": {"n": '
            + literal
            + b"}}",
            JSON,
            {},
            400,
            "invalid_json",
            f"The body is not valid JSON: {literal.decode()} is not a JSON number"
            f" (line 1 column 70).",
        )
        for literal in (b"NaN", b"Infinity", b"-Infinity")
        for path in ("/v1/track",)
    ],
    (
        "NaN in a batch",
        "/v1/batch",
        b'{"batch": [{"type": "track", "userId": "ada", "event": "X", "n": NaN}]}',
        JSON,
        {},
        400,
        "invalid_json",
        "The body is not valid JSON: NaN is not a JSON number (line 1 column 66).",
    ),
    (
        "number overflowing a double",
        "/v1/track",
        b'{"userId": "ada", "event": "X", "properties": {"n": 1e999}}',
        JSON,
        {},
        400,
        "invalid_json",
        "The body is not valid JSON: number is infinity when parsed as double:"
        " line 1 column 53 (char 52)",
    ),
    # Text that is not UTF-8
    (
        "invalid UTF-8 byte",
        "/v1/batch",
        b'{"batch": [{"type": "track", "userId": "\xff", "event": "X"}]}',
        JSON,
        {},
        400,
        "invalid_json",
        "The body is not valid JSON: str is not valid UTF-8: surrogates not allowed:"
        " line 1 column 1 (char 0)",
    ),
    (
        "Latin-1 text",
        "/v1/track",
        '{"userId": "ada", "event": "Café"}'.encode("latin-1"),
        "text/plain; charset=ISO-8859-1",
        {},
        400,
        "invalid_json",
        "The body is not valid JSON: str is not valid UTF-8: surrogates not allowed:"
        " line 1 column 1 (char 0)",
    ),
    (
        "UTF-8 encoded surrogate",
        "/v1/track",
        b'{"userId": "ada", "event": "\xed\xa0\x80"}',
        JSON,
        {},
        400,
        "invalid_json",
        "The body is not valid JSON: str is not valid UTF-8: surrogates not allowed:"
        " line 1 column 1 (char 0)",
    ),
    (
        "lone surrogate escape",
        "/v1/track",
        b'{"userId": "ada", "event": "\\ud800"}',
        JSON,
        {},
        400,
        "invalid_json",
        "The body is not valid JSON: no low surrogate in string: line 1 column 29 (char 28)",
    ),
    (
        "UTF-16 body",
        "/v1/track",
        '{"userId": "ada", "event": "X"}'.encode("utf-16"),
        JSON,
        {},
        400,
        "invalid_json",
        "The body is not valid JSON: str is not valid UTF-8: surrogates not allowed:"
        " line 1 column 1 (char 0)",
    ),
    # Nesting
    (
        "10,000 levels in a batch",
        "/v1/batch",
        b'{"batch": [' + nested(10_000) + b"]}",
        JSON,
        {},
        400,
        "invalid_json",
        "The body is not valid JSON: depth limit exceeded: line 1 column 5123 (char 5122)",
    ),
    (
        "10,000 levels in a track",
        "/v1/track",
        b'{"userId": "ada", "event": "X", "properties": ' + nested(10_000) + b"}",
        JSON,
        {},
        400,
        "invalid_json",
        "The body is not valid JSON: depth limit exceeded: line 1 column 5163 (char 5162)",
    ),
    # Nesting orjson reads (up to 1,024 levels) but deeper than events are stored
    *[
        (
            f"{name} nested {levels} levels",
            "/v1/batch",
            b'{"batch": [' + orjson.dumps(good()) + b", " + b'{"type": "track", "userId": "u",'
            b' "event": "Deep", "properties": ' + nested(levels) + b"}]}"
            if name == "event"
            else b'{"batch": ['
            + orjson.dumps(good())
            + b'], "'
            + name.encode()
            + b'": '
            + nested(levels)
            + b"}",
            JSON,
            {},
            400,
            "invalid_json",
            "The body is nested deeper than 100 levels.",
        )
        for name in ("context", "integrations", "event")
        for levels in (101, 300, 1000)
    ],
    # Duplicate keys: which value wins differs between parsers, so neither is taken.
    (
        "duplicate batch key",
        "/v1/batch",
        b'{"batch": [], "batch": [' + orjson.dumps(good()) + b"]}",
        JSON,
        {},
        400,
        "invalid_json",
        "The body repeats the key 'batch' in one object.",
    ),
    (
        "duplicate userId",
        "/v1/track",
        b'{"userId": "ada", "event": "X", "userId": "bob"}',
        JSON,
        {},
        400,
        "invalid_json",
        "The body repeats the key 'userId' in one object.",
    ),
    (
        "duplicate key deep in a batch",
        "/v1/batch",
        b'{"batch": [{"type": "track", "userId": "ada", "event": "X",'
        b' "properties": {"plan": "free", "plan": "pro"}}]}',
        JSON,
        {},
        400,
        "invalid_json",
        "The body repeats the key 'plan' in one object.",
    ),
    # The batch's shape
    *[
        (
            f"batch is {name}",
            "/v1/batch",
            body,
            JSON,
            {},
            400,
            "invalid_batch",
            "`batch` must be a list of events.",
        )
        for name, body in [
            ("missing", b"{}"),
            ("an object", b'{"batch": {"type": "track"}}'),
            ("a string", b'{"batch": "[]"}'),
            ("null", b'{"batch": null}'),
            ("a number", b'{"batch": 1}'),
        ]
    ],
    *[
        (
            f"batch {name} is {kind}",
            "/v1/batch",
            b'{"batch": [], "' + name.encode() + b'": ' + value + b"}",
            JSON,
            {},
            400,
            "invalid_batch",
            f"`{name}` must be an object.",
        )
        for name in ("context", "integrations")
        for kind, value in [("a list", b"[]"), ("a string", b'"x"'), ("a number", b"5")]
    ],
    # Sizes
    (
        "2,501 events",
        "/v1/batch",
        orjson.dumps({"batch": [good(f"m-{n}") for n in range(2501)]}),
        JSON,
        {},
        413,
        "batch_too_large",
        "The batch holds 2501 events; the limit is 2500.",
    ),
    (
        "a body over 4 MB",
        "/v1/batch",
        b'{"batch": [], "padding": "' + b"x" * (4 * MB) + b'"}',
        JSON,
        {},
        413,
        "request_too_large",
        "The request is over 4194304 bytes.",
    ),
    (
        "a 5 MB string in a track",
        "/v1/track",
        b'{"userId": "ada", "event": "' + b"x" * (5 * MB) + b'"}',
        JSON,
        {},
        413,
        "request_too_large",
        "The request is over 4194304 bytes.",
    ),
    (
        "a single event over 32 KB",
        "/v1/page",
        orjson.dumps({"userId": "ada", "name": "Home", "properties": {"x": "y" * 32 * 1024}}),
        JSON,
        {},
        413,
        "event_too_large",
        "The event is 32820 bytes; the limit is 32768.",
    ),
    # Encodings
    (
        "truncated gzip",
        "/v1/batch",
        gzip_of(orjson.dumps({"batch": [good()]}))[:-12],
        JSON,
        GZIP,
        400,
        "invalid_gzip",
        "The gzip body is truncated.",
    ),
    (
        "gzip cut in its header",
        "/v1/batch",
        gzip_of(orjson.dumps({"batch": [good()]}))[:5],
        JSON,
        GZIP,
        400,
        "invalid_gzip",
        "The gzip body is truncated.",
    ),
    (
        "gzip with a bad checksum",
        "/v1/batch",
        (lambda data: data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:])(
            gzip_of(orjson.dumps({"batch": [good()]}))
        ),
        JSON,
        GZIP,
        400,
        "invalid_gzip",
        "The body is not valid gzip.",
    ),
    (
        "gzip declared, plain JSON sent",
        "/v1/batch",
        orjson.dumps({"batch": [good()]}),
        JSON,
        GZIP,
        400,
        "invalid_gzip",
        "The body is not valid gzip.",
    ),
    (
        "empty gzip body",
        "/v1/batch",
        b"",
        JSON,
        GZIP,
        400,
        "invalid_gzip",
        "The gzip body is truncated.",
    ),
    (
        "gzip followed by garbage",
        "/v1/batch",
        gzip_of(orjson.dumps({"batch": [good()]})) + b"garbage",
        JSON,
        GZIP,
        400,
        "invalid_gzip",
        "The body has data after the end of its gzip stream.",
    ),
    (
        "two gzip members",
        "/v1/batch",
        gzip_of(b'{"batch": [') + gzip_of(orjson.dumps(good()) + b"]}"),
        JSON,
        GZIP,
        400,
        "invalid_gzip",
        "The body has data after the end of its gzip stream.",
    ),
    (
        "gzip of an empty body",
        "/v1/batch",
        gzip_of(b""),
        JSON,
        GZIP,
        400,
        "invalid_json",
        "The body is empty.",
    ),
    (
        "gzip holding invalid JSON",
        "/v1/batch",
        gzip_of(b'{"batch": [}'),
        JSON,
        GZIP,
        400,
        "invalid_json",
        "The body is not valid JSON: unexpected character, expected a JSON value:"
        " line 1 column 12 (char 11)",
    ),
    (
        "deflate",
        "/v1/batch",
        zlib.compress(orjson.dumps({"batch": [good()]})),
        JSON,
        {"Content-Encoding": "deflate"},
        415,
        "unsupported_content_encoding",
        "Content-Encoding 'deflate': use gzip.",
    ),
    (
        "gzip twice",
        "/v1/batch",
        gzip_of(gzip_of(orjson.dumps({"batch": [good()]}))),
        JSON,
        {"Content-Encoding": "gzip, gzip"},
        415,
        "unsupported_content_encoding",
        "Content-Encoding 'gzip, gzip': use gzip.",
    ),
    # Media types: JSON, or text/plain holding JSON (browsers), nothing else.
    *[
        (
            f"content type {content_type or 'missing'}",
            "/v1/batch",
            orjson.dumps({"batch": [good()]}),
            content_type,
            {},
            415,
            "unsupported_media_type",
            message,
        )
        for content_type, message in [
            (None, "Content-Type is missing: send application/json."),
            (
                "application/x-www-form-urlencoded",
                "Content-Type 'application/x-www-form-urlencoded': send application/json.",
            ),
            (
                "multipart/form-data; boundary=xyz",
                "Content-Type 'multipart/form-data': send application/json.",
            ),
            ("application/xml", "Content-Type 'application/xml': send application/json."),
            ("text/html", "Content-Type 'text/html': send application/json."),
            (
                "application/octet-stream",
                "Content-Type 'application/octet-stream': send application/json.",
            ),
        ]
    ],
]


@pytest.mark.parametrize(
    ("path", "body", "content_type", "headers", "status", "code", "message"),
    [case[1:] for case in REQUESTS],
    ids=[case[0] for case in REQUESTS],
)
def test_a_malformed_request_is_refused_and_stores_nothing(
    client, workspace, write_key, path, body, content_type, headers, status, code, message
):
    response = send(client, path, body, key=write_key, content_type=content_type, **headers)

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"code": code, "message": message}
    assert stored() == NOTHING


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "TEXT/PLAIN;charset=UTF-8"],
)
def test_json_and_text_plain_are_the_accepted_media_types(
    client, workspace, write_key, content_type
):
    response = send(
        client,
        "/v1/batch",
        orjson.dumps({"batch": [good()]}),
        key=write_key,
        content_type=content_type,
    )

    assert (response.status_code, response.json()) == (200, {"success": True})
    assert list(Event.objects.values_list("message_id", flat=True)) == ["good-1"]


def gzip_bomb(megabytes: int) -> bytes:
    """A valid gzip of `{"batch": [], "padding": "000..."}` with `megabytes` MiB of
    padding, built without compressing it all: after a full flush, deflate writes the
    same bytes for the same 1 MiB of input, so one block is repeated."""
    prefix, chunk, suffix = b'{"batch": [], "padding": "', b"0" * MB, b'"}'
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    start = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.compress(suffix) + compressor.flush()
    checksum = zlib.crc32(prefix)
    for _ in range(megabytes):
        checksum = zlib.crc32(chunk, checksum)
    checksum = zlib.crc32(suffix, checksum)
    size = (len(prefix) + megabytes * MB + len(suffix)) % 2**32
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = checksum.to_bytes(4, "little") + size.to_bytes(4, "little")
    return header + start + block * megabytes + end + trailer


def test_the_gzip_bomb_is_valid_gzip():
    assert gzip.decompress(gzip_bomb(3)) == b'{"batch": [], "padding": "' + b"0" * 3 * MB + b'"}'


def test_a_gzip_bomb_of_gigabytes_is_refused_without_inflating_it(client, workspace, write_key):
    """2 GiB of JSON padding deflated to about 2 MB: refused at 4 MB of output. The
    memory the request allocates stays near the 4 MB limit, nowhere near the 2 GiB."""
    bomb = gzip_bomb(2048)
    assert len(bomb) < 2.5 * MB

    tracemalloc.start()
    try:
        response = send(client, "/v1/batch", bomb, key=write_key, **GZIP)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert response.status_code == 413
    assert response.json() == {
        "code": "request_too_large",
        "message": "The body is over 4194304 bytes once decompressed.",
    }
    # The compressed body is read once (2 MB) and at most 4 MB + 1 byte inflated.
    assert peak < 32 * MB
    assert stored() == NOTHING


# --------------------------------------------------------------------------- events

# (id, the event as sent in a batch, code, reason). Each is quarantined.
EVENTS = [
    ("event is a number", 5, "invalid_event", "event: must be a JSON object"),
    ("event is a string", "track", "invalid_event", "event: must be a JSON object"),
    ("event is null", None, "invalid_event", "event: must be a JSON object"),
    ("event is a list", [good()], "invalid_event", "event: must be a JSON object"),
    ("empty event", {}, "invalid_event", "type: is required"),
    (
        "type is a number",
        {**good(), "type": 1},
        "invalid_event",
        "type: must be one of track, identify, page, screen, group, alias",
    ),
    (
        "type unknown",
        {**good(), "type": "purchase"},
        "invalid_event",
        "type: must be one of track, identify, page, screen, group, alias",
    ),
    *[
        (f"userId is {name}", {**good(), "userId": value}, "invalid_event", reason)
        for name, value, reason in [
            ("true", True, "userId: must be a string"),
            ("a list", ["ada"], "userId: must be a string"),
            ("an object", {"id": "ada"}, "userId: must be a string"),
            ("a fraction", 1.5, "userId: must be a string"),
            ("256 characters", "u" * 256, "userId: is longer than 255 characters"),
            ("huge", "u" * 30_000, "userId: is longer than 255 characters"),
        ]
    ],
    (
        "anonymousId is an object",
        {"type": "page", "anonymousId": {"a": 1}},
        "invalid_event",
        "anonymousId: must be a string",
    ),
    (
        "no ids",
        {"type": "identify", "traits": {"plan": "pro"}},
        "invalid_event",
        "userId or anonymousId: one of them is required",
    ),
    (
        "empty ids",
        {"type": "identify", "userId": "", "anonymousId": ""},
        "invalid_event",
        "userId or anonymousId: one of them is required",
    ),
    (
        "event name missing",
        {"type": "track", "userId": "ada"},
        "invalid_event",
        "event: is required for track",
    ),
    (
        "event name blank",
        {**good(), "event": "  "},
        "invalid_event",
        "event: is required for track",
    ),
    (
        "event name is a number",
        {**good(), "event": 5},
        "invalid_event",
        "event: Input should be a valid string",
    ),
    (
        "event name is a list",
        {**good(), "event": ["X"]},
        "invalid_event",
        "event: Input should be a valid string",
    ),
    (
        "event name over 200 characters",
        {**good(), "event": "E" * 201},
        "invalid_event",
        "event: String should have at most 200 characters",
    ),
    (
        "page name is an object",
        {"type": "page", "userId": "ada", "name": {"x": 1}},
        "invalid_event",
        "name: Input should be a valid string",
    ),
    (
        "page category is a number",
        {"type": "page", "userId": "ada", "category": 5},
        "invalid_event",
        "category: Input should be a valid string",
    ),
    *[
        (
            f"{field} is {name}",
            {**good(), field: value},
            "invalid_event",
            f"{field}: Input should be a valid dictionary",
        )
        for field in ("properties", "context", "integrations")
        for name, value in [("a list", [1]), ("a string", "x"), ("a number", 5)]
    ],
    (
        "traits is a list",
        {"type": "identify", "userId": "ada", "traits": ["vip"]},
        "invalid_event",
        "traits: Input should be a valid dictionary",
    ),
    (
        "messageId is an object",
        {**good(), "messageId": {"id": 1}},
        "invalid_event",
        "messageId: must be a string",
    ),
    (
        "messageId is true",
        {**good(), "messageId": True},
        "invalid_event",
        "messageId: must be a string",
    ),
    (
        "messageId over 100 characters",
        {**good(), "messageId": "m" * 101},
        "invalid_event",
        "messageId: is longer than 100 characters",
    ),
    (
        "alias without previousId",
        {"type": "alias", "userId": "ada"},
        "invalid_event",
        "previousId: is required for alias",
    ),
    (
        "group without groupId",
        {"type": "group", "userId": "ada"},
        "invalid_event",
        "groupId: is required for group",
    ),
    (
        "groupId is a list",
        {"type": "group", "userId": "ada", "groupId": ["g"]},
        "invalid_event",
        "groupId: must be a string",
    ),
    # Timestamps
    *[
        (f"{field} {name}", {**good(), field: value}, "invalid_event", f"{field}: {reason}")
        for field in ("timestamp", "originalTimestamp", "sentAt")
        for name, value, reason in [
            ("is a number", 1700000000, "must be an ISO-8601 date-time string"),
            ("is a list", ["2026-01-01"], "must be an ISO-8601 date-time string"),
            ("is text", "yesterday", "'yesterday' is not an ISO-8601 date-time"),
            (
                "month 13",
                "2026-13-01T00:00:00Z",
                "'2026-13-01T00:00:00Z' is not an ISO-8601 date-time",
            ),
            ("year 99999", "99999-01-01", "'99999-01-01' is not an ISO-8601 date-time"),
            (
                "before year 1 in UTC",
                "0001-01-01T00:00:00+01:00",
                "'0001-01-01T00:00:00+01:00' is out of the supported range of dates",
            ),
            (
                "after year 9999 in UTC",
                "9999-12-31T23:59:59-01:00",
                "'9999-12-31T23:59:59-01:00' is out of the supported range of dates",
            ),
        ]
    ],
    # Sizes and content PostgreSQL cannot hold
    (
        "event over 32 KB",
        {**good(), "properties": {"blob": "x" * 40_000}},
        "event_too_large",
        "event: 40097 bytes, over the limit of 32768 bytes",
    ),
    (
        "NUL character",
        {**good(), "properties": {"note": "a\x00b"}},
        "invalid_event",
        "event: contains a NUL character (\\u0000), which cannot be stored",
    ),
]

EVENT_PAYLOADS = {case[0]: case[1] for case in EVENTS}


def batch_of(*events) -> bytes:
    return orjson.dumps({"batch": list(events)})


@pytest.mark.parametrize(
    ("bad", "code", "reason"),
    [case[1:] for case in EVENTS],
    ids=[case[0] for case in EVENTS],
)
def test_a_malformed_event_in_a_batch_is_quarantined_and_its_batch_mates_stored(
    client, workspace, write_key, bad, code, reason
):
    response = send(
        client, "/v1/batch", batch_of(good("good-1"), bad, good("good-2")), key=write_key
    )

    assert (response.status_code, response.json()) == (200, {"success": True})
    rejected = RejectedEvent.objects.get()
    assert (rejected.workspace_id, rejected.code, rejected.reason) == (workspace.pk, code, reason)
    if rejected.raw:
        assert orjson.loads(rejected.raw) == bad
    else:
        assert rejected.payload == bad
    # The good events, and nothing of the bad one.
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["good-1", "good-2"]
    assert sorted(EventMessageId.objects.values_list("message_id", flat=True)) == [
        "good-1",
        "good-2",
    ]
    assert list(Profile.objects.values_list("user_id", flat=True)) == ["ada"]
    assert stored() == {**NOTHING, "Event": 2, "EventMessageId": 2, "Identity": 1, "Profile": 1,
                        "RejectedEvent": 1}  # fmt: skip


@pytest.mark.parametrize(("levels", "status"), [(100, 200), (101, 400)])
def test_a_body_nests_at_most_100_levels(client, workspace, write_key, levels, status):
    """The body is level 1: properties nested 99 levels make a body of 100 levels,
    stored whole; one level more is refused."""
    properties = orjson.loads(nested(levels - 1))
    event = {**good(), "properties": properties}

    response = send(client, "/v1/track", orjson.dumps(event), key=write_key)

    assert response.status_code == status
    if status == 200:
        stored_event = Event.objects.get()
        assert (stored_event.message_id, stored_event.properties) == ("good-1", properties)
        assert RejectedEvent.objects.count() == 0
    else:
        assert response.json() == {
            "code": "invalid_json",
            "message": "The body is nested deeper than 100 levels.",
        }
        assert stored() == NOTHING


def test_a_batch_sent_at_that_is_not_a_date_quarantines_every_event(client, workspace, write_key):
    body = orjson.dumps({"batch": [good("m-1"), good("m-2")], "sentAt": "soon"})

    response = send(client, "/v1/batch", body, key=write_key)

    assert (response.status_code, response.json()) == (200, {"success": True})
    assert sorted(RejectedEvent.objects.values_list("message_id", "reason")) == [
        ("m-1", "sentAt (batch): 'soon' is not an ISO-8601 date-time"),
        ("m-2", "sentAt (batch): 'soon' is not an ISO-8601 date-time"),
    ]
    assert stored() == {**NOTHING, "RejectedEvent": 2}


SINGLE_ENDPOINT_CASES = [
    ("/v1/track", {"userId": "ada"}, "event: is required for track"),
    ("/v1/track", {"userId": ["ada"], "event": "X"}, "userId: must be a string"),
    (
        "/v1/identify",
        {"userId": "ada", "traits": "vip"},
        "traits: Input should be a valid dictionary",
    ),
    (
        "/v1/page",
        {"anonymousId": "a-1", "timestamp": "never"},
        "timestamp: 'never' is not an ISO-8601 date-time",
    ),
    ("/v1/screen", {"userId": "ada", "name": 7}, "name: Input should be a valid string"),
    ("/v1/group", {"userId": "ada"}, "groupId: is required for group"),
    ("/v1/alias", {"userId": "ada"}, "previousId: is required for alias"),
]


@pytest.mark.parametrize(
    ("path", "bad", "reason"),
    SINGLE_ENDPOINT_CASES,
    ids=[f"{case[0]} {case[2]}" for case in SINGLE_ENDPOINT_CASES],
)
def test_a_malformed_event_on_a_single_call_endpoint_is_quarantined(
    client, workspace, write_key, path, bad, reason
):
    """The same rule as in a batch: the request is well-formed, so it answers 200 and the
    event goes to the quarantine, typed by its endpoint."""
    response = send(client, path, orjson.dumps(bad), key=write_key)

    assert (response.status_code, response.json()) == (200, {"success": True})
    rejected = RejectedEvent.objects.get()
    assert (rejected.code, rejected.reason, rejected.event_type) == (
        "invalid_event",
        reason,
        path.removeprefix("/v1/"),
    )
    assert rejected.payload == {**bad, "type": path.removeprefix("/v1/")}
    assert stored() == {**NOTHING, "RejectedEvent": 1}
