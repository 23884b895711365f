"""The inbox API that apps and browsers call with the workspace's write key.

    GET  /api/v1/inbox/<user_id>                               ?limit=&cursor=
    POST /api/v1/inbox/<user_id>/messages/<id>/read|clicked|dismissed

Plain function views, not DRF, as the tracking API (segments.tracking_views): they
are called on every page view of the customer's app and must answer in a few
milliseconds. The write key comes as the HTTP Basic username, an `X-Write-Key`
header or a `writeKey` query parameter; the user hash (when the workspace asks for
one) as `X-User-Hash` or `userHash`. Query parameters let a browser make simple
requests, which need no CORS preflight. Every answer carries CORS headers; errors are
JSON `{"code", "message"}`: 400 invalid_limit / invalid_cursor, 401
invalid_write_key, 403 invalid_user_hash, 404 not_found, 405 method_not_allowed.

A write key's workspace and whether it requires the user hash are kept in process
memory for settings.INGESTION_WRITE_KEY_CACHE_SECONDS (at most 5), so a warm listing
costs only the inbox's own query; a revoked key, or a change of the setting, takes
effect within that time.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from delivery import inbox

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, X-Write-Key, X-User-Hash",
    "Access-Control-Max-Age": "86400",
}
WRITE_KEY_CACHE_MAX_ENTRIES = 10_000


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _respond(status: int, document=None, headers: dict | None = None) -> HttpResponse:
    body = orjson.dumps(document) if document is not None else b""
    response = HttpResponse(body, status=status, content_type="application/json")
    response["Cache-Control"] = "no-store"
    for name, value in {**CORS_HEADERS, **(headers or {})}.items():
        response[name] = value
    return response


def _refused(refusal: _Refusal) -> HttpResponse:
    return _respond(refusal.status, {"code": refusal.code, "message": refusal.message})


# --------------------------------------------------------------------------- access


@dataclass(frozen=True)
class _Access:
    workspace_id: int
    requires_user_hash: bool


_write_keys: dict[str, tuple[float, _Access | None]] = {}


def write_key_cache_clear() -> None:
    _write_keys.clear()


def _write_key_of(request: HttpRequest) -> str:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic" and credentials.strip():
        encoded = credentials.strip()
        try:
            decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if decoded.partition(":")[0]:
            return decoded.partition(":")[0]
    return request.headers.get("X-Write-Key", "") or request.GET.get("writeKey", "")


def _access_for(raw_key: str) -> _Access | None:
    from engagement_site.workspaces.models import ApiKey
    from engagement_site.workspaces.services import api_key_authenticate

    if not raw_key or len(raw_key) > 200:
        return None
    now = time.time()
    cache_key = ApiKey.hash_key(raw_key)
    cached = _write_keys.get(cache_key)
    if cached is not None and cached[0] > now:
        return cached[1]
    # No request: end users' IP addresses and user agents stay out of the audit log.
    api_key = api_key_authenticate(raw_key=raw_key, kind=ApiKey.Kind.WRITE, request=None)
    access = None
    if api_key is not None:
        workspace_id = api_key.workspace_id
        access = _Access(workspace_id, inbox.requires_user_hash(workspace_id=workspace_id))
    if len(_write_keys) >= WRITE_KEY_CACHE_MAX_ENTRIES:
        _write_keys.clear()
    _write_keys[cache_key] = (now + settings.INGESTION_WRITE_KEY_CACHE_SECONDS, access)
    return access


def _authorised(request: HttpRequest, user_id: str) -> _Access:
    access = _access_for(_write_key_of(request))
    if access is None:
        raise _Refusal(401, "invalid_write_key", "The write key is unknown or revoked.")
    if access.requires_user_hash:
        given = request.headers.get("X-User-Hash", "") or request.GET.get("userHash", "")
        if not inbox.user_hash_valid(
            workspace_id=access.workspace_id, user_id=user_id, given=given
        ):
            raise _Refusal(
                403,
                "invalid_user_hash",
                "This workspace verifies users: X-User-Hash must be the HMAC-SHA256 of the "
                "user_id under the workspace's inbox secret.",
            )
    return access


def _preflight_or_method(request: HttpRequest, method: str) -> HttpResponse | None:
    if request.method == "OPTIONS":
        return _respond(204)
    if request.method != method:
        return _respond(
            405,
            {"code": "method_not_allowed", "message": f"Use {method}."},
            {"Allow": f"{method}, OPTIONS"},
        )
    return None


# --------------------------------------------------------------------------- views


@csrf_exempt  # the write key is the credential; browsers send no cookies here
def inbox_list(request: HttpRequest, user_id: str) -> HttpResponse:
    """GET: the user's cards, newest first, with the unread count."""
    early = _preflight_or_method(request, "GET")
    if early is not None:
        return early
    try:
        access = _authorised(request, user_id)
        raw_limit = request.GET.get("limit", "")
        try:
            limit = int(raw_limit) if raw_limit else inbox.DEFAULT_LIMIT
        except ValueError:
            raise _Refusal(400, "invalid_limit", "limit must be a whole number.") from None
        try:
            document = inbox.inbox_list(
                workspace_id=access.workspace_id,
                user_id=user_id,
                limit=limit,
                cursor=request.GET.get("cursor", ""),
            )
        except inbox.InboxError as error:
            raise _Refusal(400, error.code, str(error)) from None
    except _Refusal as refusal:
        return _refused(refusal)
    return _respond(200, document)


@csrf_exempt
def inbox_message_action(
    request: HttpRequest, user_id: str, message_id: str, action: str
) -> HttpResponse:
    """POST: the card was read (shown), clicked (its button) or dismissed (closed)."""
    early = _preflight_or_method(request, "POST")
    if early is not None:
        return early
    try:
        access = _authorised(request, user_id)
        state = inbox.inbox_message_act(
            workspace_id=access.workspace_id, user_id=user_id, token=message_id, action=action
        )
        if state is None:
            raise _Refusal(404, "not_found", "This user's inbox has no such message.")
    except _Refusal as refusal:
        return _refused(refusal)
    return _respond(200, state)
