from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from engagement_site.workspaces.access import workspace_view


@workspace_view("analytics.view")
def analytics_home(request: HttpRequest) -> HttpResponse:
    return render(request, "analytics/analytics_home.html", {"area": "analytics"})
