"""The visual journey builder's page."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse

from engagement_site.workspaces.access import workspace_view


@workspace_view("journeys.view")
def journey_editor(request: HttpRequest, journey_id: int) -> HttpResponse:
    raise Http404("Not built yet.")
