"""The channel plug-in interface.

A channel is a class with a stable `id`, a pydantic `Config` (its per-workspace
settings), and methods to check a config, render a template version for a message
and send it. `send` answers with a SendResult and never raises for a provider's
refusal: a temporary problem (a 4xx SMTP reply, a 429, a 5xx, a timeout) is retried
with backoff, a permanent one (no such mailbox, invalid number) fails the message and
lets a fallback chain move on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class ChannelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    status: str  # "sent" | "temporary" | "permanent"
    provider_message_id: str = ""
    error: str = ""

    @classmethod
    def sent(cls, provider_message_id: str = "") -> SendResult:
        return cls("sent", provider_message_id=provider_message_id)

    @classmethod
    def temporary(cls, error: str) -> SendResult:
        return cls("temporary", error=error)

    @classmethod
    def permanent(cls, error: str) -> SendResult:
        return cls("permanent", error=error)


class Channel:
    """Subclass, set `id` and `Config`, and implement `send` (or `send_batch`)."""

    id: ClassVar[str]
    name: ClassVar[str] = ""
    Config: ClassVar[type[ChannelConfig]] = ChannelConfig
    # The profile column that holds the address ("" for channels without one).
    address_field: ClassVar[str] = ""

    def __init__(self, config: ChannelConfig | None = None):
        self.config = config if config is not None else self.Config()

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

    def send_batch(self, batch: list[Outgoing]) -> Iterator[SendResult]:
        """One result per message, in order, yielded as each is known (delivery commits
        each before the next is sent). Channels that reuse a connection across a batch
        override this."""
        for outgoing in batch:
            yield self.send(outgoing)
