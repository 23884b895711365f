"""The rule language schema: valid trees parse, invalid ones name the offending rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from segments.rules import (
    MAX_DEPTH,
    MAX_NODES,
    And,
    Attribute,
    EventCount,
    Membership,
    Not,
    RuleError,
    Sequence,
    Streak,
    parse_definition,
)


def event_count(**fields) -> dict:
    return {"type": "event_count", "event": "order_completed", "count": 1, **fields}


def error_of(definition) -> str:
    with pytest.raises(RuleError) as caught:
        parse_definition(definition)
    return str(caught.value)


def test_a_nested_tree_parses_into_rule_models():
    rule = parse_definition(
        {
            "type": "and",
            "rules": [
                {"type": "attribute", "trait": "plan.tier", "op": "eq", "value": "pro"},
                {
                    "type": "or",
                    "rules": [
                        event_count(window={"last_days": 7}),
                        {"type": "not", "rule": {"type": "membership", "segment_id": 4}},
                    ],
                },
            ],
        }
    )

    assert isinstance(rule, And)
    assert rule.type == "and"
    assert isinstance(rule.rules[0], Attribute)
    assert rule.rules[0].path == ["plan", "tier"]
    inner = rule.rules[1]
    assert isinstance(inner, And)
    assert inner.type == "or"
    assert isinstance(inner.rules[0], EventCount)
    assert inner.rules[0].window.last_days == 7
    assert isinstance(inner.rules[1], Not)
    assert inner.rules[1].rule == Membership(type="membership", segment_id=4, is_member=True)


def test_the_error_names_the_offending_rule_by_its_path():
    definition = {
        "type": "and",
        "rules": [
            event_count(),
            {"type": "or", "rules": [event_count(count=-1)]},
        ],
    }

    assert error_of(definition) == "rules[1].rules[0] (event_count): count must be ≥ 0"


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (
            {"type": "and", "rules": [{"type": "nope"}]},
            "rules[0]: unknown rule type 'nope'; expected one of and, or, not, attribute, "
            "event_count, sequence, streak, recency, membership, message_engagement, "
            "computed_trait",
        ),
        ({"type": "not", "rule": {}}, 'rule: needs a rule type in its "type" field'),
        ({"type": "and", "rules": []}, "root (and): rules needs at least 1 item(s)"),
        (
            event_count(filters=[{"property": "a", "op": "exists"}] * 21),
            "root (event_count): filters takes at most 20 item(s)",
        ),
        (event_count(windw={"ever": True}), "root (event_count): windw is not a known field"),
        (
            event_count(window={"last_days": 0}),
            "root (event_count): window.last_days must be ≥ 1",
        ),
        (
            event_count(window={"lately": 3}),
            'root (event_count): window needs one of {"last_days": N}, '
            '{"between": [start, end]}, {"ever": true}',
        ),
        (
            event_count(window={"between": ["2026-02-01", "2026-01-01"]}),
            "root (event_count): window.between needs a start before its end",
        ),
        (
            {"type": "attribute", "trait": "plan", "column": "email", "op": "exists"},
            "root (attribute): needs exactly one of trait or column",
        ),
        (
            {"type": "attribute", "trait": "signup", "op": "before", "value": "2026-13-01"},
            "root (attribute): before needs an ISO 8601 date or datetime",
        ),
        (
            {"type": "attribute", "column": "first_seen", "op": "eq", "value": 3},
            "root (attribute): column first_seen takes before, after or within_last_days",
        ),
        (
            {"type": "attribute", "trait": "plan", "op": "in", "value": []},
            "root (attribute): in needs a non-empty list of values",
        ),
        (
            {"type": "attribute", "trait": "plan", "op": "exists", "value": 1},
            "root (attribute): exists takes no value",
        ),
        (
            {
                "type": "sequence",
                "first": {"event": "a", "filters": [{"property": "x.", "op": "exists"}]},
                "then": {"event": "b"},
                "within_hours": 2,
            },
            "root (sequence): first.filters[0].property must be a dotted path without empty parts",
        ),
        (
            {"type": "or", "rules": [{"type": "streak", "event": "login", "days": 0}]},
            "rules[0] (streak): days must be ≥ 1",
        ),
        (
            {"type": "recency", "event": "login", "op": "within_last_days", "value": 0},
            "root (recency): within_last_days needs a whole number of days ≥ 1",
        ),
        (
            {"type": "and", "rules": [{"type": "message_engagement", "template_id": 3}]},
            "rules[0] (message_engagement): not available yet: needs delivery",
        ),
        (
            {"type": "computed_trait", "trait": "value_tier", "op": "gt", "value": "loyal"},
            "root (computed_trait): value_tier takes eq, ne or in",
        ),
        (
            event_count(filters=[{"property": "total", "op": "gt", "value": float("nan")}]),
            "root (event_count): filters[0] gt needs a finite number (not NaN or infinity)",
        ),
        (
            event_count(filters=[{"property": "total", "op": "in", "value": [1, float("inf")]}]),
            "root (event_count): filters[0] in takes finite numbers only (no NaN or infinity)",
        ),
    ],
)
def test_invalid_definitions_are_rejected_with_a_clear_message(definition, message):
    assert error_of(definition) == message


def test_a_definition_must_be_an_object():
    assert error_of([event_count()]) == "root: a rule must be a JSON object"


def test_depth_is_limited():
    definition: dict = event_count()
    for _ in range(MAX_DEPTH):
        definition = {"type": "not", "rule": definition}

    message = error_of(definition)

    assert message == f"{'.'.join(['rule'] * MAX_DEPTH)}: rules nest deeper than 8 levels"


def test_size_is_limited():
    definition = {"type": "or", "rules": [event_count() for _ in range(MAX_NODES)]}

    assert error_of(definition) == f"the definition has more than {MAX_NODES} rules"


def test_dates_are_whole_utc_days_and_naive_datetimes_are_utc():
    rule = parse_definition(event_count(window={"between": ["2026-01-01", "2026-01-31"]}))
    assert rule.window.start == datetime(2026, 1, 1, tzinfo=UTC)
    assert rule.window.end == datetime(2026, 1, 31, 23, 59, 59, 999999, tzinfo=UTC)

    attribute = parse_definition(
        {"type": "attribute", "trait": "renewal", "op": "after", "value": "2026-03-01T10:00"}
    )
    assert attribute.value == "2026-03-01T10:00:00+00:00"


def test_the_two_brief_examples_parse():
    streak = parse_definition(
        {"type": "streak", "event": "logged_in", "days": 10, "since_signup": True}
    )
    sequence = parse_definition(
        {
            "type": "sequence",
            "first": {"event": "order_completed"},
            "then": {"event": "order_completed"},
            "within_hours": 168,
            "anchor": "first",
        }
    )

    assert isinstance(streak, Streak)
    assert (streak.days, streak.since_signup, streak.ongoing) == (10, True, False)
    assert isinstance(sequence, Sequence)
    assert (sequence.anchor, sequence.negate, sequence.within_hours) == ("first", False, 168)
