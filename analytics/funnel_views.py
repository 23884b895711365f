"""The funnel and retention pages: a GET form (shareable URLs, the CSV links keep the
query), the reports of analytics/funnels.py as charts with their tables and CSVs, and
the retention triangle as a heat-map table."""

from __future__ import annotations

import json

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from pydantic import ValidationError

from analytics.charts import Chart, Series, charts_csv_response
from analytics.filters import ReportFilters
from analytics.funnels import (
    MAX_RETENTION_WEEKS,
    MAX_STEPS,
    MAX_WINDOW_DAYS,
    FunnelReport,
    ReportInputError,
    RetentionReport,
    funnel_report,
    retention_report,
)
from engagement_site.workspaces.access import workspace_view
from segments import selectors as segment_selectors
from segments.rules import EventStep, PropertyFilter


class FunnelForm(ReportFilters):
    window_days = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_WINDOW_DAYS, label="Conversion window"
    )
    breakdown = forms.ChoiceField(
        required=False,
        choices=[
            ("", "No breakdown"),
            ("trait", "By profile trait"),
            ("property", "By first step's property"),
        ],
    )
    breakdown_path = forms.CharField(required=False, max_length=255, label="Breakdown by")


class RetentionForm(ReportFilters):
    weeks = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_RETENTION_WEEKS, label="Weeks"
    )
    start_event = forms.CharField(required=False, max_length=200, label="Start event")
    return_event = forms.CharField(required=False, max_length=200, label="Return event")


def _value(text: str):
    """A filter value typed in the form: a JSON number or boolean when it reads as one
    (so 30 matches the number 30), else the text itself."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float | bool) else text


def _step_rows(request: HttpRequest) -> list[dict]:
    """The form's step rows as typed (MAX_STEPS of them, blanks included)."""
    events = request.GET.getlist("event")
    properties = request.GET.getlist("property")
    values = request.GET.getlist("value")
    rows = []
    for index in range(MAX_STEPS):
        rows.append(
            {
                "number": index + 1,
                "event": (events[index] if index < len(events) else "").strip(),
                "property": (properties[index] if index < len(properties) else "").strip(),
                "value": values[index] if index < len(values) else "",
            }
        )
    return rows


def _steps(rows: list[dict]) -> list[EventStep]:
    """Event steps from the filled rows; raises ReportInputError for a bad filter."""
    steps = []
    for row in rows:
        if not row["event"]:
            continue
        # Errors name the row as the form shows it, whatever rows above it are blank.
        index = row["number"] - 1
        filters = []
        if row["property"]:
            try:
                filters = [
                    PropertyFilter(property=row["property"], op="eq", value=_value(row["value"]))
                ]
            except ValidationError as error:
                detail = error.errors()[0]
                field = "property" if detail["loc"] == ("property",) else "value"
                message = str(detail["msg"]).removeprefix("Value error, ")
                raise ReportInputError(f"steps[{index}].{field}", message) from None
        if len(row["event"]) > 200:
            raise ReportInputError(f"steps[{index}].event", "takes at most 200 characters")
        steps.append(EventStep(event=row["event"], filters=filters))
    return steps


def _field_label(field: str) -> str:
    """ "steps[1].event" -> "Step 2"; the form's fields by their labels."""
    if field.startswith("steps["):
        return f"Step {int(field[6 : field.index(']')]) + 1}"
    return {
        "steps": "Steps",
        "window_days": "Conversion window",
        "end": "Date range",
        "breakdown_path": "Breakdown by",
        "breakdown": "Breakdown",
        "weeks": "Weeks",
        "start_event": "Start event",
        "return_event": "Return event",
    }.get(field, field)


def duration(seconds: float | None) -> str:
    """A median time for people: "45 s", "12 min", "3 h 5 min", "2 d 4 h"."""
    if seconds is None:
        return "—"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def funnel_charts(report: FunnelReport) -> list[Chart]:
    labels = [f"{index}. {step.event}" for index, step in enumerate(report.steps, start=1)]
    charts = [
        Chart(
            key="people",
            title="People at each step",
            kind="bar",
            labels=labels,
            series=[Series("People", [step.people for step in report.steps])],
            x_label="Step",
            description=f"In order, within {report.window_days} days of the first step.",
        ),
        Chart(
            key="conversion",
            title="Conversion",
            kind="line",
            labels=labels,
            unit="%",
            series=[
                Series("From the first step", [s.conversion_from_first for s in report.steps]),
                Series(
                    "From the previous step", [s.conversion_from_previous for s in report.steps]
                ),
            ],
            x_label="Step",
        ),
        Chart(
            key="time",
            title="Median time from the previous step (hours)",
            kind="bar",
            labels=labels[1:],
            series=[
                Series(
                    "Hours",
                    [
                        None
                        if s.median_seconds_from_previous is None
                        else round(s.median_seconds_from_previous / 3600, 2)
                        for s in report.steps[1:]
                    ],
                )
            ],
            x_label="Step",
        ),
    ]
    if report.breakdown:
        charts.append(
            Chart(
                key="breakdown",
                title="Conversion from the first step by breakdown",
                kind="line",
                labels=labels,
                unit="%",
                series=[
                    Series(group.value, [s.conversion_from_first for s in group.steps])
                    for group in report.breakdown
                ],
                x_label="Step",
            )
        )
    return charts


