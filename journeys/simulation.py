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
- actions have no effect (attributes, segments) and send nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
]


@dataclass
class _Walker:
    profile_id: int
    at: datetime
    time_zone: str
    event: dict[str, Any]
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
) -> SimulationResult:
    from segments.models import Event, Profile

    profile_ids = list(dict.fromkeys(profile_ids))[:MAX_PROFILES]
    profiles = {
        row["pk"]: row
        for row in Profile.objects.filter(workspace=workspace, pk__in=profile_ids)
        .order_by("pk")
        .values("pk", "time_zone")
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

    # Walkers wait at a node in batches so rule conditions are evaluated per batch.
    at_node: dict[str, list[_Walker]] = defaultdict(list)
    for profile_id, row in profiles.items():
        at_node[trigger.id].append(
            _Walker(
                profile_id,
                start,
                row["time_zone"] or "UTC",
                events.get(profile_id, {"name": "", "properties": {}}),
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
            if len(examples[node_id]) < EXAMPLES_PER_NODE:
                examples[node_id].append(walker.profile_id)
        ports = _ports(node, walkers, workspace=workspace, journey_id=journey_id)
        for walker, port in zip(walkers, ports, strict=True):
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
            node.id: {"reached": reached.get(node.id, 0), "examples": examples.get(node.id, [])}
            for node in definition.nodes
        },
        edges=edges,
        outcomes=dict(outcomes),
        assumptions=ASSUMPTIONS,
    )


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
