"""Writes of the delivery app.

`message_status_record` is the one way a message's status changes: channels call it
when a provider accepts or refuses a message, and tracking and provider callbacks
call it for deliveries, opens, clicks and bounces. The journey engine hears of every
change in the same transaction, so a fallback chain waiting on the message moves on
without polling.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models, transaction
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


# --------------------------------------------------------------------------- sending

RETRY_DELAYS = (60, 300, 1800, 7200)  # seconds; after the last, the message fails
SEND_BATCH = 100
# The scheduler re-queues queued messages whose time has come and stayed this long
# unsent (a job lost with Redis, a retry that is due), without racing the job queued
# at commit.
REQUEUE_GRACE = timedelta(seconds=15)


def channel_queue(channel: str) -> str:
    """The channel's own queue; plug-in channels without one share `delivery`."""
    from django.conf import settings

    name = f"delivery-{channel}"
    return name if name in settings.RQ_QUEUES else "delivery"


def messages_enqueue(message_ids: list[int], *, channel: str) -> None:
    """Queue the send of these messages on their channel's queue (call after commit)."""
    import django_rq

    from delivery.tasks import messages_send_job

    for start in range(0, len(message_ids), SEND_BATCH):
        django_rq.get_queue(channel_queue(channel), commit_mode="auto").enqueue(
            messages_send_job, list(message_ids[start : start + SEND_BATCH])
        )


def message_decided(*, message: Message) -> None:
    """The journey engine created a queued message: send it once the decision commits."""
    transaction.on_commit(lambda: messages_enqueue([message.pk], channel=message.channel))


def messages_send(*, message_ids: list[int], now: datetime | None = None) -> dict[str, int]:
    """Send the due, queued ones among these messages through their channels. Each
    message is locked while it is sent and its outcome recorded in the same
    transaction, so two jobs never send it twice (the second skips it, or finds it no
    longer queued). A crash between the provider's answer and the commit sends it
    again on the retry: at least once to the provider, which gets the message's
    idempotency key, and exactly once in the log. Returns counts by outcome."""
    from content.rendering import TemplateRenderError, build_context
    from delivery.channels import UnknownChannel, channel_class
    from delivery.channels.base import Outgoing
    from delivery.policies import send_time_block
    from delivery.tokens import unsubscribe_url

    now = now or timezone.now()
    counts: dict[str, int] = {}
    with transaction.atomic():
        messages = list(
            Message.objects.select_for_update(of=("self",), skip_locked=True)
            .filter(pk__in=message_ids, status=Message.Status.QUEUED)
            .filter(models.Q(next_attempt_at__isnull=True) | models.Q(next_attempt_at__lte=now))
            .select_related("profile", "template_version", "journey", "workspace", "enrollment")
            .order_by("pk")
        )
        by_channel: dict[str, list[tuple[Message, Outgoing]]] = {}
        for message in messages:
            reason = send_time_block(message=message, now=now)
            if reason:
                _outcome(message, Message.Status.SUPPRESSED, reason=reason, now=now)
                counts["suppressed"] = counts.get("suppressed", 0) + 1
                continue
            try:
                channel = channel_class(message.channel)()
            except UnknownChannel as error:
                _outcome(
                    message, Message.Status.FAILED, reason="no_channel", error=str(error), now=now
                )
                counts["failed"] = counts.get("failed", 0) + 1
                continue
            unsubscribe = unsubscribe_url(message.pk)
            context = build_context(
                workspace=message.workspace,
                profile=message.profile,
                event=(
                    (message.enrollment.context or {}).get("event") if message.enrollment else None
                ),
                journey={"id": message.journey_id, "name": message.journey.name}
                if message.journey
                else None,
                message={"id": message.pk, "unsubscribe_url": unsubscribe},
            )
            try:
                fields = channel.render(
                    version=message.template_version, locale=message.profile.locale, context=context
                )
            except TemplateRenderError as error:
                _outcome(
                    message, Message.Status.FAILED, reason="render_error", error=str(error), now=now
                )
                counts["failed"] = counts.get("failed", 0) + 1
                continue
            message.rendered = fields
            by_channel.setdefault(message.channel, []).append(
                (
                    message,
                    Outgoing(
                        message_id=message.pk,
                        idempotency_key=message.idempotency_key,
                        workspace_id=message.workspace_id,
                        to=channel.address(message.profile),
                        fields=fields,
                        unsubscribe_url=unsubscribe,
                    ),
                )
            )
        for channel_id, items in by_channel.items():
            results = channel_class(channel_id)().send_batch([outgoing for _, outgoing in items])
            for (message, _), result in zip(items, results, strict=True):
                key = _record_result(message, result, now)
                counts[key] = counts.get(key, 0) + 1
    return counts


