"""Webhooks: the template's method, URL, headers and JSON body, rendered for the
person, sent with an HMAC signature, a timeout, the message's idempotency key, and
retries for what a server may recover from.

The URL is the workspace's to choose, so it goes through the outbound guard
(engagement_site/outbound.py): an http(s) URL whose host resolves only to public
addresses (or to OUTBOUND_ALLOWED_NETWORKS), connected to the address that was
checked. Anything else fails the message for good before a byte is sent. Redirects
are not followed (a 3xx is a refusal)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator

import httpx
from pydantic import Field

from delivery.channels.base import Channel, ChannelConfig, Outgoing, SendResult
from engagement_site import outbound

SIGNATURE_HEADER = "X-Engagement-Signature"
# Worth another try: the server is busy, rate limiting, or broken for now.
TEMPORARY_STATUSES = {408, 409, 425, 429}


class WebhookConfig(ChannelConfig):
    timeout_seconds: float = Field(default=10, gt=0, le=60)


def signing_secret(workspace_id: int) -> str:
    """The workspace's webhook signing secret, derived from SECRET_KEY (nothing to
    store or leak at rest; rotating SECRET_KEY rotates it)."""
    from django.conf import settings

    digest = hmac.new(
        settings.SECRET_KEY.encode(), f"webhook-signing:{workspace_id}".encode(), hashlib.sha256
    ).hexdigest()
    return f"whsec_{digest}"


def signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`; receivers recompute it
    and refuse old timestamps (replays)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class WebhookChannel(Channel):
    id = "webhook"
    name = "Webhook"
    Config = WebhookConfig

    def address(self, profile) -> str:
        return "webhook"  # the URL is the template's, rendered per person

    def send_batch(self, batch: list[Outgoing]) -> Iterator[SendResult]:
        with httpx.Client(
            timeout=self.config.timeout_seconds,
            follow_redirects=False,
            transport=outbound.transport(),
        ) as client:
            for outgoing in batch:
                yield self._send(client, outgoing)

    def send(self, outgoing: Outgoing) -> SendResult:
        return next(iter(self.send_batch([outgoing])))

    def _send(self, client: httpx.Client, outgoing: Outgoing) -> SendResult:
        fields = outgoing.fields
        problem = outbound.scheme_problem(fields.get("url", ""))
        if problem is not None:
            return SendResult.permanent(f"webhook URL: {problem}")
        body = fields.get("body", "").encode()
        headers = {
            **fields.get("headers", {}),
            "Content-Type": "application/json",
            "User-Agent": "Engagement-Webhooks/1",
            "Idempotency-Key": outgoing.idempotency_key,
            "X-Engagement-Message": outgoing.idempotency_key,
            SIGNATURE_HEADER: signature(
                secret=signing_secret(outgoing.workspace_id), timestamp=int(time.time()), body=body
            ),
        }
        try:
            response = client.request(
                fields.get("method", "POST"), fields["url"], content=body or None, headers=headers
            )
        except outbound.OutboundRefused as error:
            return SendResult.permanent(f"webhook URL {error}")
        except httpx.TimeoutException as error:
            return SendResult.temporary(f"timed out: {error}")
        except httpx.TransportError as error:
            return SendResult.temporary(f"{type(error).__name__}: {error}")
        except httpx.InvalidURL as error:
            return SendResult.permanent(f"invalid URL: {error}")
        summary = f"{response.status_code} {response.reason_phrase}: {response.text[:200]}"
        if response.is_success:
            return SendResult.sent(response.headers.get("X-Request-Id", "")[:200])
        if response.status_code >= 500 or response.status_code in TEMPORARY_STATUSES:
            return SendResult.temporary(summary)
        return SendResult.permanent(summary)  # 3xx (not followed) and other 4xx
