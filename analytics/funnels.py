"""Funnel and retention reports over a workspace's events (segments_event).

Each report is one set-based SQL statement; nothing loops over people in Python.
Event steps use the segment rule language's model (`segments.rules.EventStep`: an event
name and property filters) and its SQL compiler for the filters, so a filter means the
same thing in a segment, a funnel and a retention report. docs/analytics.md
("Funnels and retention") states the definitions these functions implement.

Dates are local days of the workspace's time zone; retention weeks start on Monday
00:00 local time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from django.db import connection
from django.utils import timezone

from analytics.filters import DateRange
from analytics.stats import ratio
from engagement_site.workspaces.models import Workspace
from segments.evaluation import TRUE, Fragment, sql
from segments.evaluation import _filters as event_filters  # the segments' filter compiler
from segments.rules import EventStep

MIN_STEPS = 2
MAX_STEPS = 6
MAX_WINDOW_DAYS = 90
MAX_RANGE_DAYS = 366
MAX_RETENTION_WEEKS = 12
BREAKDOWN_TOP_VALUES = 5
NO_VALUE = "(none)"
OTHER = "Other"
BreakdownSource = Literal["trait", "property"]


class ReportInputError(ValueError):
    """Input a report cannot run with; `field` names the offending field (as the API and
    the form call it), the message says what is wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --------------------------------------------------------------------------- checks


def unknown_event_names(*, workspace: Workspace, names: list[str]) -> list[str]:
    """Which of `names` the workspace has never received, in the given order (one
    statement; each name is one probe of the (workspace, name, timestamp) index)."""
    if not names:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.name FROM unnest(%s::text[]) WITH ORDINALITY AS n(name, position)"
            " WHERE NOT EXISTS (SELECT 1 FROM segments_event e"
            " WHERE e.workspace_id = %s AND e.name = n.name) ORDER BY n.position",
            [list(names), workspace.pk],
        )
        return [row[0] for row in cursor.fetchall()]


def _check_events(*, workspace: Workspace, named: list[tuple[str, str]]) -> None:
    """Refuse the first (field, event name) pair whose event the workspace never had."""
    unknown = set(unknown_event_names(workspace=workspace, names=[name for _, name in named]))
    for field_name, name in named:
        if name in unknown:
            raise ReportInputError(field_name, f"no event named {name!r} in this workspace")


def _check_range(start: date, end: date) -> None:
    if start > end:
        raise ReportInputError("end", "must be on or after the start date")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise ReportInputError("end", f"the date range spans at most {MAX_RANGE_DAYS} days")


def _path(value: str, field_name: str) -> list[str]:
    parts = value.split(".")
    if not value or len(value) > 255 or any(not part for part in parts):
        raise ReportInputError(field_name, "must be a dotted path without empty parts")
    return parts


def local_day_bounds(*, workspace: Workspace, start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, the day after end 00:00) in the workspace's time zone."""
    chosen = DateRange(start=start, end=end, zone=ZoneInfo(workspace.time_zone or "UTC"))
    return chosen.starts_at, chosen.ends_before


# --------------------------------------------------------------------------- funnels


@dataclass(frozen=True)
class FunnelStep:
    event: str
    people: int
    conversion_from_previous: float | None
    conversion_from_first: float | None
    median_seconds_from_previous: float | None


@dataclass(frozen=True)
class FunnelGroup:
    """The funnel of one breakdown value (`is_other`: the values after the top ones)."""

    value: str
    is_other: bool
    steps: list[FunnelStep]


@dataclass(frozen=True)
class FunnelReport:
    start: date
    end: date
    window_days: int
    time_zone: str
    steps: list[FunnelStep]
    breakdown: list[FunnelGroup] = field(default_factory=list)


def _step_events(alias: str, step: EventStep, *, now: datetime) -> Fragment:
    return sql(f"{alias}.name = %s AND %s", step.event, event_filters(alias, step.filters, now=now))


def _breakdown_value(source: BreakdownSource | None, path: list[str]) -> Fragment:
    """The breakdown's text value for a first-step event `e` of profile `p`."""
    if source is None:
        return Fragment("NULL::text")
    column = "p.traits" if source == "trait" else "e.properties"
    # Scalars as text (a JSON string without its quotes); missing and null are one value.
    return sql(
        f"CASE WHEN jsonb_typeof({column} #> %s::text[]) IN ('string', 'number', 'boolean')"
        f" THEN {column} #>> %s::text[] END",
        path,
        path,
    )


