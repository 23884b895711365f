"""Email through Django's mail backends (EMAIL_URL: SMTP in production, the local
development server under `make run`), one connection reused across a batch, with
RFC 8058 one-click unsubscribe headers."""

from __future__ import annotations

import contextlib
import smtplib
from email.utils import formataddr, make_msgid, parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from pydantic import Field

from delivery.channels.base import Channel, ChannelConfig, Outgoing, SendResult


class EmailConfig(ChannelConfig):
    from_email: str = Field(default="", max_length=254, description="Default: DEFAULT_FROM_EMAIL")


def _classify(error: Exception) -> SendResult:
    """An SMTP reply in the 4xx range, or no answer at all, is worth another try; a
    5xx reply is final."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(error.recipients.values()))
        text = f"{code} {reply.decode(errors='replace') if isinstance(reply, bytes) else reply}"
        return SendResult.permanent(text) if code >= 500 else SendResult.temporary(text)
    if isinstance(error, smtplib.SMTPResponseException):
        reply = error.smtp_error
        text = f"{error.smtp_code} {reply.decode(errors='replace') if isinstance(reply, bytes) else reply}"
        return SendResult.permanent(text) if error.smtp_code >= 500 else SendResult.temporary(text)
    return SendResult.temporary(f"{type(error).__name__}: {error}")


class EmailChannel(Channel):
    id = "email"
    name = "Email"
    Config = EmailConfig
    address_field = "email"

    def _email(self, outgoing: Outgoing) -> EmailMultiAlternatives:
        fields = outgoing.fields
        sender = self.config.from_email or settings.DEFAULT_FROM_EMAIL
        if fields.get("from_name"):
            sender = formataddr((fields["from_name"], parseaddr(sender)[1]))
        domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
        headers = {
            "Message-ID": make_msgid(
                idstring=outgoing.idempotency_key.replace(":", "."), domain=domain
            ),
            "X-Engagement-Message": outgoing.idempotency_key,
        }
        if outgoing.unsubscribe_url:
            headers["List-Unsubscribe"] = (
                f"<{outgoing.unsubscribe_post_url or outgoing.unsubscribe_url}>"
            )
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        email = EmailMultiAlternatives(
            subject=fields["subject"],
            body=fields.get("text", ""),
            from_email=sender,
            to=[outgoing.to],
            reply_to=[fields["reply_to"]] if fields.get("reply_to") else None,
            headers=headers,
        )
        email.attach_alternative(fields["html"], "text/html")
        return email

    def send_batch(self, batch: list[Outgoing]) -> list[SendResult]:
        results: list[SendResult] = []
        try:
            connection = get_connection(fail_silently=False)
            connection.open()
        except Exception as error:  # the server is down: every message waits
            return [_classify(error)] * len(batch)
        try:
            for outgoing in batch:
                email = self._email(outgoing)
                try:
                    connection.send_messages([email])
                except Exception as error:
                    results.append(_classify(error))
                    continue
                results.append(SendResult.sent(email.extra_headers["Message-ID"]))
        finally:
            with contextlib.suppress(Exception):
                connection.close()
        return results

    def send(self, outgoing: Outgoing) -> SendResult:
        return self.send_batch([outgoing])[0]
