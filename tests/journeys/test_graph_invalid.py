"""Property tests: every invalid journey graph we can generate is refused by
check_definition with a DefinitionError whose errors name the offending node (or the
journey as a whole) and say what is wrong, never an unhandled exception; through the
API, publishing such a draft answers 400 with those errors and stores no version.

A valid graph is generated (a trigger of each kind, then waits, actions, conditions,
splits, goals and exits, every output port connected), then broken in one way: no
trigger or two; a node nobody reaches; an edge from or to a node that does not exist,
into the trigger, from a node to itself, on a port the node does not have, or a second
edge on one port; a port left unconnected; two nodes with one id; a loop without a
wait; a wait of a bad duration or a wait for an event without a timeout; an unknown or
missing node type; a node's config of the wrong type or missing; a bad node id; a
condition whose rule is invalid (any way tests/segments/test_rules_invalid.py breaks
one) or that asks about a node that sends nothing; a broken split; bad settings; a
definition that is not an object.

Drafts are stored as they are (the builder saves work in progress; see
journeys.services.journey_draft_save): the refusal is at check and publish.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass

import pytest
from django.test import Client
from hypothesis import given, settings
from hypothesis import strategies as st

from engagement_site.workspaces.services import AuditContext
from journeys import services
from journeys.graph import DefinitionError, check_definition
from journeys.models import Journey, JourneyVersion
from journeys.nodes import MAX_WAIT_SECONDS
from tests.conftest import secret_key_client
from tests.segments.test_rules_invalid import FUZZ as RULES_FUZZ
from tests.segments.test_rules_invalid import MUTATIONS as RULE_MUTATION_KINDS
from tests.segments.test_rules_invalid import broken_rules

FUZZ = settings(RULES_FUZZ, max_examples=25)
API_FUZZ = settings(FUZZ, max_examples=4)

TRIGGERS = st.sampled_from(
    [
        {"kind": "api"},
        {"kind": "event", "event": "checkout_started", "filters": [{"property": "value", "op": "gt", "value": 50}]},
        {"kind": "segment", "segment_id": 3, "on": "entered"},
        {"kind": "schedule", "segment_id": 3, "cron": "0 9 * * 1"},
    ]
)  # fmt: skip
# (node type, body, output ports)
MIDDLE = [
    ("wait", {"wait": {"kind": "duration", "seconds": 3600}}, ("next",)),
    ("wait", {"wait": {"kind": "until_time", "at": "09:00", "weekdays": [0, 4]}}, ("next",)),
    ("wait", {"wait": {"kind": "event", "event": "app_opened", "timeout_seconds": 86400}}, ("on_event", "on_timeout")),
    ("action", {"action": {"kind": "update_attribute", "trait": "vip", "value": True}}, ("next",)),
    ("action", {"action": {"kind": "message", "channel": "email", "template_id": 7}}, ("next",)),
    ("condition", {"condition": {"kind": "rule", "rule": {"type": "attribute", "trait": "plan", "op": "eq", "value": "pro"}}}, ("yes", "no")),
    ("condition", {"condition": {"kind": "event", "filters": [{"property": "value", "op": "gt", "value": 10}]}}, ("yes", "no")),
    ("split", {"variants": [{"key": "a", "weight": 50}, {"key": "b", "weight": 50}]}, ("a", "b")),
    ("fallback", {"chain": [{"channel": "push", "template_id": 1}, {"channel": "sms", "template_id": 3}]}, ("next",)),
]  # fmt: skip
ENDS = [
    ("exit", {}, ()),
    ("goal", {"event": "order_completed", "window_seconds": 86400}, ()),
]
NODES_AT_MOST = 12


@st.composite
def valid_graphs(draw) -> dict:
    """A tree from the trigger: each output port leads to a new node."""
    ids = (f"n{number}" for number in itertools.count(1))
    nodes = [{"id": "start", "type": "trigger", "trigger": draw(TRIGGERS)}]
    edges: list[dict] = []
    open_ports = [("start", "next")]
    while open_ports:
        source, port = open_ports.pop(0)
        pool = ENDS if len(nodes) + len(open_ports) >= NODES_AT_MOST else MIDDLE + ENDS
        node_type, body, ports = draw(st.sampled_from(pool))
        node_id = next(ids)
        nodes.append({"id": node_id, "type": node_type, **copy.deepcopy(body)})
        edges.append({"source": source, "port": port, "target": node_id})
        open_ports += [(node_id, out) for out in ports]
    definition: dict = {"nodes": nodes, "edges": edges}
    if draw(st.booleans()):
        definition["settings"] = {
            "reentry": {"mode": "after_days", "days": 7},
            "goal": {"event": "order_completed", "window_seconds": 86400},
        }
    return definition


@dataclass(frozen=True)
class Broken:
    definition: object
    kind: str
    node: str | None  # the node an error must name ("" the journey; None: any node)
    expected: tuple[str, ...]  # parts of that error's message


def _node(definition: dict, node_id: str) -> dict:
    return next(node for node in definition["nodes"] if node["id"] == node_id)


def _graft(definition: dict, draw, node_type: str, body: dict, ports: tuple[str, ...]) -> str:
    """Put a node of this type on an edge that goes into an end node; its ports go on
    to that end node, or to new exits."""
    end_edges = [
        edge
        for edge in definition["edges"]
        if _node(definition, edge["target"])["type"] in ("exit", "goal")
    ]
    edge = draw(st.sampled_from(end_edges))
    node_id = "grafted"
    definition["nodes"].append({"id": node_id, "type": node_type, **copy.deepcopy(body)})
    end = edge["target"]
    edge["target"] = node_id
    for index, port in enumerate(ports):
        target = end
        if index:
            target = f"grafted-end-{index}"
            definition["nodes"].append({"id": target, "type": "exit"})
        definition["edges"].append({"source": node_id, "port": port, "target": target})
    return node_id


def _node_of_type(definition: dict, draw, node_type: str) -> str:
    """A node of this type: one of the graph's, or one grafted into it."""
    present = [node["id"] for node in definition["nodes"] if node["type"] == node_type]
    if present:
        return draw(st.sampled_from(present))
    node_type, body, ports = next(item for item in MIDDLE if item[0] == node_type)
    return _graft(definition, draw, node_type, body, ports)


