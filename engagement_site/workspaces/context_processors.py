from django.conf import settings
from django.http import HttpRequest

from engagement_site.workspaces.roles import ROLE_PERMISSIONS
from engagement_site.workspaces.selectors import memberships_for_user


def workspace(request: HttpRequest) -> dict:
    """The current workspace, the switcher's list and the member's permissions for templates."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    return {
        "current_workspace": getattr(request, "workspace", None),
        "current_membership": membership,
        "perms_in_workspace": ROLE_PERMISSIONS.get(membership.role, frozenset())
        if membership
        else frozenset(),
        "switcher_memberships": memberships_for_user(user=user),
        "dev_outbox_enabled": settings.DEV_OUTBOX_ENABLED,
    }
