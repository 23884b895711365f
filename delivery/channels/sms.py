"""SMS through Twilio's Messages API: the rendered body to the profile's phone number
from the workspace's number or Messaging Service, with the hook URL as the status
callback; delivery reports and inbound texts (STOP, START, HELP) come back to it."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field, SecretStr, field_validator, model_validator

from delivery.channels import twilio
from delivery.channels.base import Callback, CallbackResult, Channel, Outgoing, SendResult


class SmsConfig(twilio.TwilioFields):
    account_sid: str = Field(min_length=34, max_length=34)
    auth_token: SecretStr
    from_number: str = ""
    messaging_service_sid: str = ""

    _account_sid = field_validator("account_sid")(twilio.check_account_sid)
    _from_number = field_validator("from_number")(twilio.check_sender_number)
    _service = field_validator("messaging_service_sid")(twilio.check_messaging_service_sid)

    @model_validator(mode="after")
    def _sender(self):
        if not (self.from_number or self.messaging_service_sid):
            raise ValueError("set from_number or messaging_service_sid: who the texts come from")
        return self


class SmsChannel(Channel):
    id = "sms"
    name = "SMS (Twilio)"
    Config = SmsConfig
    address_field = "phone"
    requires_settings = True

    def send_batch(self, batch: list[Outgoing]) -> Iterator[SendResult]:
        config = self.config
        callback_url = self.hook_url
        with twilio.TwilioClient(
            base_url=config.base_url,
            account_sid=config.account_sid,
            auth_token=config.secret("auth_token"),
            timeout=config.timeout_seconds,
        ) as client:
            for outgoing in batch:
                yield self._send(client, outgoing, callback_url)

    def send(self, outgoing: Outgoing) -> SendResult:
        return next(iter(self.send_batch([outgoing])))

    def _send(self, client: twilio.TwilioClient, outgoing: Outgoing, callback_url: str):
        to = twilio.e164(outgoing.to)
        if not to:
            return SendResult.permanent(
                f"{outgoing.to!r} is not a phone number in E.164 form (+, country code, number)"
            )
        body = outgoing.fields.get("body", "")
        if not body.strip():
            return SendResult.permanent("the rendered SMS body is empty")
        data = {"To": to, "Body": body}
        if self.config.messaging_service_sid:
            data["MessagingServiceSid"] = self.config.messaging_service_sid
        else:
            data["From"] = self.config.from_number
        if callback_url:
            data["StatusCallback"] = callback_url
        return client.create_message(data)

    def handle_callback(self, callback: Callback) -> CallbackResult:
        return twilio.read_callback(callback, auth_token=self.config.secret("auth_token"))

    def inbound_reply(self, text: str) -> tuple[int, str, bytes] | None:
        return twilio.twiml(text)
