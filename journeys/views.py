from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from engagement_site.workspaces.access import workspace_view


@workspace_view("journeys.view")
def journey_list(request: HttpRequest) -> HttpResponse:
    return render(request, "journeys/journey_list.html", {"area": "journeys"})
