"""The channel plug-in interface.

A channel is a class with a stable `id`, a pydantic `Config` (its per-workspace
settings), and methods to check a config, render a template version for a message
and send it. `send` answers with a SendResult and never raises for a provider's
refusal: a temporary problem (a 4xx SMTP reply, a 429, a 5xx, a timeout) is retried
with backoff, a permanent one (no such mailbox, invalid number) fails the message and
lets a fallback chain move on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SecretStr


class ChannelConfig(BaseModel):
    """A channel's per-workspace settings. Fields typed SecretStr (API keys, auth
    tokens, private keys) are stored encrypted and never shown back."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def secret_fields(cls) -> list[str]:
        return [
            name
            for name, info in cls.model_fields.items()
            if info.annotation is SecretStr or info.annotation == SecretStr | None
        ]

    def secret(self, name: str) -> str:
        value = getattr(self, name)
        return value.get_secret_value() if value is not None else ""


@dataclass(frozen=True)
class Outgoing:
    """One message ready to go: who, what (the rendered fields), and the links and
    headers delivery adds."""

    message_id: int
    idempotency_key: str
    workspace_id: int
    to: str
    fields: dict[str, Any]
    unsubscribe_url: str = ""
    unsubscribe_post_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    """What the provider said of one message. `code` is the provider's own error code
    (kept with the message's error); `opted_out` says the provider refused because the
    person opted out with it (Twilio 21610): delivery then records their STOP, so
    nothing more is tried on that channel."""

    status: str  # "sent" | "temporary" | "permanent"
    provider_message_id: str = ""
    error: str = ""
    code: str = ""
    opted_out: bool = False

    @classmethod
    def sent(cls, provider_message_id: str = "") -> SendResult:
        return cls("sent", provider_message_id=provider_message_id)

    @classmethod
    def temporary(cls, error: str, *, code: str = "") -> SendResult:
        return cls("temporary", error=error, code=code)

    @classmethod
    def permanent(cls, error: str, *, code: str = "", opted_out: bool = False) -> SendResult:
        return cls("permanent", error=error, code=code, opted_out=opted_out)


@dataclass(frozen=True)
class Callback:
    """A request a provider made to the channel's hook URL
    (`/hooks/<channel>/<token>/`): delivery receipts, inbound messages, handshakes."""

    method: str
    url: str  # absolute, as the provider called it (signatures cover it)
    headers: Mapping[str, str]
    body: bytes
    form: Mapping[str, str]
    query: Mapping[str, str]


@dataclass(frozen=True)
class Receipt:
    """What a provider reports of a message it took, found by its provider id.
    status: delivered | opened | clicked | bounced | complained. `permanent` marks a
    bounce that puts the address on the suppression list (no such number, mailbox)."""

    provider_message_id: str
    status: str
    at: datetime | None = None
    error: str = ""
    permanent: bool = False


@dataclass(frozen=True)
class Inbound:
    """A message a person sent to one of the workspace's numbers."""

    sender: str
    text: str
    provider_message_id: str = ""


@dataclass
class CallbackResult:
    receipts: list[Receipt] = field(default_factory=list)
    inbound: list[Inbound] = field(default_factory=list)
    # The answer the provider expects (status, content type, body); None: 200, empty.
    response: tuple[int, str, bytes] | None = None


class CallbackRefused(Exception):
    """A callback that is not the provider's (bad signature) or cannot be read; the
    hook answers 403 or 400 with this text."""

    def __init__(self, detail: str, status: int = 403):
        super().__init__(detail)
        self.status = status


class Channel:
    """Subclass, set `id` and `Config`, and implement `send` (or `send_batch`);
    providers that call back implement `handle_callback`."""

    id: ClassVar[str]
    name: ClassVar[str] = ""
    Config: ClassVar[type[ChannelConfig]] = ChannelConfig
    # The profile column that holds the address ("" for channels without one).
    address_field: ClassVar[str] = ""
    # Whether the channel cannot send before a workspace saves its settings (a
    # provider's credentials); messages then fail with "channel_not_configured".
    requires_settings: ClassVar[bool] = False
    # The workspace's limit on this channel (messages per second; None: none).
    rate_per_second: int | None = None
    # Where the provider reports back for these settings (/hooks/<channel>/<token>/,
    # from PUBLIC_URL; "" without saved settings): a status callback URL to send along.
    hook_url: str = ""

    def __init__(self, config: ChannelConfig | None = None, *, workspace_id: int | None = None):
        self.config = config if config is not None else self.Config()
        self.workspace_id = workspace_id

    @classmethod
    def validate(cls, data: dict[str, Any]) -> ChannelConfig:
        """The config, or pydantic's ValidationError naming each bad field."""
        return cls.Config.model_validate(data)

    def address(self, profile) -> str:
        return (
            (getattr(profile, self.address_field, "") or "").strip() if self.address_field else ""
        )

    def render(self, *, version, locale: str, context: dict) -> dict[str, Any]:
        from content.rendering import render_version

        return render_version(version=version, locale=locale, context=context).fields

    def send(self, outgoing: Outgoing) -> SendResult:
        raise NotImplementedError

    def handle_callback(self, callback: Callback) -> CallbackResult:
        """Check the provider's signature (CallbackRefused when it is wrong) and read
        its receipts and inbound messages. Channels without callbacks keep this."""
        raise CallbackRefused(f"the {self.id} channel takes no callbacks", status=404)

    def inbound_reply(self, text: str) -> tuple[int, str, bytes] | None:
        """The response that answers an inbound message with `text` (e.g. HELP)."""
        return None

    def send_batch(self, batch: list[Outgoing]) -> Iterator[SendResult]:
        """One result per message, in order, yielded as each is known (delivery commits
        each before the next is sent). Channels that reuse a connection across a batch
        override this."""
        for outgoing in batch:
            yield self.send(outgoing)
