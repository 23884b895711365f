"""The executor on a real RQ worker (the embedded Redis), with the clock under test
control: the abandoned-cart journey end to end, the goal exiting a profile mid-wait,
waits for events with their timeout, splits, replayed jobs doing nothing twice."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta

import django_rq
import pytest
import time_machine
from rq import SimpleWorker

from content import services as content_services
from delivery.models import Message
from engagement_site.workspaces.services import AuditContext
from journeys import executor, services
from journeys.models import Enrollment, StepLog
from journeys.nodes import SplitNode
from segments.models import Event, Profile
from tests.journeys.test_graph import ABANDONED_CART

pytestmark = pytest.mark.django_db(transaction=True)

EDITOR = AuditContext.system("test marketer")
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
_ids = itertools.count()


def _work() -> None:
    """Run every queued job on a real worker (the journeys queue and the default one)."""
    queues = [django_rq.get_queue("journeys"), django_rq.get_queue("default")]
    SimpleWorker(queues, connection=queues[0].connection).work(burst=True)


def _track(profile, name: str, properties: dict, at: datetime) -> None:
    """Store an event as ingestion does, then run the ingestion hook as its job would."""
    event = Event.objects.create(
        workspace_id=profile.workspace_id, profile=profile, name=name, properties=properties,
        timestamp=at, message_id=f"m-{next(_ids)}",
    )  # fmt: skip
    executor.journeys_for_ingested_batch(
        workspace_id=profile.workspace_id, profile_ids=[profile.pk], event_ids=[event.id]
    )


@pytest.fixture
def cart_journey(workspace):
    template = content_services.template_create(
        workspace=workspace, name="Cart reminder", channel="email",
        content={"default": {"subject": "Your cart", "html": "<p>Come back</p>"}}, context=EDITOR,
    )  # fmt: skip
    definition = copy.deepcopy(ABANDONED_CART)
    definition["nodes"][3]["action"]["template_id"] = template.pk
    journey = services.journey_create(
        workspace=workspace, name="Abandoned cart", context=EDITOR, definition=definition
    )
    services.journey_publish(journey=journey, context=EDITOR)
    journey.refresh_from_db()
    return journey


def _steps(enrollment) -> list[tuple[str, str, str]]:
    return list(
        enrollment.steps.order_by("created_at", "pk").values_list("node_id", "outcome", "port")
    )


def test_abandoned_cart_sends_the_email_after_an_hour_without_an_order(workspace, cart_journey):
    ada = Profile.objects.create(workspace=workspace, user_id="ada", email="ada@example.com")
    with time_machine.travel(T0, tick=False):
        _track(ada, "checkout_started", {"value": 80}, T0)
        _work()
    enrollment = Enrollment.objects.get(journey=cart_journey, profile=ada)
    assert (enrollment.state, enrollment.current_node, enrollment.next_run_at) == (
        "waiting",
        "hour",
        T0 + timedelta(hours=1),
    )
    assert _steps(enrollment) == [("cart", "entered", "next")]

    with time_machine.travel(T0 + timedelta(minutes=59), tick=False):
        executor.scheduler_duty()
        _work()
    enrollment.refresh_from_db()
    assert enrollment.state == "waiting"  # not yet
    assert Message.objects.count() == 0

    with time_machine.travel(T0 + timedelta(hours=1, seconds=5), tick=False):
        executor.scheduler_duty()
        _work()
    enrollment.refresh_from_db()
    assert (enrollment.state, enrollment.exit_reason, enrollment.current_node) == (
        "exited",
        "exit_node",
        "done",
    )
    assert _steps(enrollment) == [
        ("cart", "entered", "next"),
        ("hour", "continued", "next"),
        ("ordered", "branched", "no"),
        ("email", "sent", "next"),
        ("done", "exited", ""),
    ]
    message = Message.objects.get()
    assert (message.profile, message.channel, message.node_id, message.status) == (
        ada,
        "email",
        "email",
        "queued",
    )
    assert message.template_version_id == int(
        cart_journey.live_version.template_versions[str(message.template_version.template_id)]
    )
    assert message.idempotency_key == f"{enrollment.pk}:email:1"


def test_an_order_during_the_wait_exits_at_the_goal_and_sends_nothing(workspace, cart_journey):
    bo = Profile.objects.create(workspace=workspace, user_id="bo")
    with time_machine.travel(T0, tick=False):
        _track(bo, "checkout_started", {"value": 120}, T0)
        _work()
    with time_machine.travel(T0 + timedelta(minutes=20), tick=False):
        _track(bo, "order_completed", {"revenue": 120}, T0 + timedelta(minutes=20))
        _work()
    enrollment = Enrollment.objects.get(journey=cart_journey, profile=bo)
    assert (enrollment.state, enrollment.exit_reason, enrollment.next_run_at) == (
        "completed",
        "converted",
        None,
    )
    assert _steps(enrollment) == [("cart", "entered", "next"), ("$goal", "converted", "")]
    with time_machine.travel(T0 + timedelta(hours=2), tick=False):
        executor.scheduler_duty()
        _work()
    assert Message.objects.count() == 0
    assert _steps(enrollment) == [("cart", "entered", "next"), ("$goal", "converted", "")]


def test_a_small_cart_does_not_enter_and_nobody_enters_twice(workspace, cart_journey):
    cy = Profile.objects.create(workspace=workspace, user_id="cy")
    with time_machine.travel(T0, tick=False):
        _track(cy, "checkout_started", {"value": 30}, T0)
        _track(cy, "checkout_started", {"value": 60}, T0 + timedelta(seconds=1))
        _track(cy, "checkout_started", {"value": 70}, T0 + timedelta(seconds=2))
        _work()
    assert Enrollment.objects.filter(journey=cart_journey, profile=cy).count() == 1
    assert Enrollment.objects.get(journey=cart_journey, profile=cy).context["event"][
        "properties"
    ] == {"value": 60}


def test_a_job_enqueued_twice_does_nothing_the_second_time(workspace, cart_journey):
    di = Profile.objects.create(workspace=workspace, user_id="di")
    with time_machine.travel(T0, tick=False):
        _track(di, "checkout_started", {"value": 99}, T0)
        _work()
    enrollment = Enrollment.objects.get(profile=di)
    with time_machine.travel(T0 + timedelta(hours=2), tick=False):
        executor.advance_enqueue([enrollment.pk])
        executor.advance_enqueue([enrollment.pk])
        executor.scheduler_duty()
        _work()
    assert StepLog.objects.filter(enrollment=enrollment).count() == 5
    assert Message.objects.filter(profile=di).count() == 1
    # Replaying the ingestion hook for the same event enters nobody again.
    event = Event.objects.get(profile=di, name="checkout_started")
    executor.journeys_for_ingested_batch(
        workspace_id=workspace.pk, profile_ids=[di.pk], event_ids=[event.id]
    )
    assert Enrollment.objects.filter(profile=di).count() == 1


def test_a_wait_for_an_event_takes_the_event_branch_or_times_out(workspace):
    definition = {
        "nodes": [
            {"id": "signup", "type": "trigger", "trigger": {"kind": "event", "event": "signed_up"}},
            {"id": "opened", "type": "wait", "wait": {"kind": "event", "event": "app_opened", "filters": [{"property": "platform", "op": "eq", "value": "ios"}], "timeout_seconds": 86400}},
            {"id": "thanks", "type": "action", "action": {"kind": "update_attribute", "trait": "activated", "value": True}},
            {"id": "nudge", "type": "action", "action": {"kind": "update_attribute", "trait": "activated", "value": False}},
            {"id": "end", "type": "exit"},
        ],
        "edges": [
            {"source": "signup", "target": "opened"},
            {"source": "opened", "port": "on_event", "target": "thanks"},
            {"source": "opened", "port": "on_timeout", "target": "nudge"},
            {"source": "thanks", "target": "end"}, {"source": "nudge", "target": "end"},
        ],
    }  # fmt: skip
    journey = services.journey_create(
        workspace=workspace, name="Activation", context=EDITOR, definition=definition
    )
    services.journey_publish(journey=journey, context=EDITOR)
    quick, slow = (
        Profile.objects.create(workspace=workspace, user_id=name) for name in ("quick", "slow")
    )
    with time_machine.travel(T0, tick=False):
        _track(quick, "signed_up", {}, T0)
        _track(slow, "signed_up", {}, T0)
        _work()
    with time_machine.travel(T0 + timedelta(hours=3), tick=False):
        _track(
            quick, "app_opened", {"platform": "android"}, T0 + timedelta(hours=3)
        )  # filtered out
        _track(quick, "app_opened", {"platform": "ios"}, T0 + timedelta(hours=3))
        _work()
    quick.refresh_from_db()
    assert quick.traits == {"activated": True}
    assert Enrollment.objects.get(profile=slow).state == "waiting"
    with time_machine.travel(T0 + timedelta(days=1, minutes=1), tick=False):
        executor.scheduler_duty()
        _work()
    slow.refresh_from_db()
    assert slow.traits == {"activated": False}
    assert _steps(Enrollment.objects.get(profile=slow))[1] == ("opened", "continued", "on_timeout")
    assert _steps(Enrollment.objects.get(profile=quick))[1] == ("opened", "continued", "on_event")


def test_splits_are_deterministic_weighted_and_hold_some_out():
    node = SplitNode.model_validate(
        {
            "id": "ab",
            "type": "split",
            "variants": [{"key": "a", "weight": 75}, {"key": "b", "weight": 25}],
            "holdout_percent": 10,
        }
    )
    branches = [
        executor.split_branch(node, journey_id=1, profile_id=profile_id)
        for profile_id in range(20_000)
    ]
    assert branches == [
        executor.split_branch(node, journey_id=1, profile_id=profile_id)
        for profile_id in range(20_000)
    ]
    shares = {key: branches.count(key) / len(branches) for key in ("a", "b", "holdout")}
    assert abs(shares["holdout"] - 0.10) < 0.01
    assert abs(shares["a"] - 0.675) < 0.015
    assert abs(shares["b"] - 0.225) < 0.015


def test_paused_journeys_do_not_advance_and_resume_where_they_were(workspace, cart_journey):
    eve = Profile.objects.create(workspace=workspace, user_id="eve")
    with time_machine.travel(T0, tick=False):
        _track(eve, "checkout_started", {"value": 75}, T0)
        _work()
    services.journey_pause(journey=cart_journey, context=EDITOR)
    with time_machine.travel(T0 + timedelta(hours=2), tick=False):
        executor.scheduler_duty()
        _work()
    enrollment = Enrollment.objects.get(profile=eve)
    assert (enrollment.state, enrollment.current_node) == ("waiting", "hour")
    services.journey_resume(journey=cart_journey, context=EDITOR)
    with time_machine.travel(T0 + timedelta(hours=2, minutes=1), tick=False):
        executor.scheduler_duty()
        _work()
    enrollment.refresh_from_db()
    assert enrollment.state == "exited"
    assert Message.objects.filter(profile=eve).count() == 1


def test_segment_triggers_enter_the_profiles_that_enter_the_segment(workspace):
    from segments.membership import segment_membership_refresh
    from segments.models import Segment

    segment = Segment.objects.create(
        workspace=workspace,
        name="Pro",
        definition={"type": "attribute", "trait": "plan", "op": "eq", "value": "pro"},
    )
    definition = {
        "nodes": [
            {"id": "became_pro", "type": "trigger", "trigger": {"kind": "segment", "segment_id": segment.pk, "on": "entered"}},
            {"id": "tag", "type": "action", "action": {"kind": "update_attribute", "trait": "welcomed_pro", "value": True}},
            {"id": "end", "type": "exit"},
        ],
        "edges": [{"source": "became_pro", "target": "tag"}, {"source": "tag", "target": "end"}],
    }  # fmt: skip
    journey = services.journey_create(
        workspace=workspace, name="Pro welcome", context=EDITOR, definition=definition
    )
    services.journey_publish(journey=journey, context=EDITOR)
    pro = Profile.objects.create(workspace=workspace, user_id="pro", traits={"plan": "pro"})
    free = Profile.objects.create(workspace=workspace, user_id="free", traits={"plan": "free"})
    segment_membership_refresh(segment=segment)
    _work()
    pro.refresh_from_db()
    free.refresh_from_db()
    assert pro.traits == {"plan": "pro", "welcomed_pro": True}
    assert free.traits == {"plan": "free"}
    assert list(Enrollment.objects.values_list("profile__user_id", "state")) == [("pro", "exited")]


def test_api_triggered_journeys_take_entries_from_the_service(workspace):
    definition = {
        "nodes": [
            {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "tag", "type": "action", "action": {"kind": "update_attribute", "trait": "vip", "value": True}},
            {"id": "end", "type": "exit"},
        ],
        "edges": [{"source": "api", "target": "tag"}, {"source": "tag", "target": "end"}],
        "settings": {"reentry": {"mode": "never"}},
    }  # fmt: skip
    journey = services.journey_create(
        workspace=workspace, name="VIP", context=EDITOR, definition=definition
    )
    services.journey_publish(journey=journey, context=EDITOR)
    journey.refresh_from_db()
    ann = Profile.objects.create(workspace=workspace, user_id="ann")
    first = services.journey_enroll(
        journey=journey, profile_id=ann.pk, context=EDITOR, properties={"source": "crm"}
    )
    _work()
    again = services.journey_enroll(journey=journey, profile_id=ann.pk, context=EDITOR)
    assert first is not None and again is None  # re-entry: never
    ann.refresh_from_db()
    assert ann.traits == {"vip": True}
    assert Enrollment.objects.get(profile=ann).context["event"] == {
        "name": "api",
        "properties": {"source": "crm"},
    }


def test_a_failing_step_is_retried_then_fails_and_many_failures_pause_the_journey(
    workspace, monkeypatch
):
    from segments.models import Segment

    segment = Segment.objects.create(
        workspace=workspace, name="List", kind=Segment.Kind.STATIC, definition={}
    )
    definition = {
        "nodes": [
            {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "add", "type": "action", "action": {"kind": "segment", "segment_id": segment.pk}},
            {"id": "end", "type": "exit"},
        ],
        "edges": [{"source": "api", "target": "add"}, {"source": "add", "target": "end"}],
        "settings": {"reentry": {"mode": "always"}},
    }  # fmt: skip
    journey = services.journey_create(
        workspace=workspace, name="Listing", context=EDITOR, definition=definition
    )
    services.journey_publish(journey=journey, context=EDITOR)
    journey.refresh_from_db()
    segment.delete()  # the step now fails every time
    people = [
        Profile.objects.create(workspace=workspace, user_id=f"p{index}")
        for index in range(executor.BREAKER_FAILURES)
    ]
    with time_machine.travel(T0, tick=False):
        for person in people[:1]:
            services.journey_enroll(journey=journey, profile_id=person.pk, context=EDITOR)
        _work()
    enrollment = Enrollment.objects.get(profile=people[0])
    # The whole run rolled back: it starts again at the trigger, with nothing half-done.
    assert (enrollment.state, enrollment.attempts, enrollment.current_node) == ("active", 1, "api")
    assert enrollment.last_error.startswith("DoesNotExist")
    assert enrollment.next_run_at == T0 + timedelta(seconds=30)
    assert (
        StepLog.objects.filter(enrollment=enrollment, node_id="add").count() == 0
    )  # nothing half-done
    with time_machine.travel(T0 + timedelta(seconds=31), tick=False):
        for person in people[1:]:
            services.journey_enroll(journey=journey, profile_id=person.pk, context=EDITOR)
        executor.scheduler_duty()
        _work()
    journey.refresh_from_db()
    assert journey.status == "paused"
    assert journey.paused_reason.startswith(
        f"Paused after {executor.BREAKER_FAILURES} failing steps in 10 minutes."
    )


def test_content_knows_which_journeys_use_a_template(workspace, cart_journey):
    from content.models import Template

    template = Template.objects.get(workspace=workspace, name="Cart reminder")
    with pytest.raises(Exception, match="used by Abandoned cart"):
        content_services.template_delete(template=template, context=EDITOR)


def test_the_profile_page_shows_the_journey_trace_and_messages(workspace, cart_journey, owner):
    from django.urls import reverse

    from tests.conftest import logged_in

    ada = Profile.objects.create(workspace=workspace, user_id="ada", email="ada@example.com")
    with time_machine.travel(T0, tick=False):
        _track(ada, "checkout_started", {"value": 80}, T0)
        _work()
    with time_machine.travel(T0 + timedelta(hours=1, seconds=1), tick=False):
        executor.scheduler_duty()
        _work()
    html = (
        logged_in(owner)
        .get(
            reverse(
                "profile_detail", kwargs={"workspace_slug": workspace.slug, "profile_id": ada.pk}
            )
        )
        .content.decode()
    )
    journeys = html[
        html.index('data-testid="profile-journeys"') : html.index('data-testid="profile-messages"')
    ]
    assert "Abandoned cart" in journeys and "Exited: exit_node" in journeys
    assert [node for node in ("cart", "hour", "ordered", "email", "done") if f'<span class="mono">{node}</span>' in journeys] == [
        "cart", "hour", "ordered", "email", "done",
    ]  # fmt: skip
    assert "→ no" in journeys
    messages = html[html.index('data-testid="profile-messages"') :]
    assert "Cart reminder v1" in messages and "Queued" in messages


def test_a_goal_event_ingested_before_its_trigger_still_converts(workspace, cart_journey):
    """Batches of one person may be processed out of order: the order (a second later)
    reaches the hook before the cart does. The entry sees the goal already reached."""
    fay = Profile.objects.create(workspace=workspace, user_id="fay")
    with time_machine.travel(T0 + timedelta(seconds=5), tick=False):
        _track(fay, "order_completed", {"revenue": 90}, T0 + timedelta(seconds=1))
        _track(fay, "checkout_started", {"value": 90}, T0)
        _work()
    enrollment = Enrollment.objects.get(profile=fay)
    assert (enrollment.state, enrollment.exit_reason) == ("completed", "converted")
    assert _steps(enrollment) == [("cart", "entered", "next"), ("$goal", "converted", "")]
    with time_machine.travel(T0 + timedelta(hours=2), tick=False):
        executor.scheduler_duty()
        _work()
    assert Message.objects.filter(profile=fay).count() == 0


def test_a_scheduled_trigger_fires_once_per_occurrence_over_the_segment(workspace):
    from journeys.models import ScheduleRun
    from segments.models import Segment, SegmentMembership

    segment = Segment.objects.create(
        workspace=workspace, name="Weekly", kind=Segment.Kind.STATIC, definition={}
    )
    members = [
        Profile.objects.create(workspace=workspace, user_id=f"w{index}") for index in range(3)
    ]
    for person in members[:2]:
        SegmentMembership.objects.create(workspace=workspace, segment=segment, profile=person)
    definition = {
        "nodes": [
            {"id": "monday", "type": "trigger", "trigger": {"kind": "schedule", "segment_id": segment.pk, "cron": "0 9 * * 1", "time_zone": "Europe/Paris"}},
            {"id": "tag", "type": "action", "action": {"kind": "update_attribute", "trait": "digest", "value": True}},
            {"id": "end", "type": "exit"},
        ],
        "edges": [{"source": "monday", "target": "tag"}, {"source": "tag", "target": "end"}],
        "settings": {"reentry": {"mode": "always"}},
    }  # fmt: skip
    friday = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    with time_machine.travel(friday, tick=False):
        journey = services.journey_create(
            workspace=workspace, name="Digest", context=EDITOR, definition=definition
        )
        services.journey_publish(journey=journey, context=EDITOR)
        executor.scheduler_duty()
        _work()
    assert ScheduleRun.objects.count() == 0  # Monday 09:00 Paris has not come
    monday = datetime(2026, 11, 23, 8, 0, 30, tzinfo=UTC)  # 09:00:30 in Paris
    with time_machine.travel(monday, tick=False):
        executor.scheduler_duty()
        executor.scheduler_duty()  # twice: the fire is still once
        _work()
    run = ScheduleRun.objects.get()
    assert (run.fire_at, run.entered) == (datetime(2026, 11, 23, 8, 0, tzinfo=UTC), 2)
    assert Profile.objects.filter(workspace=workspace, traits__digest=True).count() == 2
    with time_machine.travel(monday + timedelta(days=7), tick=False):
        executor.scheduler_duty()
        _work()
    assert list(ScheduleRun.objects.order_by("fire_at").values_list("entered", flat=True)) == [2, 2]
    assert Enrollment.objects.filter(journey=journey).count() == 4


def _run_journey(workspace, name: str, nodes: list, edges: list, settings: dict | None = None):
    definition = {"nodes": nodes, "edges": edges, "settings": settings or {}}
    journey = services.journey_create(
        workspace=workspace, name=name, context=EDITOR, definition=definition
    )
    services.journey_publish(journey=journey, context=EDITOR)
    journey.refresh_from_db()
    return journey


def test_waits_until_a_date_and_until_a_time_of_day_in_the_profiles_zone(workspace):
    journey = _run_journey(
        workspace, "Morning",
        [
            {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "nine", "type": "wait", "wait": {"kind": "until_time", "at": "09:00"}},
            {"id": "launch", "type": "wait", "wait": {"kind": "until_date", "at": "2026-11-25T12:00:00Z"}},
            {"id": "end", "type": "exit"},
        ],
        [{"source": "api", "target": "nine"}, {"source": "nine", "target": "launch"}, {"source": "launch", "target": "end"}],
    )  # fmt: skip
    tokyo = Profile.objects.create(workspace=workspace, user_id="tokyo", time_zone="Asia/Tokyo")
    nowhere = Profile.objects.create(workspace=workspace, user_id="nowhere")
    with time_machine.travel(T0, tick=False):  # 10:00 UTC = 19:00 in Tokyo
        for person in (tokyo, nowhere):
            services.journey_enroll(journey=journey, profile_id=person.pk, context=EDITOR)
        _work()
    assert Enrollment.objects.get(profile=tokyo).next_run_at == datetime(
        2026, 11, 21, 0, 0, tzinfo=UTC
    )  # 09:00 JST
    assert Enrollment.objects.get(profile=nowhere).next_run_at == datetime(
        2026, 11, 21, 9, 0, tzinfo=UTC
    )  # UTC fallback
    with time_machine.travel(datetime(2026, 11, 21, 9, 0, 1, tzinfo=UTC), tick=False):
        executor.scheduler_duty()
        _work()
    assert {e.current_node for e in Enrollment.objects.all()} == {"launch"}
    assert {e.next_run_at for e in Enrollment.objects.all()} == {
        datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    }
    with time_machine.travel(datetime(2026, 11, 25, 12, 0, 1, tzinfo=UTC), tick=False):
        executor.scheduler_duty()
        _work()
    assert set(Enrollment.objects.values_list("state", flat=True)) == {"exited"}


def test_event_conditions_goal_nodes_webhooks_static_segments_and_variants(workspace):
    from segments.models import Segment, SegmentMembership

    templates = {
        name: content_services.template_create(workspace=workspace, name=name, channel=channel, content=content, context=EDITOR)
        for name, channel, content in (
            ("A", "push", {"default": {"title": "A"}}),
            ("B", "push", {"default": {"title": "B"}}),
            ("Hook", "webhook", {"default": {"url": "https://example.com/hook", "body": "{}"}}),
        )
    }  # fmt: skip
    vips = Segment.objects.create(
        workspace=workspace, name="VIPs", kind=Segment.Kind.STATIC, definition={}
    )
    journey = _run_journey(
        workspace, "Mixed",
        [
            {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "big", "type": "condition", "condition": {"kind": "event", "filters": [{"property": "total", "op": "gte", "value": 100}]}},
            {"id": "ab", "type": "split", "variants": [{"key": "a", "weight": 1}, {"key": "b", "weight": 1}]},
            {"id": "push", "type": "action", "action": {"kind": "message", "channel": "push", "template_id": templates["A"].pk, "variant_templates": {"b": templates["B"].pk}}},
            {"id": "vip", "type": "action", "action": {"kind": "segment", "segment_id": vips.pk, "op": "add"}},
            {"id": "hook", "type": "action", "action": {"kind": "webhook", "template_id": templates["Hook"].pk}},
            {"id": "bought", "type": "goal", "event": "order_completed", "window_seconds": 3600},
        ],
        [
            {"source": "api", "target": "big"}, {"source": "big", "port": "yes", "target": "vip"},
            {"source": "big", "port": "no", "target": "ab"}, {"source": "ab", "port": "a", "target": "push"},
            {"source": "ab", "port": "b", "target": "push"}, {"source": "push", "target": "bought"},
            {"source": "vip", "target": "hook"}, {"source": "hook", "target": "bought"},
        ],
    )  # fmt: skip
    rich = Profile.objects.create(workspace=workspace, user_id="rich")
    others = [
        # 40 people: that a 50/50 split gives them all one variant is 2 in 2^40, whatever
        # ids the database hands out.
        Profile.objects.create(workspace=workspace, user_id=f"o{index}")
        for index in range(40)
    ]
    with time_machine.travel(T0, tick=False):
        services.journey_enroll(
            journey=journey, profile_id=rich.pk, context=EDITOR, properties={"total": 150}
        )
        for person in others:
            services.journey_enroll(
                journey=journey, profile_id=person.pk, context=EDITOR, properties={"total": 20}
            )
        _track(rich, "order_completed", {}, T0 + timedelta(seconds=1))
        _work()
    rich_enrollment = Enrollment.objects.get(profile=rich)
    assert _steps(rich_enrollment) == [
        ("api", "entered", "next"), ("big", "branched", "yes"), ("vip", "continued", "next"),
        ("hook", "sent", "next"), ("bought", "converted", ""),
    ]  # fmt: skip
    assert (
        SegmentMembership.objects.filter(segment=vips, exited_at__isnull=True)
        .values_list("profile_id", flat=True)
        .get()
        == rich.pk
    )
    assert Message.objects.get(profile=rich).channel == "webhook"
    pushes = {
        m.profile_id: (m.variant, m.template_version.template.name)
        for m in Message.objects.filter(channel="push")
    }
    assert len(pushes) == 40
    assert all(template == variant.upper() for variant, template in pushes.values())
    assert {variant for variant, _ in pushes.values()} == {"a", "b"}
    assert set(Enrollment.objects.exclude(profile=rich).values_list("exit_reason", flat=True)) == {
        "goal_not_reached"
    }


def test_holdout_and_shadow_mode_record_why_nothing_was_sent(workspace):
    template = content_services.template_create(
        workspace=workspace,
        name="T",
        channel="sms",
        content={"default": {"body": "hi"}},
        context=EDITOR,
    )
    nodes = [
        {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
        {
            "id": "ab",
            "type": "split",
            "variants": [{"key": "a", "weight": 1}],
            "holdout_percent": 50,
        },
        {
            "id": "sms",
            "type": "action",
            "action": {"kind": "message", "channel": "sms", "template_id": template.pk},
        },
        {"id": "end", "type": "exit"},
    ]
    edges = [
        {"source": "api", "target": "ab"}, {"source": "ab", "port": "a", "target": "sms"},
        {"source": "ab", "port": "holdout", "target": "sms"}, {"source": "sms", "target": "end"},
    ]  # fmt: skip
    held = _run_journey(workspace, "Held", nodes, edges)
    shadow = _run_journey(workspace, "Shadow", nodes, edges, {"shadow_mode": True})
    people = [
        Profile.objects.create(
            workspace=workspace, user_id=f"h{index}", phone=f"+4915112345{index:03d}"
        )
        for index in range(40)  # a 50 % holdout leaves one side empty 2 times in 2^40
    ]
    for journey in (held, shadow):
        for person in people:
            services.journey_enroll(journey=journey, profile_id=person.pk, context=EDITOR)
    _work()
    held_messages = Message.objects.filter(journey=held)
    reasons = set(held_messages.values_list("status", "reason"))
    assert reasons == {("queued", ""), ("suppressed", "holdout")}
    assert (
        held_messages.filter(reason="holdout").count()
        == StepLog.objects.filter(enrollment__journey=held, node_id="ab", port="holdout").count()
    )
    assert set(Message.objects.filter(journey=shadow).values_list("status", "reason", "is_shadow")) <= {
        ("suppressed", "shadow_mode", True), ("suppressed", "holdout", False),
    }  # fmt: skip
    assert (
        StepLog.objects.filter(enrollment__journey=shadow, node_id="sms", outcome="skipped").count()
        == 40
    )


def test_a_wait_for_a_segment_change_wakes_when_the_profile_enters(workspace):
    from segments.membership import segment_membership_refresh
    from segments.models import Segment

    segment = Segment.objects.create(
        workspace=workspace,
        name="Paying",
        definition={"type": "attribute", "trait": "plan", "op": "eq", "value": "pro"},
    )
    journey = _run_journey(
        workspace, "Upgrade",
        [
            {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "pays", "type": "wait", "wait": {"kind": "segment", "segment_id": segment.pk, "on": "entered", "timeout_seconds": 86400}},
            {"id": "thanks", "type": "action", "action": {"kind": "update_attribute", "trait": "thanked", "value": True}},
            {"id": "end", "type": "exit"},
        ],
        [
            {"source": "api", "target": "pays"}, {"source": "pays", "port": "on_event", "target": "thanks"},
            {"source": "pays", "port": "on_timeout", "target": "end"}, {"source": "thanks", "target": "end"},
        ],
    )  # fmt: skip
    gus = Profile.objects.create(workspace=workspace, user_id="gus", traits={"plan": "free"})
    services.journey_enroll(journey=journey, profile_id=gus.pk, context=EDITOR)
    _work()
    assert Enrollment.objects.get(profile=gus).state == "waiting"
    Profile.objects.filter(pk=gus.pk).update(traits={"plan": "pro"})
    segment_membership_refresh(segment=segment)
    _work()
    gus.refresh_from_db()
    assert gus.traits == {"plan": "pro", "thanked": True}
    assert _steps(Enrollment.objects.get(profile=gus))[1] == ("pays", "continued", "on_event")


def test_one_event_enters_a_journey_once_even_when_re_entry_is_always_allowed(workspace):
    journey = _run_journey(
        workspace, "Every click",
        [
            {"id": "click", "type": "trigger", "trigger": {"kind": "event", "event": "clicked"}},
            {"id": "end", "type": "exit"},
        ],
        [{"source": "click", "target": "end"}],
        {"reentry": {"mode": "always"}},
    )  # fmt: skip
    hal = Profile.objects.create(workspace=workspace, user_id="hal")
    with time_machine.travel(T0, tick=False):
        _track(hal, "clicked", {}, T0)
        _work()
        event = Event.objects.get(profile=hal)
        for _ in range(2):  # the ingestion job replayed after the first entry finished
            executor.journeys_for_ingested_batch(
                workspace_id=workspace.pk, profile_ids=[hal.pk], event_ids=[event.id]
            )
            _work()
        _track(hal, "clicked", {}, T0 + timedelta(seconds=1))  # a new click enters again
        _work()
    assert list(Enrollment.objects.filter(journey=journey).values_list("trigger_event_id", flat=True).order_by("pk")) == [
        event.id, Event.objects.filter(profile=hal).order_by("timestamp").last().id,
    ]  # fmt: skip


def test_a_group_whose_step_logs_cannot_be_written_fails_only_the_enrollment_at_fault(
    workspace,
):
    """A group's step logs are one insert at its end. If it fails (here: a visit of one
    enrollment is logged already), the group runs again one by one: the others move on,
    and the one at fault rolls back all it did and counts a failed attempt."""
    journey = _run_journey(
        workspace, "Tagging",
        [
            {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "tag", "type": "action", "action": {"kind": "update_attribute", "trait": "vip", "value": True}},
            {"id": "end", "type": "exit"},
        ],
        [{"source": "api", "target": "tag"}, {"source": "tag", "target": "end"}],
    )  # fmt: skip
    people = [Profile.objects.create(workspace=workspace, user_id=f"p{i}") for i in range(3)]
    with time_machine.travel(T0, tick=False):
        enrollments = [
            services.journey_enroll(journey=journey, profile_id=person.pk, context=EDITOR)
            for person in people
        ]
        at_fault = enrollments[1]
        StepLog.objects.create(
            enrollment=at_fault, node_id="tag", visit=1, outcome="continued", created_at=T0
        )
        assert executor.advance_batch([e.pk for e in enrollments], now=T0) == 3
    django_rq.get_queue("journeys").empty()

    for enrollment, person in zip(enrollments, people, strict=True):
        enrollment.refresh_from_db()
        person.refresh_from_db()
        steps = list(
            StepLog.objects.filter(enrollment=enrollment).order_by("pk").values_list("node_id", flat=True)
        )  # fmt: skip
        if enrollment.pk == at_fault.pk:
            assert (enrollment.state, enrollment.current_node, enrollment.attempts) == (
                "active",
                "api",
                1,
            )
            assert enrollment.last_error.startswith("IntegrityError")
            assert enrollment.next_run_at == T0 + timedelta(seconds=30)
            assert steps == ["tag"]  # only the row that was there
            assert "vip" not in person.traits  # its trait change rolled back
        else:
            assert (enrollment.state, enrollment.attempts, enrollment.last_error) == (
                "exited",
                0,
                "",
            )
            assert steps == ["api", "tag", "end"]
            assert person.traits["vip"] is True