def funnel_query(
    *,
    workspace: Workspace,
    steps: list[EventStep],
    start_at: datetime,
    end_at: datetime,
    window: timedelta,
    now: datetime,
    breakdown: BreakdownSource | None = None,
    breakdown_path: list[str] | None = None,
) -> Fragment:
    """One statement answering, per breakdown label (and once overall, label NULL):
    people reaching each step and the median seconds from the previous step.

    Per first-step event in [start_at, end_at) (an "attempt"), each later step is the
    person's earliest matching event after the previous step's (by time, then id, so a
    repeated event name needs another event) and at most `window` after the first.
    Each person counts once, with the attempt that reached furthest (the earliest such).
    """
    # Later steps are looked up by profile only: the first step's events are already
    # the workspace's and a profile's events are all in its workspace, so each lookup
    # is one range of the (profile, name, timestamp) index.
    first = steps[0]
    profiles = " JOIN segments_profile p ON p.id = e.profile_id" if breakdown == "trait" else ""
    firsts = sql(
        f"SELECT e.profile_id, e.timestamp AS t1, e.id AS id1, %s AS value"
        f" FROM segments_event e{profiles}"
        " WHERE e.workspace_id = %s AND e.timestamp >= %s AND e.timestamp < %s AND %s",
        _breakdown_value(breakdown, breakdown_path or []),
        workspace.pk,
        start_at,
        end_at,
        _step_events("e", first, now=now),
    )
    seconds = int(window.total_seconds())
    joins, columns, reached = [], [], []
    for number, step in enumerate(steps[1:], start=2):
        previous = "f" if number == 2 else f"s{number - 1}"
        alias = f"s{number}"
        joins.append(
            sql(
                f"LEFT JOIN LATERAL (SELECT e.timestamp AS t{number}, e.id AS id{number}"
                " FROM segments_event e WHERE e.profile_id = f.profile_id"
                f" AND %s AND e.timestamp >= {previous}.t{number - 1}"
                f" AND (e.timestamp, e.id) > ({previous}.t{number - 1}, {previous}.id{number - 1})"
                " AND e.timestamp <= f.t1 + %s * interval '1 second'"
                f" ORDER BY e.timestamp, e.id LIMIT 1) {alias} ON TRUE",
                _step_events("e", step, now=now),
                seconds,
            )
        )
        columns.append(f"{alias}.t{number}")
        reached.append(f"({alias}.t{number} IS NOT NULL)::int")
    count = len(steps)
    people = ", ".join(["count(*)"] + [f"count(t{number})" for number in range(2, count + 1)])
    medians = ", ".join(
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM"
        f" t{number} - t{number - 1}))"
        for number in range(2, count + 1)
    )
    attempts = sql(
        f"SELECT f.*, {', '.join(columns)}, 1 + {' + '.join(reached)} AS reached FROM firsts f %s",
        Fragment(" ".join(join.sql for join in joins), sum((j.params for j in joins), ())),
    )
    labelled = Fragment(
        "SELECT b.*, r.value IS NULL AS is_other, COALESCE(r.value, '') AS shown"
        " FROM (SELECT c.*, COALESCE(c.value, '') AS label FROM chosen c) b"
        " LEFT JOIN ranked r ON r.value = b.label"
    )
    return sql(
        "WITH firsts AS (%s), attempts AS (%s),"
        " chosen AS (SELECT DISTINCT ON (profile_id) * FROM attempts"
        " ORDER BY profile_id, reached DESC, t1, id1),"
        " ranked AS (SELECT COALESCE(value, '') AS value FROM chosen GROUP BY 1"
        " ORDER BY count(*) DESC, 1 LIMIT %s),"
        " labelled AS (%s)"
        f" SELECT GROUPING(shown, is_other) = 0 AS grouped, shown, is_other, {people}, {medians}"
        " FROM labelled GROUP BY GROUPING SETS ((), (shown, is_other))",
        firsts,
        attempts,
        BREAKDOWN_TOP_VALUES,
        labelled,
    )


def _funnel_steps(steps: list[EventStep], row: tuple) -> list[FunnelStep]:
    count = len(steps)
    people = list(row[:count])
    medians = [None, *row[count:]]
    return [
        FunnelStep(
            event=step.event,
            people=people[index],
            conversion_from_previous=ratio(people[index], people[index - 1]) if index else None,
            conversion_from_first=ratio(people[index], people[0]),
            median_seconds_from_previous=(
                float(medians[index]) if medians[index] is not None else None
            ),
        )
        for index, step in enumerate(steps)
    ]


