"""Permission-checked access for HTML views (function views, stacked decorators).

    @workspace_view("journeys.view")
    def journey_list(request, workspace_slug): ...

resolves the workspace from the URL through the user's membership (404 for a
workspace the user is not in), checks the role's permission (403 when the member's
role does not allow it) and sets request.workspace / request.membership.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from engagement_site.workspaces.roles import ALL_PERMISSIONS, role_has_permission
from engagement_site.workspaces.selectors import membership_get

LAST_WORKSPACE_SESSION_KEY = "last_workspace_slug"


def workspace_view(permission: str) -> Callable:
    if permission not in ALL_PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, workspace_slug: str, *args, **kwargs) -> HttpResponse:
            membership = membership_get(user=request.user, workspace_slug=workspace_slug)
            if not role_has_permission(membership.role, permission):
                raise PermissionDenied(
                    f"Your role ({membership.get_role_display()}) cannot do this: {permission}"
                )
            request.workspace = membership.workspace
            request.membership = membership
            if request.session.get(LAST_WORKSPACE_SESSION_KEY) != workspace_slug:
                request.session[LAST_WORKSPACE_SESSION_KEY] = workspace_slug
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def member_can(request: HttpRequest, permission: str) -> bool:
    membership = getattr(request, "membership", None)
    return membership is not None and role_has_permission(membership.role, permission)
