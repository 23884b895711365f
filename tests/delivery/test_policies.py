"""Policies checked when a message is sent: frequency caps (transactional messages
exempt), quiet hours in the person's time zone (the message waits and goes when the
window ends), the suppression list, topics and opt-in channels, shadow mode, send
rates. Each test counts what reached the real SMTP server, including nothing."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine

from delivery import pacing
from delivery.models import (
    Consent,
    DeliverySettings,
    FrequencyCap,
    Message,
    MessageEvent,
    Suppression,
    Topic,
)
from delivery.services import REQUEUE_GRACE, messages_send
from segments.models import Profile
from tests.delivery.conftest import _email_template
from tests.delivery.test_email import _sweep_at

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
WEEK = 7 * 24 * 3600
LATE = datetime(2026, 11, 20, 21, 30, tzinfo=UTC)  # 22:30 in Berlin


@pytest.fixture
def ada(workspace) -> Profile:
    return Profile.objects.create(
        workspace=workspace,
        user_id="ada",
        email="Ada@Example.com",
        time_zone="Europe/Berlin",
        traits={"first_name": "Ada"},
    )


@pytest.fixture
def template(workspace):
    return _email_template(workspace)


def _message(ada, template, key: str, *, at=T0, **extra) -> Message:
    return Message.objects.create(
        workspace_id=ada.workspace_id,
        idempotency_key=key,
        profile=ada,
        channel="email",
        template_version=template.current_version,
        created_at=at,
        next_attempt_at=at,
        **extra,
    )


def _send(*messages, now=T0) -> dict[str, int]:
    return messages_send(message_ids=[message.pk for message in messages], now=now)


def _state(message: Message) -> tuple[str, str]:
    message.refresh_from_db()
    return message.status, message.reason


def _preference(ada, *, channel: str, topic: str, status: str) -> None:
    """Ada's choice on a topic for a channel ("" for every channel), in the preference centre."""
    Consent.objects.create(
        workspace_id=ada.workspace_id,
        profile=ada,
        channel=channel,
        topic=topic,
        status=status,
        source="preference_centre",
    )


def _quiet_nights(workspace, channels: list[str]) -> None:
    """Quiet hours from 21:00 to 08:00 on these channels."""
    DeliverySettings.objects.create(
        workspace=workspace,
        quiet_hours_start=time(21, 0),
        quiet_hours_end=time(8, 0),
        quiet_hours_channels=channels,
    )


def test_a_frequency_cap_stops_the_message_over_it_and_spares_transactional_ones(
    workspace, ada, template, smtp
):
    FrequencyCap.objects.create(workspace=workspace, channel="email", limit=2, window_seconds=WEEK)
    first, second, third = (_message(ada, template, f"m{i}") for i in range(3))
    receipt = _message(ada, template, "receipt", transactional=True)
    assert _send(first, second, third, receipt) == {"sent": 3, "suppressed": 1}
    assert [_state(m) for m in (first, second, third, receipt)] == [
        ("sent", ""),
        ("sent", ""),
        ("suppressed", "frequency_cap"),
        ("sent", ""),
    ]
    assert len(smtp.received) == 3
    assert [m["X-Engagement-Message"] for m in smtp.received] == ["m0", "m1", "receipt"]

    # The window rolls: a week and a second after the first two, there is room again.
    later = _message(ada, template, "later", at=T0 + timedelta(seconds=WEEK + 1))
    assert _send(later, now=T0 + timedelta(seconds=WEEK + 1)) == {"sent": 1}
    assert len(smtp.received) == 4


def test_a_cap_on_another_channel_does_not_count_email(workspace, ada, template, smtp):
    FrequencyCap.objects.create(workspace=workspace, channel="sms", limit=1, window_seconds=WEEK)
    messages = [_message(ada, template, f"m{i}") for i in range(3)]
    assert _send(*messages) == {"sent": 3}
    assert len(smtp.received) == 3


def test_a_failed_message_gives_its_place_under_the_cap_back(workspace, ada, template, smtp):
    FrequencyCap.objects.create(workspace=workspace, channel="", limit=1, window_seconds=WEEK)
    smtp.refuse["Ada@Example.com"] = "550 5.1.1 No such user"
    refused = _message(ada, template, "refused")
    assert _send(refused) == {"failed": 1}
    smtp.refuse.clear()
    again = _message(ada, template, "again")
    assert _send(again) == {"sent": 1}
    assert [m["X-Engagement-Message"] for m in smtp.received] == ["again"]