def funnel_report(
    *,
    workspace: Workspace,
    steps: list[EventStep],
    start: date,
    end: date,
    window_days: int,
    breakdown: BreakdownSource | None = None,
    breakdown_path: str = "",
    now: datetime | None = None,
) -> FunnelReport:
    """The funnel of `steps` for people whose first step happened between the local
    days `start` and `end` (both included), each step within `window_days` times 24 hours
    of the first. Optionally broken down by a profile trait or a property of the first
    step's event: the five most common values, then the rest as "Other".

    Raises ReportInputError naming the field: fewer than 2 or more than 6 steps, an
    event the workspace never received, a window outside 1..90 days, a bad range."""
    if len(steps) < MIN_STEPS:
        raise ReportInputError("steps", f"a funnel needs at least {MIN_STEPS} steps")
    if len(steps) > MAX_STEPS:
        raise ReportInputError("steps", f"a funnel takes at most {MAX_STEPS} steps")
    if isinstance(window_days, bool) or not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise ReportInputError(
            "window_days", f"the conversion window is 1 to {MAX_WINDOW_DAYS} days"
        )
    _check_range(start, end)
    path = None
    if breakdown is not None:
        if breakdown not in ("trait", "property"):
            raise ReportInputError("breakdown", "is trait or property")
        path = _path(breakdown_path, "breakdown_path")
    _check_events(
        workspace=workspace,
        named=[(f"steps[{index}].event", step.event) for index, step in enumerate(steps)],
    )
    start_at, end_at = local_day_bounds(workspace=workspace, start=start, end=end)
    query = funnel_query(
        workspace=workspace,
        steps=steps,
        start_at=start_at,
        end_at=end_at,
        window=timedelta(days=window_days),
        now=now or timezone.now(),
        breakdown=breakdown,
        breakdown_path=path,
    )
    with connection.cursor() as cursor:
        cursor.execute(query.sql, query.params)
        rows = cursor.fetchall()
    overall = next((row for row in rows if not row[0]), None)
    totals = _funnel_steps(steps, overall[3:]) if overall else []
    groups = []
    if breakdown is not None:
        for row in rows:
            if row[0]:
                groups.append(
                    FunnelGroup(
                        value=OTHER if row[2] else (row[1] or NO_VALUE),
                        is_other=row[2],
                        steps=_funnel_steps(steps, row[3:]),
                    )
                )
        # Biggest first, "Other" last.
        groups.sort(key=lambda group: (group.is_other, -group.steps[0].people, group.value))
    return FunnelReport(
        start=start,
        end=end,
        window_days=window_days,
        time_zone=workspace.time_zone or "UTC",
        steps=totals,
        breakdown=groups,
    )


# --------------------------------------------------------------------------- retention


@dataclass(frozen=True)
class RetentionCohort:
    week_start: date
    size: int
    # Per week 0..N: people active (None for weeks that have not begun at `now`).
    retained: list[int | None]
    shares: list[float | None]


@dataclass(frozen=True)
class RetentionReport:
    start: date
    end: date
    weeks: int
    time_zone: str
    start_event: str
    return_event: str
    cohorts: list[RetentionCohort]
    # Per week: retained / cohort size over the cohorts whose week has begun.
    average: list[float | None]


