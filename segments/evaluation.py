"""Segment evaluation: a parsed Rule compiled to one SQL condition over
`segments_profile p`, run by PostgreSQL.

Every user value, JSON key and event name goes in as a query parameter (psycopg %s);
the only text spliced into the SQL is this module's own. Event rules are correlated
subqueries on segments_event, which the (profile_id, name, timestamp) index serves.

`now` is a parameter everywhere so that tests (and recomputes) can fix the clock.
docs/segments.md describes the semantics, including time zones and ties.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from engagement_site.workspaces.models import Workspace
from segments.models import Segment
from segments.rules import (
    TIME_COLUMNS,
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


@dataclass(frozen=True)
class Fragment:
    """A piece of SQL with its parameters, in textual order."""

    sql: str
    params: tuple = ()


def sql(template: str, *parts: Any) -> Fragment:
    """Fill each %s of `template` with the next part: a Fragment is inlined (its own
    placeholders and parameters kept in order), anything else becomes a parameter.
    Templates hold no other % sign."""
    pieces = template.split("%s")
    if len(pieces) != len(parts) + 1:
        raise ValueError(f"{len(pieces) - 1} placeholders for {len(parts)} parts")
    text, params = [pieces[0]], []
    for part, piece in zip(parts, pieces[1:], strict=True):
        if isinstance(part, Fragment):
            text.append(part.sql)
            params.extend(part.params)
        else:
            text.append("%s")
            params.append(part)
        text.append(piece)
    return Fragment("".join(text), tuple(params))


def _join(separator: str, fragments: Iterable[Fragment]) -> Fragment:
    fragments = list(fragments)
    return sql(separator.join(["%s"] * len(fragments)), *fragments)


TRUE = Fragment("TRUE")

_time_zones: list[str] | None = None


def postgres_time_zones() -> list[str]:
    """The time zone names PostgreSQL knows, read once per process: reading the
    pg_timezone_names view costs tens of milliseconds (it walks the zone files), too
    much for every real-time evaluation of a streak rule."""
    global _time_zones
    if _time_zones is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT array_agg(name ORDER BY name) FROM pg_timezone_names")
            _time_zones = list(cursor.fetchone()[0])
    return _time_zones


def _jsonb(value: Any) -> Fragment:
    return sql("%s::jsonb", json.dumps(value))


def _compare_json(value_sql: Fragment, op: str, value: Any, *, now: datetime) -> Fragment:
    """`value_sql` (a jsonb expression, NULL when absent) compared with a rule value.
    Ordering operators compare numbers with numbers and strings with strings; a value
    of another JSON type never matches."""
    if op == "exists":
        return sql("(%s IS NOT NULL AND jsonb_typeof(%s) <> 'null')", value_sql, value_sql)
    if op == "not_exists":
        return sql("(%s IS NULL OR jsonb_typeof(%s) = 'null')", value_sql, value_sql)
    if op == "eq":
        return sql("COALESCE(%s = %s, FALSE)", value_sql, _jsonb(value))
    if op == "ne":
        return sql("NOT COALESCE(%s = %s, FALSE)", value_sql, _jsonb(value))
    if op in ("gt", "gte", "lt", "lte"):
        symbol = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
        if isinstance(value, str):
            return sql(
                f"COALESCE(CASE WHEN jsonb_typeof(%s) = 'string' THEN (%s #>> '{{}}') {symbol} %s"
                " END, FALSE)",
                value_sql,
                value_sql,
                value,
            )
        return sql(
            "COALESCE(CASE WHEN jsonb_typeof(%s) = 'number' THEN (%s #>> '{}')::numeric"
            f" {symbol} %s::numeric END, FALSE)",
            value_sql,
            value_sql,
            str(value),
        )
    if op == "contains":
        if isinstance(value, str):
            # A substring of a string or an element of an array, ignoring case.
            return sql(
                "COALESCE(CASE jsonb_typeof(%s) WHEN 'string' THEN strpos(lower(%s #>> '{}'),"
                " lower(%s)) > 0 WHEN 'array' THEN EXISTS (SELECT 1 FROM"
                " jsonb_array_elements(%s) element WHERE jsonb_typeof(element) = 'string'"
                " AND lower(element #>> '{}') = lower(%s)) END, FALSE)",
                value_sql,
                value_sql,
                value,
                value_sql,
                value,
            )
        return sql(
            "COALESCE(jsonb_typeof(%s) = 'array' AND %s @> %s, FALSE)",
            value_sql,
            value_sql,
            _jsonb([value]),
        )
    if op == "in":
        # A JSON array contains a scalar that equals one of its elements.
        return sql(
            "COALESCE(jsonb_typeof(%s) IN ('string', 'number', 'boolean') AND %s @> %s, FALSE)",
            value_sql,
            _jsonb(value),
            value_sql,
        )
    return _compare_time(
        sql("segments_try_timestamptz(%s #>> '{}')", value_sql), op, value, now=now
    )


def _compare_time(time_sql: Fragment, op: str, value: Any, *, now: datetime) -> Fragment:
    if op == "before":
        return sql("COALESCE(%s < %s::timestamptz, FALSE)", time_sql, value)
    if op == "after":
        return sql("COALESCE(%s > %s::timestamptz, FALSE)", time_sql, value)
    if op == "within_last_days":
        return sql(
            "COALESCE(%s > %s::timestamptz AND %s <= %s::timestamptz, FALSE)",
            time_sql,
            now - timedelta(days=value),
            time_sql,
            now,
        )
    raise RuleError(f"unknown operator {op}")  # pragma: no cover: the schema forbids it


def _filters(alias: str, filters: list[PropertyFilter], *, now: datetime) -> Fragment:
    conditions = [
        _compare_json(
            sql(f"({alias}.properties #> %s::text[])", item.property.split(".")),
            item.op,
            item.value,
            now=now,
        )
        for item in filters
    ]
    return _join(" AND ", conditions) if conditions else TRUE


def _window(alias: str, window: Window, *, now: datetime) -> Fragment:
    """last_days: (now - N days, now]; between: both ends included; ever: any time."""
    if isinstance(window, LastDays):
        return sql(
            f"{alias}.timestamp > %s::timestamptz AND {alias}.timestamp <= %s::timestamptz",
            now - timedelta(days=window.last_days),
            now,
        )
    if isinstance(window, Between):
        return sql(
            f"{alias}.timestamp >= %s::timestamptz AND {alias}.timestamp <= %s::timestamptz",
            window.start,
            window.end,
        )
    return TRUE


def _events(alias: str, step: EventStep | EventCount | Streak | Recency, *, now: datetime):
    """The events of profile p named step.event and matching its filters."""
    return sql(
        f"segments_event {alias} WHERE {alias}.profile_id = p.id AND {alias}.name = %s AND %s",
        step.event,
        _filters(alias, step.filters, now=now),
    )


class _Compiler:
    """`whole_workspace`: the condition will be tested on every profile of the workspace
    (a full evaluation, a preview) rather than on a batch's few, so a rule may be
    compiled as one grouped scan of the workspace's events instead of an index probe
    per profile."""

    def __init__(
        self,
        *,
        workspace: Workspace,
        now: datetime,
        segment_id: int | None,
        whole_workspace: bool = False,
    ):
        self.workspace = workspace
        self.now = now
        self.segment_id = segment_id
        self.whole_workspace = whole_workspace

    def compile(self, rule: Rule) -> Fragment:
        if isinstance(rule, And):
            separator = " AND " if rule.type == "and" else " OR "
            return sql("(%s)", _join(separator, (self.compile(child) for child in rule.rules)))
        if isinstance(rule, Not):
            return sql("NOT (%s)", self.compile(rule.rule))
        method = getattr(self, f"_{rule.type}", None)
        if method is None:
            raise RuleError(f"rules of type {rule.type} cannot be evaluated yet")
        return method(rule)

    def _attribute(self, rule: Attribute) -> Fragment:
        if rule.column in TIME_COLUMNS:
            column = Fragment(f"p.{rule.column}")
            if rule.op == "exists":
                return Fragment(f"(p.{rule.column} IS NOT NULL)")
            if rule.op == "not_exists":
                return Fragment(f"(p.{rule.column} IS NULL)")
            return _compare_time(column, rule.op, rule.value, now=self.now)
        if rule.column is not None:
            # Text columns: "" is the column's "not set", as for a missing trait.
            value_sql = Fragment(f"to_jsonb(NULLIF(p.{rule.column}, ''))")
        else:
            value_sql = sql("(p.traits #> %s::text[])", rule.path)
        return _compare_json(value_sql, rule.op, rule.value, now=self.now)

    def _event_count(self, rule: EventCount) -> Fragment:
        window = _window("e", rule.window, now=self.now)
        if (rule.op == "gte" and rule.count == 1) or (rule.op == "gt" and rule.count == 0):
            return sql("EXISTS (SELECT 1 FROM %s AND %s)", _events("e", rule, now=self.now), window)
        symbol = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "="}[rule.op]
        needs_an_event = (
            (rule.op == "gte" and rule.count >= 1)
            or rule.op == "gt"
            or (rule.op == "eq" and rule.count >= 1)
        )
        if self.whole_workspace and needs_an_event:
            # Over every profile, one grouped scan of the window's events (through the
            # (workspace, name, timestamp) index) beats 100,000 per-profile probes:
            # 1.1 s instead of 2.1 s on the benchmark's data (docs/performance.md).
            # Only for counts a profile without events cannot satisfy.
            return sql(
                "p.id IN (SELECT e.profile_id FROM segments_event e"
                " WHERE e.workspace_id = %s AND e.name = %s AND %s AND %s"
                f" GROUP BY e.profile_id HAVING count(*) {symbol} %s)",
                self.workspace.pk,
                rule.event,
                _filters("e", rule.filters, now=self.now),
                window,
                rule.count,
            )
        return sql(
            f"((SELECT count(*) FROM %s AND %s) {symbol} %s)",
            _events("e", rule, now=self.now),
            window,
            rule.count,
        )

    def _sequence(self, rule: Sequence) -> Fragment:
        hours = timedelta(hours=rule.within_hours)
        then = sql(
            "EXISTS (SELECT 1 FROM %s AND b.timestamp > a.timestamp"
            " AND b.timestamp <= a.timestamp + %s::interval)",
            _events("b", rule.then, now=self.now),
            hours,
        )
        if rule.negate:
            # "A and not B within N hours" is only known once the N hours have passed.
            then = sql(
                "a.timestamp + %s::interval <= %s::timestamptz AND NOT %s", hours, self.now, then
            )
        # anchor "first": only the earliest first event (NULL when there is none).
        selected = "min(a.timestamp) AS timestamp" if rule.anchor == "first" else "a.timestamp"
        anchors = sql(
            f"SELECT {selected} FROM %s AND %s",
            _events("a", rule.first, now=self.now),
            _window("a", rule.window, now=self.now),
        )
        return sql(
            "EXISTS (SELECT 1 FROM (%s) a WHERE a.timestamp IS NOT NULL AND %s)", anchors, then
        )

    def _local_time_zone(self) -> Fragment:
        """The profile's time zone when PostgreSQL knows it, else the workspace's."""
        return sql(
            "(CASE WHEN p.time_zone = ANY(%s::text[]) THEN p.time_zone ELSE %s END)",
            postgres_time_zones(),
            self.workspace.time_zone or "UTC",
        )

    def _streak(self, rule: Streak) -> Fragment:
        zone = self._local_time_zone()
        # Gaps and islands: consecutive days share day - row_number().
        having = [sql("count(*) >= %s", rule.days)]
        if rule.since_signup:
            # The run holds the signup day and the days - 1 after it; days before
            # signup (events older than first_seen) neither count nor spoil it.
            signup = sql("(p.first_seen AT TIME ZONE %s)::date", zone)
            having.append(
                sql(
                    "min(s.day) <= %s AND max(s.day) >= %s + %s::int", signup, signup, rule.days - 1
                )
            )
        if rule.ongoing:
            having.append(
                sql("max(s.day) >= (%s::timestamptz AT TIME ZONE %s)::date - 1", self.now, zone)
            )
        return sql(
            "EXISTS (SELECT 1 FROM (SELECT d.day, d.day - row_number() OVER (ORDER BY d.day)::int"
            " AS island FROM (SELECT DISTINCT (e.timestamp AT TIME ZONE %s)::date AS day FROM %s)"
            " d) s GROUP BY s.island HAVING %s)",
            zone,
            _events("e", rule, now=self.now),
            _join(" AND ", having),
        )

    def _recency(self, rule: Recency) -> Fragment:
        """The first / last time compared to a bound, written as EXISTS / NOT EXISTS on
        time ranges instead of comparing min() / max(): each probe is one index range
        scan limited to the partitions of its range, where the aggregate read every
        partition (twice for within_last_days). E.g. "last time within the last N days"
        = an event in (now - N days, now] and none after now."""
        events = _events("e", rule, now=self.now)

        def some(condition: str, bound: Any) -> Fragment:
            return sql(
                f"EXISTS (SELECT 1 FROM %s AND e.timestamp {condition} %s::timestamptz)",
                events,
                bound,
            )

        def none(condition: str, bound: Any) -> Fragment:
            return sql("NOT %s", some(condition, bound))

        first = rule.which == "first"
        if rule.op == "within_last_days":
            start = self.now - timedelta(days=rule.value)
            inside = sql(
                "EXISTS (SELECT 1 FROM %s AND e.timestamp > %s::timestamptz"
                " AND e.timestamp <= %s::timestamptz)",
                events,
                start,
                self.now,
            )
            return sql("(%s AND %s)", inside, none("<=", start) if first else none(">", self.now))
        if rule.op == "not_within_last_days":
            cutoff = self.now - timedelta(days=rule.value)
            if first:
                return some("<=", cutoff)
            return sql("(%s AND %s)", some("<=", cutoff), none(">", cutoff))
        if rule.op == "before":
            if first:
                return some("<", rule.value)
            return sql("(%s AND %s)", some("<", rule.value), none(">=", rule.value))
        if rule.op == "after":
            if first:
                return sql("(%s AND %s)", some(">", rule.value), none("<=", rule.value))
            return some(">", rule.value)
        raise RuleError(f"unknown operator {rule.op}")  # pragma: no cover: the schema forbids it

    def _membership(self, rule: Membership) -> Fragment:
        if rule.segment_id == self.segment_id:
            raise RuleError("membership: a segment cannot depend on itself")
        if not Segment.objects.filter(workspace=self.workspace, pk=rule.segment_id).exists():
            raise RuleError(f"membership: segment {rule.segment_id} is not in this workspace")
        exists = sql(
            "EXISTS (SELECT 1 FROM segments_segmentmembership m WHERE m.segment_id = %s"
            " AND m.profile_id = p.id AND m.exited_at IS NULL)",
            rule.segment_id,
        )
        return exists if rule.is_member else sql("NOT %s", exists)

    def _computed_trait(self, rule: ComputedTrait) -> Fragment:
        """The profile's analytics_customervalue row (analytics/value.py). Without a
        row (not computed yet) only ne matches, as for a missing trait."""
        column = {
            "ltv": "v.ltv",
            "engagement_score": "v.engagement_score",
            "churn_risk": "v.churn_risk",
            "value_tier": "v.value_tier",
        }[rule.trait]
        if rule.op == "in":
            condition = sql(f"{column} = ANY(%s::text[])", list(rule.value))
        elif rule.trait == "value_tier":
            condition = sql(f"{column} = %s", rule.value)
        else:
            symbol = {"eq": "=", "ne": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
            condition = sql(f"{column} {symbol[rule.op]} %s::numeric", str(rule.value))
        exists = sql(
            "EXISTS (SELECT 1 FROM analytics_customervalue v WHERE v.profile_id = p.id AND %s)",
            condition,
        )
        return sql("NOT %s", exists) if rule.op == "ne" else exists


def _rule_of(segment_or_definition: Segment | dict | Rule) -> tuple[Rule, int | None]:
    if isinstance(segment_or_definition, Segment):
        return parse_definition(segment_or_definition.definition), segment_or_definition.pk
    if isinstance(segment_or_definition, dict):
        return parse_definition(segment_or_definition), None
    return segment_or_definition, None


def segment_condition(
    *,
    segment_or_definition: Segment | dict | Rule,
    workspace: Workspace,
    now: datetime,
    whole_workspace: bool = False,
) -> Fragment:
    """The rule as a condition on `segments_profile p` (for previews and counts);
    `whole_workspace` when it will be tested on all the workspace's profiles."""
    rule, segment_id = _rule_of(segment_or_definition)
    return _Compiler(
        workspace=workspace, now=now, segment_id=segment_id, whole_workspace=whole_workspace
    ).compile(rule)