def test_quiet_hours_hold_the_message_until_the_window_ends_in_the_persons_time_zone(
    workspace, ada, template, smtp
):
    _quiet_nights(workspace, ["email"])
    morning = datetime(2026, 11, 21, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
    with time_machine.travel(LATE, tick=False):
        message = _message(ada, template, "night", at=LATE)
        assert _send(message, now=LATE) == {"held": 1}
        message.refresh_from_db()
        assert (message.status, message.hold_reason, message.next_attempt_at) == (
            "queued",
            "quiet_hours",
            morning,
        )
        assert smtp.received == []
        [deferred] = MessageEvent.objects.filter(message=message, kind="deferred")
        assert deferred.data == {"reason": "quiet_hours", "until": morning.isoformat()}
    # Just before the end nothing goes; once it ends the scheduler sends it.
    _sweep_at(morning - timedelta(minutes=1))
    assert smtp.received == []
    _sweep_at(morning + REQUEUE_GRACE)
    message.refresh_from_db()
    assert (message.status, message.sent_at, message.hold_reason) == (
        "sent",
        morning + REQUEUE_GRACE,
        "",
    )
    assert [m["X-Engagement-Message"] for m in smtp.received] == ["night"]


def test_quiet_hours_spare_transactional_messages_and_other_channels(
    workspace, ada, template, smtp
):
    _quiet_nights(workspace, ["sms"])
    email = _message(ada, template, "email-at-night", at=LATE)
    assert _send(email, now=LATE) == {"sent": 1}
    DeliverySettings.objects.filter(workspace=workspace).update(quiet_hours_channels=["email"])
    receipt = _message(ada, template, "receipt", at=LATE, transactional=True)
    assert _send(receipt, now=LATE) == {"sent": 1}
    assert len(smtp.received) == 2


def test_an_address_on_the_suppression_list_gets_nothing(workspace, ada, template, smtp):
    Suppression.objects.create(
        workspace=workspace, channel="email", address="ada@example.com", reason="complaint"
    )
    message = _message(ada, template, "m")
    assert _send(message) == {"suppressed": 1}
    assert _state(message) == ("suppressed", "suppressed_complaint")
    assert smtp.received == []


def test_the_suppression_list_of_another_workspace_does_not_apply(
    workspace, other_workspace, ada, template, smtp
):
    Suppression.objects.create(
        workspace=other_workspace, channel="email", address="ada@example.com", reason="bounce"
    )
    assert _send(_message(ada, template, "m")) == {"sent": 1}
    assert len(smtp.received) == 1


def test_topics_unsubscribed_and_opt_in(workspace, ada, template, smtp):
    Topic.objects.create(workspace=workspace, key="news", name="News")
    Topic.objects.create(workspace=workspace, key="beta", name="Beta programme", opt_in=True)
    _preference(ada, channel="", topic="news", status="unsubscribed")
    news = _message(ada, template, "news", topic="news")
    beta = _message(ada, template, "beta", topic="beta")
    other = _message(ada, template, "other", topic="tips")
    assert _send(news, beta, other) == {"suppressed": 2, "sent": 1}
    assert _state(news) == ("suppressed", "unsubscribed_topic")
    assert _state(beta) == ("suppressed", "no_opt_in_topic")
    assert [m["X-Engagement-Message"] for m in smtp.received] == ["other"]

    _preference(ada, channel="email", topic="beta", status="subscribed")
    assert _send(_message(ada, template, "beta-2", topic="beta")) == {"sent": 1}


def test_an_opt_in_channel_needs_a_yes(workspace, ada, template, smtp):
    DeliverySettings.objects.create(workspace=workspace, opt_in_channels=["email"])
    message = _message(ada, template, "m")
    assert _send(message) == {"suppressed": 1}
    assert _state(message) == ("suppressed", "no_opt_in")
    Consent.objects.create(
        workspace=workspace, profile=ada, channel="email", status="subscribed", source="api"
    )
    assert _send(_message(ada, template, "m2")) == {"sent": 1}
    assert len(smtp.received) == 1


def test_shadow_mode_runs_everything_and_sends_nothing(workspace, ada, template, smtp):
    DeliverySettings.objects.create(workspace=workspace, shadow_mode=True)
    FrequencyCap.objects.create(workspace=workspace, channel="", limit=1, window_seconds=WEEK)
    first, second = _message(ada, template, "a"), _message(ada, template, "b")
    assert _send(first, second) == {"shadow": 1, "suppressed": 1}
    first.refresh_from_db()
    assert (first.status, first.reason, first.is_shadow) == ("suppressed", "shadow_mode", True)
    assert first.rendered["subject"] == "Hello Ada"  # rendered, as it would have gone
    # The caps run too: the second is what the cap would have stopped.
    assert _state(second) == ("suppressed", "frequency_cap")
    assert smtp.received == []


def test_the_send_rate_grants_at_most_the_rate_per_window():
    with time_machine.travel(T0, tick=False):
        assert pacing.take("test", rate=5, want=3) == (3, 1.0)
        assert pacing.take("test", rate=5, want=3) == (2, 1.0)
        assert pacing.take("test", rate=5, want=1) == (0, 1.0)
    with time_machine.travel(T0 + timedelta(seconds=1), tick=False):
        assert pacing.take("test", rate=5, want=6) == (5, 1.0)


def test_a_channel_rate_paces_the_batch_without_dropping_any(workspace, ada, template, smtp):
    from delivery.services import channel_settings_save
    from engagement_site.workspaces.services import AuditContext

    channel_settings_save(
        workspace=workspace,
        channel="email",
        config={},
        rate_per_second=2,
        context=AuditContext.system("test"),
    )
    messages = [_message(ada, template, f"m{i}") for i in range(5)]
    assert _send(*messages) == {"sent": 5}
    assert len(smtp.received) == 5
