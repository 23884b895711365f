"""The builder's inspector: a node's settings as a server-rendered form (htmx)."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse

from engagement_site.workspaces.access import workspace_view


@workspace_view("journeys.view")
def inspector_form(request: HttpRequest, journey_id: int) -> HttpResponse:
    raise Http404("Not built yet.")


@workspace_view("journeys.view")
def inspector_apply(request: HttpRequest, journey_id: int) -> HttpResponse:
    raise Http404("Not built yet.")


@workspace_view("journeys.view")
def event_names(request: HttpRequest) -> HttpResponse:
    raise Http404("Not built yet.")
