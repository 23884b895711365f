"""What the delivery tests share: a real SMTP server (aiosmtpd) on a free local port,
which records what it takes and answers chosen recipients with a temporary (451) or
permanent (550) refusal; a local webhook receiver and a local Twilio; channels added to
DELIVERY_CHANNELS for a test; the journeys the tests send through."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller

from content import services as content_services
from delivery import channels as registry
from tests.delivery.fake_twilio import FakeTwilio
from tests.delivery.local_http import Receiver
from tests.journeys.test_executor import EDITOR, _run_journey
from tests.servers import free_port


@dataclass
class SmtpSink:
    host: str
    port: int
    received: list[email.message.EmailMessage] = field(default_factory=list)
    # recipient -> SMTP reply, e.g. "451 4.3.0 Try again later"
    refuse: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.refuse.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append(
            email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        )
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [message for message in self.received if message["To"] == address]


@pytest.fixture
def smtp(settings):
    """Point Django's SMTP backend at a running aiosmtpd server."""
    sink = SmtpSink("127.0.0.1", free_port())
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = sink.host, sink.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "Acme <news@acme.example>"
    yield sink
    controller.stop()


@pytest.fixture
def receiver():
    """A local webhook receiver (tests/delivery/local_http.py), serving for the test."""
    with Receiver() as server:
        yield server


@pytest.fixture
def twilio_api():
    """A local Twilio (tests/delivery/fake_twilio.py), serving for the test."""
    with FakeTwilio() as server:
        yield server


@pytest.fixture
def add_channel(settings):
    """Adds a channel class, by dotted path, to DELIVERY_CHANNELS for the test."""

    def add(path: str) -> None:
        settings.DELIVERY_CHANNELS = [*settings.DELIVERY_CHANNELS, path]
        registry.channels.cache_clear()

    yield add
    registry.channels.cache_clear()


def _email_template(workspace):
    return content_services.template_create(
        workspace=workspace, name="Weekly", channel="email",
        content={"default": {
            "subject": "Hello {{ profile.first_name }}",
            "html": '<p>Hi {{ profile.first_name }}, see <a href="https://acme.example/sale">the sale</a>.</p>'
                    '<p><a href="{{ message.unsubscribe_url }}">Unsubscribe</a></p>',
        }},
        context=EDITOR,
    )  # fmt: skip


@pytest.fixture
def weekly(workspace):
    """Email now, another a day later."""
    template = _email_template(workspace)
    return _run_journey(
        workspace, "Weekly",
        [
            {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "first", "type": "action",
             "action": {"kind": "message", "channel": "email", "template_id": template.pk}},
            {"id": "day", "type": "wait", "wait": {"kind": "duration", "seconds": 86400}},
            {"id": "second", "type": "action",
             "action": {"kind": "message", "channel": "email", "template_id": template.pk}},
            {"id": "end", "type": "exit"},
        ],
        [{"source": "api", "target": "first"}, {"source": "first", "target": "day"},
         {"source": "day", "target": "second"}, {"source": "second", "target": "end"}],
    )  # fmt: skip


def _one_step_journey(workspace, name: str, action: dict):
    """A published journey: an API trigger, one action node ("send"), then exit."""
    return _run_journey(
        workspace, name,
        [
            {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "send", "type": "action", "action": action},
            {"id": "end", "type": "exit"},
        ],
        [{"source": "api", "target": "send"}, {"source": "send", "target": "end"}],
    )  # fmt: skip
