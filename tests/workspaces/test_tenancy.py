"""Another workspace's objects answer 404, never their data, for every view that exists."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from engagement_site.workspaces.models import ApiKey, Membership
from engagement_site.workspaces.roles import Role
from engagement_site.workspaces.services import api_key_create
from tests.conftest import SETUP, logged_in
from tests.urlconf import url_patterns


def _workspace_url_names() -> list[tuple[str, str]]:
    """Every named URL under /w/<workspace_slug>/."""
    return [
        (pattern.name, route)
        for route, pattern in url_patterns()
        if pattern.name and "<slug:workspace_slug>" in route
    ]


WORKSPACE_URLS = _workspace_url_names()


def test_the_walk_finds_the_workspace_views():
    names = {name for name, _ in WORKSPACE_URLS}
    assert {
        "journey_list",
        "segment_list",
        "profile_list",
        "settings_members",
        "api_key_revoke",
    } <= names


@pytest.mark.parametrize(
    ("name", "route"), WORKSPACE_URLS, ids=[name for name, _ in WORKSPACE_URLS]
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_every_workspace_view_answers_404_to_a_non_member(
    name, route, method, workspace, other_workspace, outsider
):
    """The outsider owns `globex` but is not in `acme`: every acme URL is a 404 for them."""
    kwargs = {"workspace_slug": "acme"}
    for argument in re.findall(r"<int:(\w+)>", route):
        kwargs[argument] = 1
    for argument in re.findall(r"<(?:slug|str):(\w+)>", route):
        kwargs.setdefault(argument, "email")
    response = getattr(logged_in(outsider), method)(reverse(name, kwargs=kwargs))
    assert response.status_code == 404


def test_a_member_cannot_reach_another_workspaces_objects_through_their_own(
    workspace, other_workspace, owner, outsider
):
    foreign_membership = Membership.objects.get(workspace=other_workspace, user=outsider)
    foreign_key, _ = api_key_create(
        workspace=other_workspace, kind="secret", role="viewer", name="theirs", context=SETUP
    )
    client = logged_in(owner)
    responses = [
        client.post(
            reverse(
                "member_change_role",
                kwargs={"workspace_slug": "acme", "membership_id": foreign_membership.pk},
            ),
            {"role": "viewer"},
        ),
        client.post(
            reverse(
                "member_remove",
                kwargs={"workspace_slug": "acme", "membership_id": foreign_membership.pk},
            )
        ),
        client.post(
            reverse(
                "api_key_revoke", kwargs={"workspace_slug": "acme", "api_key_id": foreign_key.pk}
            )
        ),
    ]
    assert [r.status_code for r in responses] == [404, 404, 404]
    foreign_membership.refresh_from_db()
    foreign_key.refresh_from_db()
    assert foreign_membership.role == Role.OWNER
    assert foreign_key.revoked_at is None


def test_lists_show_only_this_workspaces_rows(workspace, other_workspace, owner):
    api_key_create(workspace=other_workspace, kind="write", name="Globex web", context=SETUP)
    api_key_create(workspace=workspace, kind="write", name="Acme web", context=SETUP)
    page = (
        logged_in(owner)
        .get(reverse("settings_api_keys", kwargs={"workspace_slug": "acme"}))
        .content.decode()
    )
    assert "Acme web" in page
    assert "Globex web" not in page
    members_page = (
        logged_in(owner)
        .get(reverse("settings_members", kwargs={"workspace_slug": "acme"}))
        .content.decode()
    )
    assert "oscar@example.com" not in members_page


def test_api_with_a_secret_key_sees_only_its_workspace(workspace, other_workspace):
    _, acme_key = api_key_create(
        workspace=workspace, kind="secret", role="admin", name="acme", context=SETUP
    )
    globex_key, _ = api_key_create(
        workspace=other_workspace, kind="write", name="globex web", context=SETUP
    )
    headers = {"Authorization": f"Bearer {acme_key}"}
    from django.test import Client

    client = Client(headers=headers)
    listing = client.get("/api/v1/api-keys/").json()
    revoke = client.post(f"/api/v1/api-keys/{globex_key.pk}/revoke")
    assert [row["name"] for row in listing["results"]] == ["acme"]
    assert revoke.status_code == 404
    assert revoke.json() == {"code": "not_found", "message": "No such API key"}
    assert ApiKey.objects.get(pk=globex_key.pk).revoked_at is None


def test_session_api_answers_404_for_a_workspace_the_user_is_not_in(
    workspace, other_workspace, owner
):
    client = logged_in(owner)
    mine = client.get("/api/v1/workspace/", headers={"X-Workspace": "acme"})
    theirs = client.get("/api/v1/workspace/", headers={"X-Workspace": "globex"})
    assert (mine.status_code, mine.json()["slug"], mine.json()["role"]) == (200, "acme", "owner")
    assert theirs.status_code == 404
    assert "Globex" not in theirs.content.decode()
