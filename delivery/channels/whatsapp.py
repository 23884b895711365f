"""WhatsApp: an approved template (name, language, body parameters) to the profile's
phone number, through Twilio (the Messages API with `whatsapp:` addresses, the
template as a ContentSid with ContentVariables) or Meta's WhatsApp Cloud API.

Business-initiated WhatsApp messages must use an approved template, so that is all a
journey sends. Delivery and read reports come back to the hook URL: Twilio calls the
StatusCallback each message names; Meta calls the webhook set up in the app, which
first checks the verify token (a GET handshake) and signs each POST with the app
secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from delivery.channels import twilio
from delivery.channels.base import (
    Callback,
    CallbackRefused,
    CallbackResult,
    Channel,
    Inbound,
    Outgoing,
    Receipt,
    SendResult,
)
from engagement_site import outbound

META_BASE_URL = "https://graph.facebook.com"
META_SIGNATURE_HEADER = "X-Hub-Signature-256"

# Meta Cloud API error codes (error.code). The person cannot get this message:
# 131026 undeliverable (not on WhatsApp, an old app), 131047 more than 24 hours since
# they wrote (re-engagement needs a template it does not accept), 131051 unsupported
# message type, 132000/132001/132007/132012 the template's parameters, its name or
# language, or its policy; 131008/131009/100 a required parameter missing or invalid.
META_PERMANENT_CODES = {100, 131008, 131009, 131026, 131047, 131051, 132000, 132001, 132007}
META_PERMANENT_CODES |= {132012}
# Worth another try: rate limits (130429 throughput, 131056 pair rate, 80007 the
# account's, 4 the app's), Meta's own trouble (1, 2, 131000, 131016), and our
# credentials or account (190 expired token, 10/200 permissions, 131031 locked,
# 133010 the number not registered): not the person's fault.
META_TEMPORARY_CODES = {1, 2, 4, 10, 190, 200, 80007, 130429, 131000, 131016, 131031, 131056}
META_TEMPORARY_CODES |= {133010}
# Failures in a status report that say the number cannot receive WhatsApp at all.
META_PERMANENT_DELIVERY_CODES = {131026}


class WhatsAppConfig(twilio.TwilioFields):
    """Settings for one provider: `provider` says which fields must be set."""

    provider: Literal["twilio", "meta"]
    base_url: str = Field(default="", max_length=300)
    # Twilio
    account_sid: str = ""
    auth_token: SecretStr | None = None
    from_number: str = ""
    messaging_service_sid: str = ""
    # Approved template -> Twilio Content SID (HX...); "name:language" keys choose a
    # translation, plain "name" keys serve every language.
    content_sids: dict[str, str] = Field(default_factory=dict)
    # Meta
    api_version: str = Field(default="v21.0", pattern=r"^v[0-9]+\.[0-9]+$")
    phone_number_id: str = Field(default="", pattern=r"^[0-9]*$", max_length=32)
    access_token: SecretStr | None = None
    app_secret: SecretStr | None = None
    verify_token: SecretStr | None = None

    _account_sid = field_validator("account_sid")(twilio.check_account_sid)
    _from_number = field_validator("from_number")(twilio.check_sender_number)
    _service = field_validator("messaging_service_sid")(twilio.check_messaging_service_sid)

    @field_validator("content_sids")
    @classmethod
    def _content_sids(cls, value: dict[str, str]) -> dict[str, str]:
        for name, sid in value.items():
            if not twilio.CONTENT_SID_RE.match(sid):
                raise ValueError(
                    f"{name!r}: {sid!r} is not a Content SID (HX followed by 32 hex digits)"
                )
        return value

    @model_validator(mode="after")
    def _provider_fields(self):
        if self.provider == "twilio":
            missing = [name for name in ("account_sid", "auth_token") if not getattr(self, name)]
            if not (self.from_number or self.messaging_service_sid):
                missing.append("from_number or messaging_service_sid")
            default = twilio.DEFAULT_BASE_URL
        else:
            missing = [
                name
                for name in ("phone_number_id", "access_token", "app_secret", "verify_token")
                if not getattr(self, name)
            ]
            default = META_BASE_URL
        if missing:
            raise ValueError(f"the {self.provider} provider needs {', '.join(missing)}")
        if not self.base_url:
            self.base_url = default
        elif not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url: an http(s) URL such as {default}")
        self.base_url = self.base_url.rstrip("/")
        return self


class WhatsAppChannel(Channel):
    id = "whatsapp"
    name = "WhatsApp"
    Config = WhatsAppConfig
    address_field = "phone"
    requires_settings = True

    def send(self, outgoing: Outgoing) -> SendResult:
        return next(iter(self.send_batch([outgoing])))

    def send_batch(self, batch: list[Outgoing]) -> Iterator[SendResult]:
        if self.config.provider == "twilio":
            yield from self._twilio_batch(batch)
        else:
            yield from self._meta_batch(batch)

    def handle_callback(self, callback: Callback) -> CallbackResult:
        if self.config.provider == "twilio":
            return twilio.read_callback(callback, auth_token=self.config.secret("auth_token"))
        return self._meta_callback(callback)

    def inbound_reply(self, text: str) -> tuple[int, str, bytes] | None:
        # Meta's webhook takes no reply in its answer; a reply would be a message of
        # its own, so a HELP over Meta is answered by the business's own auto-reply.
        return twilio.twiml(text) if self.config.provider == "twilio" else None

    # ----------------------------------------------------------------------- Twilio

    def _twilio_batch(self, batch: list[Outgoing]) -> Iterator[SendResult]:
        config = self.config
        callback_url = self.hook_url
        with twilio.TwilioClient(
            base_url=config.base_url,
            account_sid=config.account_sid,
            auth_token=config.secret("auth_token"),
            timeout=config.timeout_seconds,
        ) as client:
            for outgoing in batch:
                yield self._twilio_send(client, outgoing, callback_url)

    def _twilio_send(self, client, outgoing: Outgoing, callback_url: str) -> SendResult:
        to = twilio.e164(outgoing.to.removeprefix("whatsapp:"))
        if not to:
            return _not_a_number(outgoing.to)
        fields = outgoing.fields
        name, language = fields.get("template_name", ""), fields.get("language", "")
        content_sid = self.config.content_sids.get(
            f"{name}:{language}"
        ) or self.config.content_sids.get(name)
        if not content_sid:
            return SendResult.permanent(
                f"the WhatsApp template {name!r} has no Twilio Content SID: add it to the "
                "channel's content_sids"
            )
        parameters = fields.get("parameters", [])
        data = {
            "To": f"whatsapp:{to}",
            "ContentSid": content_sid,
            "ContentVariables": json.dumps(
                {str(index): str(value) for index, value in enumerate(parameters, start=1)}
            ),
        }
        if self.config.messaging_service_sid:
            data["MessagingServiceSid"] = self.config.messaging_service_sid
        else:
            data["From"] = f"whatsapp:{self.config.from_number}"
        if callback_url:
            data["StatusCallback"] = callback_url
        return client.create_message(data)

    # ----------------------------------------------------------------------- Meta

    def _meta_batch(self, batch: list[Outgoing]) -> Iterator[SendResult]:
        config = self.config
        url = f"{config.base_url}/{config.api_version}/{config.phone_number_id}/messages"
        with httpx.Client(
            timeout=config.timeout_seconds,
            follow_redirects=False,
            transport=outbound.transport(),
            headers={
                "Authorization": f"Bearer {config.secret('access_token')}",
                "User-Agent": "Engagement-Delivery/1",
            },
        ) as client:
            for outgoing in batch:
                yield self._meta_send(client, url, outgoing)

    def _meta_send(self, client: httpx.Client, url: str, outgoing: Outgoing) -> SendResult:
        to = twilio.e164(outgoing.to.removeprefix("whatsapp:"))
        if not to:
            return _not_a_number(outgoing.to)
        fields = outgoing.fields
        template = {
            "name": fields.get("template_name", ""),
            "language": {"code": fields.get("language", "")},
        }
        parameters = fields.get("parameters", [])
        if parameters:
            template["components"] = [
                {
                    "type": "body",
                    "parameters": [{"type": "text", "text": str(value)} for value in parameters],
                }
            ]
        payload = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to.removeprefix("+"),
            "type": "template",
            "template": template,
        }
        try:
            response = client.post(url, json=payload)
        except httpx.TimeoutException as error:
            return SendResult.temporary(f"Meta timed out: {error}")
        except httpx.TransportError as error:
            return SendResult.temporary(f"Meta unreachable: {type(error).__name__}: {error}")
        return _meta_answer(response)

    def _meta_callback(self, callback: Callback) -> CallbackResult:
        if callback.method == "GET":
            return self._meta_handshake(callback)
        given = callback.headers.get(META_SIGNATURE_HEADER, "")
        if not given:
            raise CallbackRefused(f"missing {META_SIGNATURE_HEADER} header")
        expected = (
            "sha256="
            + hmac.new(
                self.config.secret("app_secret").encode(), callback.body, hashlib.sha256
            ).hexdigest()
        )
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise CallbackRefused(f"the {META_SIGNATURE_HEADER} header does not match the body")
        try:
            payload = json.loads(callback.body)
        except ValueError:
            raise CallbackRefused("the webhook body is not JSON", status=400) from None
        if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
            raise CallbackRefused(
                "not a WhatsApp Business Account webhook (object must be "
                "'whatsapp_business_account')",
                status=400,
            )
        result = CallbackResult()
        for entry in _list(payload.get("entry")):
            for change in _list(entry.get("changes") if isinstance(entry, dict) else None):
                value = change.get("value") if isinstance(change, dict) else None
                if not isinstance(value, dict) or not self._our_number(value):
                    continue
                result.receipts += [
                    receipt
                    for status in _list(value.get("statuses"))
                    if (receipt := _meta_receipt(status))
                ]
                result.inbound += [
                    inbound for message in _list(value.get("messages")) if (inbound := _meta_inbound(message))
                ]  # fmt: skip
        return result

    def _our_number(self, value: dict) -> bool:
        """Whether a change is about the configured number (one app may serve several
        numbers, and their reports reach every webhook of the app)."""
        metadata = value.get("metadata") or {}
        number_id = str(metadata.get("phone_number_id", "")) if isinstance(metadata, dict) else ""
        return not number_id or number_id == self.config.phone_number_id

    def _meta_handshake(self, callback: Callback) -> CallbackResult:
        """Meta's subscription check: hub.mode=subscribe with our verify token gets
        hub.challenge back, as plain text."""
        query = callback.query
        token = query.get("hub.verify_token", "")
        expected = self.config.secret("verify_token")
        if query.get("hub.mode") != "subscribe" or not (
            token and hmac.compare_digest(token.encode(), expected.encode())
        ):
            raise CallbackRefused("the verify token does not match (or hub.mode is not subscribe)")
        challenge = query.get("hub.challenge", "")
        return CallbackResult(response=(200, "text/plain", challenge.encode()))


def _not_a_number(to: str) -> SendResult:
    return SendResult.permanent(
        f"{to!r} is not a phone number in E.164 form (+, country code, number)"
    )


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _meta_answer(response: httpx.Response) -> SendResult:
    """A Cloud API answer: 200 with messages[0].id, or an error by its code."""
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    payload = payload if isinstance(payload, dict) else {}
    if response.status_code == 200:
        messages = _list(payload.get("messages"))
        message_id = messages[0].get("id", "") if messages and isinstance(messages[0], dict) else ""
        if not message_id:
            return SendResult.temporary("Meta answered 200 without a message id")
        return SendResult.sent(str(message_id))
    error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    detail = f"Meta {response.status_code}" + (f" code {code}" if code is not None else "")
    detail += f": {error.get('message') or response.text[:200]}"
    if code in META_PERMANENT_CODES:
        return SendResult.permanent(detail)
    if code in META_TEMPORARY_CODES or response.status_code in (401, 408, 429):
        return SendResult.temporary(detail)
    if response.status_code >= 500:
        return SendResult.temporary(detail)
    return SendResult.permanent(detail)


def _meta_receipt(status) -> Receipt | None:
    """A statuses[] item: delivered -> delivered, read -> opened, failed -> bounced
    (permanent when WhatsApp cannot reach the number at all); sent says nothing new."""
    if not isinstance(status, dict) or not status.get("id"):
        return None
    kind = {"delivered": "delivered", "read": "opened", "failed": "bounced"}.get(
        status.get("status", "")
    )
    if kind is None:
        return None
    at = None
    with contextlib.suppress(TypeError, ValueError, OverflowError):
        at = datetime.fromtimestamp(int(status.get("timestamp", "")), tz=UTC)
    error, permanent = "", False
    if kind == "bounced":
        errors = [item for item in _list(status.get("errors")) if isinstance(item, dict)]
        first = errors[0] if errors else {}
        code = first.get("code")
        error = f"WhatsApp failed {code}: {first.get('title') or first.get('message') or ''}"
        permanent = code in META_PERMANENT_DELIVERY_CODES
    return Receipt(
        provider_message_id=str(status["id"]), status=kind, at=at, error=error, permanent=permanent
    )


def _meta_inbound(message) -> Inbound | None:
    """A messages[] item a person sent: text (text.body) or a quick-reply button."""
    if not isinstance(message, dict) or not message.get("from"):
        return None
    kind = message.get("type")
    if kind == "text":
        text = (message.get("text") or {}).get("body", "")
    elif kind == "button":
        text = (message.get("button") or {}).get("text", "")
    else:
        return None
    return Inbound(
        sender=f"+{str(message['from']).removeprefix('+')}",
        text=str(text),
        provider_message_id=str(message.get("id", "")),
    )
