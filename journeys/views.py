"""Pages of the Journeys area. The visual builder is still to come; until then the
list shows the journeys made through the API, with their status, version and people."""

from __future__ import annotations

from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from engagement_site.workspaces.access import workspace_view
from journeys import selectors


@workspace_view("journeys.view")
def journey_list(request: HttpRequest) -> HttpResponse:
    journeys = selectors.workspace_journeys(workspace=request.workspace).annotate(
        in_journey=Count("enrollments", filter=Q(enrollments__state__in=["active", "waiting"])),
        entered=Count("enrollments"),
        converted=Count("enrollments", filter=Q(enrollments__exit_reason="converted")),
    )
    return render(
        request,
        "journeys/journey_list.html",
        {"area": "journeys", "journeys": list(journeys[:200])},
    )
