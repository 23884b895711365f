"""The demo's delivery history: rendered messages with the events of their paths,
the same for a seed, written once, and consistent with the consents and suppressions
it leaves."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from content.demo import demo_content_create
from delivery.demo import demo_delivery_create
from delivery.models import Consent, DeliverySettings, Message, MessageEvent, Suppression, Topic
from segments.demo import demo_dataset_load

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _history(workspace) -> list[tuple]:
    return list(
        Message.objects.filter(workspace=workspace)
        .order_by("idempotency_key")
        .values_list(
            "idempotency_key", "profile__user_id", "channel", "status", "reason", "sent_at"
        )
    )


def test_the_demo_history_is_deterministic_written_once_and_consistent(workspace, other_workspace):
    for target in (workspace, other_workspace):
        demo_dataset_load(workspace=target, profile_count=80, seed=5)
        demo_content_create(workspace=target)
    assert demo_delivery_create(workspace=workspace, message_count=120, now=NOW) == 120
    assert demo_delivery_create(workspace=workspace, message_count=120, now=NOW) == 0
    assert demo_delivery_create(workspace=other_workspace, message_count=120, now=NOW) == 120
    mine = _history(workspace)
    assert len(mine) == 120
    # The same seed over the same data tells the same story in another workspace.
    assert [row[2:] for row in mine] == [row[2:] for row in _history(other_workspace)]

    messages = Message.objects.filter(workspace=workspace)
    statuses = Counter(messages.values_list("status", flat=True))
    assert set(statuses) <= {
        "sent",
        "delivered",
        "opened",
        "clicked",
        "bounced",
        "failed",
        "suppressed",
    }
    assert statuses["clicked"] > 0 and statuses["delivered"] > 0
    for message in messages.prefetch_related("events"):
        kinds = [event.kind for event in sorted(message.events.all(), key=lambda e: e.at)]
        if message.status == "suppressed":
            assert kinds == ["suppressed"] and message.sent_at is None
        elif message.status == "failed":
            assert kinds == ["retried"] * 4 + ["failed"] and message.reason == "retries_exhausted"
        else:
            assert kinds[0] == "sent" and message.sent_at == message.events.get(kind="sent").at
            assert message.status in kinds
        if message.channel == "email":
            assert message.rendered["subject"] and "/u/" in message.rendered["html"]
        else:
            assert message.rendered["title"]
    assert set(MessageEvent.objects.filter(message__workspace=workspace).values_list(
        "workspace_id", flat=True
    )) == {workspace.pk}  # fmt: skip

    bounced = set(messages.filter(status="bounced").values_list("profile__email", flat=True))
    suppressed = set(
        Suppression.objects.filter(workspace=workspace).values_list("address", flat=True)
    )
    assert suppressed == {address.lower() for address in bounced}
    unsubscribed = messages.filter(events__kind="unsubscribed").values_list("profile_id", flat=True)
    assert set(unsubscribed) <= set(
        Consent.objects.filter(workspace=workspace, status="unsubscribed").values_list(
            "profile_id", flat=True
        )
    )
    assert sorted(Topic.objects.filter(workspace=workspace).values_list("key", flat=True)) == [
        "newsletter", "offers", "product_updates",
    ]  # fmt: skip
    assert DeliverySettings.objects.get(workspace=workspace).utm_domains == ["shop.example.com"]
