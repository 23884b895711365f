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

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from delivery.devices import (
    DeviceInvalid,
    device_check,
    device_register,
    device_unregister,
    profile_resolve,
)
from delivery.public_api import (
    Refused,
    json_body,
    refused,
    respond,
    string_field,
    write_key_workspace,
)

METHODS = "POST, DELETE"


def _respond(status: int, document: dict | None = None) -> HttpResponse:
    return respond(status, document, methods=METHODS)


def _string(document: dict, name: str) -> str | None:
    return string_field(document, name, code="invalid_device")


def _target(document: dict) -> tuple[str, str, dict]:
    """(kind, token, keys) of the device the body names."""
    kind = document.get("kind")
    if kind == "fcm":
        token = document.get("token")
        if not isinstance(token, str) or not token.strip():
            raise Refused(400, "invalid_device", "`token` is required for fcm devices.")
        return kind, token, {}
    if kind == "web_push":
        subscription = document.get("subscription")
        if not isinstance(subscription, dict):
            raise Refused(
                400,
                "invalid_device",
                "`subscription` (the browser's PushSubscription) is required.",
            )
        endpoint = subscription.get("endpoint")
        if not isinstance(endpoint, str) or not endpoint.strip():
            raise Refused(400, "invalid_device", "`subscription.endpoint` is required.")
        keys = subscription.get("keys")
        return kind, endpoint, keys if isinstance(keys, dict) else {}
    raise Refused(400, "invalid_device", '`kind` must be "fcm" or "web_push".')


def _register(request: HttpRequest, document: dict) -> HttpResponse:
    workspace = write_key_workspace(request, document)
    kind, token, keys = _target(document)
    user_id, anonymous_id = _string(document, "userId"), _string(document, "anonymousId")
    if not user_id and not anonymous_id:
        raise Refused(400, "invalid_device", "`userId` or `anonymousId` is required.")
    platform = document.get("platform", "web" if kind == "web_push" else "")
    if not isinstance(platform, str):
        raise Refused(400, "invalid_device", "`platform` must be a string.")
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
        raise Refused(400, "invalid_device", str(error)) from None
    return _respond(200, {"success": True})


def _unregister(request: HttpRequest, document: dict) -> HttpResponse:
    workspace = write_key_workspace(request, document)
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
            return _register(request, json_body(request))
        if request.method == "DELETE":
            return _unregister(request, json_body(request))
        raise Refused(405, "method_not_allowed", "Use POST to register, DELETE to unregister.")
    except Refused as refusal:
        return refused(refusal, methods=METHODS)
