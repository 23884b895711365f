"""Shared fixtures: two workspaces and the owner / member / outsider trio."""

from __future__ import annotations

from collections.abc import Callable

import django_rq
import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from engagement_site.workspaces.models import Membership, Workspace
from engagement_site.workspaces.roles import Role
from engagement_site.workspaces.services import AuditContext, workspace_create

PASSWORD = "correct horse battery staple"
SETUP = AuditContext.system("test setup")


# The fake providers and receivers of the suite listen on 127.0.0.1; a test that wants
# the production rule sets `settings.OUTBOUND_ALLOWED_NETWORKS = []`.
LOOPBACK_NETWORKS = ["127.0.0.0/8", "::1/128"]


@pytest.fixture(autouse=True, scope="session")
def _outbound_allows_loopback():
    """Outbound requests (engagement_site/outbound.py) may reach loopback, for the whole
    session: fixtures of any scope that validate a local base_url come after this."""
    with override_settings(OUTBOUND_ALLOWED_NETWORKS=LOOPBACK_NETWORKS):
        yield


@pytest.fixture(autouse=True)
def _clean_redis():
    """Each test starts with an empty Redis database (cache, throttles, queues), and
    this process forgets which live-number pings Redis would refuse (journeys.live)."""
    from journeys import live

    django_rq.get_connection("default").flushdb()
    live._pinged_until.clear()
    yield


def _user(username: str, **extra):
    return get_user_model().objects.create_user(
        username=username, email=f"{username}@example.com", password=PASSWORD, **extra
    )


@pytest.fixture
def make_user(db) -> Callable[..., object]:
    return _user


@pytest.fixture
def owner(db):
    return _user("olivia")


@pytest.fixture
def workspace(owner) -> Workspace:
    return workspace_create(name="Acme", slug="acme", owner=owner, context=SETUP)


@pytest.fixture
def outsider(db):
    return _user("oscar")


@pytest.fixture
def other_workspace(outsider) -> Workspace:
    """A second tenant, owned by the outsider; nobody from `workspace` is in it."""
    return workspace_create(name="Globex", slug="globex", owner=outsider, context=SETUP)


@pytest.fixture
def make_member(workspace) -> Callable[[str], object]:
    def make(role: str, *, username: str | None = None, in_workspace: Workspace | None = None):
        user = _user(username or f"{role}-user")
        Membership.objects.create(workspace=in_workspace or workspace, user=user, role=role)
        return user

    return make


@pytest.fixture
def member(make_member):
    return make_member(Role.MARKETER, username="mia")


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def secret_key_client(workspace: Workspace, role: str = "viewer") -> Client:
    """A REST client holding a new secret key of that role in the workspace."""
    from engagement_site.workspaces.services import api_key_create

    key = api_key_create(workspace=workspace, kind="secret", name=role, role=role, context=SETUP)[1]
    return Client(headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def owner_client(owner) -> Client:
    return logged_in(owner)
