"""What the SMS and WhatsApp channels share when Twilio carries them: the Messages
API call and how its answers read (sent, worth another try, refused for good), the
X-Twilio-Signature check of its callbacks, status callbacks as receipts, inbound
texts, and TwiML answers.

Twilio has no idempotency header. A message is claimed before it is sent and its
outcome committed as soon as Twilio answers, so only a crash between Twilio's 201 and
that commit sends one message twice (docs/channels/sms-whatsapp.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from xml.sax.saxutils import escape

import httpx
from pydantic import Field, field_validator

from delivery.channels.base import (
    Callback,
    CallbackRefused,
    CallbackResult,
    ChannelConfig,
    Inbound,
    Receipt,
    SendResult,
)
from engagement_site import outbound

DEFAULT_BASE_URL = "https://api.twilio.com"
ACCOUNT_SID_RE = re.compile(r"^AC[0-9a-f]{32}$")
MESSAGING_SERVICE_SID_RE = re.compile(r"^MG[0-9a-f]{32}$")
CONTENT_SID_RE = re.compile(r"^HX[0-9a-f]{32}$")
E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
DEFAULT_HELP_REPLY = "Reply STOP to stop these messages, START to get them again."
SIGNATURE_HEADER = "X-Twilio-Signature"

# Error codes that are about us or Twilio, not the person: our credentials (20003),
# an account Twilio suspended for now (20005), rate limits (20429, 14107), and
# Twilio's own trouble (20500, 20503). Everything else in a 4xx is about the message
# or the number (21211 not a valid number, 21610 the person texted STOP, 21612 no
# route, 21408 a region we may not send to, 21614 not a mobile number) and final.
TEMPORARY_CODES = frozenset({20003, 20005, 20429, 14107, 20500, 20503})
# The recipient said STOP to Twilio's opt-out handling: the number wants nothing more.
UNSUBSCRIBED_CODE = 21610

# Status callbacks: the stages we track. queued/accepted/sending/sent tell nothing new
# (the message is already `sent` once Twilio took it).
_RECEIPT_STATUSES = {
    "delivered": "delivered",
    "read": "opened",  # WhatsApp read receipts
    "undelivered": "bounced",
    "failed": "bounced",
}
# Delivery errors that say the number will never take a message (suppressed): unknown
# destination (30005), a landline or unreachable carrier (30006), an invalid number
# (21211), not a mobile number (21614), not a WhatsApp user (63003). Unreachable for
# now (30003), unknown (30008), carrier violation (30007) and queue overflows are not.
PERMANENT_DELIVERY_ERRORS = frozenset({"30005", "30006", "21211", "21614", "63003"})


class TwilioFields(ChannelConfig):
    """The settings every Twilio-carried channel has."""

    base_url: str = Field(default=DEFAULT_BASE_URL, max_length=300)
    timeout_seconds: float = Field(default=10, gt=0, le=60)
    # The answer to HELP (and INFO); carriers want it to say how to stop.
    help_reply: str = Field(default=DEFAULT_HELP_REPLY, max_length=320)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"an http(s) URL such as {DEFAULT_BASE_URL}")
        # The address check at send time is the guard; this one catches an IP early.
        return outbound.check_configured_url(value.rstrip("/"))


def check_account_sid(value: str) -> str:
    if value and not ACCOUNT_SID_RE.match(value):
        raise ValueError("an Account SID is AC followed by 32 hex digits")
    return value


def check_sender_number(value: str) -> str:
    if value and not E164_RE.match(value):
        raise ValueError(f"{value!r} is not a phone number in E.164 form, e.g. +14155550100")
    return value


def check_messaging_service_sid(value: str) -> str:
    if value and not MESSAGING_SERVICE_SID_RE.match(value):
        raise ValueError("a Messaging Service SID is MG followed by 32 hex digits")
    return value


def e164(number: str) -> str:
    """The number as E.164 (+ and digits, spaces, dashes, dots and brackets dropped),
    or "" when it is not one: without its + the country is unknown."""
    compact = re.sub(r"[\s\-.()]", "", number or "")
    return compact if E164_RE.match(compact) else ""


class TwilioClient:
    """One pooled HTTP client for a batch of Messages API calls."""

    def __init__(self, *, base_url: str, account_sid: str, auth_token: str, timeout: float):
        self.base_url, self.account_sid, self.auth_token = base_url, account_sid, auth_token
        self.http = httpx.Client(
            timeout=timeout, follow_redirects=False, transport=outbound.transport()
        )

    def __enter__(self) -> TwilioClient:
        return self

    def __exit__(self, *exc) -> None:
        self.http.close()

    def create_message(self, data: dict[str, str]) -> SendResult:
        return message_create(
            self.http,
            base_url=self.base_url,
            account_sid=self.account_sid,
            auth_token=self.auth_token,
            params=data,
        )


def messages_url(*, base_url: str, account_sid: str) -> str:
    return f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"


def message_create(
    client: httpx.Client,
    *,
    base_url: str,
    account_sid: str,
    auth_token: str,
    params: dict[str, str],
) -> SendResult:
    """POST one message to the Messages API and read Twilio's answer; never raises for
    a refusal or a network problem."""
    try:
        response = client.post(
            messages_url(base_url=base_url, account_sid=account_sid),
            data=params,
            auth=(account_sid, auth_token),
            headers={"Accept": "application/json"},
        )
    except httpx.TimeoutException as error:
        return SendResult.temporary(f"timed out: {error}")
    except httpx.TransportError as error:
        return SendResult.temporary(f"{type(error).__name__}: {error}")
    except httpx.InvalidURL as error:
        return SendResult.temporary(f"invalid Twilio base URL: {error}")  # our settings
    return read_answer(response)


def read_answer(response: httpx.Response) -> SendResult:
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    if response.status_code in (200, 201) and payload.get("sid"):
        return SendResult.sent(str(payload["sid"]))
    code = payload.get("code")
    summary = f"{response.status_code} Twilio {code or 'error'}: " + str(
        payload.get("message") or response.text[:200]
    )
    if response.is_success:  # 2xx without a sid: not what Twilio answers
        return SendResult.temporary(f"{response.status_code} without a message sid")
    code_text = str(code) if code else ""
    if (
        response.status_code >= 500
        or response.status_code in (401, 403, 429)
        or code in TEMPORARY_CODES
    ):
        return SendResult.temporary(summary, code=code_text)
    return SendResult.permanent(summary, code=code_text, opted_out=code == UNSUBSCRIBED_CODE)


# --------------------------------------------------------------------------- callbacks


def signature(*, auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """base64(HMAC-SHA1(auth token, url + each POST key and value, keys sorted)), as
    Twilio signs every request it makes."""
    payload = url + "".join(f"{key}{params[key]}" for key in sorted(params))
    mac = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def header(headers: Mapping[str, str], name: str) -> str:
    """A header by name in any case (Django's request.headers is case-insensitive, a
    plain mapping is not)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), "")
    return value or ""


