"""The in-app inbox: what a profile's app shows, and what the person does with it.

Reads and writes of the inbox live together here because they share the one rule of
what is in an inbox: the workspace's in_app messages to the profile with that
user_id that went out (sent, delivered, opened or clicked) and were not dismissed.

Messages are named to apps by signed tokens (`message_token`), never by their
database ids: an id in a URL would let anyone holding the (public) write key walk
through the sequence. A token cannot be forged, and even a genuine one is only
honoured for the workspace and user whose message it names.

The inbox is read on every page view of the customer's app, so a listing costs one
query when the inbox fits one page, two otherwise (the unread count).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone

from delivery.models import Message

CHANNEL = "in_app"
VISIBLE = ("sent", "delivered", "opened", "clicked")
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
ACTIONS = ("read", "clicked", "dismissed")

_TOKENS = signing.Signer(salt="delivery.inbox.message", algorithm="sha256")
_CURSORS = signing.Signer(salt="delivery.inbox.cursor", algorithm="sha256")


class InboxError(ValueError):
    """A request the inbox cannot answer; `code` is the API's error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- tokens


def message_token(message_id: int) -> str:
    return _TOKENS.sign(signing.b62_encode(message_id))


def message_id_of(token: str) -> int | None:
    """The message a token names, or None for one that is not ours (forged, altered)."""
    try:
        return signing.b62_decode(_TOKENS.unsign(token))
    except (signing.BadSignature, ValueError):
        return None


def _cursor(sent_at: datetime, message_id: int) -> str:
    micros = int(sent_at.timestamp() * 1_000_000)
    return _CURSORS.sign(f"{signing.b62_encode(micros)}.{signing.b62_encode(message_id)}")


def _cursor_parts(value: str) -> tuple[datetime, int]:
    try:
        micros, message_id = (signing.b62_decode(p) for p in _CURSORS.unsign(value).split("."))
        return datetime.fromtimestamp(micros / 1_000_000, tz=UTC), message_id
    except (signing.BadSignature, ValueError):
        raise InboxError("invalid_cursor", "The cursor is not one this inbox gave.") from None


def user_hash_secret(workspace_id: int) -> str:
    """The workspace's identity-verification secret, derived from SECRET_KEY (nothing
    stored; rotating SECRET_KEY rotates it). The customer's server keeps it and signs
    each user_id with it; it must never reach a browser."""
    digest = hmac.new(
        settings.SECRET_KEY.encode(), f"inbox-user-hash:{workspace_id}".encode(), hashlib.sha256
    ).hexdigest()
    return f"inbox_{digest}"


def user_hash(*, workspace_id: int, user_id: str) -> str:
    """hex(HMAC-SHA256(user_hash_secret, user_id)): what X-User-Hash must carry."""
    return hmac.new(
        user_hash_secret(workspace_id).encode(), user_id.encode(), hashlib.sha256
    ).hexdigest()


def user_hash_valid(*, workspace_id: int, user_id: str, given: str) -> bool:
    return bool(given) and hmac.compare_digest(
        user_hash(workspace_id=workspace_id, user_id=user_id), given.strip().lower()
    )


def requires_user_hash(*, workspace_id: int) -> bool:
    """Whether the workspace's in-app settings ask for identity verification. A stored
    config that no longer reads is taken as asking for it (closed, not open)."""
    from pydantic import ValidationError

    from delivery.channels.in_app import InAppConfig
    from delivery.models import ChannelSettings

    config = (
        ChannelSettings.objects.filter(workspace_id=workspace_id, channel=CHANNEL)
        .values_list("config", flat=True)
        .first()
    )
    if config is None:
        return False
    try:
        return InAppConfig.model_validate(config).require_user_hash
    except ValidationError:
        return True


# --------------------------------------------------------------------------- selectors


def _delivered(*, workspace_id: int, user_id: str):
    """The user's in-app messages that went out, dismissed or not."""
    return Message.objects.filter(
        workspace_id=workspace_id,
        profile__workspace_id=workspace_id,
        profile__user_id=user_id,
        channel=CHANNEL,
        status__in=VISIBLE,
        sent_at__isnull=False,
    )


def _visible(*, workspace_id: int, user_id: str):
    return _delivered(workspace_id=workspace_id, user_id=user_id).filter(dismissed_at__isnull=True)


