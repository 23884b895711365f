"""A plain-Python segment evaluator, the oracle for tests/segments/test_properties.py.

Written from docs/segments.md, not from segments/evaluation.py: it reads the raw JSON
rule (defaults filled in here, not by pydantic), walks each profile's events in a loop,
and knows nothing of SQL. Where the two disagree on generated data, one of them
misreads the docs.

`matches(rule, profile, now=..., workspace_time_zone=...)` takes a rule as JSON (a
valid definition: the caller has it accepted by the real parser) and a `Person`, a
snapshot of one profile with its events and its open segment memberships.

Assumptions about the database the SQL side runs on (true for the embedded server and
checked by the property tests): strings order by code point (the C collation), and
the session time zone is UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Happening:
    """One tracked event of a person."""

    name: str
    at: datetime
    properties: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Person:
    """What a rule can see of one profile."""

    traits: dict
    first_seen: datetime
    last_seen: datetime
    email: str = ""
    phone: str = ""
    time_zone: str = ""
    locale: str = ""
    events: tuple[Happening, ...] = ()
    segment_ids: frozenset[int] = frozenset()  # segments with an open membership row


# --------------------------------------------------------------------------- JSON values

MISSING = object()  # a path that leads nowhere (JSON null is None, which is present)


def lookup(document: Any, path: str) -> Any:
    """Follow a dotted path: object keys, and whole-number parts as array positions."""
    node = document
    for part in path.split("."):
        if isinstance(node, dict):
            if part not in node:
                return MISSING
            node = node[part]
        elif isinstance(node, list) and re.fullmatch(r"[0-9]+", part):
            if int(part) >= len(node):
                return MISSING
            node = node[int(part)]
        else:
            return MISSING
    return node


def json_type(value: Any) -> str:
    if value is MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _number(value: int | float) -> Decimal:
    # The decimal a JSON number stands for (a float is written as its repr).
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def json_equal(left: Any, right: Any) -> bool:
    """Equal as JSON values: same type; numbers by value (12 == 12.0), true is not 1."""
    kind = json_type(left)
    if kind != json_type(right) or kind == "missing":
        return False
    if kind == "number":
        return _number(left) == _number(right)
    if kind == "array":
        return len(left) == len(right) and all(map(json_equal, left, right))
    if kind == "object":
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    return left == right


ISO_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?"
)


def iso_timestamp(text: Any) -> datetime | None:
    """An ISO 8601 date or datetime as an instant (dates are midnight UTC, no offset is
    UTC); None for anything else, including impossible dates."""
    match = ISO_TIMESTAMP.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    zone = UTC
    if offset and offset != "Z":
        digits = offset[1:].replace(":", "")
        minutes = int(digits[:2]) * 60 + int(digits[2:] or 0)
        zone = timezone((1 if offset[0] == "+" else -1) * timedelta(minutes=minutes))
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
            tzinfo=zone,
        )
    except ValueError:
        return None


def _compare_time(moment: datetime | None, op: str, value: Any, now: datetime) -> bool:
    if moment is None:
        return False
    if op == "before":
        return moment < iso_timestamp(value)
    if op == "after":
        return moment > iso_timestamp(value)
    if op == "within_last_days":
        return now - value * DAY < moment <= now
    raise AssertionError(op)


def value_matches(found: Any, op: str, value: Any, now: datetime) -> bool:
    """A value operator (docs: "Value operators") applied to what a path found."""
    kind = json_type(found)
    if op == "exists":
        return kind not in ("missing", "null")
    if op == "not_exists":
        return kind in ("missing", "null")
    if op == "eq":
        return json_equal(found, value)
    if op == "ne":
        return not json_equal(found, value)
    if op in ("gt", "gte", "lt", "lte"):
        if json_type(value) != kind:
            return False  # numbers with numbers, strings with strings
        left, right = (_number(found), _number(value)) if kind == "number" else (found, value)
        return {
            "gt": left > right,
            "gte": left >= right,
            "lt": left < right,
            "lte": left <= right,
        }[op]
    if op == "contains":
        if isinstance(value, str):
            if kind == "string":
                return value.lower() in found.lower()
            if kind == "array":
                return any(
                    json_type(item) == "string" and item.lower() == value.lower() for item in found
                )
            return False
        return kind == "array" and any(json_equal(item, value) for item in found)
    if op == "in":
        return kind in ("string", "number", "boolean") and any(
            json_equal(found, item) for item in value
        )
    return _compare_time(iso_timestamp(found), op, value, now)


# --------------------------------------------------------------------------- windows, events


def in_window(moment: datetime, window: dict, now: datetime) -> bool:
    if "last_days" in window:
        return now - window["last_days"] * DAY < moment <= now
    if "between" in window:
        start, end = window["between"]
        if len(end) == 10:  # a date: the whole UTC day
            return iso_timestamp(start) <= moment < iso_timestamp(end) + DAY
        return iso_timestamp(start) <= moment <= iso_timestamp(end)
    return True


def _named(person: Person, step: dict, now: datetime) -> list[Happening]:
    """The person's events named step["event"] whose properties pass every filter."""
    return [
        event
        for event in person.events
        if event.name == step["event"]
        and all(
            value_matches(
                lookup(event.properties, item["property"]), item["op"], item.get("value"), now
            )
            for item in step.get("filters", [])
        )
    ]


@cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def local_zone(person: Person, workspace_time_zone: str) -> ZoneInfo:
    """The profile's zone when it is a known IANA name, else the workspace's, else UTC."""
    if person.time_zone in _known_zones():
        return ZoneInfo(person.time_zone)
    return ZoneInfo(workspace_time_zone or "UTC")


# --------------------------------------------------------------------------- leaves


def _attribute(rule: dict, person: Person, now: datetime) -> bool:
    op, value = rule["op"], rule.get("value")
    column = rule.get("column")
    if column in ("first_seen", "last_seen"):
        moment = getattr(person, column)
        if op in ("exists", "not_exists"):
            return op == "exists"
        return _compare_time(moment, op, value, now)
    if column is not None:
        found = getattr(person, column) or MISSING  # "" is not set
    else:
        found = lookup(person.traits, rule["trait"])
    return value_matches(found, op, value, now)


def _event_count(rule: dict, person: Person, now: datetime) -> bool:
    window = rule.get("window", {"ever": True})
    count = 0
    for event in _named(person, rule, now):
        if in_window(event.at, window, now):
            count += 1
    target = rule["count"]
    return {
        "gte": count >= target,
        "gt": count > target,
        "eq": count == target,
        "lte": count <= target,
        "lt": count < target,
    }[rule.get("op", "gte")]


def _sequence(rule: dict, person: Person, now: datetime) -> bool:
    hours = timedelta(hours=rule["within_hours"])
    window = rule.get("window", {"ever": True})
    starts = sorted(
        e.at for e in _named(person, rule["first"], now) if in_window(e.at, window, now)
    )
    if rule.get("anchor", "any") == "first":
        starts = starts[:1]
    follow_ups = [e.at for e in _named(person, rule["then"], now)]
    for start in starts:
        followed = any(start < later <= start + hours for later in follow_ups)
        if rule.get("negate", False):
            if start + hours <= now and not followed:
                return True
        elif followed:
            return True
    return False


def _runs(days: set[date]) -> list[tuple[date, date]]:
    """Maximal runs of consecutive days, as (first, last)."""
    runs = []
    for day in sorted(days):
        if runs and runs[-1][1] + DAY == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _streak(rule: dict, person: Person, now: datetime, workspace_time_zone: str) -> bool:
    zone = local_zone(person, workspace_time_zone)
    days = {event.at.astimezone(zone).date() for event in _named(person, rule, now)}
    length = rule["days"]
    signup = person.first_seen.astimezone(zone).date()
    yesterday = now.astimezone(zone).date() - DAY
    for first, last in _runs(days):
        if rule.get("since_signup", False):
            # The `length` days from the signup day all fall inside this run.
            long_enough = first <= signup and signup + (length - 1) * DAY <= last
        else:
            long_enough = (last - first).days + 1 >= length
        if long_enough and (not rule.get("ongoing", False) or last >= yesterday):
            return True
    return False


def _recency(rule: dict, person: Person, now: datetime) -> bool:
    moments = [event.at for event in _named(person, rule, now)]
    if not moments:
        return False
    moment = min(moments) if rule.get("which", "last") == "first" else max(moments)
    if rule["op"] == "not_within_last_days":
        return moment <= now - rule["value"] * DAY
    return _compare_time(moment, rule["op"], rule["value"], now)


def matches(rule: dict, person: Person, *, now: datetime, workspace_time_zone: str) -> bool:
    """Does `person` match the rule at `now`?"""
    kind = rule["type"]
    if kind in ("and", "or"):
        results = (
            matches(child, person, now=now, workspace_time_zone=workspace_time_zone)
            for child in rule["rules"]
        )
        return all(results) if kind == "and" else any(results)
    if kind == "not":
        return not matches(rule["rule"], person, now=now, workspace_time_zone=workspace_time_zone)
    if kind == "attribute":
        return _attribute(rule, person, now)
    if kind == "event_count":
        return _event_count(rule, person, now)
    if kind == "sequence":
        return _sequence(rule, person, now)
    if kind == "streak":
        return _streak(rule, person, now, workspace_time_zone)
    if kind == "recency":
        return _recency(rule, person, now)
    if kind == "membership":
        return (rule["segment_id"] in person.segment_ids) == rule.get("in", True)
    raise AssertionError(f"the reference does not know rules of type {kind}")
