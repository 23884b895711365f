"""REST API authentication and workspace permissions (DRF).

Machines send `Authorization: Bearer sk_...` (a workspace secret key). The browser
UI uses its session and names the workspace in the `X-Workspace` header. Either way
`api_workspace(request)` answers the workspace and role, or 404 for a workspace the
caller has no access to.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser
from django.http import Http404
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from engagement_site.workspaces.models import ApiKey, Workspace
from engagement_site.workspaces.roles import role_has_permission
from engagement_site.workspaces.selectors import membership_get
from engagement_site.workspaces.services import api_key_authenticate

WORKSPACE_HEADER = "HTTP_X_WORKSPACE"


class ApiKeyUser(AnonymousUser):
    """The request.user of a secret-key request: authenticated as the key, not a person."""

    def __init__(self, api_key: ApiKey):
        super().__init__()
        self.api_key = api_key

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    def __str__(self) -> str:
        return f"API key {self.api_key.display_prefix}…"


class SecretKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode().lower() != self.keyword.lower():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Authorization header must be 'Bearer <secret key>'."
            )
        raw_key = header[1].decode(errors="replace")
        api_key = api_key_authenticate(
            raw_key=raw_key, kind=ApiKey.Kind.SECRET, request=request._request
        )
        if api_key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked secret key.")
        return ApiKeyUser(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class SecretKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = SecretKeyAuthentication
    name = "secretKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A workspace secret key (sk_...), created in Settings → API keys or with `manage.py create_api_key`.",
        }


@dataclass(frozen=True)
class ApiAccess:
    workspace: Workspace
    role: str


def api_workspace(request: Request) -> ApiAccess:
    cached = getattr(request, "_api_access", None)
    if cached is not None:
        return cached
    if isinstance(request.auth, ApiKey):
        access = ApiAccess(workspace=request.auth.workspace, role=request.auth.role)
    else:
        slug = request.META.get(WORKSPACE_HEADER, "")
        if not slug:
            raise exceptions.ValidationError(
                {"X-Workspace": "Name the workspace (its slug) in the X-Workspace header."}
            )
        membership = membership_get(user=request.user, workspace_slug=slug)
        access = ApiAccess(workspace=membership.workspace, role=membership.role)
    request._api_access = access
    return access


class HasWorkspacePermission(permissions.BasePermission):
    """Reads `required_permissions = {"GET": "journeys.view", "POST": "journeys.edit"}` off the view."""

    def has_permission(self, request: Request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            # 401 with WWW-Authenticate: the caller has to sign in or send a key. (A 404
            # here told an anonymous client the workspace was missing.)
            raise exceptions.NotAuthenticated(
                "Send a secret key (Authorization: Bearer sk_...) or sign in."
            )
        required = getattr(view, "required_permissions", {})
        method = "GET" if request.method == "HEAD" else request.method
        permission = required.get(method) or required.get("*")
        if permission is None:
            # A method the view does not answer gets DRF's 405 (with Allow), which comes
            # after this check; a 403 here named no permission and hid the real problem.
            return not hasattr(view, request.method.lower())
        try:
            access = api_workspace(request)
        except Http404:
            raise exceptions.NotFound("No such workspace.") from None
        if not role_has_permission(access.role, permission):
            raise exceptions.PermissionDenied(
                f"This role ({access.role}) lacks the permission {permission}."
            )
        return True
