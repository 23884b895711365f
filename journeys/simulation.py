"""Simulating a journey: run a definition (usually the draft) over real profiles on
simulated time, sending nothing and changing nothing, and count how many reach each
node and take each branch, with example profiles per node.

What it assumes, and says in its answer:
- every simulated profile enters at the start time (an event trigger's filters are
  not applied; the profile's latest event of that name, if any, is its trigger event);
- no new events arrive while it runs: waits for an event or a segment change take
  their timeout branch, and conversion goals are not reached;
- rule conditions are evaluated on the profile's real data at the simulated time;
- splits assign exactly as the live journey would (the same hash);
- actions have no effect (attributes, segments) and send nothing; message nodes
  count the channel each profile would get: the holdout and people without an
  address for the channel get none, and a fallback chain's first channel the
  profile has an address for is taken as reached.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from journeys.executor import next_local_time, split_branch
from journeys.graph import next_node
from journeys.matching import filters_match
from journeys.nodes import (
    ActionNode,
    ConditionNode,
    Definition,
    EngagementCondition,
    EventCondition,
    EventTrigger,
    ExitNode,
    FallbackNode,
    GoalNode,
    RuleCondition,
    SplitNode,
    TriggerNode,
    WaitDuration,
    WaitForEvent,
    WaitForSegment,
    WaitNode,
    WaitUntilDate,
    WaitUntilTime,
)

MAX_PROFILES = 10_000
MAX_VISITS_PER_PROFILE = 100
EXAMPLES_PER_NODE = 5
ASSUMPTIONS = [
    "Every simulated profile enters at the start time.",
    "No new events arrive: waits for an event or a segment change time out, goals are not reached.",
    "Rule conditions read each profile's data at the simulated time.",
    "Nothing is sent or changed.",
    "A fallback chain reaches each profile on the first channel it has an address for.",
]
GENERATED_ASSUMPTION = (
    "The profiles and their events were generated for this run and are not kept (no examples)."
)


# --------------------------------------------------------------------------- generated audiences


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeneratedEvent(_Strict):
    """Each generated profile did this event with probability `share`, `after_seconds`
    after the simulated start (negative: before it; a trigger event is one at or
    before the start)."""

    name: str = Field(min_length=1, max_length=200)
    share: float = Field(default=1.0, ge=0, le=1)
    after_seconds: int = Field(default=0, ge=-366 * 24 * 3600, le=366 * 24 * 3600)
    properties: dict[str, Any] = {}


class GeneratedAudience(_Strict):
    """Made-up profiles for a what-if run (a new workspace has no real ones yet). They
    exist only inside the simulation's transaction, which is rolled back."""

    count: int = Field(ge=1, le=MAX_PROFILES)
    seed: int = 0
    traits: dict[str, list[Any]] = Field(
        default={}, max_length=20, description="trait: values picked from at random"
    )
    email_share: float = Field(default=1.0, ge=0, le=1)
    phone_share: float = Field(default=0.0, ge=0, le=1)
    time_zones: list[str] = Field(default=[], max_length=50)
    events: list[GeneratedEvent] = Field(default=[], max_length=20)

    @field_validator("time_zones")
    @classmethod
    def _zones(cls, names: list[str]) -> list[str]:
        for name in names:
            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{name!r} is not an IANA time zone") from None
        return names


def generated_profiles_create(
    *, workspace, audience: GeneratedAudience, start: datetime
) -> list[int]:
    """Insert the audience's profiles and events (the caller rolls them back) and return
    the profile ids. Deterministic for a seed."""
    from segments.models import Event, Profile

    chooser = random.Random(audience.seed)
    profiles = []
    for index in range(audience.count):
        traits = {
            name: chooser.choice(values) for name, values in audience.traits.items() if values
        }
        profiles.append(
            Profile(
                workspace=workspace,
                anonymous_ids=[f"simulated-{index}"],
                traits=traits,
                email=f"simulated-{index}@example.invalid"
                if chooser.random() < audience.email_share
                else "",
                phone=f"+1555{index:07d}" if chooser.random() < audience.phone_share else "",
                time_zone=chooser.choice(audience.time_zones) if audience.time_zones else "",
                first_seen=start,
                last_seen=start,
                created_at=start,
            )
        )
    Profile.objects.bulk_create(profiles, batch_size=1000)
    events = [
        Event(
            workspace=workspace,
            profile=profile,
            name=spec.name,
            properties=spec.properties,
            message_id=f"simulated-{profile.pk}-{number}",
            timestamp=start + timedelta(seconds=spec.after_seconds),
            received_at=start,
        )
        for profile in profiles
        for number, spec in enumerate(audience.events)
        if chooser.random() < spec.share
    ]
    Event.objects.bulk_create(events, batch_size=1000)
    return [profile.pk for profile in profiles]


