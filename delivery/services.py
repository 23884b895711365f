"""Writes of the delivery app.

`message_status_record` is the one way a message's status changes: channels call it
when a provider accepts or refuses a message, and tracking and provider callbacks
call it for deliveries, opens, clicks and bounces. The journey engine hears of every
change in the same transaction, so a fallback chain waiting on the message moves on
without polling.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from delivery.models import Message

_STAMPS = {
    Message.Status.SENT: "sent_at",
    Message.Status.DELIVERED: "delivered_at",
    Message.Status.OPENED: "opened_at",
    Message.Status.CLICKED: "clicked_at",
    Message.Status.BOUNCED: "failed_at",
    Message.Status.FAILED: "failed_at",
    Message.Status.SUPPRESSED: "failed_at",
}


class StatusChangeRefused(ValueError):
    """A status a message cannot take from where it is (it names both)."""


def _allowed(current: str, new: str) -> bool:
    """Statuses only move forward. A message that ended undelivered stays so, except
    that a late open or click proves it arrived (providers report out of order); a
    bounce after `sent` or `delivered` is an asynchronous bounce."""
    progress = Message.PROGRESS
    if current == new:
        return False
    if new in progress:
        if current in progress:
            return progress.index(new) > progress.index(current)
        return current != Message.Status.SUPPRESSED and new in ("opened", "clicked")
    if new == Message.Status.BOUNCED:
        return current in ("queued", "sent", "delivered")
    return current == Message.Status.QUEUED  # failed / suppressed: decided before sending


def message_status_record(
    *, message_id: int, status: str, at: datetime | None = None, reason: str = ""
) -> bool:
    """Move a message to `status` (stamping when it first got there) and wake the
    journey step that waits on it. Returns False, changing nothing, when the message
    is already there or beyond (a provider's repeated callback); raises
    StatusChangeRefused for a status that cannot follow the current one."""
    from journeys.executor import journeys_for_message_outcome

    if status not in Message.Status.values:
        raise StatusChangeRefused(f"{status!r} is not a message status")
    at = at or timezone.now()
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message_id)
        current = message.status
        if current == status or (
            current in Message.PROGRESS
            and status in Message.PROGRESS
            and Message.PROGRESS.index(status) < Message.PROGRESS.index(current)
        ):
            return False
        if not _allowed(current, status):
            raise StatusChangeRefused(
                f"message {message_id} is {current}; it cannot become {status}"
            )
        fields = ["status", "updated_at", *_stamp(message, status, at)]
        # An open or click implies every stage before it (an email open pixel is often
        # the first sign of delivery).
        if status in Message.PROGRESS:
            for earlier in Message.PROGRESS[1 : Message.PROGRESS.index(status)]:
                fields += _stamp(message, earlier, at)
        message.status = status
        if reason:
            message.reason = reason[:200]
            fields.append("reason")
        message.updated_at = timezone.now()
        message.save(update_fields=sorted(set(fields)))
        if message.enrollment_id is not None:
            journeys_for_message_outcome(message=message)
    return True


def _stamp(message: Message, status: str, at: datetime) -> list[str]:
    """Set the status's time unless it is set; the field names changed."""
    name = _STAMPS.get(status)
    if name is None or getattr(message, name) is not None:
        return []
    setattr(message, name, at)
    return [name]
