"""Mobile push through Firebase Cloud Messaging's HTTP v1 API.

One request per device: `POST {base_url}/v1/projects/{project_id}/messages:send`
with an OAuth2 access token that google-auth gets for the workspace's service
account (a JWT signed with its key, exchanged at the account's `token_uri`), kept
for its lifetime by the channel instance, which lives for one send batch.

A message goes to each of the profile's enabled app installs and counts as sent when
at least one took it. FCM's error shape says what happened to each:
UNREGISTERED (404) disables that device, and a message with no device left fails for
good; INVALID_ARGUMENT and other 4xx are final; QUOTA_EXCEEDED (429), UNAVAILABLE
(503) and INTERNAL (500) are retried. Each device's outcome is kept in the message's
rendered fields under `deliveries`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from delivery.channels.base import Channel, ChannelConfig, Outgoing, SendResult
from engagement_site import outbound

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
TEMPORARY_STATUSES = {429, 500, 502, 503, 504}
TEMPORARY_CODES = {"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"}
_SERVICE_ACCOUNT_KEYS = ("client_email", "private_key", "token_uri")


class PushConfig(ChannelConfig):
    project_id: str = Field(min_length=1, max_length=100)
    service_account_json: SecretStr
    base_url: str = "https://fcm.googleapis.com"
    timeout_seconds: float = Field(default=10, gt=0, le=60)
    # Android notification channel and APNs sound, when the app defines them.
    android_channel_id: str = ""
    apns_sound: str = "default"

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("base_url must be an http(s) URL")
        return outbound.check_configured_url(value.rstrip("/"))

    @model_validator(mode="after")
    def _service_account(self) -> PushConfig:
        try:
            info = json.loads(self.service_account_json.get_secret_value())
        except ValueError as error:
            raise ValueError(f"service_account_json is not JSON: {error}") from None
        if not isinstance(info, dict):
            raise ValueError("service_account_json must be a JSON object")
        missing = [key for key in _SERVICE_ACCOUNT_KEYS if not info.get(key)]
        if missing:
            raise ValueError(f"service_account_json lacks {', '.join(missing)}")
        problem = outbound.configured_url_problem(str(info["token_uri"]))
        if problem:
            raise ValueError(f"service_account_json token_uri: {problem}")
        return self


def fcm_message(*, token: str, fields: dict[str, Any], message_id: int, config: PushConfig):
    """The v1 `message` for one device. FCM wants every data value as a string; the
    message's app-facing id (a signed token) comes along so the app can report the open
    to POST /api/v1/push/opened (docs/channels/push.md)."""
    from delivery.inbox import message_token

    data = {str(key): _text(value) for key, value in (fields.get("data") or {}).items()}
    data["message_id"] = message_token(message_id)
    link = fields.get("deep_link") or ""
    if link:
        data["link"] = link
    notification = {"title": fields.get("title", ""), "body": fields.get("body", "")}
    if fields.get("image_url"):
        notification["image"] = fields["image_url"]
    android: dict[str, Any] = {"priority": "high"}
    if config.android_channel_id:
        android["notification"] = {"channel_id": config.android_channel_id}
    aps: dict[str, Any] = {"sound": config.apns_sound} if config.apns_sound else {}
    if fields.get("image_url"):
        aps["mutable-content"] = 1  # lets a notification service extension fetch the image
    return {
        "message": {
            "token": token,
            "notification": notification,
            "data": data,
            "android": android,
            "apns": {"payload": {"aps": aps}},
        }
    }


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class _Credentials:
    """The service account's access token, fetched once and reused until it expires."""

    def __init__(self, info: dict):
        from google.oauth2 import service_account

        self.token_uri = str(info.get("token_uri", ""))
        self.credentials = service_account.Credentials.from_service_account_info(
            info, scopes=[FCM_SCOPE]
        )

    def token(self, session) -> str:
        import google.auth.transport.requests

        if not self.credentials.valid:
            # google-auth posts through `requests`, past the pinned transport: the
            # token_uri is checked here, at request time (docs/delivery.md).
            problem = outbound.url_refusal(self.token_uri)
            if problem:
                raise outbound.OutboundRefused(f"token_uri {problem}")
            self.credentials.refresh(google.auth.transport.requests.Request(session))
        return self.credentials.token

    def forget(self) -> None:
        self.credentials.token = None