def _evaluate(
    *,
    segment_or_definition: Segment | dict | Rule,
    workspace: Workspace,
    now: datetime | None,
    profile_ids: list[int] | None,
) -> set[int]:
    condition = segment_condition(
        segment_or_definition=segment_or_definition,
        workspace=workspace,
        now=now or timezone.now(),
        whole_workspace=profile_ids is None,
    )
    query = sql("SELECT p.id FROM segments_profile p WHERE p.workspace_id = %s", workspace.pk)
    if profile_ids is not None:
        query = sql("%s AND p.id = ANY(%s::bigint[])", query, list(profile_ids))
    query = sql("%s AND (%s)", query, condition)
    with connection.cursor() as cursor:
        cursor.execute(query.sql, query.params)
        return {row[0] for row in cursor.fetchall()}


def segment_evaluate_all(
    *,
    segment_or_definition: Segment | dict | Rule,
    workspace: Workspace,
    now: datetime | None = None,
) -> set[int]:
    """The ids of the workspace's profiles that match the rule at `now`.

    Raises RuleError for an invalid definition or a membership rule naming a segment
    outside the workspace (or the segment itself)."""
    return _evaluate(
        segment_or_definition=segment_or_definition, workspace=workspace, now=now, profile_ids=None
    )


def segment_evaluate_for_profiles(
    *,
    segment_or_definition: Segment | dict | Rule,
    workspace: Workspace,
    profile_ids: Iterable[int],
    now: datetime | None = None,
) -> set[int]:
    """The real-time path: which of `profile_ids` (ids of other workspaces are ignored)
    match the rule at `now`. Agrees with segment_evaluate_all restricted to them."""
    return _evaluate(
        segment_or_definition=segment_or_definition,
        workspace=workspace,
        now=now,
        profile_ids=list(profile_ids),
    )