@workspace_view("analytics.view")
def analytics_funnels(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace
    form = FunnelForm(request.GET or None, workspace=workspace)
    rows = _step_rows(request)
    report, charts, errors = None, [], []
    is_valid = form.is_bound and form.is_valid()
    window_days = (form.cleaned_data["window_days"] if is_valid else None) or 7
    if is_valid and any(row["event"] for row in rows):
        date_range = form.date_range()
        try:
            report = funnel_report(
                workspace=workspace,
                steps=_steps(rows),
                start=date_range.start,
                end=date_range.end,
                window_days=window_days,
                breakdown=form.cleaned_data["breakdown"] or None,
                breakdown_path=form.cleaned_data["breakdown_path"].strip(),
            )
        except ReportInputError as error:
            errors.append(f"{_field_label(error.field)}: {error.message}")
    if report is not None:
        charts = funnel_charts(report)
        response = charts_csv_response(request, charts, filename=f"{workspace.slug}-funnel")
        if response is not None:
            return response
    return render(
        request,
        "analytics/funnel.html",
        {
            "area": "analytics",
            "tab": "funnels",
            "form": form,
            "date_range": form.date_range(),
            "rows": rows,
            "errors": errors,
            "report": report,
            "charts": charts,
            "step_rows": [
                {"step": step, "median": duration(step.median_seconds_from_previous)}
                for step in (report.steps if report else [])
            ],
            "event_names": segment_selectors.workspace_event_names(workspace=workspace),
            "window_days": window_days,
        },
    )


def retention_charts(report: RetentionReport) -> tuple[list[Chart], Chart]:
    weeks = [f"Week {number}" for number in range(report.weeks + 1)]
    curve = Chart(
        key="average",
        title="Average retention",
        kind="line",
        labels=weeks,
        unit="%",
        series=[Series("Retained", report.average)],
        x_label="Week",
        description="Cohorts weighted by their size; only weeks that have begun.",
    )
    # Not drawn: the triangle's CSV (the page shows it as a heat-map table).
    triangle = Chart(
        key="cohorts",
        title="Cohorts",
        kind="bar",
        labels=[cohort.week_start.isoformat() for cohort in report.cohorts],
        unit="%",
        series=[Series("People", [cohort.size for cohort in report.cohorts])]
        + [
            Series(week, [cohort.shares[number] for cohort in report.cohorts])
            for number, week in enumerate(weeks)
        ],
        x_label="Cohort week",
    )
    return [curve], triangle


def _heat_rows(report: RetentionReport) -> list[dict]:
    return [
        {
            "week_start": cohort.week_start,
            "size": cohort.size,
            "cells": [
                {"retained": retained, "share": share, "alpha": f"{(share or 0) * 0.85:.3f}"}
                for retained, share in zip(cohort.retained, cohort.shares, strict=True)
            ],
        }
        for cohort in report.cohorts
    ]


@workspace_view("analytics.view")
def analytics_retention(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace
    form = RetentionForm(request.GET or None, workspace=workspace)
    report, charts, triangle, errors = None, [], None, []
    if not form.is_bound or form.is_valid():
        date_range = form.date_range()
        cleaned = form.cleaned_data if form.is_bound else {}
        start_event = (cleaned.get("start_event") or "").strip()
        return_event = (cleaned.get("return_event") or "").strip()
        try:
            report = retention_report(
                workspace=workspace,
                start=date_range.start,
                end=date_range.end,
                weeks=cleaned.get("weeks") or 8,
                start_step=EventStep(event=start_event) if start_event else None,
                return_step=EventStep(event=return_event) if return_event else None,
            )
        except ReportInputError as error:
            errors.append(f"{_field_label(error.field)}: {error.message}")
    if report is not None:
        charts, triangle = retention_charts(report)
        response = charts_csv_response(
            request, [*charts, triangle], filename=f"{workspace.slug}-retention"
        )
        if response is not None:
            return response
    return render(
        request,
        "analytics/retention.html",
        {
            "area": "analytics",
            "tab": "retention",
            "form": form,
            "date_range": form.date_range(),
            "errors": errors,
            "report": report,
            "charts": charts,
            "triangle": triangle,
            "heat_rows": _heat_rows(report) if report else [],
            "week_numbers": list(range(report.weeks + 1)) if report else [],
            "event_names": segment_selectors.workspace_event_names(workspace=workspace),
        },
    )
