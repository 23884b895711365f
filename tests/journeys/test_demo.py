"""The demo journeys: published through the services, with a history the executor
would have written, the same for a seed, and one the engine does not act on twice."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from analytics.experiments import split_reports
from analytics.models import Conversion
from content.demo import demo_content_create
from delivery.demo import demo_delivery_create
from delivery.models import Consent, Message
from engagement_site.workspaces.models import AuditLog
from journeys.demo import CART, REVIEW, WELCOME, WIN_BACK, demo_journeys_create
from journeys.executor import advance_batch, scheduler_duty
from journeys.models import Enrollment, Journey, StepLog
from segments.demo import demo_dataset_load, demo_segments_create
from segments.models import Event

pytestmark = pytest.mark.django_db(transaction=False)


def _load(workspace, now):
    demo_dataset_load(workspace=workspace, profile_count=1500, seed=20261122)
    demo_segments_create(workspace=workspace)
    demo_content_create(workspace=workspace)
    # One clock for both workspaces: their histories must match to the microsecond.
    demo_delivery_create(
        workspace=workspace, message_count=60, template_names=("Upgrade card",), now=now
    )
    return demo_journeys_create(workspace=workspace, seed=20261122, now=now)


def _story(workspace, name):
    """What happened in a journey, without ids: per enrollment in entry order."""
    return [
        (row[0].isoformat(), *row[1:])
        for row in Enrollment.objects.filter(journey__workspace=workspace, journey__name=name)
        .order_by("entered_at", "profile__user_id")
        .values_list("entered_at", "profile__user_id", "state", "current_node", "exit_reason")
    ]


def test_demo_journeys_are_published_with_a_history_the_engine_continues(
    workspace, other_workspace, owner
):
    now = timezone.now()
    counts = _load(workspace, now)
    assert _load(other_workspace, now)["enrollments"] == counts["enrollments"]
    assert demo_journeys_create(workspace=workspace, seed=20261122, now=now) == {}  # once

    journeys = {journey.name: journey for journey in Journey.objects.filter(workspace=workspace)}
    assert set(journeys) == {WELCOME, CART, WIN_BACK, REVIEW}
    assert {name: journey.status for name, journey in journeys.items()} == {
        WELCOME: "live", CART: "live", WIN_BACK: "live", REVIEW: "draft",
    }  # fmt: skip
    assert journeys[REVIEW].versions.count() == 0
    for name in (WELCOME, CART, WIN_BACK):
        assert journeys[name].live_version.number == 1
        assert journeys[name].draft.layout["nodes"]  # opens laid out in the builder
    publishes = AuditLog.objects.filter(workspace=workspace, action="journey.publish")
    assert sorted(publishes.values_list("actor_id", flat=True)) == [owner.pk] * 3

    # The same seed over the same data tells the same story, except where the cart's
    # split (whose hash takes the journey id) reaches: its variants bring different
    # orders, which can decide a win-back goal, so win-back matches in who entered when.
    assert _story(workspace, WELCOME) == _story(other_workspace, WELCOME)
    assert [row[:2] for row in _story(workspace, WIN_BACK)] == [
        row[:2] for row in _story(other_workspace, WIN_BACK)
    ]
    assert len(_story(workspace, CART)) == len(_story(other_workspace, CART))

    enrollments = Enrollment.objects.filter(workspace=workspace)
    assert enrollments.count() == counts["enrollments"]
    assert counts["journeys"] == 4
    for name in (WELCOME, CART, WIN_BACK):
        assert enrollments.filter(journey__name=name).count() > 0
    waiting = enrollments.filter(state="waiting")
    assert waiting.count() == counts["waiting"] > 0
    assert not waiting.filter(next_run_at__lte=now).exists()
    assert set(waiting.values_list("current_node", flat=True)) <= {
        "wait-1-hour", "wait-2-days", "wait-3-days", "wait-4-days",
    }  # fmt: skip
    for enrollment in waiting:
        assert enrollment.context["parked"]["node"] == enrollment.current_node

    # Every message is an action node's, keyed as the executor keys it, and its step
    # names it.
    messages = Message.objects.filter(workspace=workspace, journey__isnull=False)
    assert messages.count() == counts["messages"] > 0
    for key, enrollment_id, node_id in messages.values_list(
        "idempotency_key", "enrollment_id", "node_id"
    ):
        assert key == f"{enrollment_id}:{node_id}:1"
    sent_steps = StepLog.objects.filter(enrollment__workspace=workspace, outcome="sent")
    assert sorted(step.detail["message"] for step in sent_steps) == sorted(
        messages.values_list("pk", flat=True)
    )
    assert not messages.filter(variant="holdout").exists()
    assert set(messages.filter(journey__name=CART).values_list("variant", flat=True)) == {"a", "b"}

    # Conversions: one per converted enrollment, with the order's revenue.
    conversions = Conversion.objects.filter(workspace=workspace)
    assert conversions.count() == counts["conversions"]
    assert sorted(conversions.values_list("enrollment_id", flat=True)) == sorted(
        enrollments.filter(exit_reason="converted").values_list("pk", flat=True)
    )
    for conversion in conversions:
        order = Event.objects.get(
            workspace=workspace, id=conversion.event_id, name="order_completed"
        )
        assert conversion.revenue == Decimal(str(order.properties["revenue"])).quantize(
            Decimal("0.01")
        )
        assert conversion.at == order.timestamp
    assert (
        Event.objects.filter(workspace=workspace, properties__order_id__startswith="ORD-J").count()
        == counts["orders"]
    )

    # The experiment: B converts better than A, and the treated better than the holdout.
    report = split_reports(workspace=workspace, journey=journeys[CART])[0]
    rates = {row["key"]: row["conversion_rate"]["rate"] for row in report["variants"]}
    assert rates["b"] > rates["a"] > report["holdout"]["conversion_rate"]["rate"]
    assert report["holdout"]["entered"] > 0

    # Nobody who had opted out of email got one after that.
    for profile_id, since in Consent.objects.filter(
        workspace=workspace, channel="email", status="unsubscribed"
    ).values_list("profile_id", "updated_at"):
        assert not messages.filter(
            profile_id=profile_id, channel="email", sent_at__gt=since
        ).exists()

    # The engine takes over without acting twice: nothing is due now, and a month on
    # the waiting people move on, each new message at a node they had none at.
    before = set(messages.values_list("enrollment_id", "node_id"))
    message_count = Message.objects.count()
    assert advance_batch(now=timezone.now()) == 0
    scheduler_duty()
    assert Message.objects.count() == message_count
    waiting_ids = list(waiting.values_list("pk", flat=True))
    assert advance_batch(waiting_ids, now=now + timedelta(days=30)) == counts["waiting"]
    after = Counter(
        Message.objects.filter(journey__isnull=False).values_list("enrollment_id", "node_id")
    )
    assert all(count == 1 for count in after.values())
    assert before <= set(after)
    assert not Enrollment.objects.filter(workspace=workspace, state="failed").exists()