def signature_check(callback: Callback, *, auth_token: str) -> None:
    """CallbackRefused (403) unless Twilio signed this request with our auth token."""
    given = header(callback.headers, SIGNATURE_HEADER)
    if not given:
        raise CallbackRefused(f"the {SIGNATURE_HEADER} header is missing")
    expected = signature(auth_token=auth_token, url=callback.url, params=callback.form)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise CallbackRefused(f"the {SIGNATURE_HEADER} signature does not match")


def read_callback(callback: Callback, *, auth_token: str) -> CallbackResult:
    """A status callback (MessageSid and MessageStatus) becomes a receipt; a message a
    person sent (From and Body, no MessageStatus) an Inbound, answered with an empty
    TwiML <Response/> unless the keyword rules have a reply."""
    if callback.method != "POST":
        raise CallbackRefused("Twilio callbacks are POST requests", status=405)
    signature_check(callback, auth_token=auth_token)
    form = callback.form
    status = form.get("MessageStatus", "")
    if status:
        sid = form.get("MessageSid", "")
        if not sid:
            raise CallbackRefused("a status callback without a MessageSid", status=400)
        mapped = _RECEIPT_STATUSES.get(status)
        if mapped is None:
            return CallbackResult()
        error = form.get("ErrorCode", "")
        return CallbackResult(
            receipts=[
                Receipt(
                    provider_message_id=sid,
                    status=mapped,
                    error=f"Twilio error {error}" if error else "",
                    permanent=mapped == "bounced" and error in PERMANENT_DELIVERY_ERRORS,
                )
            ]
        )
    if "From" in form and "Body" in form:
        return CallbackResult(
            inbound=[
                Inbound(
                    sender=form["From"],
                    text=form["Body"],
                    provider_message_id=form.get("MessageSid", ""),
                )
            ],
            response=twiml(""),
        )
    raise CallbackRefused("neither a status callback nor an inbound message", status=400)


def twiml(text: str) -> tuple[int, str, bytes]:
    """A TwiML answer: one <Message> with `text` (escaped), or an empty <Response/>."""
    head = '<?xml version="1.0" encoding="UTF-8"?>'
    body = f"<Response><Message>{escape(text)}</Message></Response>" if text else "<Response/>"
    return 200, "application/xml", (head + body).encode()
