"""Each role allowed and denied per area: the permission table, the pages and the actions."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from engagement_site.workspaces.models import ApiKey, AuditLog, Membership
from engagement_site.workspaces.roles import ROLE_PERMISSIONS, Role, permission_table_markdown
from tests.conftest import logged_in

# The table written out by hand: a change to roles.py must change this file too.
EXPECTED = {
    "owner": {
        "segments.view", "segments.edit", "segments.export", "segments.erase", "content.view",
        "content.edit", "journeys.view", "journeys.edit", "journeys.publish", "delivery.view", "delivery.edit",
        "analytics.view", "analytics.edit", "analytics.export", "members.view", "members.edit",
        "api_keys.view", "api_keys.edit", "audit_log.view",
    },
    "marketer": {
        "segments.view", "segments.edit", "content.view", "journeys.view",
        "journeys.edit", "journeys.publish", "delivery.view", "analytics.view",
    },
    "content_editor": {"segments.view", "content.view", "content.edit", "journeys.view", "analytics.view"},
    "analyst": {
        "segments.view", "segments.edit", "segments.export", "content.view", "journeys.view",
        "delivery.view", "analytics.view", "analytics.edit", "analytics.export",
    },
    "viewer": {"segments.view", "content.view", "journeys.view", "analytics.view"},
}  # fmt: skip
EXPECTED["admin"] = EXPECTED["owner"]


def test_permission_table_is_exactly_the_documented_one():
    assert {role: set(perms) for role, perms in ROLE_PERMISSIONS.items()} == EXPECTED


def test_docs_roles_page_shows_the_table_from_the_code():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "roles.md").read_text()
    assert permission_table_markdown() in docs


PAGES = {
    "journey_list": set(Role.values),
    "segment_list": set(Role.values),
    "profile_list": set(Role.values),
    "content_home": set(Role.values),
    "analytics_home": set(Role.values),
    "settings_general": {"owner", "admin"},
    "settings_members": {"owner", "admin"},
    "settings_api_keys": {"owner", "admin"},
    "settings_audit_log": {"owner", "admin"},
}


@pytest.mark.parametrize("role", Role.values)
def test_each_page_allows_exactly_the_roles_that_may_see_it(role, workspace, make_member):
    client = logged_in(
        make_member(role) if role != Role.OWNER else workspace.memberships.get().user
    )
    statuses = {
        name: client.get(reverse(name, kwargs={"workspace_slug": "acme"})).status_code
        for name in PAGES
    }
    expected = {name: 200 if role in allowed else 403 for name, allowed in PAGES.items()}
    assert statuses == expected


def test_anonymous_visitor_is_sent_to_login(client, workspace):
    response = client.get(reverse("journey_list", kwargs={"workspace_slug": "acme"}))
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/w/acme/journeys/"


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("owner", True),
        ("admin", True),
        ("marketer", False),
        ("content_editor", False),
        ("analyst", False),
        ("viewer", False),
    ],
)
def test_creating_an_api_key_needs_api_keys_edit(role, allowed, workspace, make_member, owner):
    user = owner if role == "owner" else make_member(role)
    audit_rows_before = AuditLog.objects.count()
    response = logged_in(user).post(
        reverse("settings_api_keys", kwargs={"workspace_slug": "acme"}),
        {"name": "iOS app", "kind": "write", "role": ""},
    )
    if allowed:
        assert response.status_code == 200
        assert ApiKey.objects.filter(workspace=workspace, name="iOS app").count() == 1
        assert AuditLog.objects.count() == audit_rows_before + 1
    else:
        assert response.status_code == 403
        assert ApiKey.objects.count() == 0
        assert AuditLog.objects.count() == audit_rows_before


@pytest.mark.parametrize(
    ("role", "allowed"), [("admin", True), ("marketer", False), ("viewer", False)]
)
def test_adding_a_member_needs_members_edit(role, allowed, workspace, make_member, make_user):
    make_user("newcomer")
    response = logged_in(make_member(role)).post(
        reverse("settings_members", kwargs={"workspace_slug": "acme"}),
        {"email": "newcomer@example.com", "role": "viewer"},
    )
    exists = Membership.objects.filter(workspace=workspace, user__username="newcomer").exists()
    assert (response.status_code, exists) == ((302, True) if allowed else (403, False))


@pytest.mark.parametrize(
    ("role", "allowed"), [("owner", True), ("admin", True), ("analyst", False)]
)
def test_changing_workspace_settings_needs_members_edit(
    role, allowed, workspace, make_member, owner
):
    user = owner if role == "owner" else make_member(role)
    response = logged_in(user).post(
        reverse("settings_general", kwargs={"workspace_slug": "acme"}),
        {"name": "Acme Inc", "time_zone": "Europe/Paris", "default_locale": "fr"},
    )
    workspace.refresh_from_db()
    if allowed:
        assert response.status_code == 302
        assert (workspace.name, workspace.time_zone, workspace.default_locale) == (
            "Acme Inc",
            "Europe/Paris",
            "fr",
        )
    else:
        assert response.status_code in {403}
        assert (workspace.name, workspace.time_zone, workspace.default_locale) == (
            "Acme",
            "UTC",
            "en",
        )


def test_an_admin_cannot_make_anyone_owner(workspace, make_member):
    admin = make_member(Role.ADMIN)
    viewer = make_member(Role.VIEWER)
    membership = Membership.objects.get(user=viewer)
    response = logged_in(admin).post(
        reverse(
            "member_change_role", kwargs={"workspace_slug": "acme", "membership_id": membership.pk}
        ),
        {"role": "owner"},
    )
    membership.refresh_from_db()
    assert response.status_code == 403
    assert membership.role == Role.VIEWER


def test_the_last_owner_cannot_be_removed_or_demoted(workspace, owner):
    membership = Membership.objects.get(user=owner)
    client = logged_in(owner)
    client.post(
        reverse(
            "member_change_role", kwargs={"workspace_slug": "acme", "membership_id": membership.pk}
        ),
        {"role": "viewer"},
    )
    client.post(
        reverse("member_remove", kwargs={"workspace_slug": "acme", "membership_id": membership.pk})
    )
    membership.refresh_from_db()
    assert membership.role == Role.OWNER
    assert (
        AuditLog.objects.filter(workspace=workspace, object_type="workspaces.Membership").count()
        == 0
    )


def test_invalid_workspace_settings_are_refused_with_the_reason(owner, workspace):
    response = logged_in(owner).post(
        reverse("settings_general", kwargs={"workspace_slug": "acme"}),
        {"name": "Acme", "time_zone": "Mars/Olympus", "default_locale": "en"},
    )
    workspace.refresh_from_db()
    assert response.status_code == 200
    assert "&#x27;Mars/Olympus&#x27; is not an IANA time zone" in response.content.decode()
    assert workspace.time_zone == "UTC"
