"""Rules in plain English: "people who did order_completed at least 2 times in the last
7 days". Shown by the builder as the rule is edited, on the segment list and page, and
returned by the API. `rule_summary` accepts a parsed Rule or a definition (dict)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from segments.models import Segment
from segments.rules import (
    And,
    Attribute,
    Between,
    ComputedTrait,
    EventCount,
    EventStep,
    LastDays,
    Membership,
    Not,
    PropertyFilter,
    Recency,
    Rule,
    RuleError,
    Sequence,
    Streak,
    Window,
    parse_definition,
)

_VALUE_OPS = {
    "eq": "is",
    "ne": "is not",
    "gt": "is more than",
    "gte": "is at least",
    "lt": "is less than",
    "lte": "is at most",
    "contains": "contains",
    "in": "is one of",
    "before": "is before",
    "after": "is after",
}
_COLUMN_NAMES = {
    "email": "email",
    "phone": "phone",
    "time_zone": "time zone",
    "locale": "locale",
    "first_seen": "first seen",
    "last_seen": "last seen",
}


def _value(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_value(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _when(value) if _looks_like_time(value) else value
    return f"{value:g}" if isinstance(value, float) else str(value)


def _looks_like_time(value: str) -> bool:
    if len(value) < 10 or value[4:5] != "-":
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _when(value: Any) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        if (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0):
            return value.date().isoformat()
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _comparison(subject: str, op: str, value: Any) -> str:
    if op == "exists":
        return f"{subject} is set"
    if op == "not_exists":
        return f"{subject} is not set"
    if op == "within_last_days":
        return f"{subject} is within the last {_days(value)}"
    return f"{subject} {_VALUE_OPS[op]} {_value(value)}"


def _days(days: int) -> str:
    return "day" if days == 1 else f"{days} days"


def _duration(hours: float) -> str:
    if hours % 24 == 0:
        days = int(hours // 24)
        if days % 7 == 0:
            weeks = days // 7
            return "1 week" if weeks == 1 else f"{weeks} weeks"
        return "1 day" if days == 1 else f"{days} days"
    if hours < 1:
        return f"{round(hours * 60)} minutes"
    return "1 hour" if hours == 1 else f"{hours:g} hours"


def _filters(filters: list[PropertyFilter]) -> str:
    if not filters:
        return ""
    return " where " + " and ".join(
        _comparison(item.property, item.op, item.value) for item in filters
    )


def _window(window: Window) -> str:
    if isinstance(window, LastDays):
        return f" in the last {_days(window.last_days)}"
    if isinstance(window, Between):
        return f" between {_when(window.between[0])} and {_when(window.between[1])}"
    return ""


def _step(step: EventStep) -> str:
    return f"{step.event}{_filters(step.filters)}"


def _times(count: int) -> str:
    return "once" if count == 1 else "twice" if count == 2 else f"{count} times"


def _event_count(rule: EventCount) -> str:
    subject = f"{rule.event}{_filters(rule.filters)}"
    window = _window(rule.window)
    op, count = rule.op, rule.count
    if (op == "eq" and count == 0) or (op == "lt" and count == 1) or (op == "lte" and count == 0):
        return f"did not do {subject}{window}"
    if (op == "gte" and count == 1) or (op == "gt" and count == 0):
        return f"did {subject}{window}"
    phrase = {
        "gte": f"at least {_times(count)}",
        "gt": f"more than {_times(count)}",
        "lte": f"at most {_times(count)}",
        "lt": f"fewer than {_times(count)}",
        "eq": f"exactly {_times(count)}",
    }[op]
    return f"did {subject} {phrase}{window}"


def _sequence(rule: Sequence) -> str:
    anchor = f"their first {rule.first.event}" if rule.anchor == "first" else ""
    first = _step(rule.first)
    window = _window(rule.window)
    if rule.anchor == "first":
        first = f"{first} (counting from {anchor}{window})"
        window = ""
    if rule.negate:
        return (
            f"did {first}{window} and then not {_step(rule.then)} "
            f"within {_duration(rule.within_hours)}"
        )
    return f"did {first}{window}, then {_step(rule.then)} within {_duration(rule.within_hours)}"


def _streak(rule: Streak) -> str:
    text = f"did {rule.event}{_filters(rule.filters)} every day for {rule.days} days in a row"
    if rule.since_signup:
        text += " starting on their signup day"
    if rule.ongoing:
        text += ", up to today or yesterday"
    return text


def _recency(rule: Recency) -> str:
    subject = f"{rule.which} did {rule.event}{_filters(rule.filters)}"
    if rule.op == "within_last_days":
        return f"{subject} in the last {_days(rule.value)}"
    if rule.op == "not_within_last_days":
        return f"{subject} more than {_days(rule.value)} ago"
    return f"{subject} {rule.op} {_when(rule.value)}"


def _attribute(rule: Attribute) -> str:
    subject = _COLUMN_NAMES[rule.column] if rule.column else rule.trait
    return "whose " + _comparison(subject or "", rule.op, rule.value)


_COMPUTED_TRAIT_NAMES = {
    "ltv": "lifetime value",
    "engagement_score": "engagement score",
    "churn_risk": "churn risk",
    "value_tier": "value tier",
}


def _computed_trait(rule: ComputedTrait) -> str:
    subject = _COMPUTED_TRAIT_NAMES[rule.trait]
    value = rule.value
    if rule.trait == "value_tier":
        value = [item.replace("_", " ") for item in value] if rule.op == "in" else value
        value = value.replace("_", " ") if isinstance(value, str) else value
    return "whose " + _comparison(subject, rule.op, value)


def _describe(rule: Rule, names: dict[int, str], nested: bool) -> str:
    if isinstance(rule, And):
        parts = [_describe(child, names, True) for child in rule.rules]
        if len(parts) == 1:
            return parts[0]
        text = f" {rule.type} ".join(parts)
        return f"({text})" if nested else text
    if isinstance(rule, Not):
        inner = rule.rule
        if isinstance(inner, And) and inner.type == "or" and len(inner.rules) > 1:
            return "not (" + " or ".join(_describe(c, names, True) for c in inner.rules) + ")"
        return f"not ({_describe(inner, names, False)})"
    if isinstance(rule, Attribute):
        return _attribute(rule)
    if isinstance(rule, EventCount):
        return "who " + _event_count(rule)
    if isinstance(rule, Sequence):
        return "who " + _sequence(rule)
    if isinstance(rule, Streak):
        return "who " + _streak(rule)
    if isinstance(rule, Recency):
        return "who " + _recency(rule)
    if isinstance(rule, ComputedTrait):
        return _computed_trait(rule)
    if isinstance(rule, Membership):
        name = names.get(rule.segment_id, f"segment {rule.segment_id}")
        return f"who {'are' if rule.is_member else 'are not'} in {name}"
    return rule.type  # pragma: no cover - every parseable type is handled above


def rule_summary(rule: Rule | dict, *, segment_names: dict[int, str] | None = None) -> str:
    """'People who …' / 'People whose …' for a rule; raises RuleError for an invalid definition."""
    if isinstance(rule, dict):
        rule = parse_definition(rule)
    if isinstance(rule, Not):
        return "Everyone except people " + _describe(rule.rule, segment_names or {}, False)
    return "People " + _describe(rule, segment_names or {}, False)


def segment_summary(segment: Segment, segment_names: dict[int, str]) -> str:
    """A segment in a sentence: its rule in English, or where a static list came from.
    Empty for a definition the rule language no longer accepts (see last_error)."""
    if segment.kind == Segment.Kind.STATIC:
        source = f" ({segment.source})" if segment.source else ""
        return f"A fixed list of people{source}"
    try:
        return rule_summary(segment.definition, segment_names=segment_names)
    except RuleError:
        return ""
