"""Demo delivery data: what a workspace looks like after two weeks of sending, so the
message log, the dead letters, the suppression list and the delivery settings have
something true to show under `make run`.

The messages are rendered from the demo templates for their profiles, exactly as a
send would render them, and each has the events of the path it took (sent,
delivered, opened, clicked; or bounced, failed after its retries, not sent because
the person had unsubscribed). Nothing is sent: the history is written as it would
have been recorded. Deterministic for a seed; run again, it adds nothing.
"""

from __future__ import annotations

import random
from datetime import datetime, time, timedelta

from django.db import transaction
from django.utils import timezone

from delivery.models import (
    Consent,
    DeliverySettings,
    FrequencyCap,
    Message,
    MessageEvent,
    Suppression,
    Topic,
)
from engagement_site.workspaces.models import Workspace
from engagement_site.workspaces.services import AuditContext

DEMO = AuditContext.system("demo data")
KEY_PREFIX = "demo:"
TOPICS = (
    ("newsletter", "Newsletter", False),
    ("product_updates", "Product updates", False),
    ("offers", "Offers and discounts", True),
)
# (template name, channel, topic, share of the messages)
SENDS = (
    ("Welcome email", "email", "newsletter", 0.45),
    ("Checkout reminder", "email", "offers", 0.35),
    ("Upgrade card", "in_app", "product_updates", 0.20),
)
# How an email's story ends, and how often.
EMAIL_OUTCOMES = (
    ("sent", 0.10),
    ("delivered", 0.38),
    ("opened", 0.28),
    ("clicked", 0.14),
    ("bounced", 0.03),
    ("failed", 0.02),
    ("unsubscribed", 0.03),
    ("suppressed", 0.02),
)
IN_APP_OUTCOMES = (("sent", 0.45), ("opened", 0.35), ("clicked", 0.20))


def _pick(rng: random.Random, weighted) -> str:
    roll, total = rng.random(), 0.0
    for value, weight in weighted:
        total += weight
        if roll < total:
            return value
    return weighted[-1][0]


def demo_delivery_create(
    *,
    workspace: Workspace,
    message_count: int = 600,
    seed: int = 20261204,
    now=None,
    template_names: tuple[str, ...] | None = None,
) -> int:
    """Settings, topics and a message history for the demo workspace; returns how many
    messages were written (0 when the demo history is there already). With
    `template_names`, only the SENDS of those templates (load_demo leaves the welcome
    and checkout emails to the demo journeys, journeys.demo)."""
    from content.models import Template
    from delivery.services import channel_settings_save
    from segments.models import Profile

    if Message.objects.filter(workspace=workspace, idempotency_key__startswith=KEY_PREFIX).exists():
        return 0
    rng = random.Random(seed)
    now = now or timezone.now()
    templates = {
        template.name: template
        for template in Template.objects.filter(
            workspace=workspace, name__in=[name for name, *_ in SENDS]
        ).select_related("current_version__template")
    }
    sends = [
        send
        for send in SENDS
        if send[0] in templates and (template_names is None or send[0] in template_names)
    ]
    if template_names is not None and sends:
        total = sum(send[3] for send in sends)
        sends = [(name, channel, topic, share / total) for name, channel, topic, share in sends]
    profiles = list(
        Profile.objects.filter(workspace=workspace).exclude(email="").exclude(user_id="")
        .order_by("pk")[: message_count * 2]
    )  # fmt: skip
    if not sends or not profiles:
        return 0

    with transaction.atomic():
        for key, name, opt_in in TOPICS:
            Topic.objects.get_or_create(
                workspace=workspace, key=key, defaults={"name": name, "opt_in": opt_in}
            )
        DeliverySettings.objects.update_or_create(
            workspace=workspace,
            defaults={
                "utm_domains": ["shop.example.com"],
                "utm_source": "engagement",
                "quiet_hours_start": time(21, 0),
                "quiet_hours_end": time(8, 0),
                "fallback_time_zone": workspace.time_zone or "UTC",
            },
        )
        FrequencyCap.objects.get_or_create(
            workspace=workspace, channel="email", defaults={"limit": 3, "window_seconds": 7 * 86400}
        )
        channel_settings_save(
            workspace=workspace, channel="in_app", config={"require_user_hash": False}, context=DEMO
        )

        messages: list[Message] = []
        stories: list[tuple[str, list[tuple[str, datetime, dict]]]] = []
        for index in range(message_count):
            profile = rng.choice(profiles)
            name, channel, topic, _ = _pick_send(rng, sends)
            template = templates[name]
            created = now - timedelta(days=14) + timedelta(seconds=rng.randrange(14 * 86400))
            outcome = _pick(rng, EMAIL_OUTCOMES if channel == "email" else IN_APP_OUTCOMES)
            message = Message(
                workspace=workspace,
                idempotency_key=f"{KEY_PREFIX}{workspace.pk}:{seed}:{index}",
                profile=profile,
                channel=channel,
                template_version=template.current_version,
                topic=topic,
                created_at=created,
                updated_at=created,
            )
            events = _story(rng, message, outcome, created)
            messages.append(message)
            stories.append((outcome, events))
        demo_messages_write(workspace=workspace, messages=messages, stories=stories)
    return len(messages)


