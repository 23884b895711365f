"""Writes of the delivery app.

`message_status_record` is the one way a message's status changes: channels call it
when a provider accepts or refuses a message, and tracking and provider callbacks
call it for deliveries, opens, clicks and bounces. The journey engine hears of every
change once it commits, so a fallback chain waiting on the message moves on without
polling.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from delivery.channels.base import SendResult
from delivery.models import Message
from engagement_site.jobs import get_queue

logger = logging.getLogger(__name__)

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
    if new in progress:
        if current in progress:
            return progress.index(new) > progress.index(current)
        return current != Message.Status.SUPPRESSED and new in ("opened", "clicked")
    if new == Message.Status.BOUNCED:
        return current in ("queued", "sent", "delivered")
    return current == Message.Status.QUEUED  # failed / suppressed: decided before sending


def message_status_record(
    *, message_id: int, status: str, at: datetime | None = None, reason: str = "", code: str = ""
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
        # the first sign of delivery): stamped, and recorded as events of their own so
        # the counters never show more opens than deliveries or clicks than opens.
        implied = []
        if status in Message.PROGRESS:
            for earlier in Message.PROGRESS[1 : Message.PROGRESS.index(status)]:
                stamped = _stamp(message, earlier, at)
                fields += stamped
                if stamped:
                    implied.append(earlier)
        message.status = status
        if reason:
            message.reason = reason[:200]
            fields.append("reason")
        message.updated_at = timezone.now()
        message.save(update_fields=sorted(set(fields)))
        for earlier in implied:
            message_event_record(message=message, kind=earlier, at=at, data={"implied_by": status})
        message_event_record(
            message=message, kind=status, at=at, data=_event_data(reason=reason, code=code)
        )
        from journeys.live import journey_touched

        transaction.on_commit(
            lambda: journey_touched([message.journey_id], workspace_ids=[message.workspace_id])
        )
        if message.enrollment_id is not None:
            # After commit, in a transaction of its own: a send job must not collect
            # enrollment locks (the executor takes them in another order). A wake lost
            # to a crash here is caught by the step's own deadline or recheck.
            transaction.on_commit(
                lambda: journeys_for_message_outcome(
                    message_id=message.pk, enrollment_id=message.enrollment_id
                )
            )
    return True


def _event_data(*, reason: str = "", code: str = "") -> dict:
    return {name: value for name, value in (("reason", reason), ("code", code)) if value}


def message_event_record(*, message: Message, kind: str, at: datetime | None = None, data=None):
    """Note that `kind` happened to the message, once (a repeat is ignored), except the
    kinds that repeat (each retry, each hold)."""
    from delivery.models import MessageEvent

    MessageEvent.objects.bulk_create(
        [
            MessageEvent(
                workspace_id=message.workspace_id,
                message_id=message.pk,
                kind=kind,
                at=at or timezone.now(),
                data=data or {},
            )
        ],
        ignore_conflicts=kind not in MessageEvent.REPEATABLE,
    )


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
# A claimed message belongs to its send job for this long (longer than a job may run:
# RQ's 600 s timeout; settings.DELIVERY_SEND_LEASE_SECONDS, 15 minutes by default); a
# job that died is replaced by the scheduler after it.
SEND_LEASE = timedelta(seconds=settings.DELIVERY_SEND_LEASE_SECONDS)
# A send job starts no new send after this long (a third of the lease, inside RQ's job
# timeout): what it has not reached is handed back, to go out in a new job, so a slow
# provider can never keep a job sending past its lease while another job sends the
# same messages.
SEND_BUDGET = SEND_LEASE / 3
# The scheduler re-queues queued messages whose time has come and stayed this long
# unsent (a job lost with Redis, a retry that is due), without racing the job queued
# at commit; a re-queued message is not re-queued again for REQUEUE_BACKOFF.
REQUEUE_GRACE = timedelta(seconds=15)
REQUEUE_BACKOFF = timedelta(minutes=2)


def channel_queue(channel: str) -> str:
    """The channel's own queue; plug-in channels without one share `delivery`."""
    name = f"delivery-{channel}"
    return name if name in settings.RQ_QUEUES else "delivery"


def messages_enqueue(message_ids: list[int], *, channel: str) -> None:
    """Queue the send of these messages on their channel's queue (call after commit)."""

    from delivery.tasks import messages_send_job

    for start in range(0, len(message_ids), SEND_BATCH):
        get_queue(channel_queue(channel), commit_mode="auto").enqueue(
            messages_send_job, list(message_ids[start : start + SEND_BATCH])
        )


class _DecidedTogether:
    """The messages decided inside one `messages_decided_together()` block and committed:
    channel -> ids, queued when the block ends."""

    def __init__(self):
        self.ids: dict[str, list[int]] = {}
        self.is_open = True


_decided = threading.local()


@contextmanager
def messages_decided_together():
    """Messages decided inside this block (message_decided) are queued when it ends, in
    one send job per channel (and SEND_BATCH) instead of one job each: a journey worker
    committing a group of enrollments hands their emails to one job, which sends them
    over one SMTP connection. Only what committed is queued (a message joins the block
    from its transaction's on_commit, which a rollback discards); a message whose
    transaction commits after the block ended is queued on its own, as before."""
    batch = _DecidedTogether()
    stack = _decided.__dict__.setdefault("open", [])
    stack.append(batch)
    try:
        yield
    finally:
        stack.remove(batch)
        batch.is_open = False
        for channel, ids in batch.ids.items():
            messages_enqueue(ids, channel=channel)


