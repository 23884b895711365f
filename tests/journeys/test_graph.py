"""The journey definition language: every node type parses; every graph problem is
refused with a message that names the node."""

from __future__ import annotations

import pytest

from journeys.graph import DefinitionError, check_definition, segment_ids, template_ids
from journeys.nodes import output_ports

ABANDONED_CART = {
    "nodes": [
        {"id": "cart", "type": "trigger", "trigger": {"kind": "event", "event": "checkout_started", "filters": [{"property": "value", "op": "gt", "value": 50}]}},
        {"id": "hour", "type": "wait", "wait": {"kind": "duration", "seconds": 3600}},
        {"id": "ordered", "type": "condition", "condition": {"kind": "rule", "rule": {"type": "event_count", "event": "order_completed", "op": "gte", "count": 1, "window": {"last_days": 1}}}},
        {"id": "email", "type": "action", "action": {"kind": "message", "channel": "email", "template_id": 7}},
        {"id": "done", "type": "exit"},
    ],
    "edges": [
        {"source": "cart", "target": "hour"},
        {"source": "hour", "target": "ordered"},
        {"source": "ordered", "port": "yes", "target": "done"},
        {"source": "ordered", "port": "no", "target": "email"},
        {"source": "email", "target": "done"},
    ],
    "settings": {"goal": {"event": "order_completed", "window_seconds": 86400}, "reentry": {"mode": "after_days", "days": 7}},
}  # fmt: skip


def _messages(data) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        check_definition(data)
    return [str(error) for error in caught.value.errors]


def _with(**changes):
    data = {
        key: list(value) if isinstance(value, list) else value
        for key, value in ABANDONED_CART.items()
    }
    data.update(changes)
    return data


def test_the_abandoned_cart_journey_is_valid():
    definition = check_definition(ABANDONED_CART)
    assert [node.type for node in definition.nodes] == [
        "trigger",
        "wait",
        "condition",
        "action",
        "exit",
    ]
    assert template_ids(definition) == {7}
    assert definition.settings.reentry.days == 7


def test_every_node_type_parses_with_its_ports():
    data = {
        "nodes": [
            {"id": "t", "type": "trigger", "trigger": {"kind": "segment", "segment_id": 3, "on": "entered"}},
            {"id": "w1", "type": "wait", "wait": {"kind": "until_time", "at": "09:00", "weekdays": [0, 1, 2, 3, 4]}},
            {"id": "w2", "type": "wait", "wait": {"kind": "event", "event": "app_opened", "timeout_seconds": 86400}},
            {"id": "c", "type": "condition", "condition": {"kind": "event", "filters": [{"property": "plan", "op": "eq", "value": "pro"}]}},
            {"id": "s", "type": "split", "variants": [{"key": "a", "weight": 50}, {"key": "b", "weight": 50}], "holdout_percent": 10},
            {"id": "push", "type": "action", "action": {"kind": "message", "channel": "push", "template_id": 1, "variant_templates": {"b": 2}}},
            {"id": "f", "type": "fallback", "chain": [{"channel": "push", "template_id": 1}, {"channel": "sms", "template_id": 3}]},
            {"id": "opened", "type": "condition", "condition": {"kind": "engagement", "node": "push", "engagement": "opened"}},
            {"id": "tag", "type": "action", "action": {"kind": "update_attribute", "trait": "engaged", "value": True}},
            {"id": "list", "type": "action", "action": {"kind": "segment", "segment_id": 4, "op": "add"}},
            {"id": "hook", "type": "action", "action": {"kind": "webhook", "template_id": 5}},
            {"id": "goal", "type": "goal", "event": "order_completed", "window_seconds": 3600},
            {"id": "out", "type": "exit"},
        ],
        "edges": [
            {"source": "t", "target": "w1"}, {"source": "w1", "target": "w2"},
            {"source": "w2", "port": "on_event", "target": "c"}, {"source": "w2", "port": "on_timeout", "target": "out"},
            {"source": "c", "port": "yes", "target": "s"}, {"source": "c", "port": "no", "target": "f"},
            {"source": "s", "port": "a", "target": "push"}, {"source": "s", "port": "b", "target": "push"},
            {"source": "s", "port": "holdout", "target": "goal"}, {"source": "push", "target": "opened"},
            {"source": "opened", "port": "yes", "target": "tag"}, {"source": "opened", "port": "no", "target": "hook"},
            {"source": "f", "target": "list"}, {"source": "tag", "target": "goal"}, {"source": "hook", "target": "goal"},
            {"source": "list", "target": "out"},
        ],
    }  # fmt: skip
    definition = check_definition(data)
    ports = {node.id: output_ports(node) for node in definition.nodes}
    assert ports == {
        "t": ("next",), "w1": ("next",), "w2": ("on_event", "on_timeout"), "c": ("yes", "no"),
        "s": ("a", "b", "holdout"), "push": ("next",), "f": ("next",), "opened": ("yes", "no"),
        "tag": ("next",), "list": ("next",), "hook": ("next",), "goal": (), "out": (),
    }  # fmt: skip
    assert template_ids(definition) == {1, 2, 3, 5}
    assert segment_ids(definition) == {3, 4}