def _record_result(message: Message, result, now: datetime) -> str:
    message.attempts += 1
    if result.status == "sent":
        message.provider_message_id = result.provider_message_id[:200]
        _outcome(message, Message.Status.SENT, now=now)
        return "sent"
    if result.status == "temporary" and message.attempts <= len(RETRY_DELAYS):
        message.next_attempt_at = now + timedelta(seconds=RETRY_DELAYS[message.attempts - 1])
        message.last_error = result.error[:500]
        message.updated_at = timezone.now()
        message.save(
            update_fields=["attempts", "next_attempt_at", "last_error", "rendered", "updated_at"]
        )
        return "retry"
    reason = "retries_exhausted" if result.status == "temporary" else "provider_refused"
    _outcome(message, Message.Status.FAILED, reason=reason, error=result.error, now=now)
    return "failed"


def _outcome(
    message: Message, status: str, *, now: datetime, reason: str = "", error: str = ""
) -> None:
    """Save what the send learned, then move the status through the one service."""
    message.last_error = error[:500]
    message.next_attempt_at = None
    message.save(
        update_fields=[
            "attempts",
            "provider_message_id",
            "rendered",
            "last_error",
            "next_attempt_at",
        ]
    )
    message_status_record(message_id=message.pk, status=status, at=now, reason=reason)


def scheduler_duty() -> None:
    """run_scheduler: queue the sends that are due and not on their way (retries whose
    time came, messages whose job was lost)."""
    now = timezone.now()
    due = (
        Message.objects.filter(
            status=Message.Status.QUEUED, next_attempt_at__lte=now - REQUEUE_GRACE
        )
        .order_by("next_attempt_at")
        .values_list("pk", "channel")[: SEND_BATCH * 50]
    )
    by_channel: dict[str, list[int]] = {}
    for message_id, channel in due:
        by_channel.setdefault(channel, []).append(message_id)
    for channel, ids in by_channel.items():
        messages_enqueue(ids, channel=channel)


# --------------------------------------------------------------------------- consent


def consent_set(*, profile, channel: str, status: str, source: str, message: Message | None = None):
    """Record a profile's yes or no for a channel (idempotent: the same answer again
    changes nothing and writes no audit row). Audited without the address."""
    from delivery.models import Consent
    from engagement_site.workspaces.services import AuditContext, audit_record

    with transaction.atomic():
        consent = (
            Consent.objects.select_for_update()
            .filter(profile=profile, channel=channel, topic="")
            .first()
        )
        if consent is not None and consent.status == status:
            return consent
        before = consent.status if consent is not None else ""
        if consent is None:
            consent = Consent(workspace_id=profile.workspace_id, profile=profile, channel=channel)
        consent.status, consent.source, consent.message = status, source, message
        consent.updated_at = timezone.now()
        consent.save()
        audit_record(
            context=AuditContext.system(source),
            action="consent.change",
            workspace=profile.workspace,
            object_type="segments.profile",
            object_id=str(profile.pk),
            object_repr=f"profile {profile.pk}",
            changes={"channel": channel, "status": [before, status], "source": source},
        )
    return consent
