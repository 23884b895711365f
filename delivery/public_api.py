"""What the write-key endpoints of delivery share (devices, subscriptions): the
refusal they answer with, JSON bodies read within a size limit, the write key's
workspace, CORS for browsers.

The callers are SDK-side code and browsers, as for the tracking API: answers are
200 `{"success": true, ...}` or `{"code", "message"}` with 400 naming the bad field,
401 invalid_write_key, 405, 413.
"""

from __future__ import annotations

import base64
import binascii

import orjson
from django.http import HttpRequest, HttpResponse

from engagement_site.workspaces.models import ApiKey
from engagement_site.workspaces.services import api_key_authenticate

MAX_BODY_BYTES = 16 * 1024
MAX_ID_LENGTH = 200


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def respond(status: int, document: dict | None = None, *, methods: str) -> HttpResponse:
    content = orjson.dumps(document) if document is not None else b""
    response = HttpResponse(content, status=status, content_type="application/json")
    response["Access-Control-Allow-Origin"] = "*"
    response["Access-Control-Allow-Methods"] = f"{methods}, OPTIONS"
    response["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
    response["Access-Control-Max-Age"] = "86400"
    return response


def refused(refusal: Refused, *, methods: str) -> HttpResponse:
    return respond(
        refusal.status, {"code": refusal.code, "message": refusal.message}, methods=methods
    )


def json_body(request: HttpRequest) -> dict:
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise Refused(413, "request_too_large", f"The body is over {MAX_BODY_BYTES} bytes.")
    try:
        document = orjson.loads(body.removeprefix(b"\xef\xbb\xbf") or b"null")
    except orjson.JSONDecodeError as error:
        raise Refused(400, "invalid_json", f"The body is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise Refused(400, "invalid_json", "The body must be a JSON object.")
    return document


def write_key_workspace(request: HttpRequest, document: dict):
    """The write key's workspace (401 without one): the HTTP Basic username, or
    `writeKey` in the body. No request is passed on: the key is used from end users'
    devices, whose addresses stay out of the audit log."""
    raw_key = ""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic" and credentials.strip():
        encoded = credentials.strip()
        try:
            raw_key = base64.b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            raw_key = ""
        raw_key = raw_key.partition(":")[0]
    if not raw_key and isinstance(document.get("writeKey"), str):
        raw_key = document["writeKey"]
    api_key = (
        api_key_authenticate(raw_key=raw_key, kind=ApiKey.Kind.WRITE, request=None)
        if raw_key and len(raw_key) <= 200
        else None
    )
    if api_key is None:
        raise Refused(401, "invalid_write_key", "The write key is missing, unknown or revoked.")
    return api_key.workspace


def string_field(document: dict, name: str, *, code: str) -> str | None:
    """A short string (or number) field of the body, stripped; None when absent."""
    value = document.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise Refused(400, code, f"`{name}` must be a string.")
    value = str(value).strip()
    if len(value) > MAX_ID_LENGTH:
        raise Refused(400, code, f"`{name}` is over {MAX_ID_LENGTH} characters.")
    return value or None
