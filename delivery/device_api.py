"""Device registration for apps and browsers: `POST /api/v1/devices` and
`DELETE /api/v1/devices`, authenticated like the tracking API with the workspace's
write key (HTTP Basic username, or `writeKey` in the body), with CORS for browsers.

Plain function views, as the tracking API is: the callers are the same SDK-side
code, and they want the same answers: 200 `{"success": true}`, errors as
`{"code", "message"}` (400 naming the bad field, 401 invalid_write_key).

    POST {"userId" | "anonymousId", "kind": "fcm", "token": "...", "platform": "ios"}
    POST {"userId" | "anonymousId", "kind": "web_push",
          "subscription": {"endpoint": "https://...", "keys": {"p256dh": "...", "auth": "..."}}}
    DELETE {"kind": "fcm", "token": "..."} or {"kind": "web_push", "subscription": {...}}
"""

from __future__ import annotations

import base64
import binascii

import orjson
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from delivery.devices import (
    DeviceInvalid,
    device_check,
    device_register,
    device_unregister,
    profile_resolve,
)
from engagement_site.workspaces.models import ApiKey
from engagement_site.workspaces.services import api_key_authenticate

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "86400",
}
MAX_BODY_BYTES = 16 * 1024
MAX_ID_LENGTH = 200


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _respond(status: int, document: dict | None = None) -> HttpResponse:
    content = orjson.dumps(document) if document is not None else b""
    response = HttpResponse(content, status=status, content_type="application/json")
    for name, value in CORS_HEADERS.items():
        response[name] = value
    return response


def _document(request: HttpRequest) -> dict:
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise _Refused(413, "request_too_large", f"The body is over {MAX_BODY_BYTES} bytes.")
    try:
        document = orjson.loads(body.removeprefix(b"\xef\xbb\xbf") or b"null")
    except orjson.JSONDecodeError as error:
        raise _Refused(400, "invalid_json", f"The body is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise _Refused(400, "invalid_json", "The body must be a JSON object.")
    return document


def _workspace(request: HttpRequest, document: dict):
    """The write key's workspace (401 without one). No request is passed on: the key is
    used from end users' devices, whose addresses stay out of the audit log."""
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
        raise _Refused(401, "invalid_write_key", "The write key is missing, unknown or revoked.")
    return api_key.workspace


def _string(document: dict, name: str) -> str | None:
    value = document.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise _Refused(400, "invalid_device", f"`{name}` must be a string.")
    value = str(value).strip()
    if len(value) > MAX_ID_LENGTH:
        raise _Refused(400, "invalid_device", f"`{name}` is over {MAX_ID_LENGTH} characters.")
    return value or None


def _target(document: dict) -> tuple[str, str, dict]:
    """(kind, token, keys) of the device the body names."""
    kind = document.get("kind")
    if kind == "fcm":
        token = document.get("token")
        if not isinstance(token, str) or not token.strip():
            raise _Refused(400, "invalid_device", "`token` is required for fcm devices.")
        return kind, token, {}
    if kind == "web_push":
        subscription = document.get("subscription")
        if not isinstance(subscription, dict):
            raise _Refused(
                400,
                "invalid_device",
                "`subscription` (the browser's PushSubscription) is required.",
            )
        endpoint = subscription.get("endpoint")
        if not isinstance(endpoint, str) or not endpoint.strip():
            raise _Refused(400, "invalid_device", "`subscription.endpoint` is required.")
        keys = subscription.get("keys")
        return kind, endpoint, keys if isinstance(keys, dict) else {}
    raise _Refused(400, "invalid_device", '`kind` must be "fcm" or "web_push".')


def _register(request: HttpRequest, document: dict) -> HttpResponse:
    workspace = _workspace(request, document)
    kind, token, keys = _target(document)
    user_id, anonymous_id = _string(document, "userId"), _string(document, "anonymousId")
    if not user_id and not anonymous_id:
        raise _Refused(400, "invalid_device", "`userId` or `anonymousId` is required.")
    platform = document.get("platform", "web" if kind == "web_push" else "")
    if not isinstance(platform, str):
        raise _Refused(400, "invalid_device", "`platform` must be a string.")
    try:
        # Checked before the profile is resolved, so a bad request creates nobody.
        device_check(kind=kind, token=token, keys=keys, platform=platform)
        profile = profile_resolve(workspace=workspace, user_id=user_id, anonymous_id=anonymous_id)
        device_register(
            workspace=workspace,
            profile=profile,
            kind=kind,
            token=token,
            keys=keys,
            platform=platform,
        )
    except DeviceInvalid as error:
        raise _Refused(400, "invalid_device", str(error)) from None
    return _respond(200, {"success": True})


def _unregister(request: HttpRequest, document: dict) -> HttpResponse:
    workspace = _workspace(request, document)
    kind, token, _ = _target(document)
    device_unregister(workspace=workspace, kind=kind, token=token)
    # Success whether or not the token was known: unregistering is idempotent, and the
    # answer must not tell a key holder which tokens exist.
    return _respond(200, {"success": True})


@csrf_exempt
def devices(request: HttpRequest) -> HttpResponse:
    if request.method == "OPTIONS":
        return _respond(204)
    try:
        if request.method == "POST":
            return _register(request, _document(request))
        if request.method == "DELETE":
            return _unregister(request, _document(request))
        raise _Refused(405, "method_not_allowed", "Use POST to register, DELETE to unregister.")
    except _Refused as refusal:
        return _respond(refusal.status, {"code": refusal.code, "message": refusal.message})
