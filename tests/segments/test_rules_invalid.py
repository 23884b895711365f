"""Property tests: every invalid segment rule we can generate is refused with a RuleError
whose message names the offending rule (its path from the root and its type) and the
offending field, never an unhandled exception; through the API, 400 with that message
and nothing stored.

A valid tree is generated (and/or/not groups over every leaf type, a few levels deep),
then broken in one place, chosen among all its rules: an unknown or missing rule type,
a rule that is not an object, an unknown field, a missing required field, a field of
the wrong JSON type (a string for a count, true for a segment id, a number for an
event name...), a value out of range, an unknown operator, an operator's value of the
wrong kind (NaN, an empty `in` list, a date that is not one), a broken window or
property filter, an empty group, a rule type that is not available; or the whole tree
nests too deep or has too many rules. The expected message parts come from the
mutation, so the test checks that the refusal names what was broken.

Runs are derandomized (the "ci" profile of tests/segments/test_properties.py is not
loaded here: these settings are local).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass

import pytest
from django.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from segments.models import Segment
from segments.rules import (
    MAX_DEPTH,
    MAX_FILTERS,
    MAX_NODES,
    RULE_TYPES,
    RuleError,
    parse_definition,
)
from tests.conftest import secret_key_client

FUZZ = settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
API_FUZZ = settings(FUZZ, max_examples=5)

EVENTS = st.sampled_from(["order_completed", "logged_in", "app_opened"])
TRAITS = st.sampled_from(["plan", "address.city", "seats"])
SCALARS = st.one_of(
    st.sampled_from(["pro", "free"]), st.integers(-5, 500), st.booleans(), st.just(2.5)
)
FILTERS = st.lists(
    st.fixed_dictionaries(
        {"property": st.sampled_from(["value", "plan.tier"]), "op": st.just("eq"), "value": SCALARS}
    ),
    max_size=2,
)
WINDOWS = st.one_of(
    st.fixed_dictionaries({"last_days": st.integers(1, 365)}),
    st.just({"between": ["2026-01-01", "2026-01-31"]}),
    st.just({"ever": True}),
)

LEAVES = {
    "attribute": st.fixed_dictionaries(
        {"type": st.just("attribute"), "trait": TRAITS, "op": st.just("eq"), "value": SCALARS}
    ),
    "event_count": st.fixed_dictionaries(
        {
            "type": st.just("event_count"),
            "event": EVENTS,
            "count": st.integers(0, 10),
            "op": st.sampled_from(["gte", "lte", "eq"]),
            "filters": FILTERS,
            "window": WINDOWS,
        }
    ),
    "sequence": st.fixed_dictionaries(
        {
            "type": st.just("sequence"),
            "first": st.fixed_dictionaries({"event": EVENTS}),
            "then": st.fixed_dictionaries({"event": EVENTS, "filters": FILTERS}),
            "within_hours": st.sampled_from([1, 24, 0.5]),
            "negate": st.booleans(),
        }
    ),
    "streak": st.fixed_dictionaries(
        {
            "type": st.just("streak"),
            "event": EVENTS,
            "days": st.integers(1, 30),
            "since_signup": st.booleans(),
            "ongoing": st.booleans(),
        }
    ),
    "recency": st.fixed_dictionaries(
        {
            "type": st.just("recency"),
            "event": EVENTS,
            "which": st.sampled_from(["first", "last"]),
            "op": st.just("within_last_days"),
            "value": st.integers(1, 90),
        }
    ),
    "membership": st.fixed_dictionaries(
        {"type": st.just("membership"), "segment_id": st.integers(1, 10**6), "in": st.booleans()}
    ),
    "computed_trait": st.fixed_dictionaries(
        {
            "type": st.just("computed_trait"),
            "trait": st.sampled_from(["ltv", "engagement_score"]),
            "op": st.sampled_from(["gt", "lte"]),
            "value": st.integers(0, 100),
        }
    ),
}

# Per rule type: its required fields, and fields with values of the wrong JSON type.
REQUIRED = {
    "and": ("rules",),
    "or": ("rules",),
    "not": ("rule",),
    "attribute": ("op",),
    "event_count": ("event", "count"),
    "sequence": ("first", "then", "within_hours"),
    "streak": ("event", "days"),
    "recency": ("event", "op", "value"),
    "membership": ("segment_id",),
    "computed_trait": ("trait", "op"),
}
NOT_A_STRING = st.one_of(st.integers(), st.booleans(), st.lists(st.integers(), max_size=2))
NOT_A_WHOLE_NUMBER = st.one_of(
    st.booleans(),
    st.text(max_size=5),
    st.floats(allow_nan=False).filter(lambda number: not number.is_integer()),
    st.just([1]),
    st.just({"n": 1}),
)
NOT_A_NUMBER = st.one_of(st.booleans(), st.text(max_size=5), st.just([1]), st.none())
NOT_A_FLAG = st.one_of(st.integers(0, 1), st.sampled_from(["yes", "true", "on"]), st.none())
NOT_A_LIST = st.one_of(st.text(max_size=5), st.integers(), st.just({"a": 1}))
NOT_AN_OBJECT = st.one_of(st.text(max_size=5), st.integers(), st.just([{"event": "a"}]))
WRONG_TYPES = {
    "and": {"rules": NOT_A_LIST},
    "or": {"rules": NOT_A_LIST},
    "not": {"rule": st.one_of(st.text(max_size=5), st.integers(), st.lists(st.integers()))},
    "attribute": {"trait": NOT_A_STRING},
    "event_count": {"event": NOT_A_STRING, "count": NOT_A_WHOLE_NUMBER, "filters": NOT_A_LIST},
    "sequence": {
        "first": NOT_AN_OBJECT,
        "then": NOT_AN_OBJECT,
        "within_hours": NOT_A_NUMBER,
        "negate": NOT_A_FLAG,
    },
    "streak": {
        "event": NOT_A_STRING,
        "days": NOT_A_WHOLE_NUMBER,
        "since_signup": NOT_A_FLAG,
        "ongoing": NOT_A_FLAG,
    },
    "recency": {"event": NOT_A_STRING, "filters": NOT_A_LIST},
    "membership": {"segment_id": NOT_A_WHOLE_NUMBER, "in": NOT_A_FLAG},
    "computed_trait": {"trait": NOT_A_STRING},
}
# Values of the right type out of their range.
OUT_OF_RANGE = {
    "event_count": {"count": st.integers(max_value=-1), "event": st.just("")},
    "sequence": {"within_hours": st.sampled_from([0, -1, 24 * 3660 + 1])},
    "streak": {"days": st.sampled_from([0, -3, 3661]), "event": st.just("x" * 201)},
    "recency": {"event": st.just("")},
    "membership": {"segment_id": st.integers(max_value=0)},
    "attribute": {"trait": st.sampled_from(["", "a..b", ".plan", "plan."])},
}
OPERATOR_TYPES = ("attribute", "event_count", "recency", "computed_trait")
# An operator with a value it cannot take, and the words the message must say.
BAD_VALUES = st.sampled_from(
    [
        ("exists", 1, "exists takes no value"),
        ("in", [], "in needs a non-empty list"),
        ("in", "pro", "in needs a non-empty list"),
        ("in", [1, None], "in takes strings, numbers or booleans"),
        ("in", [math.inf], "in takes finite numbers only"),
        ("within_last_days", 0, "within_last_days needs a whole number"),
        ("within_last_days", True, "within_last_days needs a whole number"),
        ("within_last_days", "7", "within_last_days needs a whole number"),
        ("before", "yesterday", "before needs an ISO 8601 date"),
        ("after", 20260101, "after needs an ISO 8601 date"),
        ("eq", None, "eq needs a string, number or boolean"),
        ("eq", {"a": 1}, "eq needs a string, number or boolean"),
        ("ne", math.nan, "ne needs a finite number"),
        ("gt", math.inf, "gt needs a finite number"),
        ("gt", True, "gt needs a number or a string"),
        ("contains", False, "contains needs a string or a number"),
    ]
)
BAD_WINDOWS = st.sampled_from(
    [
        ("weeks", {"weeks": 2}),
        ("string", "ever"),
        ("ever false", {"ever": False}),
        ("ever 1", {"ever": 1}),
        ("last_days 0", {"last_days": 0}),
        ("last_days true", {"last_days": True}),
        ("last_days text", {"last_days": "7"}),
        ("reversed", {"between": ["2026-02-01", "2026-01-01"]}),
        ("not dates", {"between": ["soon", "later"]}),
        ("one date", {"between": ["2026-02-01"]}),
        ("extra", {"last_days": 3, "ever": True}),
    ]
)
BAD_FILTERS = st.sampled_from(
    [
        {"property": "", "op": "eq", "value": 1},
        {"property": "a..b", "op": "eq", "value": 1},
        {"property": "plan", "op": "approx", "value": 1},
        {"property": "plan", "op": "eq"},
        {"property": "plan", "op": "in", "value": []},
        {"op": "eq", "value": 1},
        {"property": "plan", "op": "eq", "value": 1, "colour": "red"},
        "plan = pro",
    ]
)


@dataclass(frozen=True)
class Broken:
    definition: object
    kind: str
    expected: tuple[str, ...]  # parts the message must contain


def trees(depth: int) -> st.SearchStrategy:
    leaves = st.one_of(*LEAVES.values())
    if depth <= 1:
        return leaves
    children = trees(depth - 1)
    return st.one_of(
        leaves,
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(["and", "or"]),
                "rules": st.lists(children, min_size=1, max_size=3),
            }
        ),
        st.fixed_dictionaries({"type": st.just("not"), "rule": children}),
    )


def _locations(node: dict, path: str = "root") -> list[tuple[str, dict, object]]:
    """(path, rule, parent position) of every rule, the root first."""
    found = [(path, node, None)]
    join = (lambda part: part) if path == "root" else (lambda part: f"{path}.{part}")
    if node["type"] in ("and", "or"):
        for index, child in enumerate(node["rules"]):
            found += _locations(child, join(f"rules[{index}]"))
    elif node["type"] == "not":
        found += _locations(node["rule"], join("rule"))
    return found


def _where(path: str, rule_type: str) -> str:
    return f"{path} ({rule_type})"


def _replace(tree: dict, path: str, new: object) -> object:
    """The tree with the rule at `path` replaced (the root is the tree itself)."""
    if path == "root":
        return new
    tree = copy.deepcopy(tree)
    parent, last = tree, None
    parts = path.split(".")
    for part in parts[:-1]:
        parent = parent["rule"] if part == "rule" else parent["rules"][int(part[6:-1])]
    last = parts[-1]
    if last == "rule":
        parent["rule"] = new
    else:
        parent["rules"][int(last[6:-1])] = new
    return tree


MUTATIONS = (
    "unknown_type",
    "missing_type",
    "not_an_object",
    "unknown_field",
    "missing_field",
    "wrong_type",
    "out_of_range",
    "unknown_operator",
    "bad_value",
    "bad_window",
    "bad_filter",
    "too_many_filters",
    "empty_group",
    "not_available",
    "too_deep",
    "too_many",
)


def _mutations(rule_type: str) -> list[str]:
    """The ways a rule of this type can be broken."""
    mutations = [
        "unknown_type",
        "missing_type",
        "not_an_object",
        "unknown_field",
        "missing_field",
        "wrong_type",
        "not_available",
        "too_deep",
        "too_many",
    ]
    if rule_type in ("and", "or"):
        mutations.append("empty_group")
    else:
        mutations.append("too_many_filters")
    if rule_type in OUT_OF_RANGE:
        mutations.append("out_of_range")
    if rule_type in OPERATOR_TYPES:
        mutations.append("unknown_operator")
    if rule_type in ("attribute", "recency"):
        mutations.append("bad_value")
    if rule_type == "event_count":
        mutations.append("bad_window")
    if rule_type in ("event_count", "streak", "recency"):
        mutations.append("bad_filter")
    return mutations


@st.composite
def broken_rules(draw, mutation: str) -> Broken:
    tree = draw(trees(4))
    # A rule the mutation applies to (grafted into the tree when the tree has none).
    candidates = [
        location for location in _locations(tree) if mutation in _mutations(location[1]["type"])
    ]
    if not candidates:
        types = [name for name in (*LEAVES, "and", "or") if mutation in _mutations(name)]
        rule_type = draw(st.sampled_from(types))
        graft = (
            {"type": rule_type, "rules": [draw(LEAVES["streak"])]}
            if rule_type in ("and", "or")
            else draw(LEAVES[rule_type])
        )
        path = draw(st.sampled_from([location[0] for location in _locations(tree)]))
        tree = _replace(tree, path, graft)
        candidates = [
            location for location in _locations(tree) if mutation in _mutations(location[1]["type"])
        ]
    path, rule, _ = draw(st.sampled_from(candidates))
    rule = copy.deepcopy(rule)
    rule_type = rule["type"]
    where = _where(path, rule_type)
    if mutation == "too_deep":
        deep: dict = tree
        for _ in range(MAX_DEPTH):
            deep = {"type": "not", "rule": deep}
        return Broken(deep, mutation, ("rules nest deeper than 8 levels",))
    if mutation == "too_many":
        many = {"type": "or", "rules": [draw(LEAVES["streak"])] * MAX_NODES}
        return Broken(many, mutation, (f"more than {MAX_NODES} rules",))

    if mutation == "unknown_type":
        name = draw(st.text(min_size=1, max_size=12).filter(lambda text: text not in RULE_TYPES))
        rule["type"] = name
        return Broken(_replace(tree, path, rule), mutation, (f"{path}: unknown rule type",))
    if mutation == "missing_type":
        del rule["type"]
        return Broken(
            _replace(tree, path, rule),
            mutation,
            (f'{path}: needs a rule type in its "type" field',),
        )
    if mutation == "not_an_object":
        value = draw(
            st.one_of(st.text(max_size=8), st.integers(), st.lists(st.integers(), max_size=2))
        )
        if path == "root":
            expected = ("root: a rule must be a JSON object",)
        elif path.endswith(".rule") or path == "rule":
            parent = path.removesuffix("rule").removesuffix(".") or "root"
            expected = (f"{_where(parent, 'not')}: rule",)
        else:
            expected = (f"{path}: input should be a valid dictionary",)
        return Broken(_replace(tree, path, value), mutation, expected)
    if mutation == "unknown_field":
        field = draw(st.sampled_from(["colour", "weight", "rules_", "Type"]))
        rule[field] = draw(SCALARS)
        return Broken(
            _replace(tree, path, rule), mutation, (f"{where}: {field} is not a known field",)
        )
    if mutation == "missing_field":
        field = draw(st.sampled_from(REQUIRED[rule_type]))
        rule.pop(field, None)
        return Broken(_replace(tree, path, rule), mutation, (f"{where}: {field} is required",))
    if mutation == "wrong_type":
        field, values = draw(st.sampled_from(sorted(WRONG_TYPES[rule_type].items())))
        rule[field] = draw(values)
        if rule_type == "not" and field == "rule" and not isinstance(rule[field], dict):
            expected = (f"{where}: rule",)
        else:
            expected = (where, field)
        event(f"wrong type: {rule_type}.{field}")
        return Broken(_replace(tree, path, rule), mutation, expected)
    if mutation == "out_of_range":
        field, values = draw(st.sampled_from(sorted(OUT_OF_RANGE[rule_type].items())))
        rule[field] = draw(values)
        return Broken(_replace(tree, path, rule), mutation, (where, field))
    if mutation == "unknown_operator":
        rule["op"] = draw(st.sampled_from(["approx", "between", "EQ", "", "==", "like"]))
        return Broken(_replace(tree, path, rule), mutation, (f"{where}: op",))
    if mutation == "bad_value":
        op, value, words = draw(BAD_VALUES)
        if rule_type == "recency":
            op, value, words = draw(
                st.sampled_from(
                    [
                        ("within_last_days", 0, "within_last_days needs a whole number"),
                        ("not_within_last_days", "a week", "within_last_days needs a whole"),
                        ("before", "yesterday", "before needs an ISO 8601 date"),
                        ("after", None, "after needs an ISO 8601 date"),
                    ]
                )
            )
        rule["op"], rule["value"] = op, value
        return Broken(_replace(tree, path, rule), mutation, (f"{where}: {words}",))
    if mutation == "bad_window":
        label, window = draw(BAD_WINDOWS)
        rule["window"] = window
        event(f"bad window: {label}")
        return Broken(_replace(tree, path, rule), mutation, (f"{where}: window",))
    if mutation == "bad_filter":
        filters = list(rule.get("filters", []))
        position = draw(st.integers(0, len(filters)))
        filters.insert(position, draw(BAD_FILTERS))
        rule["filters"] = filters
        return Broken(_replace(tree, path, rule), mutation, (f"{where}: filters[{position}]",))
    if mutation == "too_many_filters":
        # Too many filters for any leaf that takes them.
        rule = {"type": "event_count", "event": "e", "count": 1}
        rule["filters"] = [{"property": "p", "op": "exists"}] * (MAX_FILTERS + 1)
        where = _where(path, "event_count")
        return Broken(
            _replace(tree, path, rule), mutation, (f"{where}: filters takes at most {MAX_FILTERS}",)
        )
    if mutation == "empty_group":
        rule["rules"] = []
        return Broken(_replace(tree, path, rule), mutation, (f"{where}: rules needs at least 1",))
    assert mutation == "not_available"
    rule = {"type": "message_engagement", "template_id": 3, "engagement": "opened"}
    return Broken(
        _replace(tree, path, rule),
        mutation,
        (f"{_where(path, 'message_engagement')}: not available yet",),
    )


@pytest.mark.parametrize("mutation", MUTATIONS)
@FUZZ
@given(data=st.data())
def test_every_invalid_rule_is_refused_with_a_message_naming_it(mutation, data):
    broken = data.draw(broken_rules(mutation))
    with pytest.raises(RuleError) as caught:
        parse_definition(broken.definition)
    message = str(caught.value)
    for part in broken.expected:
        assert part in message, (broken.kind, broken.definition, message)


@settings(FUZZ, max_examples=200)
@given(tree=trees(4))
def test_the_valid_trees_the_mutations_start_from_parse(tree):
    """The mutations break valid trees: without them, every generated tree parses."""
    assert parse_definition(tree).type == tree["type"]


@pytest.fixture
def marketer_key(workspace) -> Client:
    """One key for all the examples of a test (each new key writes an audit row)."""
    return secret_key_client(workspace, "marketer")


@pytest.mark.django_db
@pytest.mark.parametrize("mutation", MUTATIONS)
@API_FUZZ
@given(data=st.data())
def test_the_api_refuses_each_invalid_rule_with_its_message_and_stores_nothing(
    workspace, marketer_key, mutation, data
):
    broken = data.draw(broken_rules(mutation))
    response = marketer_key.post(
        "/api/v1/segments/",
        {"name": "Fuzzed", "definition": broken.definition},
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    body = response.json()
    if _has_nan(broken):
        # NaN and Infinity are not JSON: the body is refused before the rule is read.
        assert body["code"] == "parse_error"
        assert "JSON parse error" in body["message"]
    else:
        assert (body["code"], body["message"]) == ("invalid", "The request has invalid fields.")
        [message] = body["errors"]["definition"]
        for part in broken.expected:
            assert part in message, (broken.kind, broken.definition, message)
    assert Segment.objects.filter(workspace=workspace).count() == 0


def _has_nan(broken: Broken) -> bool:
    text = json.dumps(broken.definition)
    return "NaN" in text or "Infinity" in text
