from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from engagement_site.workspaces.access import workspace_view


@workspace_view("content.view")
def content_home(request: HttpRequest) -> HttpResponse:
    return render(request, "content/content_home.html", {"area": "content"})