MUTATIONS = (
    "no_trigger",
    "second_trigger",
    "unreachable",
    "edge_to_nowhere",
    "edge_from_nowhere",
    "edge_into_trigger",
    "edge_to_itself",
    "unknown_port",
    "unconnected_port",
    "second_edge_on_port",
    "duplicate_id",
    "loop_without_wait",
    "bad_wait_duration",
    "wait_without_timeout",
    "unknown_node_type",
    "missing_node_type",
    "wrong_config_type",
    "missing_config",
    "unknown_field",
    "bad_node_id",
    "bad_rule",
    "engagement_of_nothing",
    "bad_split",
    "bad_settings",
    "not_a_definition",
)
BAD_SECONDS = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=MAX_WAIT_SECONDS + 1),
    st.sampled_from(["an hour", "3600", True, 1.5, None, [3600], {"hours": 1}]),
)
# (node type, path of the field in the node, wrong values)
WRONG_TYPES = [
    ("trigger", ("trigger", "event"), st.sampled_from([12, None, ["a"], True])),
    ("trigger", ("trigger", "kind"), st.sampled_from(["sometimes", 3, None])),
    ("action", ("action", "template_id"), st.sampled_from(["seven", True, 7.5, None, [7]])),
    ("action", ("action", "channel"), st.sampled_from(["pigeon", 1, None])),
    ("wait", ("wait", "weekdays"), st.sampled_from(["monday", [7], [True], [-1]])),
    ("condition", ("condition", "rule"), st.sampled_from(["plan is pro", 1, ["a"]])),
    ("condition", ("condition", "filters"), st.sampled_from(["value > 10", [], None])),
    ("split", ("variants",), st.sampled_from(["a,b", [], None, [{"key": "a", "weight": "half"}]])),
    (
        "fallback",
        ("chain",),
        st.sampled_from([[{"channel": "push", "template_id": 1}], "push,sms", None]),
    ),
    ("goal", ("window_seconds",), st.sampled_from([0, "a day", True, 59])),
]
REQUIRED = {
    "trigger": ("trigger",),
    "wait": ("wait",),
    "action": ("action",),
    "condition": ("condition",),
    "split": ("variants",),
    "fallback": ("chain",),
    "goal": ("event",),
}
BAD_SPLITS = st.sampled_from(
    [
        (
            [{"key": "a", "weight": 50}, {"key": "a", "weight": 50}],
            "variant keys must be different",
        ),
        ([{"key": "holdout", "weight": 50}], "'holdout' is reserved"),
        (
            [{"key": "a", "weight": 0}, {"key": "b", "weight": 0}],
            "at least one variant needs a weight",
        ),
        ([{"key": "A B", "weight": 50}], "variants.0.key"),
        ([{"key": "a", "weight": -1}], "variants.0.weight"),
    ]
)
BAD_SETTINGS = st.sampled_from(
    [
        ({"reentry": {"mode": "after_days"}}, "settings.reentry"),
        ({"reentry": {"mode": "sometimes"}}, "settings.reentry.mode"),
        (
            {"frequency_cap": {"messages": 0, "per_seconds": 3600}},
            "settings.frequency_cap.messages",
        ),
        ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "settings.quiet_hours.start"),
        ({"shadow_mode": "yes"}, "settings.shadow_mode"),
        ({"entry_limit": True}, "settings.entry_limit"),
        ({"send_rate_per_minute": "fast"}, "settings.send_rate_per_minute"),
        ({"colour": "red"}, "settings.colour"),
        ("never", "settings"),
    ]
)


