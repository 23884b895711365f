"""Roles and the one permission table of the product.

A permission is "<area>.<action>". The table below is the single source of truth:
views, API permissions, templates and docs/roles.md (checked by a test) all read it.
"""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MARKETER = "marketer", "Marketer"
    CONTENT_EDITOR = "content_editor", "Content editor"
    ANALYST = "analyst", "Analyst"
    VIEWER = "viewer", "Viewer"


class Area(models.TextChoices):
    SEGMENTS = "segments", "Segments and profiles"
    CONTENT = "content", "Content library"
    JOURNEYS = "journeys", "Journeys"
    DELIVERY = "delivery", "Delivery settings"
    ANALYTICS = "analytics", "Analytics"
    MEMBERS = "members", "Members"
    API_KEYS = "api_keys", "API keys"
    AUDIT_LOG = "audit_log", "Audit log"


VIEW, EDIT, PUBLISH, EXPORT, ERASE = "view", "edit", "publish", "export", "erase"
ACTIONS = (VIEW, EDIT, PUBLISH, EXPORT, ERASE)

# Which actions exist in which area (publish only for journeys, export only where data
# leaves, erase only for people's data: it cannot be undone).
AREA_ACTIONS: dict[str, tuple[str, ...]] = {
    Area.SEGMENTS: (VIEW, EDIT, EXPORT, ERASE),
    Area.CONTENT: (VIEW, EDIT),
    Area.JOURNEYS: (VIEW, EDIT, PUBLISH),
    Area.DELIVERY: (VIEW, EDIT),
    Area.ANALYTICS: (VIEW, EDIT, EXPORT),
    Area.MEMBERS: (VIEW, EDIT),
    Area.API_KEYS: (VIEW, EDIT),
    Area.AUDIT_LOG: (VIEW,),
}

_ALL = {area: set(actions) for area, actions in AREA_ACTIONS.items()}

_GRANTS: dict[str, dict[str, set[str]]] = {
    Role.OWNER: _ALL,
    Role.ADMIN: _ALL,
    # Marketers pick assets and templates for their journeys; content editors make them.
    Role.MARKETER: {
        Area.SEGMENTS: {VIEW, EDIT},
        Area.CONTENT: {VIEW},
        Area.JOURNEYS: {VIEW, EDIT, PUBLISH},
        Area.DELIVERY: {VIEW},
        Area.ANALYTICS: {VIEW},
    },
    Role.CONTENT_EDITOR: {
        Area.SEGMENTS: {VIEW},
        Area.CONTENT: {VIEW, EDIT},
        Area.JOURNEYS: {VIEW},
        Area.ANALYTICS: {VIEW},
    },
    Role.ANALYST: {
        Area.SEGMENTS: {VIEW, EDIT, EXPORT},
        Area.CONTENT: {VIEW},
        Area.JOURNEYS: {VIEW},
        Area.DELIVERY: {VIEW},
        Area.ANALYTICS: {VIEW, EDIT, EXPORT},
    },
    Role.VIEWER: {
        Area.SEGMENTS: {VIEW},
        Area.CONTENT: {VIEW},
        Area.JOURNEYS: {VIEW},
        Area.ANALYTICS: {VIEW},
    },
}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    role: frozenset(f"{area}.{action}" for area, actions in grants.items() for action in actions)
    for role, grants in _GRANTS.items()
}

ALL_PERMISSIONS: frozenset[str] = frozenset(
    f"{area}.{action}" for area, actions in AREA_ACTIONS.items() for action in actions
)

# Only an owner may grant or take away the owner role.
ROLES_ASSIGNABLE_BY: dict[str, tuple[str, ...]] = {
    Role.OWNER: tuple(Role.values),
    Role.ADMIN: tuple(r for r in Role.values if r != Role.OWNER),
}


def role_has_permission(role: str, permission: str) -> bool:
    if permission not in ALL_PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    return permission in ROLE_PERMISSIONS.get(role, frozenset())


def permission_table_markdown() -> str:
    """The table in docs/roles.md, rendered from the code (a test keeps them equal)."""
    roles = list(Role)
    header = "| Area | " + " | ".join(role.label for role in roles) + " |"
    rule = "|---|" + "---|" * len(roles)
    rows = [header, rule]
    for area in Area:
        cells = []
        for role in roles:
            granted = [
                a for a in AREA_ACTIONS[area] if f"{area.value}.{a}" in ROLE_PERMISSIONS[role]
            ]
            cells.append(", ".join(granted) if granted else "-")
        rows.append(f"| {area.label} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"
