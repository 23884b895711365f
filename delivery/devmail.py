"""The development mail server and its outbox, like Mailpit: `make run` starts an
SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it takes as an .eml file
under DEV_OUTBOX_DIR instead of delivering it, and the app shows them on the outbox
page. Never used when EMAIL_URL points at a real server."""

from __future__ import annotations

import email
import email.policy
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

MAX_LISTED = 200


class OutboxHandler:
    """aiosmtpd handler: one file per message, written whole then renamed into place."""

    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope):
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        partial = self.directory / f".{name}"
        partial.write_bytes(envelope.original_content)
        partial.rename(self.directory / name)
        return "250 Kept in the development outbox"


@dataclass(frozen=True)
class OutboxMessage:
    id: str
    received_at: datetime
    message: email.message.EmailMessage

    @property
    def key(self) -> str:
        return str(self.message.get("X-Engagement-Message", ""))

    @property
    def html(self) -> str:
        part = self.message.get_body(("html",))
        return part.get_content() if part is not None else ""

    @property
    def text(self) -> str:
        part = self.message.get_body(("plain",))
        return part.get_content() if part is not None else ""

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [(name, str(value).strip()) for name, value in self.message.items()]


def _read(path: Path) -> OutboxMessage:
    stamp = int(path.name.split("-", 1)[0]) / 1e9
    return OutboxMessage(
        id=path.stem,
        received_at=datetime.fromtimestamp(stamp, tz=UTC),
        message=email.message_from_bytes(path.read_bytes(), policy=email.policy.default),
    )


def outbox_messages(*, keys_of=None) -> list[OutboxMessage]:
    """The newest messages first (at most MAX_LISTED); with `keys_of`, only those whose
    idempotency key the callable accepts (it gets the set of keys, returns a subset)."""
    directory = Path(settings.DEV_OUTBOX_DIR)
    if not directory.is_dir():
        return []
    paths = sorted(directory.glob("[0-9]*.eml"), reverse=True)[: MAX_LISTED * 5]
    messages = [_read(path) for path in paths]
    if keys_of is not None:
        allowed = keys_of({m.key for m in messages if m.key})
        messages = [m for m in messages if m.key in allowed]
    return messages[:MAX_LISTED]


def outbox_message(message_id: str) -> OutboxMessage | None:
    if not message_id.replace("-", "").isalnum():
        return None
    path = Path(settings.DEV_OUTBOX_DIR) / f"{message_id}.eml"
    return _read(path) if path.is_file() else None
