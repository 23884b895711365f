"""Email through Django's mail backends (EMAIL_URL: SMTP in production, the local
development server under `make run`), one connection reused across a batch, with
RFC 8058 one-click unsubscribe headers."""

from __future__ import annotations

import contextlib
import smtplib
from collections.abc import Iterator
from email.utils import formataddr, parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from pydantic import Field
from rq.timeouts import BaseTimeoutException

from delivery.channels.base import Channel, ChannelConfig, Outgoing, SendResult


class EmailConfig(ChannelConfig):
    from_email: str = Field(default="", max_length=254, description="Default: DEFAULT_FROM_EMAIL")


def _reply(code: int, text) -> str:
    return f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"


def _classify(error: Exception) -> SendResult:
    """For one message: a 5xx refusal of the recipient or the data is final, a 4xx one
    is worth another try, and so is a dropped connection. A message that cannot even be
    built (a malformed address or header) is final."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(error.recipients.values()))
        return (SendResult.permanent if code >= 500 else SendResult.temporary)(_reply(code, text))
    if isinstance(error, smtplib.SMTPAuthenticationError | smtplib.SMTPHeloError):
        # Our login or greeting: the server's setup, not this person; retry.
        return SendResult.temporary(_reply(error.smtp_code, error.smtp_error))
    if isinstance(error, smtplib.SMTPSenderRefused):
        # Our sender refused: the server's setup, not this person; retry, do not fail.
        return SendResult.temporary(_reply(error.smtp_code, error.smtp_error))
    if isinstance(error, smtplib.SMTPResponseException):
        text = _reply(error.smtp_code, error.smtp_error)
        return (SendResult.permanent if error.smtp_code >= 500 else SendResult.temporary)(text)
    if isinstance(error, smtplib.SMTPException | OSError):
        return SendResult.temporary(f"{type(error).__name__}: {error}")
    return SendResult.permanent(f"{type(error).__name__}: {error}")


class _BuiltOnce(EmailMultiAlternatives):
    """An email whose MIME message is built once: send_batch builds it first (a bad
    address or header fails that one message, not the connection) and the SMTP backend
    asks for it again to send it. Building is most of an email's cost after rendering."""

    _built = None

    def message(self, *args, **kwargs):
        if self._built is None:
            self._built = super().message(*args, **kwargs)
        return self._built


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
            # The same on every try of this message, so a repeat is recognisable.
            "Message-ID": f"<{outgoing.idempotency_key.replace(':', '.')}@{domain}>",
            "X-Engagement-Message": outgoing.idempotency_key,
        }
        if outgoing.unsubscribe_url:
            link = outgoing.unsubscribe_post_url or outgoing.unsubscribe_url
            headers["List-Unsubscribe"] = f"<{link}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        email = _BuiltOnce(
            subject=fields["subject"],
            body=fields.get("text", ""),
            from_email=sender,
            to=[outgoing.to],
            reply_to=[fields["reply_to"]] if fields.get("reply_to") else None,
            headers=headers,
        )
        email.attach_alternative(fields["html"], "text/html")
        return email

    def send_batch(self, batch: list[Outgoing]) -> Iterator[SendResult]:
        connection = get_connection(fail_silently=False)
        for outgoing in batch:
            try:
                email = self._email(outgoing)
                email.message()  # builds it: a bad address or header fails here, finally
            except Exception as error:
                yield _classify(error)
                continue
            try:
                if connection.connection is None:
                    connection.open()
                accepted = connection.send_messages([email])
            except smtplib.SMTPServerDisconnected as error:
                # Unknown whether it got through: try again later, on a new connection.
                with contextlib.suppress(Exception):
                    connection.close()
                yield SendResult.temporary(f"SMTPServerDisconnected: {error}")
                continue
            except BaseTimeoutException:
                raise  # RQ stopping the job: not this message's outcome
            except Exception as error:
                if not isinstance(error, smtplib.SMTPRecipientsRefused | smtplib.SMTPDataError):
                    # The server or our login is the problem (connection refused, auth,
                    # sender refused): start again with a new connection next time.
                    with contextlib.suppress(Exception):
                        connection.close()
                yield _classify(error)
                continue
            if not accepted:
                yield SendResult.temporary("the mail server accepted no recipient")
                continue
            yield SendResult.sent(email.extra_headers["Message-ID"])
        with contextlib.suppress(Exception):
            connection.close()

    def send(self, outgoing: Outgoing) -> SendResult:
        return next(iter(self.send_batch([outgoing])))
