"""Fallback chains and engagement conditions on a real RQ worker, with the clock under
test control. Delivery's outcomes arrive through delivery.services.message_status_record,
the one way a message's status changes, which wakes the waiting step."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from content import services as content_services
from delivery.models import Message
from delivery.services import StatusChangeRefused, message_status_record
from journeys import executor, services
from journeys.models import Enrollment, StepLog
from segments.models import Profile
from tests.conftest import logged_in
from tests.journeys.test_executor import EDITOR, _run_journey, _work

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _template(workspace, channel: str, content: dict):
    return content_services.template_create(
        workspace=workspace, name=f"{channel} nudge", channel=channel, content=content,
        context=EDITOR,
    )  # fmt: skip


@pytest.fixture
def chain_journey(workspace):
    """email (opened within an hour) -> SMS -> in-app card, then: clicked anything?"""
    email = _template(workspace, "email", {"default": {"subject": "Hi", "html": "<p>Hi</p>"}})
    sms = _template(workspace, "sms", {"default": {"body": "Hi"}})
    card = _template(workspace, "in_app", {"default": {"title": "Hi", "body": "Hi"}})
    return _run_journey(
        workspace, "Reach them",
        [
            {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "reach", "type": "fallback", "not_engaged": "opened", "within_seconds": 3600,
             "chain": [{"channel": "email", "template_id": email.pk},
                       {"channel": "sms", "template_id": sms.pk},
                       {"channel": "in_app", "template_id": card.pk}]},
            {"id": "clicked", "type": "condition",
             "condition": {"kind": "engagement", "node": "reach", "engagement": "clicked"}},
            {"id": "engaged", "type": "exit"},
            {"id": "quiet", "type": "exit"},
        ],
        [{"source": "api", "target": "reach"}, {"source": "reach", "target": "clicked"},
         {"source": "clicked", "port": "yes", "target": "engaged"},
         {"source": "clicked", "port": "no", "target": "quiet"}],
    )  # fmt: skip


def _enter(journey, *people) -> None:
    for person in people:
        services.journey_enroll(journey=journey, profile_id=person.pk, context=EDITOR)
    _work()


def _messages(person) -> list[tuple[str, int, str, str]]:
    return list(
        Message.objects.filter(profile=person)
        .order_by("chain_index")
        .values_list("channel", "chain_index", "status", "reason")
    )


def _message(person, channel: str) -> Message:
    return Message.objects.get(profile=person, channel=channel)


def _enrollment(journey, person) -> Enrollment:
    return Enrollment.objects.get(journey=journey, profile=person)


def test_an_opened_email_ends_the_chain_and_a_click_takes_the_yes_branch(workspace, chain_journey):
    ada = Profile.objects.create(workspace=workspace, user_id="ada", email="ada@example.com")
    with time_machine.travel(T0, tick=False):
        _enter(chain_journey, ada)
        assert _messages(ada) == [("email", 0, "queued", "")]
        enrollment = _enrollment(chain_journey, ada)
        # Not sent yet: the hour of the window has not started (quiet hours may hold it).
        assert (enrollment.state, enrollment.current_node) == ("waiting", "reach")
        assert enrollment.next_run_at == T0 + executor.FALLBACK_RECHECK
        message_status_record(message_id=_message(ada, "email").pk, status="sent")
        _work()
        enrollment.refresh_from_db()
        assert (enrollment.state, enrollment.next_run_at) == ("waiting", T0 + HOUR)
    with time_machine.travel(T0 + 20 * timedelta(minutes=1), tick=False):
        message_status_record(message_id=_message(ada, "email").pk, status="clicked")
        _work()
    enrollment.refresh_from_db()
    assert (enrollment.state, enrollment.exit_reason) == ("exited", "exit_node")
    assert _messages(ada) == [("email", 0, "clicked", "")]
    email = _message(ada, "email")
    # A click implies the open and the delivery before it.
    assert email.delivered_at == email.opened_at == email.clicked_at
    reach = enrollment.steps.get(node_id="reach")
    assert (reach.outcome, reach.detail["channel"]) == ("sent", "email")
    assert [step["status"] for step in reach.detail["tried"]] == ["clicked"]
    assert enrollment.steps.get(node_id="clicked").port == "yes"


def test_an_unopened_email_moves_on_to_sms_and_a_failed_sms_to_the_in_app_card(
    workspace, chain_journey, owner
):
    bo = Profile.objects.create(
        workspace=workspace, user_id="bo", email="bo@example.com", phone="+4915112345678"
    )
    with time_machine.travel(T0, tick=False):
        _enter(chain_journey, bo)
        message_status_record(message_id=_message(bo, "email").pk, status="sent")
        message_status_record(message_id=_message(bo, "email").pk, status="delivered")
        _work()
    with time_machine.travel(T0 + HOUR - timedelta(seconds=1), tick=False):
        executor.scheduler_duty()
        _work()
        assert _messages(bo) == [("email", 0, "delivered", "")]  # not yet: a second to go
    with time_machine.travel(T0 + HOUR, tick=False):
        executor.scheduler_duty()
        _work()
        assert _messages(bo) == [("email", 0, "delivered", ""), ("sms", 1, "queued", "")]
        message_status_record(
            message_id=_message(bo, "sms").pk, status="failed", reason="invalid_number"
        )
        _work()
    assert _messages(bo) == [
        ("email", 0, "delivered", ""),
        ("sms", 1, "failed", "invalid_number"),
        ("in_app", 2, "queued", ""),
    ]
    enrollment = _enrollment(chain_journey, bo)
    assert (enrollment.state, enrollment.current_node) == ("waiting", "reach")
    waiting = logged_in(owner).get(
        reverse("profile_detail", kwargs={"workspace_slug": workspace.slug, "profile_id": bo.pk})
    )
    assert "at reach, waiting on its in_app message" in waiting.content.decode()
    with time_machine.travel(T0 + 2 * HOUR, tick=False):
        message_status_record(message_id=_message(bo, "in_app").pk, status="opened")
        _work()
    enrollment.refresh_from_db()
    assert enrollment.state == "exited"
    reach = enrollment.steps.get(node_id="reach")
    assert [(step["channel"], step["status"], step["reason"]) for step in reach.detail["tried"]] == [
        ("email", "delivered", "not_engaged"),
        ("sms", "failed", "invalid_number"),
        ("in_app", "opened", ""),
    ]  # fmt: skip
    assert enrollment.steps.get(node_id="clicked").port == "no"
    assert list(enrollment.steps.values_list("node_id", flat=True).order_by("pk")) == [
        "api", "reach", "clicked", "quiet",
    ]  # fmt: skip
    page = logged_in(owner).get(
        reverse("profile_detail", kwargs={"workspace_slug": workspace.slug, "profile_id": bo.pk})
    )
    chain = page.content.decode().split('data-testid="fallback-chain">')[1].split("</span></li>")[0]
    assert re.sub(r"<[^>]+>", "", chain) == (
        "email delivered (not_engaged) → sms failed (invalid_number) → in_app opened"
    )


def test_channels_without_an_address_are_skipped_at_once_and_an_empty_chain_moves_on(workspace):
    email = _template(workspace, "email", {"default": {"subject": "Hi", "html": "<p>Hi</p>"}})
    sms = _template(workspace, "sms", {"default": {"body": "Hi"}})
    journey = _run_journey(
        workspace, "Email or SMS",
        [
            {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "reach", "type": "fallback",
             "chain": [{"channel": "email", "template_id": email.pk},
                       {"channel": "sms", "template_id": sms.pk}]},
            {"id": "end", "type": "exit"},
        ],
        [{"source": "api", "target": "reach"}, {"source": "reach", "target": "end"}],
    )  # fmt: skip
    phone_only = Profile.objects.create(workspace=workspace, user_id="cy", phone="+15005550006")
    nobody = Profile.objects.create(workspace=workspace, user_id="di")
    with time_machine.travel(T0, tick=False):
        _enter(journey, phone_only, nobody)
        assert _messages(phone_only) == [
            ("email", 0, "suppressed", "no_email_address"),
            ("sms", 1, "queued", ""),
        ]
        assert _enrollment(journey, phone_only).state == "waiting"
        # Without an engagement window, the provider taking the message is enough.
        message_status_record(message_id=_message(phone_only, "sms").pk, status="sent")
        _work()
    assert _enrollment(journey, phone_only).state == "exited"
    assert _messages(nobody) == [
        ("email", 0, "suppressed", "no_email_address"),
        ("sms", 1, "suppressed", "no_phone_number"),
    ]
    step = _enrollment(journey, nobody).steps.get(node_id="reach")
    assert (step.outcome, step.detail["reason"]) == ("skipped", "no_channel_reached")
    assert _enrollment(journey, nobody).state == "exited"


def test_engagement_a_channel_cannot_report_counts_from_delivery(workspace):
    """SMS has no opens: an "opened within" chain takes a delivered SMS as reached
    rather than timing out on something that can never arrive."""
    sms = _template(workspace, "sms", {"default": {"body": "Hi"}})
    card = _template(workspace, "in_app", {"default": {"title": "Hi", "body": "Hi"}})
    journey = _run_journey(
        workspace, "SMS first",
        [
            {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "reach", "type": "fallback", "not_engaged": "opened", "within_seconds": 600,
             "chain": [{"channel": "sms", "template_id": sms.pk},
                       {"channel": "in_app", "template_id": card.pk}]},
            {"id": "end", "type": "exit"},
        ],
        [{"source": "api", "target": "reach"}, {"source": "reach", "target": "end"}],
    )  # fmt: skip
    eve = Profile.objects.create(workspace=workspace, user_id="eve", phone="+15005550006")
    with time_machine.travel(T0, tick=False):
        _enter(journey, eve)
        message_status_record(message_id=_message(eve, "sms").pk, status="sent")
        _work()
        assert _enrollment(journey, eve).state == "waiting"
        message_status_record(message_id=_message(eve, "sms").pk, status="delivered")
        _work()
    assert _enrollment(journey, eve).state == "exited"
    assert _messages(eve) == [("sms", 0, "delivered", "")]


def test_holdout_and_shadow_mode_send_no_channel_of_the_chain(workspace):
    email = _template(workspace, "email", {"default": {"subject": "Hi", "html": "<p>Hi</p>"}})
    card = _template(workspace, "in_app", {"default": {"title": "Hi", "body": "Hi"}})
    nodes = [
        {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
        {"id": "reach", "type": "fallback",
         "chain": [{"channel": "email", "template_id": email.pk},
                   {"channel": "in_app", "template_id": card.pk}]},
        {"id": "end", "type": "exit"},
    ]  # fmt: skip
    edges = [{"source": "api", "target": "reach"}, {"source": "reach", "target": "end"}]
    journey = _run_journey(workspace, "Shadow", nodes, edges, {"shadow_mode": True})
    fay = Profile.objects.create(workspace=workspace, user_id="fay", email="fay@example.com")
    _enter(journey, fay)
    assert _messages(fay) == [("email", 0, "suppressed", "shadow_mode")]
    step = _enrollment(journey, fay).steps.get(node_id="reach")
    assert (step.outcome, step.detail["reason"]) == ("skipped", "shadow_mode")
    assert _enrollment(journey, fay).state == "exited"


def test_repeated_callbacks_and_replayed_jobs_send_each_channel_once(workspace, chain_journey):
    gus = Profile.objects.create(
        workspace=workspace, user_id="gus", email="gus@example.com", phone="+15005550006"
    )
    with time_machine.travel(T0, tick=False):
        _enter(chain_journey, gus)
        email = _message(gus, "email")
        assert message_status_record(message_id=email.pk, status="sent") is True
        assert message_status_record(message_id=email.pk, status="sent") is False
        assert message_status_record(message_id=email.pk, status="queued") is False
        _work()
    enrollment = _enrollment(chain_journey, gus)
    with time_machine.travel(T0 + HOUR, tick=False):
        for _ in range(3):
            executor.advance_enqueue([enrollment.pk])
        executor.scheduler_duty()
        _work()
    assert _messages(gus) == [("email", 0, "sent", ""), ("sms", 1, "queued", "")]
    assert StepLog.objects.filter(enrollment=enrollment, node_id="reach").count() == 0


def test_a_lost_wake_up_is_caught_by_the_scheduler_recheck(workspace, chain_journey):
    hal = Profile.objects.create(workspace=workspace, user_id="hal", email="hal@example.com")
    with time_machine.travel(T0, tick=False):
        _enter(chain_journey, hal)
        # As if the status had been written without the hook (an old row, a bulk fix).
        Message.objects.filter(profile=hal).update(status="failed", failed_at=T0)
    with time_machine.travel(T0 + executor.FALLBACK_RECHECK, tick=False):
        executor.scheduler_duty()
        _work()
    assert _messages(hal) == [
        ("email", 0, "failed", ""),
        ("sms", 1, "suppressed", "no_phone_number"),
        ("in_app", 2, "queued", ""),
    ]


def test_statuses_only_move_forward(workspace, chain_journey):
    ida = Profile.objects.create(workspace=workspace, user_id="ida", email="ida@example.com")
    _enter(chain_journey, ida)
    email = _message(ida, "email")
    with pytest.raises(StatusChangeRefused, match="'read' is not a message status"):
        message_status_record(message_id=email.pk, status="read")
    message_status_record(message_id=email.pk, status="sent")
    with pytest.raises(StatusChangeRefused, match="is sent; it cannot become suppressed"):
        message_status_record(message_id=email.pk, status="suppressed")
    message_status_record(message_id=email.pk, status="bounced", reason="mailbox full")
    email.refresh_from_db()
    assert (email.status, email.reason) == ("bounced", "mailbox full")
    assert email.failed_at is not None and email.delivered_at is None
    with pytest.raises(StatusChangeRefused, match="is bounced; it cannot become delivered"):
        message_status_record(message_id=email.pk, status="delivered")


def test_an_engagement_condition_reads_the_message_of_an_action_node(workspace):
    email = _template(workspace, "email", {"default": {"subject": "Hi", "html": "<p>Hi</p>"}})
    journey = _run_journey(
        workspace, "Opened?",
        [
            {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "mail", "type": "action",
             "action": {"kind": "message", "channel": "email", "template_id": email.pk}},
            {"id": "day", "type": "wait", "wait": {"kind": "duration", "seconds": 86400}},
            {"id": "opened", "type": "condition",
             "condition": {"kind": "engagement", "node": "mail", "engagement": "opened"}},
            {"id": "yes", "type": "exit"},
            {"id": "no", "type": "exit"},
        ],
        [{"source": "api", "target": "mail"}, {"source": "mail", "target": "day"},
         {"source": "day", "target": "opened"}, {"source": "opened", "port": "yes", "target": "yes"},
         {"source": "opened", "port": "no", "target": "no"}],
    )  # fmt: skip
    reader = Profile.objects.create(workspace=workspace, user_id="r", email="r@example.com")
    ignorer = Profile.objects.create(workspace=workspace, user_id="i", email="i@example.com")
    with time_machine.travel(T0, tick=False):
        _enter(journey, reader, ignorer)
        for person in (reader, ignorer):
            message_status_record(message_id=_message(person, "email").pk, status="delivered")
        message_status_record(message_id=_message(reader, "email").pk, status="opened")
        _work()  # nothing waits on these messages: no step runs early
    assert {_enrollment(journey, p).state for p in (reader, ignorer)} == {"waiting"}
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        executor.scheduler_duty()
        _work()
    assert _enrollment(journey, reader).steps.get(node_id="opened").port == "yes"
    assert _enrollment(journey, ignorer).steps.get(node_id="opened").port == "no"