def _safe_url(value) -> str:
    """Only http(s) links and images reach the app: a rendered field could hold a
    javascript: or data: URL from a profile trait."""
    value = value.strip() if isinstance(value, str) else ""
    return value if value.lower().startswith(("https://", "http://")) else ""


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def inbox_list(
    *, workspace_id: int, user_id: str, limit: int = DEFAULT_LIMIT, cursor: str = ""
) -> dict:
    """The user's inbox, newest first: {"messages": [...], "unread": n, "next_cursor"}.
    An unknown user has an empty inbox (the answer does not tell who exists).
    Raises InboxError for a limit out of range or a cursor that is not ours."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InboxError("invalid_limit", f"limit must be between 1 and {MAX_LIMIT}.")
    if not user_id:
        return {"messages": [], "unread": 0, "next_cursor": None}
    visible = _visible(workspace_id=workspace_id, user_id=user_id)
    page = visible
    if cursor:
        sent_at, message_id = _cursor_parts(cursor)
        page = page.filter(sent_at__lte=sent_at).exclude(sent_at=sent_at, pk__gte=message_id)
    rows = list(
        page.order_by("-sent_at", "-pk").values(
            "pk", "sent_at", "opened_at", "clicked_at", "rendered"
        )[: limit + 1]
    )
    more = len(rows) > limit
    rows = rows[:limit]
    if cursor or more:
        unread = visible.filter(opened_at__isnull=True).count()
    else:  # the page is the whole inbox
        unread = sum(1 for row in rows if row["opened_at"] is None)
    messages = []
    for row in rows:
        fields = row["rendered"] if isinstance(row["rendered"], dict) else {}
        messages.append(
            {
                "id": message_token(row["pk"]),
                "title": _text(fields.get("title")),
                "body": _text(fields.get("body")),
                "image_url": _safe_url(fields.get("image_url")),
                "cta_label": _text(fields.get("cta_label")),
                "cta_url": _safe_url(fields.get("cta_url")),
                "sent_at": row["sent_at"],
                "read": row["opened_at"] is not None,
                "clicked": row["clicked_at"] is not None,
            }
        )
    last = rows[-1] if more else None
    return {
        "messages": messages,
        "unread": unread,
        "next_cursor": _cursor(last["sent_at"], last["pk"]) if last else None,
    }


# --------------------------------------------------------------------------- services


def inbox_message_act(*, workspace_id: int, user_id: str, token: str, action: str) -> dict | None:
    """The person read, clicked or dismissed a card. Returns its state after, or None
    when the token names no message in this user's inbox (another user's, another
    workspace's, forged, not sent yet), which changes nothing. Repeats change nothing;
    a dismissed card answers as before (a retried request must not see a 404).

    read and clicked go straight to message_status_record, not through
    message_engagement_record: its guard against link scanners (a click within seconds
    of the send counts for nothing) is for email, and an in-app card is clicked by the
    person in the app, often seconds after it appears.
    """
    from delivery.services import message_event_record, message_status_record

    if action not in ACTIONS:
        raise InboxError("invalid_action", f"{action!r} is not one of {', '.join(ACTIONS)}.")
    message_id = message_id_of(token)
    if message_id is None or not user_id:
        return None
    with transaction.atomic():
        message = (
            _delivered(workspace_id=workspace_id, user_id=user_id)
            .filter(pk=message_id)
            .select_for_update(of=("self",))
            .only("pk", "workspace_id", "status", "dismissed_at")
            .first()
        )
        if message is None:
            return None
        now = timezone.now()
        if action == "dismissed" and message.dismissed_at is None:
            message.dismissed_at = now
            message.updated_at = now
            message.save(update_fields=["dismissed_at", "updated_at"])
            message_event_record(message=message, kind="dismissed", at=now)
        elif action != "dismissed":
            # A visible message is sent or beyond: opened and clicked follow it, or are
            # where it is already (nothing changes).
            message_status_record(
                message_id=message.pk, status="opened" if action == "read" else "clicked", at=now
            )
    state = (
        Message.objects.filter(pk=message_id)
        .values("opened_at", "clicked_at", "dismissed_at")
        .first()
    )
    return {
        "id": token,
        "read": state["opened_at"] is not None,
        "clicked": state["clicked_at"] is not None,
        "dismissed": state["dismissed_at"] is not None,
    }
