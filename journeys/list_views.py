"""The journeys list's actions: new (blank or from a template), duplicate, archive."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse

from engagement_site.workspaces.access import workspace_view


@workspace_view("journeys.edit")
def journey_new(request: HttpRequest) -> HttpResponse:
    raise Http404("Not built yet.")


@workspace_view("journeys.edit")
def journey_duplicate(request: HttpRequest, journey_id: int) -> HttpResponse:
    raise Http404("Not built yet.")


@workspace_view("journeys.edit")
def journey_archive(request: HttpRequest, journey_id: int) -> HttpResponse:
    raise Http404("Not built yet.")