def test_node_errors_name_the_node_and_the_field():
    data = _with(
        nodes=[
            *ABANDONED_CART["nodes"][:1],
            {"id": "hour", "type": "wait", "wait": {"kind": "duration", "seconds": 0}},
            *ABANDONED_CART["nodes"][2:],
        ]
    )
    assert _messages(data) == [
        "node 'hour': wait.duration.seconds: Input should be greater than or equal to 1"
    ]
    unknown = _with(nodes=[*ABANDONED_CART["nodes"], {"id": "x", "type": "teleport"}])
    assert len(_messages(unknown)) == 1 and _messages(unknown)[0].startswith(
        "node 'x': Input tag 'teleport' found"
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # no trigger
        (lambda d: {**d, "nodes": d["nodes"][1:], "edges": d["edges"][1:]}, "a journey needs a trigger"),
        # a branch with no target
        (lambda d: {**d, "edges": [e for e in d["edges"] if e.get("port") != "no"]}, "node 'ordered': output 'no' goes nowhere; connect it"),
        # an edge into the trigger
        (lambda d: {**d, "edges": [*d["edges"][:-1], {"source": "email", "target": "cart"}]}, "node 'email': no edge may go into the trigger"),
        # self loop
        (lambda d: {**d, "edges": [*d["edges"][:-1], {"source": "email", "target": "email"}]}, "node 'email': an edge cannot go from a node to itself"),
        # two edges from one port
        (lambda d: {**d, "edges": [*d["edges"], {"source": "hour", "target": "email"}]}, "node 'hour': output 'next' has more than one edge"),
        # unknown port
        (lambda d: {**d, "edges": [*d["edges"], {"source": "hour", "port": "maybe", "target": "email"}]}, "node 'hour': has no output 'maybe' (its outputs: next)"),
        # an unreachable node
        (lambda d: {**d, "nodes": [*d["nodes"], {"id": "lost", "type": "exit"}]}, "node 'lost': cannot be reached from the trigger"),
        # duplicate ids
        (lambda d: {**d, "nodes": [*d["nodes"], {"id": "done", "type": "exit"}]}, "node 'done': two nodes have this id"),
        # a wait without a timeout
        (lambda d: {**d, "nodes": [d["nodes"][0], {"id": "hour", "type": "wait", "wait": {"kind": "event", "event": "x"}}, *d["nodes"][2:]], "edges": [d["edges"][0], {"source": "hour", "port": "on_event", "target": "ordered"}, *d["edges"][2:]]}, "node 'hour': a wait for an event or a segment change needs a timeout"),
        # a bad rule
        (lambda d: {**d, "nodes": [*d["nodes"][:2], {"id": "ordered", "type": "condition", "condition": {"kind": "rule", "rule": {"type": "attribute", "trait": "plan", "op": "between"}}}, *d["nodes"][3:]]}, "node 'ordered': rule: root (attribute): op input should be 'eq'"),
        # engagement with a node that sends nothing
        (lambda d: {**d, "nodes": [*d["nodes"][:2], {"id": "ordered", "type": "condition", "condition": {"kind": "engagement", "node": "hour"}}, *d["nodes"][3:]]}, "node 'ordered': asks about node 'hour', which sends no message"),
    ],
)  # fmt: skip
def test_graph_problems_are_refused_naming_the_node(change, expected):
    messages = _messages(change(ABANDONED_CART))
    assert any(message.startswith(expected) for message in messages), messages


def test_a_loop_without_a_wait_is_refused_and_one_with_a_wait_is_not():
    loop = {
        "nodes": [
            {"id": "t", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "a", "type": "action", "action": {"kind": "update_attribute", "trait": "x", "value": 1}},
            {"id": "c", "type": "condition", "condition": {"kind": "event", "filters": [{"property": "p", "op": "exists"}]}},
            {"id": "end", "type": "exit"},
        ],
        "edges": [
            {"source": "t", "target": "a"}, {"source": "a", "target": "c"},
            {"source": "c", "port": "yes", "target": "a"}, {"source": "c", "port": "no", "target": "end"},
        ],
    }  # fmt: skip
    assert _messages(loop) == ["node 'a': a loop without a wait: a -> c -> a"]
    with_wait = {
        "nodes": [*loop["nodes"], {"id": "w", "type": "wait", "wait": {"kind": "duration", "seconds": 60}}],
        "edges": [
            {"source": "t", "target": "a"}, {"source": "a", "target": "c"},
            {"source": "c", "port": "yes", "target": "w"}, {"source": "w", "target": "a"},
            {"source": "c", "port": "no", "target": "end"},
        ],
    }  # fmt: skip
    assert [node.id for node in check_definition(with_wait).nodes] == ["t", "a", "c", "end", "w"]