@dataclass
class _Walker:
    profile_id: int
    at: datetime
    time_zone: str
    event: dict[str, Any]
    profile: Any = None  # email / phone, for the channels it can be reached on
    is_holdout: bool = False
    visits: dict[str, int] = field(default_factory=dict)
    steps: int = 0


@dataclass
class SimulationResult:
    profiles: int
    started_at: datetime
    nodes: dict[str, dict[str, Any]]
    edges: list[dict[str, Any]]
    outcomes: dict[str, int]
    assumptions: list[str]


def simulate(
    *,
    workspace,
    definition: Definition,
    journey_id: int,
    profile_ids: list[int],
    start: datetime,
    generated: bool = False,
) -> SimulationResult:
    """Walk the profiles through the definition. With `generated`, the profiles are
    made up and about to be rolled back: no examples are given (their ids would name
    nothing)."""
    from segments.models import Event, Profile

    profile_ids = list(dict.fromkeys(profile_ids))[:MAX_PROFILES]
    profiles = {
        row["pk"]: row
        for row in Profile.objects.filter(workspace=workspace, pk__in=profile_ids)
        .order_by("pk")
        .values("pk", "time_zone", "email", "phone")
    }
    trigger = next(node for node in definition.nodes if isinstance(node, TriggerNode))
    events: dict[int, dict] = {}
    if isinstance(trigger.trigger, EventTrigger):
        latest = (
            Event.objects.filter(
                workspace=workspace,
                profile_id__in=list(profiles),
                name=trigger.trigger.event,
                timestamp__lte=start,
            )
            .order_by("profile_id", "-timestamp")
            .distinct("profile_id")
        )
        for event in latest:
            events[event.profile_id] = {"name": event.name, "properties": event.properties or {}}
    nodes = {node.id: node for node in definition.nodes}
    reached: dict[str, int] = defaultdict(int)
    examples: dict[str, list[int]] = defaultdict(list)
    edge_counts: dict[tuple[str, str], int] = defaultdict(int)
    outcomes: dict[str, int] = defaultdict(int)
    channels: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    # Walkers wait at a node in batches so rule conditions are evaluated per batch.
    at_node: dict[str, list[_Walker]] = defaultdict(list)
    for profile_id, row in profiles.items():
        at_node[trigger.id].append(
            _Walker(
                profile_id,
                start,
                row["time_zone"] or "UTC",
                events.get(profile_id, {"name": "", "properties": {}}),
                profile=_Address(row["email"], row["phone"]),
            )
        )
    while at_node:
        node_id = next(iter(at_node))
        walkers = at_node.pop(node_id)
        node = nodes[node_id]
        for walker in walkers:
            reached[node_id] += 1
            walker.visits[node_id] = walker.visits.get(node_id, 0) + 1
            walker.steps += 1
            if not generated and len(examples[node_id]) < EXAMPLES_PER_NODE:
                examples[node_id].append(walker.profile_id)
        if isinstance(node, FallbackNode) or (
            isinstance(node, ActionNode) and node.action.kind == "message"
        ):
            for walker in walkers:
                channels[node_id][_channel_reached(node, walker)] += 1
        ports = _ports(node, walkers, workspace=workspace, journey_id=journey_id)
        for walker, port in zip(walkers, ports, strict=True):
            if port == "holdout":
                walker.is_holdout = True
            if port is None:
                outcomes["converted" if isinstance(node, GoalNode) else "exited"] += 1
                continue
            if walker.steps >= MAX_VISITS_PER_PROFILE:
                outcomes["stopped_looping"] += 1
                continue
            target = next_node(definition, node_id, port)
            edge_counts[(node_id, port)] += 1
            if target is None:
                outcomes["exited"] += 1
                continue
            at_node[target].append(walker)
    edges = []
    for edge in definition.edges:
        count = edge_counts.get((edge.source, edge.port), 0)
        total = reached.get(edge.source, 0)
        edges.append(
            {
                "source": edge.source,
                "port": edge.port,
                "target": edge.target,
                "count": count,
                "share": round(count / total, 4) if total else 0.0,
            }
        )
    return SimulationResult(
        profiles=len(profiles),
        started_at=start,
        nodes={
            node.id: {
                "reached": reached.get(node.id, 0),
                "examples": examples.get(node.id, []),
                **({"channels": dict(channels[node.id])} if node.id in channels else {}),
            }
            for node in definition.nodes
        },
        edges=edges,
        outcomes=dict(outcomes),
        assumptions=[*ASSUMPTIONS, GENERATED_ASSUMPTION] if generated else ASSUMPTIONS,
    )