class PushChannel(Channel):
    id = "push"
    name = "Mobile push (FCM)"
    Config = PushConfig
    requires_settings = True
    kind = "fcm"

    def __init__(self, config=None, *, workspace_id=None):
        super().__init__(config, workspace_id=workspace_id)
        self._credentials: _Credentials | None = None

    def address(self, profile) -> str:
        """The newest enabled install's token, "" when there is none (nothing to send)."""
        from delivery.devices import active_devices

        devices = active_devices(
            workspace_id=profile.workspace_id, profile_ids=[profile.pk], kind=self.kind
        ).get(profile.pk, [])
        return devices[0].token if devices else ""

    def send(self, outgoing: Outgoing) -> SendResult:
        return next(iter(self.send_batch([outgoing])))

    def send_batch(self, batch: list[Outgoing]) -> Iterator[SendResult]:
        devices = _devices_of(batch, kind=self.kind)
        with (
            httpx.Client(
                timeout=self.config.timeout_seconds, transport=outbound.transport()
            ) as client,
            outbound.requests_session() as s,
        ):
            for outgoing in batch:
                yield _fan_out(
                    outgoing,
                    devices.get(outgoing.message_id, []),
                    lambda device, o=outgoing: self._send_one(client, s, o, device),
                )

    def _send_one(self, client: httpx.Client, session, outgoing: Outgoing, device):
        from google.auth.exceptions import RefreshError, TransportError

        config = self.config
        try:
            if self._credentials is None:
                info = json.loads(config.secret("service_account_json"))
                self._credentials = _Credentials(info)
            token = self._credentials.token(session)
        except outbound.OutboundRefused as error:
            return _Outcome("temporary", error=f"access token: {error}")
        except TransportError as error:
            return _Outcome("temporary", error=f"access token: {error}")
        except RefreshError as error:
            status = "temporary" if getattr(error, "retryable", False) else "permanent"
            return _Outcome(status, error=f"access token refused: {error}")
        except ValueError as error:  # a private key google-auth cannot read
            return _Outcome("permanent", error=f"service account: {error}")
        url = f"{config.base_url}/v1/projects/{config.project_id}/messages:send"
        body = fcm_message(
            token=device.token,
            fields=outgoing.fields,
            message_id=outgoing.message_id,
            config=config,
        )
        try:
            response = client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
        except httpx.TimeoutException as error:
            return _Outcome("temporary", error=f"timed out: {error}")
        except httpx.TransportError as error:
            return _Outcome("temporary", error=f"{type(error).__name__}: {error}")
        if response.is_success:
            try:
                name = response.json().get("name", "")
            except ValueError:
                name = ""
            return _Outcome("sent", provider_message_id=str(name)[:200])
        status, code, text = _fcm_error(response)
        summary = f"{response.status_code} {code or status}: {text}"[:300]
        if response.status_code == 401:
            self._credentials.forget()  # an expired or revoked token: a new one next time
            return _Outcome("temporary", error=summary)
        if code == "UNREGISTERED" or response.status_code == 404:
            return _Outcome("gone", error=summary)
        if response.status_code in TEMPORARY_STATUSES or code in TEMPORARY_CODES:
            return _Outcome("temporary", error=summary)
        return _Outcome("permanent", error=summary)


def _fcm_error(response: httpx.Response) -> tuple[str, str, str]:
    """(status, FCM errorCode, message) of an FCM error answer; blanks when it is not one."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return "", "", response.text[:200]
    code = ""
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type") == FCM_ERROR_TYPE:
            code = detail.get("errorCode", "")
    return error.get("status", ""), code, str(error.get("message", ""))[:200]


# --------------------------------------------------------------------------- shared by web push


class _Outcome:
    """What one device's provider said: sent, temporary, permanent, or gone (the token
    or subscription no longer exists)."""

    def __init__(self, status: str, *, provider_message_id: str = "", error: str = ""):
        self.status, self.provider_message_id, self.error = status, provider_message_id, error


def _devices_of(batch: list[Outgoing], *, kind: str) -> dict[int, list]:
    """message id -> the enabled devices of its profile (two queries for the batch)."""
    from delivery.devices import active_devices
    from delivery.models import Message

    if not batch:
        return {}
    profiles = dict(
        Message.objects.filter(pk__in=[o.message_id for o in batch]).values_list("pk", "profile_id")
    )
    by_profile = active_devices(
        workspace_id=batch[0].workspace_id, profile_ids=set(profiles.values()), kind=kind
    )
    return {pk: by_profile.get(profile_id, []) for pk, profile_id in profiles.items()}


def _fan_out(outgoing: Outgoing, devices: list, send_one) -> SendResult:
    """Send to every device and sum up: sent if one took it (the first one's id),
    retried if none did but one may later, else final. Devices that are gone are
    disabled as their answer arrives; each outcome is written to the rendered fields
    (the same dict delivery stores as the message's `rendered`)."""
    from delivery.devices import device_disable, device_touch

    if not devices:
        return SendResult.permanent("no_device: the profile has no enabled device to push to")
    outcomes = []
    for device in devices:
        outcome = send_one(device)
        if outcome.status == "gone":
            device_disable(device_id=device.pk, reason=f"provider: {outcome.error}")
        outcomes.append((device, outcome))
    outgoing.fields["deliveries"] = [
        {
            "device_id": device.pk,
            "status": outcome.status,
            **({"provider_message_id": outcome.provider_message_id} if outcome.status == "sent" else {}),
            **({"error": outcome.error} if outcome.error else {}),
        }
        for device, outcome in outcomes
    ]  # fmt: skip
    sent = [(device, outcome) for device, outcome in outcomes if outcome.status == "sent"]
    if sent:
        device_touch(device_ids=[device.pk for device, _ in sent])
        return SendResult.sent(sent[0][1].provider_message_id)
    errors = "; ".join(outcome.error for _, outcome in outcomes)
    if any(outcome.status == "temporary" for _, outcome in outcomes):
        return SendResult.temporary(errors)
    if all(outcome.status == "gone" for _, outcome in outcomes):
        return SendResult.permanent(f"no_device: every device is unregistered ({errors})")
    return SendResult.permanent(errors)
