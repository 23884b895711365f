"""What people do in the delivery console: give a dead letter another try or put it
away, keep the suppression list and the workspace's frequency caps by hand, change
the delivery settings.

Each write runs in one transaction with its audit row (the audit log's action is one
of its fixed kinds; `changes["operation"]` says which of these it was). Sends are
queued only after the commit, so a job never looks for a row that is not there yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import time

from django.db import transaction
from django.utils import timezone

from delivery.console_selectors import DEAD_LETTER_REASONS
from delivery.models import DeliverySettings, FrequencyCap, Message, Suppression
from engagement_site.workspaces.models import AuditAction, Workspace
from engagement_site.workspaces.services import AuditContext, audit_record


class OperationRefused(ValueError):
    """A console action that cannot be done as asked; the text says why."""


def _dead_letters_locked(*, workspace: Workspace, message_ids: Iterable[int]) -> list[Message]:
    """Lock the messages and check every one of them is a dead letter of the workspace
    (a retry or discard that raced another one finds it gone and refuses)."""
    wanted = sorted({int(pk) for pk in message_ids})
    if not wanted:
        raise OperationRefused("Choose at least one message.")
    rows = list(
        Message.objects.select_for_update()
        .filter(workspace=workspace, pk__in=wanted)
        .order_by("pk")
    )
    found = {row.pk: row for row in rows}
    not_dead = [
        pk
        for pk in wanted
        if pk not in found
        or found[pk].status != Message.Status.FAILED
        or found[pk].reason not in DEAD_LETTER_REASONS
        or found[pk].discarded_at is not None
    ]
    if not_dead:
        listed = ", ".join(str(pk) for pk in not_dead)
        raise OperationRefused(
            f"Not on the dead-letter list (already retried, discarded, or not a failed "
            f"delivery): message {listed}. Nothing was changed."
        )
    return rows


def messages_retry(
    *, workspace: Workspace, message_ids: Iterable[int], context: AuditContext
) -> list[int]:
    """Put dead letters back in the queue as if new: status queued, attempts 0, due
    now, reason and failure time cleared, a "retried" event naming who asked. The send
    jobs are queued after commit on each channel's queue. Refuses (changing nothing)
    when any of the messages is not a dead letter, so a double click retries once."""
    from delivery.services import message_event_record, messages_enqueue

    now = timezone.now()
    by = context.actor_label or "system"
    with transaction.atomic():
        rows = _dead_letters_locked(workspace=workspace, message_ids=message_ids)
        ids = [row.pk for row in rows]
        Message.objects.filter(pk__in=ids).update(
            status=Message.Status.QUEUED,
            attempts=0,
            next_attempt_at=now,
            requeued_at=None,
            reason="",
            failed_at=None,
            # A new try takes a new place under the caps, as of now.
            cap_counted_at=None,
            updated_at=now,
        )
        for row in rows:
            message_event_record(
                message=row,
                kind="retried",
                at=now,
                data={"by": by, "after": row.reason, "last_error": row.last_error},
            )
            audit_record(
                context=context,
                action=AuditAction.MESSAGE_RETRY,
                workspace=workspace,
                object_type="delivery.message",
                object_id=str(row.pk),
                object_repr=f"{row.channel} message {row.pk}",
                changes={
                    "operation": "retry",
                    "status": [row.status, "queued"],
                    "reason": row.reason,
                },
            )
        by_channel: dict[str, list[int]] = {}
        for row in rows:
            by_channel.setdefault(row.channel, []).append(row.pk)
        for channel, channel_ids in by_channel.items():
            transaction.on_commit(
                lambda channel=channel, channel_ids=channel_ids: messages_enqueue(
                    channel_ids, channel=channel
                )
            )
    return ids


def messages_discard(
    *, workspace: Workspace, message_ids: Iterable[int], context: AuditContext
) -> list[int]:
    """Take dead letters off the list without another try (they stay failed). Refuses,
    changing nothing, when any of them is not a dead letter."""
    now = timezone.now()
    with transaction.atomic():
        rows = _dead_letters_locked(workspace=workspace, message_ids=message_ids)
        ids = [row.pk for row in rows]
        Message.objects.filter(pk__in=ids).update(discarded_at=now, updated_at=now)
        for row in rows:
            audit_record(
                context=context,
                action=AuditAction.MESSAGE_DISCARD,
                workspace=workspace,
                object_type="delivery.message",
                object_id=str(row.pk),
                object_repr=f"{row.channel} message {row.pk}",
                changes={"operation": "discard", "reason": row.reason},
            )
    return ids


# --------------------------------------------------------------------------- suppression list


def suppression_add_by_hand(
    *, workspace: Workspace, channel: str, address: str, note: str, context: AuditContext
) -> Suppression:
    """Suppress an address on a channel because a person said so. Refuses an address
    that normalises to nothing and one that is on the list already (naming its
    reason), so the form can say what happened."""
    from delivery.policies import normalised_address
    from delivery.services import suppression_add

    normalised = normalised_address(channel=channel, address=address)
    if not normalised:
        raise OperationRefused(f"{address!r} is not an address on the {channel} channel.")
    if channel == "email" and "@" not in normalised:
        raise OperationRefused(f"{address!r} is not an email address.")
    with transaction.atomic():
        existing = Suppression.objects.filter(
            workspace=workspace, channel=channel, address=normalised
        ).first()
        if existing is not None:
            raise OperationRefused(
                f"{normalised} is already suppressed on {channel} ({existing.get_reason_display()})."
            )
        return suppression_add(
            workspace=workspace,
            channel=channel,
            address=normalised,
            reason=Suppression.Reason.MANUAL,
            note=note,
            context=context,
        )


def suppression_remove(*, suppression: Suppression, context: AuditContext) -> None:
    """Let an address be reached again. Audited with the reason it was there (not the
    address, which is personal data the audit log keeps forever)."""
    with transaction.atomic():
        audit_record(
            context=context,
            action=AuditAction.SUPPRESSION_DELETE,
            workspace=suppression.workspace,
            object_type="delivery.suppression",
            object_id=str(suppression.pk),
            object_repr=f"{suppression.channel} suppression",
            changes={
                "operation": "suppression_remove",
                "channel": suppression.channel,
                "reason": suppression.reason,
            },
        )
        suppression.delete()


# --------------------------------------------------------------------------- frequency caps


def frequency_cap_add(
    *,
    workspace: Workspace,
    channel: str,
    limit: int,
    window_seconds: int,
    context: AuditContext,
) -> FrequencyCap:
    """A workspace-wide cap: at most `limit` marketing messages per profile in any
    `window_seconds` on `channel` ("" all channels). Refuses a cap that repeats one
    already there."""
    if limit < 1 or window_seconds < 1:
        raise OperationRefused("A cap needs a limit and a window of at least 1.")
    with transaction.atomic():
        if FrequencyCap.objects.filter(
            workspace=workspace, channel=channel, limit=limit, window_seconds=window_seconds
        ).exists():
            raise OperationRefused("This cap exists already.")
        cap = FrequencyCap.objects.create(
            workspace=workspace, channel=channel, limit=limit, window_seconds=window_seconds
        )
        audit_record(
            context=context,
            action=AuditAction.FREQUENCY_CAP_CREATE,
            workspace=workspace,
            target=cap,
            changes={
                "operation": "frequency_cap_add",
                "channel": channel,
                "limit": limit,
                "window_seconds": window_seconds,
            },
        )
    return cap


def frequency_cap_remove(*, cap: FrequencyCap, context: AuditContext) -> None:
    with transaction.atomic():
        audit_record(
            context=context,
            action=AuditAction.FREQUENCY_CAP_DELETE,
            workspace=cap.workspace,
            target=cap,
            changes={
                "operation": "frequency_cap_remove",
                "channel": cap.channel,
                "limit": cap.limit,
                "window_seconds": cap.window_seconds,
            },
        )
        cap.delete()


# --------------------------------------------------------------------------- delivery settings

DELIVERY_SETTINGS_FIELDS = (
    "track_opens",
    "track_clicks",
    "utm_domains",
    "utm_source",
    "shadow_mode",
    "quiet_hours_start",
    "quiet_hours_end",
    "quiet_hours_channels",
    "fallback_time_zone",
    "opt_in_channels",
    "email_double_opt_in",
    "opt_in_template_id",
)


def delivery_settings_save(
    *, workspace: Workspace, context: AuditContext, **values
) -> DeliverySettings:
    """Save the workspace's delivery settings (creating the row on first save); only
    the fields given change. Quiet hours need both ends or neither. Audited with the
    before and after of what changed; saving the same values writes no audit row."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    unknown = set(values) - set(DELIVERY_SETTINGS_FIELDS)
    if unknown:
        raise OperationRefused(f"Not a delivery setting: {', '.join(sorted(unknown))}.")
    if "fallback_time_zone" in values:
        try:
            ZoneInfo(values["fallback_time_zone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise OperationRefused(
                f"{values['fallback_time_zone']!r} is not a time zone (use an IANA name such as Europe/Berlin)."
            ) from None
    template_id = values.get("opt_in_template_id")
    if template_id is not None:
        from content.models import Template

        if not Template.objects.filter(
            workspace=workspace, pk=template_id, channel="email"
        ).exists():
            raise OperationRefused(
                "The confirmation email must be one of this workspace's email templates."
            )
    with transaction.atomic():
        row, _ = DeliverySettings.objects.select_for_update().get_or_create(workspace=workspace)
        start = values.get("quiet_hours_start", row.quiet_hours_start)
        end = values.get("quiet_hours_end", row.quiet_hours_end)
        if (start is None) != (end is None):
            raise OperationRefused("Quiet hours need both a start and an end (or neither).")
        if isinstance(start, time) and start == end:
            raise OperationRefused("Quiet hours cannot start and end at the same time.")
        changes = {
            name: [getattr(row, name), value]
            for name, value in values.items()
            if getattr(row, name) != value
        }
        if not changes:
            return row
        for name, value in values.items():
            setattr(row, name, value)
        row.updated_at = timezone.now()
        row.save(update_fields=[*values, "updated_at"])
        audit_record(
            context=context,
            action=AuditAction.DELIVERY_SETTINGS_UPDATE,
            workspace=workspace,
            target=row,
            changes={"operation": "delivery_settings_save", **changes},
        )
    return row


# --------------------------------------------------------------------------- secrets


def _webhook_signing_secret(workspace_id: int) -> str:
    from delivery.channels.webhook import signing_secret

    return signing_secret(workspace_id)


def _inbox_user_hash_secret(workspace_id: int) -> str:
    from delivery.inbox import user_hash_secret

    return user_hash_secret(workspace_id)


# kind in the URL -> (what it is called, how it is derived for a workspace)
SECRETS = {
    "webhook-signing": ("Webhook signing secret", _webhook_signing_secret),
    "inbox-user-hash": ("In-app user hash secret", _inbox_user_hash_secret),
}


def secret_reveal(*, workspace: Workspace, kind: str, context: AuditContext) -> str:
    """The workspace's secret of that kind, for an owner or admin who asked to see it.
    Each reveal is audited (who, when, which secret; never the value), so a leaked
    secret can be traced to the people who saw it."""
    try:
        label, derive = SECRETS[kind]
    except KeyError:
        raise OperationRefused(f"There is no secret called {kind!r}.") from None
    audit_record(
        context=context,
        action=AuditAction.SECRET_REVEAL,
        workspace=workspace,
        object_type="delivery.secret",
        object_id=kind,
        object_repr=label,
        changes={"operation": "secret_reveal"},
    )
    return derive(workspace.pk)