@st.composite
def broken_graphs(draw, mutation: str) -> Broken:
    definition = draw(valid_graphs())
    nodes, edges = definition["nodes"], definition["edges"]
    non_trigger = [node["id"] for node in nodes if node["type"] != "trigger"]

    if mutation == "no_trigger":
        definition["nodes"] = nodes[1:]
        definition["edges"] = [edge for edge in edges if edge["source"] != "start"]
        return Broken(definition, mutation, "", ("a journey needs a trigger",))
    if mutation == "second_trigger":
        nodes.append({"id": "again", "type": "trigger", "trigger": draw(TRIGGERS)})
        edges.append(
            {"source": "again", "port": "next", "target": draw(st.sampled_from(non_trigger))}
        )
        return Broken(definition, mutation, "again", ("a journey has one trigger",))
    if mutation == "unreachable":
        nodes.append({"id": "orphan", "type": "exit"})
        return Broken(definition, mutation, "orphan", ("cannot be reached from the trigger",))
    if mutation == "edge_to_nowhere":
        edge = draw(st.sampled_from(edges))
        edge["target"] = "ghost"
        return Broken(
            definition,
            mutation,
            edge["source"],
            (f"its {edge['port']!r} edge goes to 'ghost', which is not a node",),
        )
    if mutation == "edge_from_nowhere":
        edges.append(
            {"source": "ghost", "port": "next", "target": draw(st.sampled_from(non_trigger))}
        )
        return Broken(definition, mutation, "", ("an edge leaves 'ghost', which is not a node",))
    if mutation == "edge_into_trigger":
        if all(edge["source"] == "start" for edge in edges):
            _graft(definition, draw, *MIDDLE[3])
        edge = draw(st.sampled_from([edge for edge in edges if edge["source"] != "start"]))
        edge["target"] = "start"
        return Broken(definition, mutation, edge["source"], ("no edge may go into the trigger",))
    if mutation == "edge_to_itself":
        edge = draw(st.sampled_from(edges))
        edge["target"] = edge["source"]
        return Broken(
            definition, mutation, edge["source"], ("an edge cannot go from a node to itself",)
        )
    if mutation == "unknown_port":
        source = draw(st.sampled_from([node["id"] for node in nodes]))
        port = draw(st.sampled_from(["sideways", "maybe", "yes_", "NEXT"]))
        edges.append({"source": source, "port": port, "target": draw(st.sampled_from(non_trigger))})
        return Broken(definition, mutation, source, (f"has no output {port!r}",))
    if mutation == "unconnected_port":
        edge = draw(st.sampled_from(edges))
        edges.remove(edge)
        return Broken(
            definition, mutation, edge["source"], (f"output {edge['port']!r} goes nowhere",)
        )
    if mutation == "second_edge_on_port":
        edge = draw(st.sampled_from(edges))
        nodes.append({"id": "other", "type": "exit"})
        edges.append({**edge, "target": "other"})
        return Broken(
            definition,
            mutation,
            edge["source"],
            (f"output {edge['port']!r} has more than one edge",),
        )
    if mutation == "duplicate_id":
        node_id = draw(st.sampled_from(non_trigger))
        nodes.append({"id": node_id, "type": "exit"})
        return Broken(definition, mutation, node_id, ("two nodes have this id",))
    if mutation == "loop_without_wait":
        # An edge into an end node now goes to a condition whose "yes" runs an action
        # that goes back to the condition: a profile would spin without time passing.
        check = _graft(definition, draw, *MIDDLE[5])
        yes = next(
            edge
            for edge in definition["edges"]
            if edge["source"] == check and edge["port"] == "yes"
        )
        definition["nodes"].append({"id": "again", "type": "action", **copy.deepcopy(MIDDLE[3][1])})
        yes["target"] = "again"
        definition["edges"].append({"source": "again", "port": "next", "target": check})
        return Broken(definition, mutation, None, ("a loop without a wait", check, "again"))
    if mutation == "bad_wait_duration":
        node_id = _node_of_type(definition, draw, "wait")
        node = _node(definition, node_id)
        node["wait"] = {"kind": "duration", "seconds": draw(BAD_SECONDS)}
        return Broken(definition, mutation, node_id, ("wait.duration.seconds",))
    if mutation == "wait_without_timeout":
        node_id = _node_of_type(definition, draw, "wait")
        node = _node(definition, node_id)
        if node["wait"]["kind"] != "event":
            node["wait"] = {"kind": "event", "event": "app_opened"}
        else:
            del node["wait"]["timeout_seconds"]
        return Broken(
            definition,
            mutation,
            node_id,
            ("a wait for an event or a segment change needs a timeout",),
        )
    if mutation == "unknown_node_type":
        node_id = draw(st.sampled_from(non_trigger))
        name = draw(st.sampled_from(["teleport", "Wait", "email", "", "trigger "]))
        _node(definition, node_id)["type"] = name
        return Broken(definition, mutation, node_id, (f"Input tag {name!r} found using 'type'",))
    if mutation == "missing_node_type":
        node_id = draw(st.sampled_from([node["id"] for node in nodes]))
        del _node(definition, node_id)["type"]
        return Broken(definition, mutation, node_id, ("needs a 'type' field",))
    if mutation == "wrong_config_type":
        node_type, path, values = draw(st.sampled_from(WRONG_TYPES))
        node_id = "start" if node_type == "trigger" else None
        if node_type == "trigger":
            nodes[0]["trigger"] = {"kind": "event", "event": "checkout_started"}
        elif node_type == "goal":
            node_id = _graft(definition, draw, "goal", ENDS[1][1], ())
        elif node_type == "wait":
            node_id = _node_of_type(definition, draw, "wait")
            _node(definition, node_id)["wait"] = copy.deepcopy(MIDDLE[1][1]["wait"])
        else:
            candidates = [
                item for item in MIDDLE if item[0] == node_type and path[-1] in str(item[1])
            ]
            node_id = _graft(definition, draw, *draw(st.sampled_from(candidates)))
        target = _node(definition, node_id)
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = draw(values)
        return Broken(definition, mutation, node_id, (path[-1],))
    if mutation == "missing_config":
        node_type = draw(st.sampled_from(sorted(REQUIRED)))
        node_id = (
            "start"
            if node_type == "trigger"
            else _graft(definition, draw, "goal", ENDS[1][1], ())
            if node_type == "goal"
            else _node_of_type(definition, draw, node_type)
        )
        field = draw(st.sampled_from(REQUIRED[node_type]))
        del _node(definition, node_id)[field]
        return Broken(definition, mutation, node_id, (f"{field}: Field required",))
    if mutation == "unknown_field":
        node_id = draw(st.sampled_from([node["id"] for node in nodes]))
        _node(definition, node_id)["colour"] = "red"
        return Broken(definition, mutation, node_id, ("colour: Extra inputs are not permitted",))
    if mutation == "bad_node_id":
        node_id = draw(st.sampled_from(non_trigger))
        bad = draw(st.sampled_from(["has space", "", "x" * 65, "émoji", "a/b"]))
        _node(definition, node_id)["id"] = bad
        return Broken(definition, mutation, bad or "", ("id: String should",))
    if mutation == "bad_rule":
        node_id = _node_of_type(definition, draw, "condition")
        rule_kind = draw(st.sampled_from([kind for kind in RULE_MUTATIONS]))
        broken_rule = draw(broken_rules(rule_kind))
        _node(definition, node_id)["condition"] = {"kind": "rule", "rule": broken_rule.definition}
        return Broken(
            definition,
            mutation,
            node_id,
            tuple(
                f"rule: {part}" if index == 0 else part
                for index, part in enumerate(broken_rule.expected)
            ),
        )
    if mutation == "engagement_of_nothing":
        node_id = _node_of_type(definition, draw, "condition")
        target = draw(st.sampled_from(["ghost", "start"]))
        _node(definition, node_id)["condition"] = {"kind": "engagement", "node": target}
        words = "which does not exist" if target == "ghost" else "which sends no message"
        return Broken(definition, mutation, node_id, (f"asks about node {target!r}, {words}",))
    if mutation == "bad_split":
        node_id = _node_of_type(definition, draw, "split")
        variants, words = draw(BAD_SPLITS)
        _node(definition, node_id)["variants"] = variants
        return Broken(definition, mutation, node_id, (words,))
    if mutation == "bad_settings":
        value, words = draw(BAD_SETTINGS)
        definition["settings"] = (
            value if isinstance(value, str) else {**definition.get("settings", {}), **value}
        )
        return Broken(definition, mutation, "", (words,))
    assert mutation == "not_a_definition"
    bad, words = draw(
        st.sampled_from(
            [
                ([definition], "a journey definition is a JSON object"),
                ("start -> end", "a journey definition is a JSON object"),
                ({"edges": edges}, "nodes: Field required"),
                ({"nodes": []}, "nodes: List should have at least 1 item"),
                ({"nodes": "start"}, "nodes: Input should be a valid list"),
                ({**definition, "edges": "start->n1"}, "edges: Input should be a valid list"),
                ({**definition, "version": 2}, "version: Extra inputs are not permitted"),
            ]
        )
    )
    return Broken(bad, mutation, "", (words,))


