from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from engagement_site.workspaces.access import workspace_view


@workspace_view("segments.view")
def segment_list(request: HttpRequest) -> HttpResponse:
    return render(request, "segments/segment_list.html", {"area": "segments"})


@workspace_view("segments.view")
def profile_list(request: HttpRequest) -> HttpResponse:
    return render(request, "segments/profile_list.html", {"area": "profiles"})
