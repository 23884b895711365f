"""Conversions: a journey goal reached records one conversion with its revenue and
the messages it is attributed to, first- and last-touch, within the attribution
window; messages outside the window or of another journey get no credit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from analytics.models import Conversion
from analytics.selectors import conversion_attribution
from delivery.models import Message
from journeys import executor, services
from journeys.models import Enrollment
from segments.models import Profile
from tests.journeys.test_executor import EDITOR, _run_journey, _track

pytestmark = pytest.mark.django_db(transaction=True)
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_goal_conversions_credit_first_and_last_touch_within_the_window(workspace):
    journey = _run_journey(
        workspace, "Win back",
        [
            {"id": "start", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "hold", "type": "wait", "wait": {"kind": "duration", "seconds": 30 * 86400}},
            {"id": "end", "type": "exit"},
        ],
        [{"source": "start", "target": "hold"}, {"source": "hold", "target": "end"}],
        settings={"goal": {"event": "Order Completed", "window_seconds": 3 * 86400}},
    )  # fmt: skip
    other = _run_journey(
        workspace, "Other",
        [{"id": "start", "type": "trigger", "trigger": {"kind": "api"}}, {"id": "end", "type": "exit"}],
        [{"source": "start", "target": "end"}],
    )  # fmt: skip
    ada = Profile.objects.create(workspace=workspace, user_id="ada")
    bob = Profile.objects.create(workspace=workspace, user_id="bob")
    with time_machine.travel(T0, tick=False):
        for person in (ada, bob):
            services.journey_enroll(journey=journey, profile_id=person.pk, context=EDITOR)

    def sent(profile, node, channel, at, *, of=journey):
        return Message.objects.create(
            workspace=workspace, profile=profile, journey=of, journey_version=of.live_version,
            node_id=node, channel=channel, idempotency_key=f"{profile.pk}:{node}:{at}",
            status="sent", sent_at=at,
        )  # fmt: skip

    sent(ada, "old-email", "email", T0 - timedelta(days=5))  # before the window
    first = sent(ada, "email", "email", T0 + timedelta(hours=1))
    last = sent(ada, "push", "push", T0 + timedelta(days=1))
    sent(ada, "elsewhere", "sms", T0 + timedelta(days=1, hours=1), of=other)
    with time_machine.travel(T0 + timedelta(days=2), tick=False):
        _track(ada, "Order Completed", {"revenue": 49.9}, T0 + timedelta(days=2))
        _track(bob, "Order Completed", {"total": "12"}, T0 + timedelta(days=2))
        # A repeat of the goal converts nobody again.
        _track(ada, "Order Completed", {"revenue": 10}, T0 + timedelta(days=2, hours=1))

    conversion = Conversion.objects.get(profile=ada)
    assert (conversion.first_touch_id, conversion.last_touch_id) == (first.pk, last.pk)
    assert (conversion.revenue, conversion.event_name) == (Decimal("49.90"), "Order Completed")
    assert conversion.at == T0 + timedelta(days=2)
    plain = Conversion.objects.get(profile=bob)
    assert (plain.first_touch_id, plain.last_touch_id, plain.revenue) == (
        None,
        None,
        Decimal("12.00"),
    )
    assert Conversion.objects.count() == 2
    assert Enrollment.objects.get(profile=ada).exit_reason == "converted"
    assert conversion_attribution(workspace=workspace, journey_id=journey.pk) == {
        "conversions": 2,
        "revenue": Decimal("61.90"),
        "first_touch": {
            ("", ""): {"conversions": 1, "revenue": Decimal("12.00")},
            ("email", "email"): {"conversions": 1, "revenue": Decimal("49.90")},
        },
        "last_touch": {
            ("", ""): {"conversions": 1, "revenue": Decimal("12.00")},
            ("push", "push"): {"conversions": 1, "revenue": Decimal("49.90")},
        },
    }
    assert conversion_attribution(workspace=workspace, journey_id=other.pk)["conversions"] == 0
    # The journey report ends its steps with the journey's goal, reached from any step.
    from analytics.filters import date_range_of
    from analytics.reports import journey_report

    report = journey_report(
        workspace=workspace,
        journey=journey,
        date_range=date_range_of(workspace=workspace, start=None, end=None),
    )
    goal = report["funnel"][-1]
    assert (goal["id"], goal["title"], goal["summary"]) == (
        "$goal", "Journey goal", "Order Completed within 3 days of entry, from any step",
    )  # fmt: skip
    assert (goal["entered"], goal["converted"], goal["share"]) == (2, 2, 1.0)
    assert [row["label"] for row in report["attribution"]["rows"]] == [
        "No message in the window", "email", "push",
    ]  # fmt: skip


def test_a_goal_node_reached_records_its_conversion_with_both_touches(workspace):
    """Reaching a goal node whose event happened within its window (after entry)
    converts as the journey's goal does: one Conversion with revenue and touches."""
    from tests.journeys.test_executor import _work

    journey = _run_journey(
        workspace, "Second order",
        [
            {"id": "start", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "hold", "type": "wait", "wait": {"kind": "duration", "seconds": 2 * 86400}},
            {"id": "bought", "type": "goal", "event": "Order Completed",
             "filters": [{"property": "revenue", "op": "gte", "value": 20}], "window_seconds": 3 * 86400},
        ],
        [{"source": "start", "target": "hold"}, {"source": "hold", "target": "bought"}],
    )  # fmt: skip
    ada = Profile.objects.create(workspace=workspace, user_id="ada")
    bob = Profile.objects.create(workspace=workspace, user_id="bob")
    with time_machine.travel(T0, tick=False):
        for person in (ada, bob):
            services.journey_enroll(journey=journey, profile_id=person.pk, context=EDITOR)
        _work()
    touches = [
        Message.objects.create(
            workspace=workspace, profile=ada, journey=journey, journey_version=journey.live_version,
            node_id=node, channel=channel, idempotency_key=f"goal:{node}", status="sent", sent_at=at,
        )
        for node, channel, at in (("mail", "email", T0 + timedelta(hours=2)), ("text", "sms", T0 + timedelta(hours=20)))
    ]  # fmt: skip
    _track(ada, "Order Completed", {"revenue": 35}, T0 + timedelta(days=1))
    _track(bob, "Order Completed", {"revenue": 5}, T0 + timedelta(days=1))  # filter not met
    with time_machine.travel(T0 + timedelta(days=2, minutes=1), tick=False):
        executor.scheduler_duty()  # the wait is over: the scheduler queues the step
        _work()
    conversion = Conversion.objects.get()
    assert (conversion.profile_id, conversion.revenue, conversion.event_name) == (
        ada.pk, Decimal("35.00"), "Order Completed",
    )  # fmt: skip
    assert (conversion.first_touch_id, conversion.last_touch_id) == (touches[0].pk, touches[1].pk)
    assert conversion.at == T0 + timedelta(days=1)
    assert Enrollment.objects.get(profile=bob).exit_reason == "goal_not_reached"
    assert not Conversion.objects.filter(profile=bob).exists()
