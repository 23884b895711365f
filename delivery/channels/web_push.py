"""Web push to browsers: the Push API with VAPID (RFC 8292) and aes128gcm payload
encryption (RFC 8291), through pywebpush.

Each of the profile's enabled subscriptions gets the payload
`{"title", "body", "icon", "url", "message_id"}`, encrypted for that browser and
signed with the workspace's VAPID key (the public half is what the site passes to
`pushManager.subscribe`). A message counts as sent when one push service took it
(201). 404 and 410 mean the subscription is gone: it is disabled, and with none left
the message fails for good; 413 (payload too large) and other 4xx are final; 429 and
5xx are retried.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from pydantic import Field, SecretStr, field_validator, model_validator

from delivery.channels.base import Channel, ChannelConfig, Outgoing, SendResult
from delivery.channels.push import _devices_of, _fan_out, _Outcome


def vapid_key_pair() -> tuple[str, str]:
    """A new VAPID key pair: (private key, public key), both base64url without padding
    (the raw 32-byte scalar and the uncompressed P-256 point), as the config takes them
    and as browsers take the public key (`applicationServerKey`)."""
    from cryptography.hazmat.primitives import serialization
    from py_vapid import Vapid
    from py_vapid.utils import b64urlencode

    vapid = Vapid()
    vapid.generate_keys()
    private = vapid.private_key.private_numbers().private_value.to_bytes(32, "big")
    public = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64urlencode(private), b64urlencode(public)


def _vapid(private_key: str):
    from py_vapid import Vapid

    return Vapid.from_string(private_key=private_key)


def _public_of(vapid) -> str:
    from cryptography.hazmat.primitives import serialization
    from py_vapid.utils import b64urlencode

    return b64urlencode(
        vapid.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )


class WebPushConfig(ChannelConfig):
    vapid_private_key: SecretStr
    vapid_public_key: str
    # Who push services contact about this sender: "mailto:..." or an https URL.
    subject: str
    # How long a push service keeps a message for a browser that is offline.
    ttl_seconds: int = Field(default=86400, ge=0, le=2419200)
    timeout_seconds: float = Field(default=10, gt=0, le=60)

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        value = value.strip()
        if not (value.startswith("mailto:") and "@" in value) and not value.startswith("https://"):
            raise ValueError("subject must be a mailto: address or an https URL")
        return value

    @model_validator(mode="after")
    def _keys_match(self) -> WebPushConfig:
        try:
            vapid = _vapid(self.vapid_private_key.get_secret_value())
        except Exception as error:  # py_vapid raises a variety for a bad key
            raise ValueError(f"vapid_private_key cannot be read: {error}") from None
        if _public_of(vapid) != self.vapid_public_key.strip().rstrip("="):
            raise ValueError("vapid_public_key is not the public half of vapid_private_key")
        return self


def web_push_payload(*, fields: dict, message_id: int) -> dict:
    """What the service worker's `push` event reads (docs/channels/push.md); its
    message_id is the signed token POST /api/v1/push/opened takes."""
    from delivery.inbox import message_token

    return {
        "title": fields.get("title", ""),
        "body": fields.get("body", ""),
        "icon": fields.get("icon_url", ""),
        "url": fields.get("url", ""),
        "message_id": message_token(message_id),
    }


class WebPushChannel(Channel):
    id = "web_push"
    name = "Web push"
    Config = WebPushConfig
    requires_settings = True
    kind = "web_push"

    def address(self, profile) -> str:
        """The newest enabled subscription's endpoint, "" when there is none."""
        from delivery.devices import active_devices

        devices = active_devices(
            workspace_id=profile.workspace_id, profile_ids=[profile.pk], kind=self.kind
        ).get(profile.pk, [])
        return devices[0].token if devices else ""

    def send(self, outgoing: Outgoing) -> SendResult:
        return next(iter(self.send_batch([outgoing])))

    def send_batch(self, batch: list[Outgoing]) -> Iterator[SendResult]:
        import requests

        devices = _devices_of(batch, kind=self.kind)
        vapid = _vapid(self.config.secret("vapid_private_key"))
        with requests.Session() as session:
            for outgoing in batch:
                yield _fan_out(
                    outgoing,
                    devices.get(outgoing.message_id, []),
                    lambda device, o=outgoing: self._send_one(session, vapid, o, device),
                )

    def _send_one(self, session, vapid, outgoing: Outgoing, device) -> _Outcome:
        import requests
        from pywebpush import WebPushException, webpush

        from delivery.devices import web_push_endpoint_problem

        problem = web_push_endpoint_problem(device.token)
        if problem:
            return _Outcome("permanent", error=problem)
        data = json.dumps(web_push_payload(fields=outgoing.fields, message_id=outgoing.message_id))
        try:
            response = webpush(
                subscription_info={"endpoint": device.token, "keys": device.keys},
                data=data,
                vapid_private_key=vapid,
                # A new dict each time: pywebpush writes aud and exp into it.
                vapid_claims={"sub": self.config.subject},
                ttl=self.config.ttl_seconds,
                timeout=self.config.timeout_seconds,
                headers={"Urgency": "normal"},
                requests_session=session,
            )
        except WebPushException as error:
            response = error.response
            if response is None:
                return _Outcome("permanent", error=f"web push: {error.message}")
        except requests.Timeout as error:
            return _Outcome("temporary", error=f"timed out: {error}")
        except requests.RequestException as error:
            return _Outcome("temporary", error=f"{type(error).__name__}: {error}")
        except (ValueError, TypeError) as error:  # keys a browser never made
            return _Outcome("permanent", error=f"subscription keys: {error}")
        status = response.status_code
        summary = f"{status} {response.reason}: {response.text[:200]}".strip()
        if status in (200, 201, 202):
            return _Outcome("sent", provider_message_id=response.headers.get("Location", "")[:200])
        if status in (404, 410):
            return _Outcome("gone", error=summary)
        if status == 429 or status >= 500:
            return _Outcome("temporary", error=summary)
        return _Outcome("permanent", error=summary)