# Rule mutations whose result is still a JSON object (a condition's rule must be one).
RULE_MUTATIONS = tuple(
    mutation
    for mutation in RULE_MUTATION_KINDS
    if mutation not in {"not_an_object", "too_many_filters", "too_many"}
)


def _matches(errors, broken: Broken) -> bool:
    return any(
        (broken.node is None or error.node == broken.node)
        and all(part in error.message for part in broken.expected)
        for error in errors
    )


@pytest.mark.parametrize("mutation", MUTATIONS)
@FUZZ
@given(data=st.data())
def test_every_invalid_graph_is_refused_naming_the_node_and_the_problem(mutation, data):
    broken = data.draw(broken_graphs(mutation))
    with pytest.raises(DefinitionError) as caught:
        check_definition(broken.definition)
    errors = caught.value.errors
    assert _matches(errors, broken), (broken, [str(error) for error in errors])


@settings(FUZZ, max_examples=200)
@given(definition=valid_graphs())
def test_the_valid_graphs_the_mutations_start_from_pass(definition):
    assert [node.id for node in check_definition(definition).nodes] == [
        node["id"] for node in definition["nodes"]
    ]


@pytest.fixture
def marketer_key(workspace) -> Client:
    return secret_key_client(workspace, "marketer")


@pytest.fixture
def journey(workspace) -> Journey:
    return services.journey_create(
        workspace=workspace, name="Fuzzed", context=AuditContext.system("test setup")
    )


