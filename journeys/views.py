"""Pages of the Journeys area: the journeys list (its actions are in
journeys/list_views.py; the builder is journeys/editor_views.py)."""

from __future__ import annotations

from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from engagement_site.workspaces.access import member_can, workspace_view
from journeys import catalog, selectors
from journeys.models import Journey

# The statuses journeys.services.journey_archive accepts (a test keeps them in step).
ARCHIVABLE_STATUSES = (Journey.Status.DRAFT, Journey.Status.STOPPED)
NOT_ARCHIVABLE_REASONS = {
    Journey.Status.LIVE: "A live journey cannot be archived: stop it first.",
    Journey.Status.PAUSED: "A paused journey cannot be archived: stop it first.",
}
LIST_LIMIT = 200


def journey_list_context(request: HttpRequest) -> dict:
    """The list page's context (also rendered by journey_new when its form has errors)."""
    status = request.GET.get("status", "")
    if status not in Journey.Status.values:
        status = ""
    journeys = selectors.workspace_journeys(workspace=request.workspace, status=status)
    if not status:
        journeys = journeys.exclude(status=Journey.Status.ARCHIVED)
    journeys = journeys.select_related("created_by").annotate(
        in_journey=Count("enrollments", filter=Q(enrollments__state__in=["active", "waiting"])),
        entered=Count("enrollments"),
        converted=Count("enrollments", filter=Q(enrollments__exit_reason="converted")),
    )
    by_status = dict(
        selectors.workspace_journeys(workspace=request.workspace)
        .order_by()
        .values_list("status")
        .annotate(count=Count("pk"))
    )
    rows = [
        {
            "journey": journey,
            "can_archive": journey.status in ARCHIVABLE_STATUSES,
            "archive_refusal": NOT_ARCHIVABLE_REASONS.get(journey.status, ""),
        }
        for journey in journeys[:LIST_LIMIT]
    ]
    filters = [
        {
            "value": "",
            "label": "All",
            "count": sum(n for s, n in by_status.items() if s != Journey.Status.ARCHIVED),
        },
        *(
            {"value": value, "label": label, "count": by_status.get(value, 0)}
            for value, label in Journey.Status.choices
        ),
    ]
    return {
        "area": "journeys",
        "rows": rows,
        "status": status,
        "filters": filters,
        "has_journeys": bool(by_status),
        "can_edit": member_can(request, "journeys.edit"),
        "journey_templates": catalog.catalog_entries(),
    }


@workspace_view("journeys.view")
def journey_list(request: HttpRequest) -> HttpResponse:
    return render(request, "journeys/journey_list.html", journey_list_context(request))