def retention_query(
    *,
    workspace: Workspace,
    start_at: datetime,
    end_at: datetime,
    weeks: int,
    start_step: EventStep | None,
    return_step: EventStep | None,
    now: datetime,
) -> Fragment:
    """One statement: per cohort week (local Monday), its size (week_number NULL) and
    per week number 0..weeks the people with a return event after their start."""
    zone = workspace.time_zone or "UTC"
    if start_step is None:
        starts = sql(
            "SELECT p.id AS profile_id, p.first_seen AS started_at FROM segments_profile p"
            " WHERE p.workspace_id = %s AND p.first_seen >= %s AND p.first_seen < %s",
            workspace.pk,
            start_at,
            end_at,
        )
    else:
        # The first time ever: a person whose first time was before the range is not new.
        starts = sql(
            "SELECT e.profile_id, min(e.timestamp) AS started_at FROM segments_event e"
            " WHERE e.workspace_id = %s AND e.timestamp < %s AND %s GROUP BY e.profile_id"
            " HAVING min(e.timestamp) >= %s",
            workspace.pk,
            end_at,
            _step_events("e", start_step, now=now),
            start_at,
        )
    returns = _step_events("e", return_step, now=now) if return_step is not None else TRUE
    return sql(
        "WITH starts AS (%s),"
        " cohorts AS (SELECT s.profile_id, s.started_at,"
        " date_trunc('week', s.started_at AT TIME ZONE %s) AS week_local FROM starts s),"
        " active AS (SELECT DISTINCT c.profile_id, c.week_local,"
        " (date_trunc('week', e.timestamp AT TIME ZONE %s)::date - c.week_local::date) / 7"
        " AS week_number FROM cohorts c JOIN segments_event e"
        # By profile only: the cohorts are the workspace's people (see funnel_query).
        " ON e.profile_id = c.profile_id"
        " AND e.timestamp > c.started_at"
        " AND e.timestamp < (c.week_local + %s * interval '7 days') AT TIME ZONE %s"
        " AND %s)"
        " SELECT week_local::date, NULL::int, count(*) FROM cohorts GROUP BY 1"
        " UNION ALL SELECT week_local::date, week_number, count(*) FROM active GROUP BY 1, 2",
        starts,
        zone,
        zone,
        weeks + 1,
        zone,
        returns,
    )


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def retention_report(
    *,
    workspace: Workspace,
    start: date,
    end: date,
    weeks: int = 8,
    start_step: EventStep | None = None,
    return_step: EventStep | None = None,
    now: datetime | None = None,
) -> RetentionReport:
    """Weekly cohorts of the people who started between the local days `start` and
    `end` (first_seen, or the first time ever of `start_step`), and for weeks 0..`weeks`
    after their cohort's week the share with a `return_step` event (any event when
    None) strictly after their start, in that local calendar week.

    Raises ReportInputError naming the field (weeks outside 1..12, an unknown event,
    a bad range)."""
    if isinstance(weeks, bool) or not 1 <= weeks <= MAX_RETENTION_WEEKS:
        raise ReportInputError("weeks", f"retention covers 1 to {MAX_RETENTION_WEEKS} weeks")
    _check_range(start, end)
    named = []
    if start_step is not None:
        named.append(("start_event", start_step.event))
    if return_step is not None:
        named.append(("return_event", return_step.event))
    _check_events(workspace=workspace, named=named)
    now = now or timezone.now()
    zone = ZoneInfo(workspace.time_zone or "UTC")
    start_at, end_at = local_day_bounds(workspace=workspace, start=start, end=end)
    query = retention_query(
        workspace=workspace,
        start_at=start_at,
        end_at=end_at,
        weeks=weeks,
        start_step=start_step,
        return_step=return_step,
        now=now,
    )
    with connection.cursor() as cursor:
        cursor.execute(query.sql, query.params)
        rows = cursor.fetchall()
    sizes: dict[date, int] = {}
    active: dict[tuple[date, int], int] = {}
    for week_start, week_number, people in rows:
        if week_number is None:
            sizes[week_start] = people
        else:
            active[(week_start, week_number)] = people
    today = now.astimezone(zone).date()
    cohorts = []
    week_start = _monday(start)
    while week_start <= end:
        size = sizes.get(week_start, 0)
        retained: list[int | None] = []
        for number in range(weeks + 1):
            begun = week_start + timedelta(weeks=number) <= today
            retained.append(active.get((week_start, number), 0) if begun else None)
        cohorts.append(
            RetentionCohort(
                week_start=week_start,
                size=size,
                retained=retained,
                shares=[None if count is None else ratio(count, size) for count in retained],
            )
        )
        week_start += timedelta(weeks=1)
    average = []
    for number in range(weeks + 1):
        known = [c for c in cohorts if c.retained[number] is not None and c.size]
        average.append(ratio(sum(c.retained[number] for c in known), sum(c.size for c in known)))
    return RetentionReport(
        start=start,
        end=end,
        weeks=weeks,
        time_zone=workspace.time_zone or "UTC",
        start_event=start_step.event if start_step else "",
        return_event=return_step.event if return_step else "",
        cohorts=cohorts,
        average=average,
    )


def report_as_dict(report: Any) -> dict:
    """A report as plain data (dates stay dates; the API serializers format them)."""
    from dataclasses import asdict

    return asdict(report)
