"""Websocket routes x every role x own / other workspace, generated from
engagement_site/routing.py: each consumer declares `required_permission`, a member
whose role has it is let in to their own workspace's numbers, and everyone else (a
role without it, a member asking for another workspace's journey or overview, a
non-member, an anonymous visitor) is refused before the handshake completes. Runs
the project's own ASGI application (origin check, session auth, URL router) with
Channels' WebsocketCommunicator and the real Redis channel layer."""

from __future__ import annotations

import os
import re

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import URLPattern

from engagement_site.routing import websocket_urlpatterns
from engagement_site.workspaces.models import Membership
from engagement_site.workspaces.roles import Role, role_has_permission
from engagement_site.workspaces.services import workspace_create
from journeys import services as journey_services
from tests.conftest import SETUP, _user

pytestmark = pytest.mark.django_db(transaction=True)

ROLES = [role.value for role in Role]


def _application():
    # asgi.py turns the web process's connection pool on through the environment;
    # children that later tests start must not inherit that.
    had_pool_setting = "DATABASE_POOL" in os.environ
    from engagement_site.asgi import application

    if not had_pool_setting:
        os.environ.pop("DATABASE_POOL", None)
    return application


APPLICATION = _application()


def _routes() -> list[tuple[str, type]]:
    found = []
    for pattern in websocket_urlpatterns:
        assert isinstance(pattern, URLPattern), "nested websocket routers: walk them here"
        found.append((str(pattern.pattern), pattern.callback.consumer_class))
    return found


ROUTES = _routes()


def test_every_websocket_route_declares_its_permission():
    assert [route for route, _ in ROUTES] == [
        "ws/journeys/<int:journey_id>/",
        "ws/analytics/<slug:workspace_slug>/",
    ]
    undeclared = [
        route for route, consumer in ROUTES if not getattr(consumer, "required_permission", None)
    ]
    assert undeclared == [], "give each consumer `required_permission` and check it in connect"


def _cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def _connect(path: str, cookie: bytes | None) -> tuple[bool, dict | None]:
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if cookie:
        headers.append((b"cookie", cookie))
    communicator = WebsocketCommunicator(APPLICATION, path, headers=headers)
    connected, _ = await communicator.connect(timeout=60)
    frame = await communicator.receive_json_from(timeout=60) if connected else None
    await communicator.disconnect()
    return connected, frame


@pytest.mark.parametrize(("route", "consumer"), ROUTES, ids=[route for route, _ in ROUTES])
def test_websocket_matrix(route, consumer):
    acme = workspace_create(name="Acme", slug="acme", owner=_user("ws-owner"), context=SETUP)
    globex = workspace_create(name="Globex", slug="globex", owner=_user("ws-other"), context=SETUP)
    values = {
        workspace.slug: {
            "workspace_slug": workspace.slug,
            "journey_id": journey_services.journey_create(
                workspace=workspace, name="Welcome", context=SETUP
            ).pk,
        }
        for workspace in (acme, globex)
    }
    cookies = {Role.OWNER.value: _cookie(Membership.objects.get(workspace=acme).user)}
    for role in ROLES[1:]:
        user = _user(f"ws-{role}")
        Membership.objects.create(workspace=acme, user=user, role=role)
        cookies[role] = _cookie(user)
    outsider = _user("ws-outsider")  # signed in, in no workspace
    cookies["non-member"] = _cookie(outsider)
    cookies["anonymous"] = None

    def path(tenant: str) -> str:
        return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[tenant][m.group(1)]), route)

    outcomes = {}
    for actor, cookie in cookies.items():
        for tenant in ("acme", "globex"):
            connected, frame = async_to_sync(_connect)(path(tenant), cookie)
            outcomes[(actor, tenant)] = (connected, frame["type"] if frame else None)

    frame_type = {"journeys": "metrics", "analytics": "overview"}[route.split("/")[1]]
    expected = {}
    for actor in cookies:
        allowed = actor in ROLES and role_has_permission(actor, consumer.required_permission)
        expected[(actor, "acme")] = (True, frame_type) if allowed else (False, None)
        expected[(actor, "globex")] = (False, None)  # nobody here is a member of globex
    assert outcomes == expected