@dataclass(frozen=True)
class _Address:
    email: str
    phone: str


def _channel_reached(node, walker: _Walker) -> str:
    """The channel a message node would send this walker on, or why none."""
    from delivery.policies import unreachable_reason

    if walker.is_holdout:
        return "holdout"
    steps = node.chain if isinstance(node, FallbackNode) else [node.action]
    reason = ""
    for step in steps:
        reason = unreachable_reason(profile=walker.profile, channel=step.channel)
        if not reason:
            return step.channel
    return reason if len(steps) == 1 else "no_channel_reached"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _ports(node, walkers: list[_Walker], *, workspace, journey_id: int) -> list[str | None]:
    """The output each walker takes (None: it leaves), advancing their clocks."""
    if isinstance(node, TriggerNode | ActionNode | FallbackNode):
        return ["next"] * len(walkers)
    if isinstance(node, GoalNode | ExitNode):
        return [None] * len(walkers)
    if isinstance(node, SplitNode):
        return [
            split_branch(node, journey_id=journey_id, profile_id=walker.profile_id)
            for walker in walkers
        ]
    if isinstance(node, WaitNode):
        wait = node.wait
        for walker in walkers:
            if isinstance(wait, WaitDuration):
                walker.at += timedelta(seconds=wait.seconds)
            elif isinstance(wait, WaitUntilDate):
                until = wait.at if wait.at.tzinfo else wait.at.replace(tzinfo=ZoneInfo("UTC"))
                walker.at = max(walker.at, until)
            elif isinstance(wait, WaitUntilTime):
                walker.at = next_local_time(
                    wait, _zone(walker.time_zone or wait.fallback_time_zone), walker.at
                )
            elif isinstance(wait, WaitForEvent | WaitForSegment):
                walker.at += timedelta(seconds=wait.timeout_seconds or 0)
        if isinstance(wait, WaitForEvent | WaitForSegment):
            return ["on_timeout" if wait.timeout_seconds else "on_event"] * len(walkers)
        return ["next"] * len(walkers)
    if isinstance(node, ConditionNode):
        condition = node.condition
        if isinstance(condition, EventCondition):
            return [
                "yes"
                if filters_match(
                    walker.event.get("properties", {}), condition.filters, now=walker.at
                )
                else "no"
                for walker in walkers
            ]
        if isinstance(condition, RuleCondition):
            from segments.evaluation import segment_evaluate_for_profiles

            matched: set[int] = set()
            by_time: dict[datetime, list[int]] = defaultdict(list)
            for walker in walkers:
                by_time[walker.at].append(walker.profile_id)
            for moment, ids in by_time.items():
                matched |= segment_evaluate_for_profiles(
                    segment_or_definition=condition.rule,
                    workspace=workspace,
                    profile_ids=ids,
                    now=moment,
                )
            return ["yes" if walker.profile_id in matched else "no" for walker in walkers]
        if isinstance(condition, EngagementCondition):
            return ["no"] * len(walkers)  # nothing is sent in a simulation
    raise ValueError(f"cannot simulate {node.type} nodes")
