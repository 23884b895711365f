"""Permission-checked access for HTML views (function views, stacked decorators).

    @workspace_view("journeys.view")
    def journey_list(request, workspace_slug): ...

    @workspace_view({"GET": "members.view", "POST": "members.edit"})
    def settings_members(request, workspace_slug): ...

resolves the workspace from the URL through the user's membership (404 for a
workspace the user is not in), checks the role's permission for the request's method
(403 naming the permission when the member's role does not allow it; 405 for a method
the view does not declare) and sets request.workspace / request.membership. Both
checks happen before the view looks anything up, so a refused role learns nothing
about the objects.

The declaration is kept on the view as `required_permissions` (the same shape as the
API views'), which tests/workspaces/test_isolation_matrix.py reads for every URL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed

from engagement_site.workspaces.roles import ALL_PERMISSIONS, role_has_permission
from engagement_site.workspaces.selectors import membership_get

LAST_WORKSPACE_SESSION_KEY = "last_workspace_slug"


def required_permission(required: Mapping[str, str], method: str) -> str | None:
    """The permission a request of `method` needs, from a view's `required_permissions`
    ("*" covers every method not named; HEAD and OPTIONS are reads like GET)."""
    permission = required.get(method)
    if permission is None and method in ("HEAD", "OPTIONS"):
        permission = required.get("GET")
    return permission or required.get("*")


def workspace_view(permission: str | Mapping[str, str]) -> Callable:
    required = {"*": permission} if isinstance(permission, str) else dict(permission)
    for needed in required.values():
        if needed not in ALL_PERMISSIONS:
            raise ValueError(f"unknown permission {needed!r}")

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, workspace_slug: str, *args, **kwargs) -> HttpResponse:
            membership = membership_get(user=request.user, workspace_slug=workspace_slug)
            needed = required_permission(required, request.method)
            if needed is None:
                return HttpResponseNotAllowed(sorted(required))
            if not role_has_permission(membership.role, needed):
                raise PermissionDenied(
                    f"Your role ({membership.get_role_display()}) cannot do this: {needed}"
                )
            request.workspace = membership.workspace
            request.membership = membership
            if request.session.get(LAST_WORKSPACE_SESSION_KEY) != workspace_slug:
                request.session[LAST_WORKSPACE_SESSION_KEY] = workspace_slug
            return view(request, *args, **kwargs)

        checked = login_required(wrapper)
        checked.required_permissions = required
        return checked

    return decorator


def member_can(request: HttpRequest, permission: str) -> bool:
    membership = getattr(request, "membership", None)
    return membership is not None and role_has_permission(membership.role, permission)
