"""The builder's inspector: a node's settings as a server-rendered form (htmx)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from engagement_site.workspaces.access import workspace_view


@workspace_view("journeys.view")
def inspector_form(request: HttpRequest, journey_id: int) -> HttpResponse:
    raise NotImplementedError


@workspace_view("journeys.view")
def inspector_apply(request: HttpRequest, journey_id: int) -> HttpResponse:
    raise NotImplementedError


@workspace_view("journeys.view")
def event_names(request: HttpRequest) -> HttpResponse:
    raise NotImplementedError
