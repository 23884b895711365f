"""The app shell: login / logout and the landing redirects."""

from __future__ import annotations

from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views import defaults
from django.views.decorators.http import require_POST

from engagement_site.workspaces.access import LAST_WORKSPACE_SESSION_KEY, workspace_view
from engagement_site.workspaces.selectors import memberships_for_user
from engagement_site.workspaces.services import (
    session_login_failed_recorded,
    session_login_recorded,
    session_logout_recorded,
)


class AuditedLoginView(LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        session_login_recorded(request=self.request, user=form.get_user())
        return response

    def form_invalid(self, form):
        session_login_failed_recorded(
            request=self.request,
            username=form.data.get("username", ""),
            locked_out=bool(getattr(self.request, "axes_locked_out", False)),
        )
        return super().form_invalid(form)


login_view = AuditedLoginView.as_view()

# A REST client reads errors as JSON with `code` and `message` (docs/api.md), also for a
# URL the API has no route for (`/api/v1/profiles/abc/`: the id is not a number) and for
# a crash; the app's pages keep their HTML error pages.
API_PREFIX = "/api/"


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return JsonResponse(
            {"code": "not_found", "message": f"The API has no resource at {request.path}."},
            status=404,
        )
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return JsonResponse(
            {"code": "server_error", "message": "The server failed to answer this request."},
            status=500,
        )
    return defaults.server_error(request)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        session_logout_recorded(request=request, user=request.user)
    logout(request)
    return redirect("login")


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send the user to the workspace they used last, or their first one."""
    memberships = list(memberships_for_user(user=request.user))
    if not memberships:
        return render(request, "shell/no_workspace.html", status=200)
    last = request.session.get(LAST_WORKSPACE_SESSION_KEY)
    slugs = [m.workspace.slug for m in memberships]
    slug = last if last in slugs else slugs[0]
    return redirect("journey_list", workspace_slug=slug)


@workspace_view("journeys.view")
def workspace_home(request: HttpRequest) -> HttpResponse:
    return redirect("journey_list", workspace_slug=request.workspace.slug)
