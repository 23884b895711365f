"""Matching one event's properties against property filters, in Python.

The same operators as the segment language's SQL (segments.evaluation), for the
places that look at a single event as it arrives: event triggers, waits for an event,
conditions on the trigger event, conversion goals.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from segments.rules import PropertyFilter

_MISSING = object()


def _lookup(properties: Any, path: str) -> Any:
    value = properties
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _compare(actual: Any, op: str, expected: Any, now: datetime) -> bool:
    if op == "exists":
        return actual is not _MISSING and actual is not None
    if op == "not_exists":
        return actual is _MISSING or actual is None
    if actual is _MISSING or actual is None:
        return op == "ne"
    if op in ("eq", "ne"):
        left, right = _number(actual), _number(expected)
        if left is not None and right is not None and not isinstance(expected, str | bool):
            equal = left == right
        else:
            equal = actual == expected
        return equal if op == "eq" else not equal
    if op in ("gt", "gte", "lt", "lte"):
        left, right = _number(actual), _number(expected)
        if left is None or right is None:
            if isinstance(actual, str) and isinstance(expected, str):
                left, right = actual, expected  # type: ignore[assignment]
            else:
                return False
        return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[
            op
        ]
    if op == "contains":
        if isinstance(actual, list):
            return expected in actual
        return str(expected).lower() in str(actual).lower()
    if op == "in":
        return actual in expected or (
            _number(actual) is not None and _number(actual) in [_number(v) for v in expected]
        )
    if op in ("before", "after", "within_last_days"):
        moment = _moment(actual)
        if moment is None:
            return False
        if op == "within_last_days":
            return now - timedelta(days=int(expected)) <= moment <= now
        bound = _moment(expected)
        if bound is None:
            return False
        return moment < bound if op == "before" else moment > bound
    return False


def filters_match(
    properties: Any, filters: list[PropertyFilter], *, now: datetime | None = None
) -> bool:
    """True when every filter holds for `properties` (an empty list always holds)."""
    now = now or datetime.now(tz=UTC)
    return all(_compare(_lookup(properties, f.property), f.op, f.value, now) for f in filters)