@pytest.mark.django_db
@pytest.mark.parametrize("mutation", MUTATIONS)
@API_FUZZ
@given(data=st.data())
def test_publishing_an_invalid_graph_answers_400_naming_the_node_and_stores_no_version(
    workspace, marketer_key, journey, mutation, data
):
    broken = data.draw(broken_graphs(mutation))
    if not isinstance(broken.definition, dict):
        # Not even a draft: a draft is a JSON object.
        response = marketer_key.put(
            f"/api/v1/journeys/{journey.pk}/draft",
            {"definition": broken.definition},
            content_type="application/json",
        )
        assert response.status_code == 400
        assert response.json()["errors"]["definition"] == ["A definition is a JSON object."]
    else:
        saved = marketer_key.put(
            f"/api/v1/journeys/{journey.pk}/draft",
            {"definition": broken.definition},
            content_type="application/json",
        )
        assert saved.status_code == 200, saved.content
        response = marketer_key.post(
            f"/api/v1/journeys/{journey.pk}/publish", {}, content_type="application/json"
        )
        assert response.status_code == 400, response.content
        body = response.json()
        assert (body["code"], body["message"]) == ("invalid", "The request has invalid fields.")
        errors = [
            DefinitionErrorItem(item["node"], item["message"])
            for item in body["errors"]["definition"]
        ]
        assert _matches(errors, broken), (broken, body)
    assert JourneyVersion.objects.filter(journey=journey).count() == 0
    journey.refresh_from_db()
    assert journey.status == Journey.Status.DRAFT


@dataclass(frozen=True)
class DefinitionErrorItem:
    node: str
    message: str