def demo_messages_write(
    *,
    workspace: Workspace,
    messages: list[Message],
    stories: list[tuple[str, list[tuple[str, datetime, dict]]]],
    trigger_events: list[dict | None] | None = None,
) -> None:
    """Store messages whose fields `demo_story` set, rendered for their profiles (with
    the trigger event of their journey step, when given), with the events of their
    stories; bounces join the suppression list and unsubscribes (and sends held back
    for an unsubscribe) leave the person unsubscribed from email. In the caller's
    transaction."""
    from content.rendering import build_context, render_version
    from delivery.tokens import preferences_url, unsubscribe_url

    Message.objects.bulk_create(messages, batch_size=500)
    # Rendered with their own ids, so the links in them (unsubscribe) work.
    for index, message in enumerate(messages):
        if message.template_version is None:
            continue
        context = build_context(
            workspace=workspace,
            profile=message.profile,
            # The demo computes customer values after its messages (analytics.value).
            with_computed=False,
            event=trigger_events[index] if trigger_events else None,
            message={
                "id": message.pk,
                "unsubscribe_url": unsubscribe_url(message.pk),
                "preferences_url": preferences_url(message.profile_id),
                "confirm_url": "",
            },
        )
        message.rendered = render_version(
            version=message.template_version, locale=message.profile.locale, context=context
        ).fields
    Message.objects.bulk_update(messages, ["rendered"], batch_size=500)

    rows: list[MessageEvent] = []
    for message, (outcome, events) in zip(messages, stories, strict=True):
        rows.extend(
            MessageEvent(workspace=workspace, message=message, kind=kind, at=at, data=data)
            for kind, at, data in events
        )
        address = message.profile.email.lower()
        if outcome == "bounced":
            Suppression.objects.get_or_create(
                workspace=workspace,
                channel="email",
                address=address,
                defaults={"reason": "bounce", "note": "550 5.1.1 mailbox unknown"},
            )
        if outcome == "suppressed" and message.channel == "email":
            # Held back for an unsubscribe: the person's opt-out stands as it was.
            Consent.objects.get_or_create(
                profile=message.profile,
                channel="email",
                topic="",
                defaults={
                    "workspace": workspace,
                    "status": "unsubscribed",
                    "source": "one_click",
                    "updated_at": events[-1][1],
                },
            )
        if outcome == "unsubscribed" and message.channel == "email":
            Consent.objects.update_or_create(
                profile=message.profile,
                channel="email",
                topic="",
                defaults={
                    "workspace": workspace,
                    "status": "unsubscribed",
                    "source": "one_click",
                    "message": message,
                    "updated_at": events[-1][1],
                },
            )
    MessageEvent.objects.bulk_create(rows, batch_size=1000)


def demo_story(rng: random.Random, message: Message, outcome: str, at: datetime):
    """Set the message's final state for `outcome` and return its events in order."""
    return _story(rng, message, outcome, at)


def _pick_send(rng: random.Random, sends):
    return sends[[s[0] for s in sends].index(_pick(rng, [(s[0], s[3]) for s in sends]))]


def _story(rng: random.Random, message: Message, outcome: str, at: datetime):
    """Set the message's final state for `outcome` and return its events in order."""
    events: list[tuple[str, datetime, dict]] = []
    provider_id = f"<demo-{message.idempotency_key.rsplit(':', 1)[-1]}@shop.example.com>"
    if outcome == "suppressed":
        message.status, message.reason = "suppressed", "unsubscribed"
        events.append(("suppressed", at, {"reason": "unsubscribed"}))
        return events
    if outcome == "failed":
        message.status, message.reason, message.attempts = "failed", "retries_exhausted", 5
        message.last_error = "451 4.3.0 Mail server temporarily rejected message"
        for attempt in range(1, 5):
            events.append(("retried", at + timedelta(minutes=2**attempt), {"attempt": attempt}))
        message.failed_at = at + timedelta(hours=2)
        events.append(("failed", message.failed_at, {"reason": "retries_exhausted"}))
        return events
    message.attempts = 1
    message.status = "sent"
    message.sent_at = at
    message.provider_message_id = provider_id if message.channel == "email" else ""
    events.append(("sent", at, {}))
    if outcome == "bounced":
        message.status, message.reason = "bounced", "550 5.1.1 mailbox unknown"
        message.failed_at = at + timedelta(seconds=rng.randrange(5, 90))
        events.append(("bounced", message.failed_at, {"diagnostic": "550 5.1.1"}))
        return events
    step = at
    if message.channel == "email" and outcome != "sent":
        step += timedelta(seconds=rng.randrange(2, 40))
        message.status, message.delivered_at = "delivered", step
        events.append(("delivered", step, {}))
    if outcome in ("opened", "clicked", "unsubscribed"):
        step += timedelta(minutes=rng.randrange(3, 600))
        message.status, message.opened_at = "opened", step
        events.append(("opened", step, {}))
    if outcome == "clicked":
        step += timedelta(seconds=rng.randrange(20, 900))
        message.status, message.clicked_at = "clicked", step
        events.append(("clicked", step, {}))
    if outcome == "unsubscribed":
        step += timedelta(seconds=rng.randrange(10, 300))
        events.append(("unsubscribed", step, {"source": "one_click"}))
    message.updated_at = step
    return events
