"""Checking a journey definition as a whole, with errors that name the node.

`check_definition` parses the JSON (journeys.nodes) and then checks the graph: one
trigger; edges between existing nodes on ports those nodes have, one edge per port,
none into the trigger and none from a node to itself; every port connected; every node
reachable from the trigger; every cycle passing through a wait (otherwise a profile
would spin without time passing); waits on an event or a segment have a timeout; rules
parse. References (templates, segments) are checked against the workspace by
journeys.services, which knows it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from journeys.nodes import (
    ConditionNode,
    Definition,
    EngagementCondition,
    RuleCondition,
    TriggerNode,
    WaitForEvent,
    WaitForSegment,
    WaitNode,
    output_ports,
)


@dataclass(frozen=True)
class GraphError:
    node: str  # "" for the journey as a whole
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"node": self.node, "message": self.message}

    def __str__(self) -> str:
        return f"node {self.node!r}: {self.message}" if self.node else self.message


class DefinitionError(ValueError):
    def __init__(self, errors: list[GraphError]):
        self.errors = errors
        super().__init__("; ".join(str(error) for error in errors))


def _raw_node_id(data: Any, index: int) -> str:
    try:
        value = data["nodes"][index]["id"]
    except (KeyError, IndexError, TypeError):
        return f"#{index + 1}"
    return str(value)


def _raw_node_type(data: Any, index: int) -> str:
    try:
        return str(data["nodes"][index]["type"])
    except (KeyError, IndexError, TypeError):
        return ""


# What a marketer should do about the commonest gaps of a draft (ids a builder starts
# at 0 until something is chosen, names left empty).
_CHOOSE = {"template_id": "choose a template", "segment_id": "choose a segment"}


def _plain(location: list, message: str) -> str:
    field = str(location[-1]) if location else ""
    if field in _CHOOSE and message == "Input should be greater than 0":
        return _CHOOSE[field]
    if field == "event" and message == "String should have at least 1 character":
        return "name the event"
    return message


def _pydantic_errors(data: Any, error: ValidationError) -> list[GraphError]:
    errors: list[GraphError] = []
    for item in error.errors():
        location = list(item["loc"])
        message = _plain(location, item["msg"].removeprefix("Value error, "))
        if item["type"] == "union_tag_not_found":
            # pydantic says "Unable to extract tag using discriminator 'type'".
            message = f"needs a {item['ctx']['discriminator']} field"
        node = ""
        if location[:1] == ["nodes"] and len(location) > 1 and isinstance(location[1], int):
            node = _raw_node_id(data, location[1])
            path = [str(part) for part in location[2:]]
            if path and path[0] == _raw_node_type(data, location[1]):
                path = path[1:]  # the node-type tag pydantic puts first
            where = ".".join(path)
            message = f"{where}: {message}" if where else message
        elif location[:1] == ["edges"] and len(location) > 1:
            message = f"edge {location[1] + 1 if isinstance(location[1], int) else location[1]}: {message}"
        else:
            message = f"{'.'.join(str(part) for part in location)}: {message}"
        errors.append(GraphError(node, message))
    return errors


def parse_definition(data: Any) -> Definition:
    """The definition as models, or DefinitionError naming each bad node."""
    if not isinstance(data, dict):
        raise DefinitionError([GraphError("", "a journey definition is a JSON object")])
    try:
        return Definition.model_validate(data)
    except ValidationError as error:
        raise DefinitionError(_pydantic_errors(data, error)) from None


def check_definition(data: Any) -> Definition:
    """Parse and check the graph. Raises DefinitionError listing every problem found."""
    definition = parse_definition(data)
    errors: list[GraphError] = []
    nodes = {}
    for node in definition.nodes:
        if node.id in nodes:
            errors.append(GraphError(node.id, "two nodes have this id"))
        nodes[node.id] = node

    triggers = [node for node in definition.nodes if isinstance(node, TriggerNode)]
    if not triggers:
        errors.append(GraphError("", "a journey needs a trigger"))
    elif len(triggers) > 1:
        for node in triggers[1:]:
            errors.append(GraphError(node.id, "a journey has one trigger; remove this one"))

    outgoing: dict[str, dict[str, str]] = defaultdict(dict)
    for edge in definition.edges:
        if edge.source not in nodes:
            errors.append(GraphError("", f"an edge leaves {edge.source!r}, which is not a node"))
            continue
        if edge.target not in nodes:
            errors.append(
                GraphError(
                    edge.source,
                    f"its {edge.port!r} edge goes to {edge.target!r}, which is not a node",
                )
            )
            continue
        source = nodes[edge.source]
        if edge.port not in output_ports(source):
            ports = ", ".join(output_ports(source)) or "none"
            errors.append(
                GraphError(edge.source, f"has no output {edge.port!r} (its outputs: {ports})")
            )
            continue
        if edge.target == edge.source:
            errors.append(GraphError(edge.source, "an edge cannot go from a node to itself"))
            continue
        if isinstance(nodes[edge.target], TriggerNode):
            errors.append(GraphError(edge.source, "no edge may go into the trigger"))
            continue
        if edge.port in outgoing[edge.source]:
            errors.append(GraphError(edge.source, f"output {edge.port!r} has more than one edge"))
            continue
        outgoing[edge.source][edge.port] = edge.target

    for node in definition.nodes:
        for port in output_ports(node):
            if port not in outgoing[node.id]:
                errors.append(GraphError(node.id, f"output {port!r} goes nowhere; connect it"))
        if (
            isinstance(node, WaitNode)
            and isinstance(node.wait, WaitForEvent | WaitForSegment)
            and node.wait.timeout_seconds is None
        ):
            errors.append(
                GraphError(node.id, "a wait for an event or a segment change needs a timeout")
            )
        if isinstance(node, ConditionNode):
            errors.extend(_condition_errors(node, nodes))

    if len(triggers) == 1:
        reachable = _reachable(triggers[0].id, outgoing)
        for node in definition.nodes:
            if node.id not in reachable:
                errors.append(GraphError(node.id, "cannot be reached from the trigger"))
        for cycle in _cycles_without_wait(outgoing, nodes):
            errors.append(
                GraphError(cycle[0], "a loop without a wait: " + " -> ".join([*cycle, cycle[0]]))
            )
    if errors:
        raise DefinitionError(errors)
    return definition


def _condition_errors(node: ConditionNode, nodes: dict) -> list[GraphError]:
    condition = node.condition
    if isinstance(condition, RuleCondition):
        from segments.rules import RuleError
        from segments.rules import parse_definition as parse_rule

        try:
            parse_rule(condition.rule)
        except RuleError as error:
            return [GraphError(node.id, f"rule: {error}")]
    if isinstance(condition, EngagementCondition):
        target = nodes.get(condition.node)
        kind = getattr(getattr(target, "action", None), "kind", None)
        if target is None:
            return [
                GraphError(node.id, f"asks about node {condition.node!r}, which does not exist")
            ]
        if kind != "message" and getattr(target, "type", "") != "fallback":
            return [
                GraphError(node.id, f"asks about node {condition.node!r}, which sends no message")
            ]
    return []


def _reachable(start: str, outgoing: dict[str, dict[str, str]]) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        for target in outgoing[stack.pop()].values():
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def _cycles_without_wait(outgoing: dict[str, dict[str, str]], nodes: dict) -> list[list[str]]:
    """Cycles of the graph that contain no wait node (one example per strongly
    connected component that has one)."""
    without_waits = {
        source: [target for target in ports.values() if not isinstance(nodes.get(target), WaitNode)]
        for source, ports in outgoing.items()
        if not isinstance(nodes.get(source), WaitNode)
    }
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    reported: set[frozenset[str]] = set()

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        path.append(node)
        for target in without_waits.get(node, []):
            if state.get(target) == 1:
                cycle = path[path.index(target) :]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    found.append(cycle)
            elif state.get(target) is None:
                visit(target, path)
        path.pop()
        state[node] = 2

    for node in sorted(without_waits):
        if state.get(node) is None:
            visit(node, [])
    return found


def next_node(definition: Definition, node_id: str, port: str = "next") -> str | None:
    for edge in definition.edges:
        if edge.source == node_id and edge.port == port:
            return edge.target
    return None


def template_ids(definition: Definition) -> set[int]:
    """Every template the definition sends."""
    ids: set[int] = set()
    for node in definition.nodes:
        action = getattr(node, "action", None)
        if action is not None and action.kind in ("message", "webhook"):
            ids.add(action.template_id)
            ids.update(getattr(action, "variant_templates", {}).values())
        for step in getattr(node, "chain", []):
            ids.add(step.template_id)
    return ids


def segment_ids(definition: Definition) -> set[int]:
    """Every segment the definition names (triggers, waits, actions, rule conditions)."""
    from segments.rules import Membership, iter_leaves
    from segments.rules import parse_definition as parse_rule

    ids: set[int] = set()
    for node in definition.nodes:
        for part in (
            getattr(node, "trigger", None),
            getattr(node, "wait", None),
            getattr(node, "action", None),
        ):
            segment_id = getattr(part, "segment_id", None)
            if segment_id:
                ids.add(segment_id)
        condition = getattr(node, "condition", None)
        if isinstance(condition, RuleCondition):
            ids.update(
                leaf.segment_id
                for leaf in iter_leaves(parse_rule(condition.rule))
                if isinstance(leaf, Membership)
            )
    return ids
