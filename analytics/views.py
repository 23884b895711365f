"""The analytics dashboards: overview, journeys, one journey's report, channels.
Server-rendered; every chart has its table and CSV (analytics.charts); the overview
and the journey report update live over the websocket (static/js/analytics/live.js)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from analytics import reports
from analytics.charts import charts_csv_response
from analytics.filters import ReportFilters
from analytics.selectors import message_counters
from engagement_site.workspaces.access import workspace_view
from journeys import selectors as journey_selectors


def _filters(request: HttpRequest, *, journeys=()) -> ReportFilters:
    return ReportFilters(request.GET or None, workspace=request.workspace, journeys=journeys)


@workspace_view("analytics.view")
def analytics_home(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace
    journeys = journey_selectors.workspace_journeys(workspace=workspace).order_by("name")
    filters = _filters(request, journeys=journeys)
    date_range = filters.date_range()
    channel, journey_id = filters.value("channel"), filters.value("journey")
    report = reports.overview(
        workspace=workspace, date_range=date_range, channel=channel, journey_id=journey_id
    )
    csv = charts_csv_response(request, report["charts"], filename=f"{workspace.slug}-overview")
    if csv is not None:
        return csv
    per_journey = reports.by_journey(workspace=workspace, date_range=date_range, channel=channel)
    names = {journey.pk: journey for journey in journeys}
    top = sorted(
        (
            {**numbers, "journey": names.get(journey_id), "journey_id": journey_id}
            for journey_id, numbers in per_journey.items()
            if journey_id in names or journey_id == 0
        ),
        key=lambda row: (-row["sent"], -row["conversions"]),
    )[:10]
    return render(
        request,
        "analytics/overview.html",
        {
            "area": "analytics",
            "tab": "overview",
            "filters": filters,
            "date_range": date_range,
            "report": report,
            "channels": reports.by_channel(
                workspace=workspace, date_range=date_range, journey_id=journey_id
            ),
            "top_journeys": top,
            "live_query": urlencode(
                {
                    "start": date_range.start.isoformat(),
                    "end": date_range.end.isoformat(),
                    "channel": channel or "",
                    "journey": journey_id or "",
                }
            ),
            "has_messages": message_counters(workspace=workspace).exists(),
        },
    )


@workspace_view("analytics.view")
def analytics_journeys(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace
    filters = _filters(request)
    date_range = filters.date_range()
    per_journey = reports.by_journey(workspace=workspace, date_range=date_range)
    rows = [
        {**per_journey.get(journey.pk, _empty()), "journey": journey}
        for journey in journey_selectors.workspace_journeys(workspace=workspace)
        .exclude(status="archived")
        .order_by("name")
    ]
    rows.sort(key=lambda row: (-row["sent"], row["journey"].name))
    return render(
        request,
        "analytics/journeys.html",
        {
            "area": "analytics",
            "tab": "journeys",
            "filters": filters,
            "date_range": date_range,
            "rows": rows,
        },
    )


def _empty() -> dict:
    row = dict.fromkeys((*reports.KINDS, "conversions"), 0)
    row["revenue"] = 0
    row["rates"] = reports.rates(row)
    return row


@workspace_view("analytics.view")
def analytics_journey(request: HttpRequest, journey_id: int) -> HttpResponse:
    workspace = request.workspace
    journey = journey_selectors.journey_get(workspace=workspace, journey_id=journey_id)
    filters = _filters(request)
    date_range = filters.date_range()
    report = reports.journey_report(workspace=workspace, journey=journey, date_range=date_range)
    csv = charts_csv_response(
        request,
        [report["funnel_chart"], *report["charts"]],
        filename=f"{workspace.slug}-journey-{journey.pk}",
    )
    if csv is not None:
        return csv
    return render(
        request,
        "analytics/journey_report.html",
        {
            "area": "analytics",
            "tab": "journeys",
            "filters": filters,
            "date_range": date_range,
            "journey": journey,
            "report": report,
        },
    )


@workspace_view("journeys.publish")
@require_POST
def analytics_declare_winner(request: HttpRequest, journey_id: int) -> HttpResponse:
    from analytics.services import ExperimentRefused, experiment_winner_declare
    from engagement_site.workspaces.services import AuditContext

    journey = journey_selectors.journey_get(workspace=request.workspace, journey_id=journey_id)
    node_id, variant = request.POST.get("node", ""), request.POST.get("variant", "")
    try:
        experiment_winner_declare(
            journey=journey,
            node_id=node_id,
            variant=variant,
            context=AuditContext.from_request(request),
        )
    except ExperimentRefused as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(
            request, f"Everyone who reaches {node_id} from now on takes {variant.upper()}."
        )
    return redirect(
        "analytics_journey", workspace_slug=request.workspace.slug, journey_id=journey.pk
    )


@workspace_view("analytics.view")
def analytics_channels(request: HttpRequest) -> HttpResponse:
    from delivery.selectors import channel_costs

    workspace = request.workspace
    filters = _filters(request)
    date_range = filters.date_range()
    report = reports.channel_report(
        workspace=workspace, date_range=date_range, costs=channel_costs(workspace=workspace)
    )
    csv = charts_csv_response(request, report["charts"], filename=f"{workspace.slug}-channels")
    if csv is not None:
        return csv
    return render(
        request,
        "analytics/channels.html",
        {
            "area": "analytics",
            "tab": "channels",
            "filters": filters,
            "date_range": date_range,
            "report": report,
        },
    )