class PreviewTimeout(Exception):
    """The rule took longer than the preview's time limit to evaluate."""


def segment_preview(
    *,
    segment_or_definition: Segment | dict | Rule,
    workspace: Workspace,
    sample_size: int = 10,
    now: datetime | None = None,
    timeout_ms: int = 5000,
) -> tuple[int, list[int]]:
    """How many of the workspace's profiles match a (possibly unsaved) rule, and the
    ids of up to `sample_size` of them (most recently seen first): the builder's live
    estimate and the API's preview. One statement, bounded by `timeout_ms` (raises
    PreviewTimeout). Raises RuleError for an invalid definition."""
    from django.db import OperationalError, transaction
    from psycopg import errors

    condition = segment_condition(
        segment_or_definition=segment_or_definition,
        workspace=workspace,
        now=now or timezone.now(),
        whole_workspace=True,
    )
    query = sql(
        "SELECT p.id, p.last_seen FROM segments_profile p WHERE p.workspace_id = %s AND (%s)",
        workspace.pk,
        condition,
    )
    query = sql(
        "WITH matching AS MATERIALIZED (%s) SELECT (SELECT count(*) FROM matching), "
        "ARRAY(SELECT id FROM matching ORDER BY last_seen DESC, id DESC LIMIT %s)",
        query,
        sample_size,
    )
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = %s", [int(timeout_ms)])
            cursor.execute(query.sql, query.params)
            count, sample = cursor.fetchone()
    except OperationalError as error:
        if isinstance(error.__cause__, errors.QueryCanceled):
            raise PreviewTimeout(
                f"The rule took longer than {timeout_ms / 1000:g} s to evaluate."
            ) from None
        raise
    return count, list(sample)
