"""The journeys list's actions: new (blank or from a template), duplicate, archive."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from engagement_site.workspaces.access import workspace_view


@workspace_view("journeys.edit")
def journey_new(request: HttpRequest) -> HttpResponse:
    raise NotImplementedError


@workspace_view("journeys.edit")
def journey_duplicate(request: HttpRequest, journey_id: int) -> HttpResponse:
    raise NotImplementedError


@workspace_view("journeys.edit")
def journey_archive(request: HttpRequest, journey_id: int) -> HttpResponse:
    raise NotImplementedError
