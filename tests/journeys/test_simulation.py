"""Simulation: the draft over real profiles on simulated time, nothing sent or stored;
per-node counts, branch shares and examples; rule conditions read each profile's data
at the simulated time."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from content import services as content_services
from delivery.models import Message
from engagement_site.workspaces.services import AuditContext
from journeys import executor, services
from journeys.models import Enrollment, StepLog
from journeys.nodes import SplitNode, Variant
from segments.models import Event, Profile, Segment, SegmentMembership
from tests.journeys.test_graph import ABANDONED_CART

pytestmark = pytest.mark.django_db

EDITOR = AuditContext.system("test")
START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def journey(workspace):
    template = content_services.template_create(
        workspace=workspace,
        name="Cart",
        channel="email",
        content={"default": {"subject": "s", "html": "h"}},
        context=EDITOR,
    )
    definition = copy.deepcopy(ABANDONED_CART)
    definition["nodes"][3]["action"]["template_id"] = template.pk
    return services.journey_create(
        workspace=workspace, name="Cart", context=EDITOR, definition=definition
    )


def _people(workspace, count: int, *, buyers: int) -> list[Profile]:
    people = [
        Profile.objects.create(workspace=workspace, user_id=f"u{index}") for index in range(count)
    ]
    for index, person in enumerate(people[:buyers]):
        # An order in the hour after the simulated start: the condition after the
        # one-hour wait sees it (orders are in the profile's real data).
        Event.objects.create(
            workspace=workspace, profile=person, name="order_completed", message_id=f"o{index}",
            timestamp=START + timedelta(minutes=30), properties={},
        )  # fmt: skip
    return people


def test_simulation_counts_every_node_and_branch_and_changes_nothing(workspace, journey):
    people = _people(workspace, 10, buyers=3)
    result = services.journey_simulate(
        journey=journey, profile_ids=[p.pk for p in people], start=START
    )
    assert result.profiles == 10
    assert {node: data["reached"] for node, data in result.nodes.items()} == {
        "cart": 10, "hour": 10, "ordered": 10, "email": 7, "done": 10,
    }  # fmt: skip
    branches = {
        (edge["source"], edge["port"]): (edge["count"], edge["share"]) for edge in result.edges
    }
    assert branches[("ordered", "yes")] == (3, 0.3)
    assert branches[("ordered", "no")] == (7, 0.7)
    assert result.nodes["email"]["examples"] == [p.pk for p in people[3:8]]
    assert result.nodes["email"]["channels"] == {"no_email_address": 7}
    assert "channels" not in result.nodes["hour"]
    assert result.outcomes == {"exited": 10}
    assert "No new events arrive" in " ".join(result.assumptions)
    assert (
        not Enrollment.objects.exists()
        and not StepLog.objects.exists()
        and not Message.objects.exists()
    )


def test_simulation_over_a_segment_and_a_sample_and_refusals(workspace, journey):
    people = _people(workspace, 6, buyers=0)
    segment = Segment.objects.create(
        workspace=workspace, name="Some", kind=Segment.Kind.STATIC, definition={}
    )
    for person in people[:4]:
        SegmentMembership.objects.create(workspace=workspace, segment=segment, profile=person)
    assert (
        services.journey_simulate(journey=journey, segment_id=segment.pk, start=START).profiles == 4
    )
    assert services.journey_simulate(journey=journey, sample=5, start=START).profiles == 5
    with pytest.raises(Exception, match="Give one of segment_id, profile_ids, sample or generated"):
        services.journey_simulate(journey=journey, sample=5, segment_id=segment.pk)
    broken = copy.deepcopy(journey.draft.definition)
    broken["edges"] = broken["edges"][:-1]
    with pytest.raises(Exception, match="node 'email': output 'next' goes nowhere"):
        services.journey_simulate(journey=journey, definition=broken, sample=5)


def test_simulate_api(workspace, journey):
    from django.test import Client

    from engagement_site.workspaces.roles import Role
    from engagement_site.workspaces.services import api_key_create
    from tests.conftest import SETUP

    people = _people(workspace, 4, buyers=1)
    _, key = api_key_create(
        workspace=workspace, kind="secret", role=Role.ANALYST, name="ci", context=SETUP
    )
    client = Client(headers={"Authorization": f"Bearer {key}"})
    response = client.post(
        f"/api/v1/journeys/{journey.pk}/simulate",
        {"profile_ids": [p.pk for p in people], "start_at": START.isoformat()},
        content_type="application/json",
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["profiles"], body["nodes"]["email"]["reached"], body["outcomes"]) == (
        4,
        3,
        {"exited": 4},
    )


def test_simulation_counts_the_channel_each_profile_would_get(workspace):
    email, sms = (
        content_services.template_create(
            workspace=workspace, name=channel, channel=channel, content=content, context=EDITOR
        )
        for channel, content in (
            ("email", {"default": {"subject": "s", "html": "h"}}),
            ("sms", {"default": {"body": "b"}}),
        )
    )
    journey = services.journey_create(
        workspace=workspace, name="Reach", context=EDITOR,
        definition={
            "nodes": [
                {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
                {"id": "ab", "type": "split", "variants": [{"key": "a", "weight": 1}],
                 "holdout_percent": 50},
                {"id": "reach", "type": "fallback",
                 "chain": [{"channel": "email", "template_id": email.pk},
                           {"channel": "sms", "template_id": sms.pk}]},
                {"id": "end", "type": "exit"},
            ],
            "edges": [
                {"source": "api", "target": "ab"}, {"source": "ab", "port": "a", "target": "reach"},
                {"source": "ab", "port": "holdout", "target": "reach"},
                {"source": "reach", "target": "end"},
            ],
        },
    )  # fmt: skip
    addresses = [("a@example.com", ""), ("", "+15005550006"), ("", "")] * 20
    people = [
        Profile.objects.create(workspace=workspace, user_id=f"p{i}", email=mail, phone=phone)
        for i, (mail, phone) in enumerate(addresses)
    ]
    result = services.journey_simulate(
        journey=journey, profile_ids=[p.pk for p in people], start=START
    )
    split = SplitNode(
        id="ab", type="split", variants=[Variant(key="a", weight=1)], holdout_percent=50
    )
    held = {
        p.pk
        for p in people
        if executor.split_branch(split, journey_id=journey.pk, profile_id=p.pk) == "holdout"
    }
    expected: dict[str, int] = {}
    for person in people:
        if person.pk in held:
            key = "holdout"
        else:
            key = "email" if person.email else "sms" if person.phone else "no_channel_reached"
        expected[key] = expected.get(key, 0) + 1
    assert 0 < len(held) < 60
    assert result.nodes["reach"]["channels"] == expected
    assert not Message.objects.exists()


WHAT_IF = {
    "count": 200,
    "seed": 7,
    "email_share": 0.5,
    "traits": {"plan": ["free", "pro"]},
    "events": [
        {"name": "checkout_started", "properties": {"value": 80}},
        {"name": "order_completed", "share": 0.4, "after_seconds": 1800},
    ],
}

# What seed 7 makes of WHAT_IF (random.Random draws, the same on every machine).
ORDERED_OF_SEED_7 = 87
EMAIL_CHANNELS_OF_SEED_7 = {"email": 49, "no_email_address": 64}


def test_simulation_over_generated_profiles_keeps_nothing(workspace, journey):
    """A what-if over made-up people: 40 % ordered half an hour after the cart, all of
    them have a cart over 50; rule conditions read the generated events."""
    before = (Profile.objects.count(), Event.objects.count())
    result = services.journey_simulate(
        journey=journey,
        start=START,
        generated=WHAT_IF,
    )
    assert result.profiles == 200
    nodes = result.nodes
    ordered = next(e for e in result.edges if (e["source"], e["port"]) == ("ordered", "yes"))
    assert nodes["email"]["reached"] == 200 - ordered["count"]
    assert ordered["count"] == ORDERED_OF_SEED_7  # about 40 % of 200, the same every run
    assert sum(nodes["email"]["channels"].values()) == nodes["email"]["reached"]
    assert nodes["email"]["channels"] == EMAIL_CHANNELS_OF_SEED_7
    assert all(data["examples"] == [] for data in nodes.values())
    assert "generated for this run" in result.assumptions[-1]
    assert (Profile.objects.count(), Event.objects.count()) == before
    again = services.journey_simulate(
        journey=journey,
        start=START,
        generated=WHAT_IF,
    )
    assert again.nodes == result.nodes  # the same seed makes the same people


def test_generated_audiences_that_are_not_one_are_refused_by_name(workspace, journey):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        services.journey_simulate(
            journey=journey,
            generated={"count": 0, "time_zones": ["Mars/Olympus"], "colour": "red"},
        )
    problems = refused.value.message_dict["generated"]
    assert problems == [
        "count: Input should be greater than or equal to 1",
        "time_zones: Value error, 'Mars/Olympus' is not an IANA time zone",
        "colour: Extra inputs are not permitted",
    ]
    with pytest.raises(ValidationError, match="Give one of segment_id, profile_ids, sample"):
        services.journey_simulate(journey=journey, sample=3, generated={"count": 3})
    assert not Profile.objects.exists()