def message_decided(*, message: Message) -> None:
    """The journey engine created a queued message: send it once the decision commits
    (with the others of its messages_decided_together() block, when there is one)."""
    stack = getattr(_decided, "open", None)
    batch = stack[-1] if stack else None

    def queue() -> None:
        if batch is not None and batch.is_open:
            batch.ids.setdefault(message.channel, []).append(message.pk)
        else:
            messages_enqueue([message.pk], channel=message.channel)

    transaction.on_commit(queue)


def _claim(message_ids: list[int], now: datetime, lease_until: datetime) -> list[int]:
    """Take the due, queued ones among these messages for this job: a lease in
    next_attempt_at (until `lease_until`), committed at once, so no other job or sweep
    sends them meanwhile. Messages already leased until exactly `lease_until` are this
    job's own, from a claim retried after a lost connection: taken again.
    The claim ends a re-queue's backoff (requeued_at): the job it queued has come, and
    if this one dies too, the lease's end is the next sign."""
    with transaction.atomic():
        claimed = list(
            Message.objects.select_for_update(skip_locked=True)
            .filter(pk__in=message_ids, status=Message.Status.QUEUED)
            .filter(
                models.Q(next_attempt_at__isnull=True)
                | models.Q(next_attempt_at__lte=now)
                | models.Q(next_attempt_at=lease_until)
            )
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        Message.objects.filter(pk__in=claimed).update(next_attempt_at=lease_until, requeued_at=None)
    return claimed


# Runs of a send job's batch after its database connection was lost (a server restart or
# failover); with RETRY_ON_CONNECTION_LOSS's own tries for each outcome's commit.
SEND_ATTEMPTS = 5


def messages_send(*, message_ids: list[int], now: datetime | None = None) -> dict[str, int]:
    """Send the due, queued ones among these messages through their channels.

    They are claimed first (a lease, committed), so a second job for the same messages
    finds nothing to do. The policies are checked now, right before sending (not only
    when the journey decided): consent and topics, the suppression list, quiet hours (the
    message waits for the window's end), frequency caps, shadow mode and the send rates.
    Each message's outcome is committed as soon as the channel answers for it, so a
    crash or a timeout in the middle of a batch loses nothing already sent; the
    messages not reached yet go out when their lease ends. A crash between a provider's
    answer and that commit sends that one message again: at least once to the provider,
    which gets the message's idempotency key, and exactly once in the log. Returns
    counts by outcome.

    A lost database connection (a server restart or failover) does not leave the batch
    to its lease: the outcome of a message the channel already took is committed on a
    new connection (retried for a few seconds), and the batch runs again on a new
    connection, taking back its own claims, without the messages that went out and
    whose outcome could not be committed (those wait for their lease: at least once)."""
    import time

    from django.db import DatabaseError, connection

    from engagement_site.database import connection_lost, connection_replace

    now = now or timezone.now()
    lease_until = now + SEND_LEASE
    counts: dict[str, int] = {}
    unrecorded: set[int] = set()  # went to the channel, outcome not committed
    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            _messages_send(
                message_ids=[pk for pk in message_ids if pk not in unrecorded],
                now=now,
                lease_until=lease_until,
                counts=counts,
                unrecorded=unrecorded,
            )
            return counts
        except DatabaseError as error:
            lost = connection_lost(error) and not connection.in_atomic_block
            if lost and attempt == SEND_ATTEMPTS:
                _claims_release(message_ids, lease_until=lease_until, keep=unrecorded)
            if not lost or attempt == SEND_ATTEMPTS:
                raise
            logger.warning("send batch lost its database connection (%s); running it again", error)
            connection_replace()
            time.sleep(0.1 * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _claims_release(message_ids: list[int], *, lease_until: datetime, keep: set[int]) -> None:
    """Give up this job's claims on the messages it did not send (its connection kept
    being lost) and queue them again, so they go out soon rather than after the lease;
    not those in `keep`, which went out and whose outcome is not committed. Best effort:
    with the database still away, the leases stand."""
    from engagement_site.database import connection_replace

    try:
        connection_replace()
        released = list(
            Message.objects.filter(
                pk__in=message_ids, status=Message.Status.QUEUED, next_attempt_at=lease_until
            )
            .exclude(pk__in=keep)
            .values_list("pk", "channel")
        )
        Message.objects.filter(pk__in=[pk for pk, _ in released]).update(
            next_attempt_at=timezone.now(), updated_at=timezone.now()
        )
        by_channel: dict[str, list[int]] = {}
        for pk, channel in released:
            by_channel.setdefault(channel, []).append(pk)
        for channel, ids in by_channel.items():
            messages_enqueue(ids, channel=channel)
    except Exception:
        logger.warning("could not give up the claims of a send batch", exc_info=True)


def _messages_send(
    *,
    message_ids: list[int],
    now: datetime,
    lease_until: datetime,
    counts: dict[str, int],
    unrecorded: set[int],
) -> None:
    """messages_send's one run over the batch (adds to `counts` and `unrecorded`)."""
    from delivery import policies

    def count(key: str) -> None:
        counts[key] = counts.get(key, 0) + 1

    claimed = _claim(message_ids, now, lease_until)
    if not claimed:
        return
    import time

    deadline = time.monotonic() + SEND_BUDGET.total_seconds()
    handed_back: dict[str, list[int]] = {}
    messages = list(
        Message.objects.filter(pk__in=claimed)
        .select_related(
            "profile__value",  # Liquid's profile.computed, without a query per message
            "template_version__template",
            "journey",
            "journey_version",
            "workspace",
            "enrollment",
        )
        .order_by("pk")
    )
    facts = policies.batch_facts(messages)
    # One channel instance per workspace and channel, one settings read per
    # workspace, per batch.
    instances: dict[tuple[int, str], object] = {}
    by_channel: dict[tuple[int, str], list] = {}
    for message in messages:
        reason = policies.send_time_block(message=message, facts=facts)
        if reason:
            _finish(message, Message.Status.SUPPRESSED, reason=reason, now=now)
            count("suppressed")
            continue
        until = policies.quiet_hold(message=message, facts=facts, now=now)
        if until is None:
            until = _journey_rate_hold(message, now)
            hold_reason = "send_rate"
        else:
            hold_reason = "quiet_hours"
        if until is not None:
            _hold(message, until=until, reason=hold_reason, now=now)
            count("held")
            continue
        try:
            outgoing = _prepare(message, instances=instances, options=facts.settings)
        except _NotSendable as refusal:
            _finish(
                message, Message.Status.FAILED, reason=refusal.reason, error=str(refusal), now=now
            )
            count("failed")
            continue
        by_channel.setdefault((message.workspace_id, message.channel), []).append(
            (message, outgoing)
        )
    for key, items in by_channel.items():
        instance = instances[key]
        shadow = facts.settings[key[0]].shadow_mode
        for chunk in _paced(key, items, getattr(instance, "rate_per_second", None)):
            ready = []
            capped = policies.caps_reserve(
                messages=[message for message, _ in chunk], facts=facts, now=now
            )
            for message, outgoing in chunk:
                if message.pk in capped:
                    _finish(message, Message.Status.SUPPRESSED, reason="frequency_cap", now=now)
                    count("suppressed")
                elif shadow:
                    # Everything ran (policies, rendering); nothing leaves.
                    _finish(
                        message,
                        Message.Status.SUPPRESSED,
                        reason="shadow_mode",
                        now=now,
                        shadow=True,
                    )
                    count("shadow")
                else:
                    ready.append((message, outgoing))
            if ready:
                for message, result in _send_chunk(instance, key[1], ready, deadline):
                    if result is _HANDED_BACK:
                        handed_back.setdefault(message.channel, []).append(message.pk)
                        count("handed_back")
                    else:
                        unrecorded.add(message.pk)
                        count(_record_after_send(message, result, now))
                        unrecorded.discard(message.pk)
    for channel, ids in handed_back.items():
        _hand_back(ids, channel=channel)


def _record_after_send(message: Message, result, now: datetime) -> str:
    """_record_result, retried on a new connection when the connection is lost: the
    channel took the message, so its outcome must be committed, or the message would be
    sent again when its lease ends. Safe to repeat: the outcome is written only to a
    message still queued."""
    from engagement_site.database import retry_on_connection_loss

    attempts = message.attempts

    def record() -> str:
        message.attempts = attempts  # _record_result counts this try itself
        return _record_result(message, result, now)

    return retry_on_connection_loss(record, what=f"recording message {message.pk}'s outcome")


_HANDED_BACK = object()


def _hand_back(message_ids: list[int], *, channel: str) -> None:
    """Give up the claim on messages this job did not reach (they stay queued, due
    now) and queue them in a new job."""
    Message.objects.filter(pk__in=message_ids, status=Message.Status.QUEUED).update(
        next_attempt_at=timezone.now(), updated_at=timezone.now()
    )
    messages_enqueue(message_ids, channel=channel)


def _send_chunk(instance, channel_id: str, items: list, deadline: float):
    """(message, result) for each message, as the channel answers; past `deadline`
    (time.monotonic()) the channel is asked for no more and the rest come back as
    _HANDED_BACK."""
    import time

    from rq.timeouts import BaseTimeoutException

    results = iter(instance.send_batch([outgoing for _, outgoing in items]))
    for position, (message, _) in enumerate(items):
        if time.monotonic() > deadline:
            close = getattr(results, "close", None)
            if close is not None:
                close()
            for late, _ in items[position:]:
                yield late, _HANDED_BACK
            return
        try:
            result = next(results)
        except StopIteration:
            result = None
        except BaseTimeoutException:
            raise  # RQ stopping the job: the claims hold until their lease ends
        except Exception as error:  # a plug-in that raised: worth another try
            logger.exception("channel %s raised while sending message %s", channel_id, message.pk)
            result = SendResult.temporary(f"{type(error).__name__}: {error}")
        if result is None:  # the channel answered for fewer messages than it got
            result = SendResult.temporary("the channel gave no answer for this message")
        yield message, result


def _paced(key: tuple[int, str], items: list, rate: int | None):
    """The items in chunks the workspace's send rate on the channel allows, waiting
    for the next second when this second's sends are taken (across all workers: the
    count is kept in Redis)."""
    import time

    from delivery.pacing import take

    if not rate:
        yield items
        return
    position = 0
    while position < len(items):
        granted, wait = take(f"channel:{key[0]}:{key[1]}", rate=rate, want=len(items) - position)
        if granted:
            yield items[position : position + granted]
            position += granted
        else:
            time.sleep(wait)


def _journey_rate_hold(message: Message, now: datetime) -> datetime | None:
    """When a message over its journey's send rate per minute may go (the next minute),
    or None when it may go now."""
    from delivery.pacing import take
    from delivery.policies import journey_settings

    options = journey_settings(message)
    if options is None or not options.send_rate_per_minute:
        return None
    granted, wait = take(
        f"journey:{message.journey_id}", rate=options.send_rate_per_minute, want=1, window=60
    )
    return None if granted else now + timedelta(seconds=wait)


def _hold(message: Message, *, until: datetime, reason: str, now: datetime) -> None:
    """The message waits (still queued) until `until`; the scheduler sends it then."""
    with transaction.atomic():
        Message.objects.filter(pk=message.pk, status=Message.Status.QUEUED).update(
            next_attempt_at=until, hold_reason=reason, requeued_at=None, updated_at=timezone.now()
        )
        message_event_record(
            message=message,
            kind="deferred",
            at=now,
            data={"reason": reason, "until": until.isoformat()},
        )


class _NotSendable(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def _prepare(message: Message, *, instances: dict, options: dict):
    """The Outgoing of a message: its address and rendered fields, or _NotSendable.
    `instances` ((workspace id, channel id) -> channel, or why there is none) and
    `options` (workspace id -> delivery settings) are the batch's, filled as needed."""
    from content.rendering import TemplateRenderError, build_context
    from delivery.channels import ChannelUnavailable
    from delivery.channels.base import Outgoing
    from delivery.selectors import channel_instance, delivery_settings
    from delivery.tokens import confirm_url, preferences_url, unsubscribe_url

    key = (message.workspace_id, message.channel)
    if key not in instances:
        try:
            instances[key] = channel_instance(
                workspace_id=message.workspace_id, channel=message.channel
            )
        except ChannelUnavailable as error:
            instances[key] = error
    channel = instances[key]
    if isinstance(channel, ChannelUnavailable):
        raise _NotSendable(channel.reason, str(channel))
    unsubscribe = unsubscribe_url(message.pk)
    enrollment_context = (message.enrollment.context or {}) if message.enrollment else {}
    context = build_context(
        workspace=message.workspace,
        profile=message.profile,
        event=enrollment_context.get("event"),
        journey={"id": message.journey_id, "name": message.journey.name}
        if message.journey
        else None,
        message={
            "id": message.pk,
            "unsubscribe_url": unsubscribe,
            "preferences_url": preferences_url(message.profile_id),
            "confirm_url": confirm_url(message.pk, address=message.profile.email)
            if message.purpose == "opt_in_confirmation"
            else "",
        },
    )
    try:
        fields = channel.render(
            version=message.template_version, locale=message.profile.locale, context=context
        )
        address = channel.address(message.profile)
    except TemplateRenderError as error:
        raise _NotSendable("render_error", str(error)) from None
    except Exception as error:  # a bug in a channel must fail one message, not the batch
        logger.exception("preparing message %s failed", message.pk)
        raise _NotSendable("internal_error", f"{type(error).__name__}: {error}") from None
    if message.channel == "email" and fields.get("html"):
        if message.workspace_id not in options:
            options[message.workspace_id] = delivery_settings(workspace=message.workspace)
        fields = _tracked(message, fields, unsubscribe, options[message.workspace_id])
    message.rendered = fields
    return Outgoing(
        message_id=message.pk,
        idempotency_key=message.idempotency_key,
        workspace_id=message.workspace_id,
        to=address,
        fields=fields,
        unsubscribe_url=unsubscribe,
    )


def _tracked(message: Message, fields: dict, unsubscribe: str, options) -> dict:
    """The email's HTML with tracked links, UTM parameters and the open pixel, as the
    workspace's settings ask; the links it points at are kept in `links`."""
    from django.utils.text import slugify

    from delivery.tracking import track_email

    html, links = track_email(
        html=fields["html"],
        message_id=message.pk,
        unsubscribe_url=unsubscribe,
        track_opens=options.track_opens,
        track_clicks=options.track_clicks,
        utm_domains=options.utm_domains,
        utm_source=options.utm_source,
        campaign=slugify(message.journey.name) if message.journey else "",
    )
    return {**fields, "html": html, "links": links}


def _record_result(message: Message, result, now: datetime) -> str:
    message.attempts += 1
    if result.status == "sent":
        message.provider_message_id = result.provider_message_id[:200]
        _finish(message, Message.Status.SENT, now=now)
        return "sent"
    if result.status == "temporary" and message.attempts <= len(RETRY_DELAYS):
        with transaction.atomic():
            Message.objects.filter(pk=message.pk, status=Message.Status.QUEUED).update(
                attempts=message.attempts,
                next_attempt_at=now + timedelta(seconds=RETRY_DELAYS[message.attempts - 1]),
                last_error=result.error[:500],
                rendered=message.rendered,
                hold_reason="",
                updated_at=timezone.now(),
            )
            message_event_record(
                message=message,
                kind="retried",
                at=now,
                data={
                    "attempt": message.attempts,
                    "error": result.error[:300],
                    **({"code": result.code} if result.code else {}),
                },
            )
        return "retry"
    reason = "retries_exhausted" if result.status == "temporary" else "provider_refused"
    _finish(
        message, Message.Status.FAILED, reason=reason, error=result.error, now=now,
        code=result.code,
    )  # fmt: skip
    if result.opted_out:
        _provider_opt_out(message)
    return "failed"


def _provider_opt_out(message: Message) -> None:
    """The provider refused because the person opted out with it (texted STOP to
    Twilio's own handling): record what their STOP would have, so nothing more is
    tried on the channel."""
    from delivery.channels.base import Inbound
    from delivery.policies import profile_address

    address = profile_address(profile=message.profile, channel=message.channel)
    if address:
        inbound_message_record(
            workspace=message.workspace,
            channel=message.channel,
            inbound=Inbound(sender=address, text="STOP"),
        )


def _finish(
    message: Message,
    status: str,
    *,
    now: datetime,
    reason: str = "",
    error: str = "",
    shadow: bool = False,
    code: str = "",
) -> None:
    """Commit what the send learned and the new status: in one statement for a message
    still queued (what a send job holds), through message_status_record otherwise.
    `code` is the provider's error code, kept in the message event."""
    if _finish_queued(
        message, status, now=now, reason=reason, error=error, shadow=shadow, code=code
    ):
        return
    try:
        _finish_through_service(
            message, status, now=now, reason=reason, error=error, shadow=shadow, code=code
        )
    except StatusChangeRefused:
        # Someone moved the message on meanwhile (a discard, a receipt): theirs stands.
        logger.warning("message %s moved on before its send outcome (%s)", message.pk, status)


def _finish_through_service(
    message: Message,
    status: str,
    *,
    now: datetime,
    reason: str,
    error: str,
    shadow: bool,
    code: str,
) -> None:
    with transaction.atomic():
        Message.objects.filter(pk=message.pk).update(
            attempts=message.attempts,
            provider_message_id=message.provider_message_id,
            rendered=message.rendered,
            last_error=error[:500],
            next_attempt_at=None,
            hold_reason="",
            **({"is_shadow": True} if shadow else {}),
        )
        message_status_record(message_id=message.pk, status=status, at=now, reason=reason)


# The send path's last word on a message, as one statement (one round trip, atomic
# by itself): the queued message takes its outcome and its stamp, and the message
# event is written with it, once. The same transition as message_status_record from
# "queued", which every other change of status goes through.
_FINISH_QUEUED_SQL = """
WITH moved AS (
    UPDATE delivery_message
    SET status = %(status)s, reason = %(reason)s, attempts = %(attempts)s,
        provider_message_id = %(provider_message_id)s, rendered = %(rendered)s,
        last_error = %(error)s, next_attempt_at = NULL, hold_reason = '',
        is_shadow = is_shadow OR %(shadow)s, updated_at = %(updated_at)s,
        {stamp} = COALESCE({stamp}, %(at)s)
    WHERE id = %(id)s AND status = 'queued'
    RETURNING id, workspace_id
), recorded AS (
    INSERT INTO delivery_messageevent (workspace_id, message_id, kind, at, data)
    SELECT workspace_id, id, %(status)s, %(at)s, %(data)s FROM moved
    ON CONFLICT DO NOTHING
)
SELECT count(*) FROM moved
"""


def _finish_queued(
    message: Message,
    status: str,
    *,
    now: datetime,
    reason: str,
    error: str,
    shadow: bool,
    code: str,
) -> bool:
    """_finish for a message still queued; False (nothing written) when it is not."""
    from django.db import connection
    from psycopg.types.json import Jsonb

    from journeys.executor import journeys_for_message_outcome

    if connection.in_atomic_block:
        return False  # inside someone's transaction: the service keeps its semantics
    with connection.cursor() as cursor:
        cursor.execute(
            _FINISH_QUEUED_SQL.format(stamp=_STAMPS[status]),
            {
                "id": message.pk,
                "status": status,
                "reason": reason[:200],
                "attempts": message.attempts,
                "provider_message_id": message.provider_message_id,
                "rendered": Jsonb(message.rendered),
                "error": error[:500],
                "shadow": shadow,
                "updated_at": timezone.now(),
                "at": now,
                "data": Jsonb(_event_data(reason=reason, code=code)),
            },
        )
        moved = cursor.fetchone()[0]
    if not moved:
        return False
    message.status = status
    from journeys.live import journey_touched

    journey_touched([message.journey_id], workspace_ids=[message.workspace_id])
    if message.enrollment_id is not None:
        journeys_for_message_outcome(message_id=message.pk, enrollment_id=message.enrollment_id)
    return True


def scheduler_duty() -> None:
    """run_scheduler: queue the sends that are due and not on their way (retries whose
    time came, messages whose job was lost, leases of dead jobs that ran out)."""
    now = timezone.now()
    due = list(
        Message.objects.filter(
            status=Message.Status.QUEUED, next_attempt_at__lte=now - REQUEUE_GRACE
        )
        .filter(
            models.Q(requeued_at__isnull=True) | models.Q(requeued_at__lt=now - REQUEUE_BACKOFF)
        )
        .order_by("next_attempt_at")
        .values_list("pk", "channel")[: SEND_BATCH * 50]
    )
    if not due:
        return
    # Not again until the backoff: a backlogged queue is not flooded with repeats.
    Message.objects.filter(pk__in=[pk for pk, _ in due]).update(requeued_at=now)
    by_channel: dict[str, list[int]] = {}
    for message_id, channel in due:
        by_channel.setdefault(channel, []).append(message_id)
    for channel, ids in by_channel.items():
        messages_enqueue(ids, channel=channel)


# --------------------------------------------------------------------------- consent


def consent_set(
    *,
    profile,
    channel: str,
    status: str,
    source: str,
    message: Message | None = None,
    topic: str = "",
):
    """Record a profile's yes or no for a channel, or for a topic on one channel or
    (channel "") on all (idempotent: the same answer again changes nothing and writes
    no audit row). Audited without the address."""
    from delivery.models import Consent
    from engagement_site.workspaces.services import AuditContext, audit_record
    from segments.models import Profile

    with transaction.atomic():
        # The profile's row serialises answers: two one-click POSTs at once (a mail
        # client's and the person's) must not both insert.
        Profile.objects.select_for_update().filter(pk=profile.pk).first()
        consent = Consent.objects.filter(profile=profile, channel=channel, topic=topic).first()
        if consent is not None and consent.status == status:
            return consent
        before = consent.status if consent is not None else ""
        if consent is None:
            consent = Consent(
                workspace_id=profile.workspace_id, profile=profile, channel=channel, topic=topic
            )
        consent.status, consent.source, consent.message = status, source, message
        consent.updated_at = timezone.now()
        consent.save()
        if message is not None and status == Consent.Status.UNSUBSCRIBED:
            message_event_record(message=message, kind="unsubscribed", data={"source": source})
        audit_record(
            context=AuditContext.system(source),
            action="consent.change",
            workspace=profile.workspace,
            object_type="segments.profile",
            object_id=str(profile.pk),
            object_repr=f"profile {profile.pk}",
            changes={
                "channel": channel,
                "topic": topic,
                "status": [before, status],
                "source": source,
            },
        )
    return consent


# --------------------------------------------------------------------------- double opt-in

# One confirmation email per person and channel in this time, however often a form is
# sent again: a bot filling a signup form with someone's address cannot flood them.
CONFIRMATION_RESEND_AFTER = timedelta(minutes=10)
OPT_IN_TEMPLATE_NAME = "Confirm your subscription"
OPT_IN_TEMPLATE_CONTENT = {
    "subject": "Please confirm your subscription to {{ workspace.name }}",
    "preheader": "One click and you are in.",
    "html": (
        "<p>Hi{% if profile.first_name %} {{ profile.first_name }}{% endif %},</p>"
        "<p>Please confirm that you want emails from {{ workspace.name }}.</p>"
        '<p><a href="{{ message.confirm_url }}">Yes, subscribe me</a></p>'
        "<p>If you did not ask for this, ignore this email: you will not hear from us.</p>"
    ),
    "text": (
        "Please confirm that you want emails from {{ workspace.name }}:\n"
        "{{ message.confirm_url }}\n\n"
        "If you did not ask for this, ignore this email: you will not hear from us."
    ),
}


class ConsentRefused(ValueError):
    """A request for messages that must not be granted; the text says why."""


def consent_request(
    *, profile, channel: str, source: str, topic: str = "", address_changed: bool = False
) -> str:
    """A person asked to get messages on a channel (a signup form, the app's
    settings). Where the workspace wants double opt-in for email, their answer is
    pending and a confirmation email goes out (at most one in
    CONFIRMATION_RESEND_AFTER); elsewhere they are subscribed now. Returns the answer:
    "subscribed" or "pending"."""
    from delivery.models import Consent, Suppression
    from delivery.policies import normalised_address, profile_address
    from delivery.selectors import delivery_settings
    from segments.models import Profile

    address = normalised_address(
        channel=channel, address=profile_address(profile=profile, channel=channel)
    )
    if (
        address
        and Suppression.objects.filter(
            workspace_id=profile.workspace_id,
            channel=channel,
            address=address,
            reason=Suppression.Reason.KEYWORD,
        ).exists()
    ):
        # Their own STOP stands until they text START: no form or app undoes it.
        raise ConsentRefused(
            f"This number texted STOP; it gets {channel} messages again only by texting START."
        )
    options = delivery_settings(workspace=profile.workspace)
    if not (channel == "email" and options.email_double_opt_in) or topic:
        consent_set(
            profile=profile, channel=channel, status="subscribed", source=source, topic=topic
        )
        return "subscribed"
    with transaction.atomic():
        Profile.objects.select_for_update().filter(pk=profile.pk).first()
        current = Consent.objects.filter(profile=profile, channel=channel, topic="").first()
        confirmed = current is not None and current.status == Consent.Status.SUBSCRIBED
        if confirmed and not address_changed:
            return "subscribed"
        # A new address is confirmed anew: the yes was given for the old one.
        consent_set(profile=profile, channel=channel, status="pending", source=source)
        now = timezone.now()
        # Counted by address across the workspace, so a form sent again and again with
        # someone's address (under new anonymous ids) cannot flood them.
        recent = Message.objects.filter(
            workspace_id=profile.workspace_id,
            channel=channel,
            purpose="opt_in_confirmation",
            created_at__gt=now - CONFIRMATION_RESEND_AFTER,
            profile__email__iexact=profile.email,
        ).exists()
        if recent:
            return "pending"
        template = _opt_in_template(options)
        message = Message.objects.create(
            workspace_id=profile.workspace_id,
            idempotency_key=f"opt-in:{profile.pk}:{channel}:{int(now.timestamp() * 1000)}",
            profile=profile,
            channel=channel,
            template_version=template.current_version,
            purpose="opt_in_confirmation",
            transactional=True,
            created_at=now,
            # Due now: the scheduler sends it even if the job queued below is lost.
            next_attempt_at=now,
        )
        transaction.on_commit(lambda: messages_enqueue([message.pk], channel=channel))
    return "pending"


def _opt_in_template(options):
    """The workspace's confirmation email: the one its settings name, or one made now
    in its content library (audited as the system's), for the content team to edit."""
    from content import services as content_services
    from content.models import Template
    from delivery.models import DeliverySettings
    from engagement_site.workspaces.services import AuditContext

    template = options.opt_in_template
    if template is not None and template.current_version is not None:
        return template
    workspace = options.workspace
    template = Template.objects.filter(
        workspace=workspace, name=OPT_IN_TEMPLATE_NAME, channel="email", archived_at__isnull=True
    ).first()
    if template is None or template.current_version is None:
        template = content_services.template_create(
            workspace=workspace,
            name=OPT_IN_TEMPLATE_NAME,
            channel="email",
            content={"default": OPT_IN_TEMPLATE_CONTENT},
            description="Sent when a person asks for email and double opt-in is on.",
            context=AuditContext.system("double_opt_in"),
        )
    DeliverySettings.objects.update_or_create(
        workspace=workspace, defaults={"opt_in_template": template}
    )
    return template


class ConfirmationRefused(ValueError):
    """A confirmation link that cannot subscribe anyone; the text says why."""


def opt_in_confirm(*, message: Message, address_digest: str) -> None:
    """The person clicked "confirm" in their confirmation email: they are subscribed
    (source double_opt_in, recorded against that email), unless they unsubscribed
    since, or the profile's address is no longer the one the link was sent to
    (`address_digest`, from the link: delivery.tokens.address_digest)."""
    from delivery.models import Consent
    from delivery.tokens import address_digest as digest_of
    from segments.models import Profile

    if message.purpose != "opt_in_confirmation":
        raise ConfirmationRefused("This link does not confirm a subscription.")
    with transaction.atomic():
        profile = Profile.objects.select_for_update().get(pk=message.profile_id)
        if digest_of(profile.email) != address_digest:
            raise ConfirmationRefused(
                "This link was sent to an address this subscription no longer uses; "
                "sign up again to get a new one."
            )
        current = Consent.objects.filter(
            profile_id=message.profile_id, channel=message.channel, topic=""
        ).first()
        if current is not None and current.status == Consent.Status.SUBSCRIBED:
            return
        if current is None or current.status != Consent.Status.PENDING:
            raise ConfirmationRefused(
                "You unsubscribed after asking; subscribe again to get a new confirmation email."
            )
        consent_set(
            profile=profile,
            channel=message.channel,
            status=Consent.Status.SUBSCRIBED,
            source="double_opt_in",
            message=message,
        )


# --------------------------------------------------------------------------- engagement


def message_engagement_record(*, message_id: int, engagement: str, machine: str = "") -> bool:
    """Someone opened or clicked a message (from tracking). A machine's open or click
    (`machine`: why tracking took it for one), or a click within MACHINE_CLICK_SECONDS
    of the send (a link scanner's), moves nothing: it is kept once as a
    machine_opened / machine_clicked event with its reason. A person's repeat changes
    nothing. Returns whether the status moved."""
    from delivery.tracking import MACHINE_CLICK_SECONDS

    now = timezone.now()
    found = Message.objects.filter(pk=message_id).values_list("sent_at", "workspace_id").first()
    if found is None:
        return False  # an erased message is gone
    sent_at, workspace_id = found
    too_soon = sent_at is not None and (now - sent_at).total_seconds() < MACHINE_CLICK_SECONDS
    if not machine and engagement == "clicked" and too_soon:
        machine = "too_soon_after_send"
    if machine:
        message_event_record(
            message=Message(pk=message_id, workspace_id=workspace_id),
            kind=f"machine_{engagement}",
            at=now,
            data={"reason": machine},
        )
        return False
    try:
        return message_status_record(message_id=message_id, status=engagement, at=now)
    except (StatusChangeRefused, Message.DoesNotExist):
        return False  # a suppressed message cannot be opened; an erased one is gone


# --------------------------------------------------------------------------- channel settings


def channel_settings_save(
    *,
    workspace,
    channel: str,
    config: dict,
    context,
    enabled: bool = True,
    rate_per_second: int | None = None,
    cost_per_message=None,
):
    """Save a workspace's settings of a channel: `config` is checked against the
    channel's schema (pydantic's ValidationError names each bad field); secret fields
    left empty keep their stored value; secrets are stored encrypted. Audited with the
    names of the secrets that changed, never their values."""
    import secrets as random

    from delivery.channels import channel_class
    from delivery.models import ChannelSettings
    from delivery.selectors import channel_config
    from engagement_site.crypto import SecretsUnreadable, decrypt_json, encrypt_json
    from engagement_site.workspaces.services import audit_record

    cls = channel_class(channel)
    secret_names = cls.Config.secret_fields()
    with transaction.atomic():
        row = (
            ChannelSettings.objects.select_for_update()
            .filter(workspace=workspace, channel=channel)
            .first()
        )
        try:
            stored = decrypt_json(row.secrets) if row is not None else {}
        except SecretsUnreadable:
            stored = {}  # a lost key: the secrets must be entered again
        given = {k: v for k, v in config.items() if not (k in secret_names and v in ("", None))}
        merged = {**(row.config if row is not None else {}), **stored, **given}
        validated = cls.Config.model_validate(merged)
        plain = validated.model_dump(mode="json", exclude=set(secret_names))
        hidden = {
            name: validated.secret(name)
            for name in secret_names
            if getattr(validated, name) is not None
        }
        before = (
            {
                "config": row.config,
                "enabled": row.enabled,
                "rate": row.rate_per_second,
                "cost": _plain_cost(row.cost_per_message),
            }
            if row is not None
            else None
        )
        if row is None:
            row = ChannelSettings(
                workspace=workspace, channel=channel, hook_token=random.token_urlsafe(32)
            )
        changed_secrets = sorted(name for name in hidden if stored.get(name) != hidden[name])
        row.config, row.enabled, row.rate_per_second = plain, enabled, rate_per_second
        row.cost_per_message = cost_per_message
        row.secrets = encrypt_json(hidden)
        row.updated_at = timezone.now()
        row.save()
        channel_config(row=row, cls=cls)  # what was stored reads back
        audit_record(
            context=context,
            action="channel.update",
            workspace=workspace,
            object_type="delivery.channelsettings",
            object_id=str(row.pk),
            object_repr=f"{channel} settings",
            changes={
                "before": before,
                "after": {
                    "config": plain,
                    "enabled": enabled,
                    "rate": rate_per_second,
                    "cost": _plain_cost(cost_per_message),
                },
                "secrets_changed": changed_secrets,
            },
        )
    return row


def _plain_cost(cost) -> str | None:
    return None if cost is None else str(cost)


# --------------------------------------------------------------------------- provider callbacks


def suppression_add(
    *,
    workspace,
    channel: str,
    address: str,
    reason: str,
    note: str = "",
    message=None,
    context=None,
):
    """Put an address on the workspace's suppression list for a channel (idempotent:
    the first reason stays). Audited when a person does it."""
    from delivery.models import Suppression
    from delivery.policies import normalised_address
    from engagement_site.workspaces.services import audit_record

    address = normalised_address(channel=channel, address=address)
    if not address:
        return None
    row, created = Suppression.objects.get_or_create(
        workspace=workspace,
        channel=channel,
        address=address,
        defaults={"reason": reason, "note": note[:500], "message": message},
    )
    if created and context is not None:
        audit_record(
            context=context,
            action="suppression.create",
            workspace=workspace,
            object_type="delivery.suppression",
            object_id=str(row.pk),
            object_repr=f"{channel} suppression",
            changes={"channel": channel, "reason": reason},
        )
    return row


def message_receipt_record(*, workspace, channel: str, receipt) -> bool:
    """Apply a provider's report on one of its messages (found by the provider's id
    within the workspace and channel). Repeats and reports out of order change nothing;
    a permanent bounce or a complaint suppresses the address. Returns whether the
    message's state changed."""
    from delivery.models import Consent

    message = (
        Message.objects.select_related("profile")
        .filter(
            workspace=workspace, channel=channel, provider_message_id=receipt.provider_message_id
        )
        .first()
        if receipt.provider_message_id
        else None
    )
    if message is None:
        return False
    at = receipt.at or timezone.now()
    if receipt.status == "complained":
        message_event_record(message=message, kind="complained", at=at)
        address = message.rendered.get("to", "") or _profile_address(message)
        suppression_add(
            workspace=workspace,
            channel=channel,
            address=address,
            reason="complaint",
            message=message,
        )
        consent_set(
            profile=message.profile,
            channel=channel,
            status=Consent.Status.UNSUBSCRIBED,
            source="complaint",
            message=message,
        )
        return True
    try:
        moved = message_status_record(
            message_id=message.pk, status=receipt.status, at=at, reason=receipt.error[:200]
        )
    except StatusChangeRefused:
        return False
    if receipt.status == "bounced" and receipt.permanent:
        suppression_add(
            workspace=workspace,
            channel=channel,
            address=_profile_address(message),
            reason="bounce",
            note=receipt.error,
            message=message,
        )
    return moved


def _profile_address(message: Message) -> str:
    from delivery.policies import profile_address

    return profile_address(profile=message.profile, channel=message.channel)


# Inbound keywords (CTIA; the words carriers and Twilio honour): the whole message,
# one word, in any case.
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})


def inbound_message_record(*, workspace, channel: str, inbound, help_text: str = "") -> str:
    """A person texted one of the workspace's numbers. STOP and its synonyms
    unsubscribe every profile with that number from the channel (and suppress a number
    no profile has yet), START and its synonyms subscribe them again, HELP answers
    with `help_text`. Returns the text to answer with ("" for none)."""
    from delivery.models import Consent, Suppression
    from delivery.policies import normalised_address
    from segments.models import Profile

    word = inbound.text.strip().upper()
    number = normalised_address(channel=channel, address=inbound.sender)
    if not number or word not in STOP_WORDS | START_WORDS | HELP_WORDS:
        return ""
    if word in HELP_WORDS:
        return help_text
    profiles = [
        profile
        for profile in Profile.objects.filter(workspace=workspace)
        .exclude(phone="")
        .filter(phone__endswith=number[-7:])
        if normalised_address(channel=channel, address=profile.phone) == number
    ]
    status = Consent.Status.UNSUBSCRIBED if word in STOP_WORDS else Consent.Status.SUBSCRIBED
    for profile in profiles:
        consent_set(profile=profile, channel=channel, status=status, source="sms_keyword")
    if word in STOP_WORDS:
        # The number itself, whoever has it now or later: a profile made afterwards
        # with this number (an import, a new signup) is not texted either.
        suppression_add(
            workspace=workspace,
            channel=channel,
            address=number,
            reason=Suppression.Reason.KEYWORD,
            note=f"texted {word}",
        )
    if word in START_WORDS:
        Suppression.objects.filter(
            workspace=workspace, channel=channel, address=number, reason=Suppression.Reason.KEYWORD
        ).delete()
    return ""


def preferences_save(*, profile, channels: dict[str, bool], topics: dict[str, bool]) -> int:
    """Save what a person chose in the preference centre (channel id or topic key ->
    wants it); only the answers that differ from what they get now are written.
    Returns how many changed."""
    from delivery.models import Consent
    from delivery.selectors import profile_preferences

    current = profile_preferences(workspace=profile.workspace, profile=profile)
    changed = 0
    for item in current["channels"]:
        wanted = channels.get(item["id"], item["subscribed"])
        if wanted != item["subscribed"]:
            consent_set(
                profile=profile,
                channel=item["id"],
                status=Consent.Status.SUBSCRIBED if wanted else Consent.Status.UNSUBSCRIBED,
                source="preference_centre",
            )
            changed += 1
    for item in current["topics"]:
        wanted = topics.get(item["key"], item["subscribed"])
        if wanted != item["subscribed"]:
            consent_set(
                profile=profile,
                channel="",
                topic=item["key"],
                status=Consent.Status.SUBSCRIBED if wanted else Consent.Status.UNSUBSCRIBED,
                source="preference_centre",
            )
            changed += 1
    return changed
