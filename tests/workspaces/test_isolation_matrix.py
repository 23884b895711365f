"""The isolation and permission matrix: every URL pattern x every role x own / other
workspace's object, generated from the URL conf.

Each URL is classified by what it is, read off the view object:
- a workspace page (`/w/<slug>/...`): its `@workspace_view` declaration
  (`view.required_permissions`, engagement_site/workspaces/access.py);
- a REST endpoint under /api/v1/: the API view's `required_permissions`;
- anything else must be listed in OUTSIDE_WORKSPACES with the reason it is not a
  workspace URL (login, signed-token links, write-key endpoints, staff-only tools).
A URL that is none of these, or whose `<...>` argument has no entry in
OBJECT_FACTORIES, fails test_every_url_pattern_is_in_the_matrix with what to add.

For each workspace / API URL, each method it declares, and each actor (the six roles
of acme, a secret key of each role for the API, a member of another workspace only,
an anonymous visitor), the expected answer comes from the permission table
(engagement_site/workspaces/roles.py):
- the role has the permission: own object answered (neither 401, 403, 404 nor 5xx);
  another workspace's object through our own workspace: 404;
- the role lacks it: 403 whose body names the permission, for own and foreign objects;
- the other workspace's URL (its slug, or X-Workspace for the API): 404 for everyone;
- a non-member: 404; anonymous: the login page (HTML) or 401 (API).
A refused unsafe request must leave the object's row, the workspaces' row counts and
the audit log as they were. Allowed unsafe requests run in a savepoint rolled back at
once, so each request sees the same world.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client, override_settings

from analytics.value import customer_value_compute
from content import services as content_services
from content.assets import asset_folder_create, asset_process, asset_upload
from content.models import Asset, AssetFolder, Template, TemplateVersion
from delivery import operations as delivery_operations
from delivery.models import FrequencyCap, Message, Suppression
from engagement_site.workspaces.access import required_permission
from engagement_site.workspaces.authentication import HasWorkspacePermission
from engagement_site.workspaces.models import (
    ApiKey,
    AuditAction,
    AuditLog,
    Membership,
    Workspace,
)
from engagement_site.workspaces.roles import Role, role_has_permission
from engagement_site.workspaces.services import api_key_create, workspace_create
from journeys import services as journey_services
from journeys.models import Journey
from segments import services as segment_services
from segments.importers import import_draft_create
from segments.models import EventSchema, ImportJob, Profile, Segment
from tests.conftest import PASSWORD, SETUP
from tests.content import samples
from tests.urlconf import url_patterns

OWN, OTHER = "acme", "globex"
ROLES = [role.value for role in Role]
NON_MEMBER, ANONYMOUS = "non-member", "anonymous"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}

# --------------------------------------------------------------------------- the walk


@dataclass(frozen=True)
class Route:
    route: str  # the pattern as written, e.g. "w/<slug:workspace_slug>/journeys/<int:journey_id>/"
    name: str
    callback: Callable

    @property
    def arguments(self) -> list[str]:
        return re.findall(r"<(?:\w+:)?(\w+)>", self.route)

    @property
    def view_class(self):
        return getattr(self.callback, "view_class", None) or getattr(self.callback, "cls", None)

    @property
    def kind(self) -> str:
        if "<slug:workspace_slug>" in self.route:
            return "page"
        view_class = self.view_class
        if (
            self.route.startswith("api/v1/")
            and view_class is not None
            and HasWorkspacePermission in getattr(view_class, "permission_classes", ())
        ):
            return "api"
        return "outside"

    @property
    def required_permissions(self) -> dict[str, str] | None:
        holder = self.view_class if self.kind == "api" else self.callback
        return getattr(holder, "required_permissions", None)

    def methods(self) -> list[str]:
        declared = self.required_permissions or {}
        if self.kind == "page" or "*" in declared:
            return ["GET", "POST"]
        return sorted(declared)

    def path(self, values: dict[str, Any]) -> str:
        return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), self.route)

    def __str__(self) -> str:
        return self.route


ALL_ROUTES = [
    Route(route, pattern.name or "", pattern.callback) for route, pattern in url_patterns()
]

# URLs that are not inside one workspace, and why; each is checked elsewhere as said.
OUTSIDE_WORKSPACES: dict[str, str] = {
    "home": "sends a signed-in user to one of their own workspaces",
    "login": "the login page (tests/workspaces/test_audit.py, tests/site)",
    "logout": "ends the caller's own session",
    "healthz": "liveness probe, no workspace data",
    "tracking_batch": "the write key names the workspace (tests/segments/test_ingestion_api.py)",
    "tracking_single": "the write key names the workspace (tests/segments/test_ingestion_api.py)",
    "unsubscribe": "signed per-message token (tests/delivery/test_email.py::"
    "test_the_unsubscribe_page_asks_first_and_forged_links_are_refused)",
    "preferences": "signed per-profile token (tests/delivery/test_preferences.py::"
    "test_a_forged_or_altered_link_is_refused)",
    "opt_in_confirm": "signed per-message token (tests/delivery/test_double_opt_in.py::"
    "test_expired_forged_and_overtaken_links_change_nothing)",
    "track_open": "signed per-message token (tests/delivery/test_email.py::"
    "test_tracked_links_and_the_open_pixel_record_people_not_machines)",
    "track_click": "HMAC-signed link (tests/delivery/test_email.py::"
    "test_tracked_links_and_the_open_pixel_record_people_not_machines)",
    "provider_hook": "a per-workspace, per-channel hook token (tests/delivery/test_sms.py)",
    "inbox_list": "the write key names the workspace (tests/delivery/test_in_app.py::"
    "test_another_users_another_workspaces_and_forged_ids_are_not_found)",
    "inbox_message_action": "the write key names the workspace (tests/delivery/test_in_app.py::"
    "test_another_users_another_workspaces_and_forged_ids_are_not_found)",
    "api_devices": "the write key names the workspace (tests/delivery/test_devices.py::"
    "test_another_workspaces_key_cannot_touch_this_workspaces_profiles_or_devices)",
    "api_subscriptions": "the write key names the workspace (tests/delivery/test_double_opt_in.py)",
    "api_push_engagement": "the write key names the workspace (tests/delivery/test_push.py)",
    "api_schema": "the OpenAPI document, no workspace data",
    "api_docs": "the OpenAPI browser page, no workspace data",
    "media_public": "published asset files, public by design (tests/content/test_assets.py::"
    "test_originals_are_for_members_only_and_other_workspaces_get_404)",
}
# Whole URL trees for operators of the installation (is_staff), not workspace members.
STAFF_ONLY_PREFIXES = ("admin/", "django-rq/")


def _is_outside(route: Route) -> bool:
    return route.name in OUTSIDE_WORKSPACES or route.route.startswith(STAFF_ONLY_PREFIXES)


MATRIX_ROUTES = [r for r in ALL_ROUTES if r.kind in ("page", "api") and not _is_outside(r)]

# --------------------------------------------------------------------------- the world


@dataclass
class Tenant:
    workspace: Workspace
    objects: dict[str, Any] = field(default_factory=dict)  # URL argument -> value


@dataclass
class World:
    own: Tenant
    other: Tenant
    sessions: dict[str, Client]  # actor -> logged-in client (anonymous: none)
    keys: dict[str, str]  # role -> raw secret key of acme


def _journey(tenant: Tenant) -> int:
    definition = {
        "nodes": [
            {"id": "start", "type": "trigger", "trigger": {"kind": "api"}, "next": "split"},
            {
                "id": "split",
                "type": "split",
                "variants": [
                    {"key": "a", "weight": 50, "next": "done"},
                    {"key": "b", "weight": 50, "next": "done"},
                ],
            },
            {"id": "done", "type": "exit"},
        ]
    }
    journey = journey_services.journey_create(
        workspace=tenant.workspace, name="Welcome", context=SETUP
    )
    journey_services.journey_draft_save(journey=journey, definition=definition, context=SETUP)
    return journey.pk


def _profile(tenant: Tenant) -> int:
    profile = Profile.objects.create(
        workspace=tenant.workspace, user_id="ada", email="ada@example.com"
    )
    customer_value_compute(workspace=tenant.workspace)  # /profiles/<id>/value reads it
    return profile.pk


def _segment(tenant: Tenant) -> int:
    return segment_services.segment_create(
        workspace=tenant.workspace,
        name="Pro plan",
        definition={"type": "attribute", "trait": "plan", "op": "eq", "value": "pro"},
        context=SETUP,
    ).pk


def _template(tenant: Tenant) -> int:
    template = content_services.template_create(
        workspace=tenant.workspace,
        name="Weekly",
        channel="email",
        content={"default": {"subject": "Hello", "html": "<p>Hi {{ profile.first_name }}</p>"}},
        context=SETUP,
    )
    tenant.objects["_template"] = template
    return template.pk


def _asset(tenant: Tenant) -> int:
    asset = asset_upload(
        workspace=tenant.workspace,
        uploaded_file=SimpleUploadedFile("hero.png", samples.png()),
        context=SETUP,
    )
    asset_process(asset_id=asset.pk)  # the job queued on commit: metadata and thumbnail
    return asset.pk


def _folder(tenant: Tenant) -> int:
    return asset_folder_create(workspace=tenant.workspace, name="Heroes", context=SETUP).pk


def _import(tenant: Tenant) -> int:
    return import_draft_create(
        workspace=tenant.workspace,
        kind="profiles",
        uploaded_file=SimpleUploadedFile("people.csv", b"user_id,email\nbo,bo@example.com\n"),
        context=SETUP,
    ).pk


def _message(tenant: Tenant) -> int:
    from django.utils import timezone

    template = tenant.objects["_template"]
    return Message.objects.create(
        workspace=tenant.workspace,
        idempotency_key=f"matrix-{tenant.workspace.slug}",
        profile_id=tenant.objects["profile_id"],
        channel="email",
        template_version=template.current_version,
        created_at=timezone.now(),
        next_attempt_at=timezone.now(),
    ).pk


def _cap(tenant: Tenant) -> int:
    return delivery_operations.frequency_cap_add(
        workspace=tenant.workspace, channel="email", limit=3, window_seconds=86400, context=SETUP
    ).pk


def _suppression(tenant: Tenant) -> int:
    return delivery_operations.suppression_add_by_hand(
        workspace=tenant.workspace,
        channel="email",
        address="gone@example.com",
        note="asked",
        context=SETUP,
    ).pk


def _membership(tenant: Tenant) -> int:
    user = get_user_model().objects.create_user(
        username=f"extra-{tenant.workspace.slug}", password=PASSWORD
    )
    return Membership.objects.create(workspace=tenant.workspace, user=user, role=Role.VIEWER).pk


def _api_key(tenant: Tenant) -> int:
    return api_key_create(workspace=tenant.workspace, kind="write", name="Website", context=SETUP)[
        0
    ].pk


def _event_schema(tenant: Tenant) -> int:
    return EventSchema.objects.create(workspace=tenant.workspace, event_name="Signed Up").pk


# URL argument -> (the model its value is the primary key of, or None; factory). Factories
# run in this order, once per workspace. A new `<...>` in a URL needs an entry here.
OBJECT_FACTORIES: dict[str, tuple[type | None, Callable[[Tenant], Any]]] = {
    "journey_id": (Journey, _journey),
    "profile_id": (Profile, _profile),
    "segment_id": (Segment, _segment),
    "template_id": (Template, _template),
    "number": (None, lambda tenant: 1),  # a template's first version
    "asset_id": (Asset, _asset),
    "folder_id": (AssetFolder, _folder),
    "import_id": (ImportJob, _import),
    "message_id": (Message, _message),
    "cap_id": (FrequencyCap, _cap),
    "suppression_id": (Suppression, _suppression),
    "membership_id": (Membership, _membership),
    "api_key_id": (ApiKey, _api_key),
    "event_schema_id": (EventSchema, _event_schema),
    # Names rather than rows: the same in every workspace.
    "workspace_slug": (None, lambda tenant: tenant.workspace.slug),
    "channel": (None, lambda tenant: "email"),
    "kind": (None, lambda tenant: "webhook-signing"),
    "node_id": (None, lambda tenant: "split"),
    "table": (None, lambda tenant: "messages"),
}
# Rows counted before and after every refused unsafe request (both workspaces).
COUNTED = [
    Journey, Profile, Segment, Template, TemplateVersion, Asset, AssetFolder, ImportJob,
    Message, FrequencyCap, Suppression, Membership, ApiKey, EventSchema,
]  # fmt: skip


def _user(username: str):
    return get_user_model().objects.create_user(
        username=username, email=f"{username}@example.com", password=PASSWORD
    )


def _logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _cached_templates() -> list[dict]:
    """The project's template settings with production's cached loader: development
    settings compile every template on every render, which made the matrix's few
    thousand page requests several times slower."""
    engines = copy.deepcopy(settings.TEMPLATES)
    for engine in engines:
        loaders = engine["OPTIONS"]["loaders"]
        if loaders and loaders[0][0] != "django.template.loaders.cached.Loader":
            engine["OPTIONS"]["loaders"] = [("django.template.loaders.cached.Loader", loaders)]
    return engines


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    """Both workspaces with one object of each kind, built once for the module inside a
    transaction rolled back at its end (each test adds its own savepoint)."""
    media = tmp_path_factory.mktemp("media")
    with (
        django_db_blocker.unblock(),
        override_settings(MEDIA_ROOT=media, TEMPLATES=_cached_templates()),
        transaction.atomic(),
    ):
        own = Tenant(
            workspace_create(name="Acme", slug=OWN, owner=_user("own-owner"), context=SETUP)
        )
        other_owner = _user("other-owner")
        other = Tenant(
            workspace_create(name="Globex", slug=OTHER, owner=other_owner, context=SETUP)
        )
        for tenant in (own, other):
            for argument, (_, factory) in OBJECT_FACTORIES.items():
                tenant.objects[argument] = factory(tenant)
        sessions = {
            Role.OWNER.value: _logged_in(own.workspace.memberships.get(role=Role.OWNER).user)
        }
        for role in ROLES[1:]:
            user = _user(f"own-{role}")
            Membership.objects.create(workspace=own.workspace, user=user, role=role)
            sessions[role] = _logged_in(user)
        sessions[NON_MEMBER] = _logged_in(other_owner)
        keys = {
            role: api_key_create(
                workspace=own.workspace, kind="secret", name=role, role=role, context=SETUP
            )[1]
            for role in ROLES
        }
        yield World(own=own, other=other, sessions=sessions, keys=keys)
        transaction.set_rollback(True)


# --------------------------------------------------------------------------- coverage


def test_every_url_pattern_is_in_the_matrix():
    """A new URL fails here until it declares its permission (or says why it is outside
    every workspace) and its arguments have factories."""
    problems = []
    for route in ALL_ROUTES:
        if _is_outside(route):
            continue
        if route.kind == "outside":
            problems.append(
                f"{route} ({route.name or 'unnamed'}): not under /w/<workspace_slug>/ and not an "
                "API view with HasWorkspacePermission. Put it under a workspace, or add its name "
                "to OUTSIDE_WORKSPACES in tests/workspaces/test_isolation_matrix.py with the test "
                "that covers it."
            )
            continue
        if not route.required_permissions:
            where = (
                "`required_permissions` on the API view"
                if route.kind == "api"
                else "@workspace_view(...) on the view"
            )
            problems.append(f"{route}: no permission declared; add {where}.")
        for argument in route.arguments:
            if argument not in OBJECT_FACTORIES:
                problems.append(
                    f"{route}: no factory for <{argument}>; add one to OBJECT_FACTORIES in "
                    "tests/workspaces/test_isolation_matrix.py that makes the object in a workspace."
                )
    assert problems == []


def test_the_matrix_covers_every_pattern_method_and_actor():
    """Prints the matrix's size (run with -s): URL patterns walked, (pattern, method)
    pairs checked and requests made."""
    requests = sum(len(_cases(route)) for route, _ in MATRIX)
    print(
        f"\nisolation matrix: {len(ALL_ROUTES)} URL patterns walked, {len(MATRIX_ROUTES)} in "
        f"the matrix ({len(MATRIX)} pattern x method pairs, {requests} requests), "
        f"{len(STAFF_ROUTES)} staff-only, {len(OUTSIDE_WORKSPACES)} outside every workspace"
    )
    assert {route.route for route, _ in MATRIX} == {route.route for route in MATRIX_ROUTES}
    assert requests >= 9 * len(MATRIX)  # six roles, their workspace, non-member, anonymous


def test_the_walk_finds_pages_and_api_views():
    kinds = {route.name: route.kind for route in MATRIX_ROUTES}
    assert (kinds["journey_editor"], kinds["api_journey_publish"]) == ("page", "api")
    assert len([k for k in kinds.values() if k == "page"]) >= 70
    assert len([k for k in kinds.values() if k == "api"]) >= 55


# --------------------------------------------------------------------------- the matrix


@dataclass(frozen=True)
class Case:
    actor: str  # a role, NON_MEMBER or ANONYMOUS
    by_key: bool  # API only: the role's secret key instead of a session
    where: str  # "own", "foreign object" (their id in our workspace), "their workspace"


def _cases(route: Route) -> list[Case]:
    has_object = any(OBJECT_FACTORIES[a][0] is not None for a in route.arguments)
    wheres = ["own", "foreign object"] if has_object else ["own"]
    cases = [Case(actor, False, where) for actor in ROLES for where in wheres]
    # The other workspace's own URL, by the most powerful role here: membership is
    # checked before the role, so one role stands for all.
    cases += [
        Case(Role.OWNER.value, False, "their workspace"),
        Case(NON_MEMBER, False, "own"),
        Case(ANONYMOUS, False, "own"),
    ]
    if route.kind == "api":
        # A key names its own workspace: there is no "their workspace" way in.
        cases += [Case(role, True, where) for role in ROLES for where in wheres]
    return cases


def _expected(route: Route, method: str, case: Case) -> tuple[str, str | None]:
    """("allowed" | "403" | "404" | "405" | "login" | "401", the permission needed)."""
    permission = required_permission(route.required_permissions, method)
    if case.actor == ANONYMOUS:
        return ("401" if route.kind == "api" else "login"), permission
    if case.actor == NON_MEMBER or case.where == "their workspace":
        return "404", permission
    if permission is None:
        return "405", None
    if not role_has_permission(case.actor, permission):
        return "403", permission
    return ("allowed" if case.where == "own" else "404"), permission


def _values(world: World, route: Route, case: Case) -> tuple[dict[str, Any], dict[str, str]]:
    tenant = world.own if case.where == "own" else world.other
    values = {a: tenant.objects[a] for a in route.arguments}
    headers = {}
    if case.where != "their workspace":
        values["workspace_slug"] = OWN
    if route.kind == "api":
        if case.by_key:
            headers["Authorization"] = f"Bearer {world.keys[case.actor]}"
        else:
            headers["X-Workspace"] = values.get("workspace_slug", tenant.workspace.slug)
    return values, headers


def _client(world: World, case: Case) -> Client:
    if case.actor == ANONYMOUS or case.by_key:
        return Client()
    return world.sessions[case.actor]


def _send(client: Client, route: Route, method: str, path: str, headers: dict):
    if route.kind == "api" and method in UNSAFE:
        return client.generic(
            method, path, data=b"{}", content_type="application/json", headers=headers
        )
    if method == "POST":
        return client.post(path, {}, headers=headers)
    return client.generic(method, path, headers=headers)


def _state(route: Route, values: dict[str, Any]) -> dict[str, Any]:
    """What a refused request must not change: the rows named in the URL, the row counts
    of both workspaces and their audit logs (a key's `last used` stamp aside)."""
    state: dict[str, Any] = {model.__name__: model.objects.count() for model in COUNTED}
    state["audit"] = AuditLog.objects.exclude(action=AuditAction.API_KEY_USE).count()
    for argument in route.arguments:
        model = OBJECT_FACTORIES[argument][0]
        if model is not None:
            row = model.objects.filter(pk=values[argument]).values().first()
            if row is not None:
                row.pop("last_used_at", None)
            state[argument] = row
    return state


def _check(route: Route, response, expected: str, permission: str | None) -> str | None:
    status = response.status_code
    if (
        status == 405
        and expected in ("allowed", "404")
        and route.required_permissions == {"*": permission}
    ):
        # A page declared for every method may still serve only some (require_POST
        # after the role check): 405 says nothing about the object.
        return None
    if expected == "allowed":
        return None if status not in (401, 403, 404) and status < 500 else f"refused ({status})"
    if expected == "login":
        location = response.get("Location", "")
        return None if status == 302 and location.startswith("/login/") else f"{status} {location}"
    if expected == "403":
        if status != 403:
            return f"{status}, expected 403"
        body = response.content.decode(errors="replace")
        return None if permission in body else f"403 without naming {permission}: {body[:200]!r}"
    return None if status == int(expected) else f"{status}, expected {expected}"


MATRIX = [(route, method) for route in MATRIX_ROUTES for method in route.methods()]


@pytest.mark.parametrize(
    ("route", "method"), MATRIX, ids=[f"{method}-{route.name}" for route, method in MATRIX]
)
def test_matrix(route: Route, method: str, world: World, db):
    failures = []
    for case in _cases(route):
        expected, permission = _expected(route, method, case)
        values, headers = _values(world, route, case)
        path = route.path(values)
        refused = expected != "allowed" and method in UNSAFE
        savepoint = transaction.savepoint()
        try:
            before = _state(route, values) if refused else None
            try:
                response = _send(_client(world, case), route, method, path, headers)
            except Exception as error:  # a 500 in the view
                failures.append(f"{case}: {method} {path} raised {error!r}")
                continue
            problem = _check(route, response, expected, permission)
            if problem:
                failures.append(f"{case}: {method} {path} -> {problem}")
            if refused and _state(route, values) != before:
                failures.append(f"{case}: {method} {path} must change nothing, but data changed")
        finally:
            transaction.savepoint_rollback(savepoint)
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------- staff tools

STAFF_ROUTES = [
    r
    for r in ALL_ROUTES
    if r.route.startswith(STAFF_ONLY_PREFIXES)
    and r.route not in ("admin/login/", "admin/logout/")
    and "^" not in r.route
]


def _staff_path(route: Route) -> str:
    return "/" + re.sub(r"<(\w+):\w+>", lambda m: "1" if m.group(1) == "int" else "x", route.route)


def test_staff_tools_send_every_workspace_member_to_the_login(world: World, db):
    """/admin/ and /django-rq/ are for operators (is_staff): a workspace owner, any other
    member and an anonymous visitor are sent to sign in, never shown a page."""
    assert len(STAFF_ROUTES) >= 20
    actors = {"owner": world.sessions[Role.OWNER.value], "anonymous": Client()}
    answered = {}
    for route in STAFF_ROUTES:
        for actor, client in actors.items():
            response = client.get(_staff_path(route))
            location = response.get("Location", "")
            if response.status_code != 302 or "login" not in location:
                answered[(actor, route.route)] = (response.status_code, location)
    assert answered == {}
