"""Schemathesis over the REST API's OpenAPI schema: every operation, as every role.

The schema is the one `/api/schema/` serves (drf-spectacular), fetched in-process from
the WSGI app. Requests go to the real app in-process (WSGI: the same middleware,
authentication and PostgreSQL as production) with a secret API key of a role. Each
operation is one pytest test (`-k "POST /api/v1/segments/"` selects one) with its own
database transaction (pytest-django's `db`), so destructive operations (erase, delete,
revoke, archive) only touch that test's rows.

Cases come from schemathesis' coverage phase (boundary values, missing and wrong-typed
fields, invalid path parameters, methods the operation does not have) and its fuzzing
phase (MAX_EXAMPLES derandomized examples per operation, positive and negative).
Each case goes with one role allowed the operation, chosen from the request's content;
the first case of an operation also goes with every other role, so every role calls
every operation, and a role refused must get 403 naming the permission (or 404 for a
URL the API does not have) before any input is read.

Checks on every response: no 5xx, the status code is one the schema documents for the
operation, the content type and the body match the schema, and a method the operation
does not have answers 405 with Allow. Path parameters are mostly
ids of objects seeded in the test's workspace (a profile with events, a segment, a
draft and a live journey, a template, an asset in a folder, an event schema, an API
key), so operations reach their real
work rather than 404.
"""

from __future__ import annotations

import re
import zlib
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from django.urls import resolve
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi import checks as openapi_checks

from content import services as content_services
from content.assets import asset_folder_create, asset_upload
from engagement_site.workspaces.roles import Role, role_has_permission
from engagement_site.workspaces.services import AuditContext, api_key_create, workspace_create
from journeys import services as journey_services
from segments.models import Event, EventSchema, Identity, Profile, Segment
from tests.conftest import SETUP, _user
from tests.content import samples
from tests.journeys.test_journeys_api import API_JOURNEY

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(600)]

APP = get_wsgi_application()
schema = schemathesis.openapi.from_wsgi("/api/schema/", APP)

CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    # A method the operation does not have: 405 with Allow.
    openapi_checks.unsupported_method,
]
MAX_EXAMPLES = 8

# Filled per test by the `seeded` fixture: the ids the path parameters are drawn from.
SEEDED: dict[str, list] = {}


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Most examples use an id that exists in the workspace; some keep the generated one."""
    known = {name: SEEDED[name] for name in path_parameters or {} if SEEDED.get(name)}
    if not known:
        return st.just(path_parameters)
    seeded = st.fixed_dictionaries(
        {name: st.sampled_from(values) for name, values in known.items()}
    )
    return st.one_of(
        seeded.map(lambda values: {**path_parameters, **values}), st.just(path_parameters)
    )


@pytest.fixture(autouse=True, scope="module")
def _keep_the_test_connection():
    """The WSGI handler closes the database connection at the end of each request (as in
    production); here it is the test's transaction, so keep it open, as Django's test
    Client does."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(db):
    owner = _user("schema-owner")
    workspace = workspace_create(name="Fuzz", slug="fuzz", owner=owner, context=SETUP)
    context = AuditContext.system("schemathesis seed")
    keys = {
        role: api_key_create(
            workspace=workspace, kind="secret", name=role, role=role, context=SETUP
        )
        for role in Role.values
    }
    # Revoked by the fuzzer, rather than the key it calls with.
    spare_key, _ = api_key_create(
        workspace=workspace, kind="secret", name="spare", role=Role.VIEWER, context=SETUP
    )
    now = datetime.now(UTC)
    profile = Profile.objects.create(
        workspace=workspace,
        user_id="ada-1",
        email="ada@example.com",
        first_seen=now - timedelta(days=30),
        last_seen=now,
        traits={"plan": "pro"},
    )
    Identity.objects.create(workspace=workspace, kind="user_id", value="ada-1", profile=profile)
    for number in range(3):
        Event.objects.create(
            workspace=workspace,
            profile=profile,
            name="order_completed",
            timestamp=now - timedelta(days=number),
            message_id=f"seed-{number}",
            properties={"value": 10 * number},
        )
    segment = Segment.objects.create(
        workspace=workspace,
        name="Pro",
        definition={"type": "attribute", "trait": "plan", "op": "eq", "value": "pro"},
    )
    template = content_services.template_create(
        workspace=workspace,
        name="Welcome",
        channel="email",
        content={"default": {"subject": "Hi {{ first_name }}", "html": "<p>Hello</p>"}},
        context=context,
    )
    folder = asset_folder_create(workspace=workspace, name="Banners", context=context)
    asset = asset_upload(
        workspace=workspace,
        uploaded_file=SimpleUploadedFile("banner.png", samples.png(), content_type="image/png"),
        folder=folder,
        context=context,
    )
    event_schema = EventSchema.objects.create(
        workspace=workspace,
        event_name="order_completed",
        properties={"value": {"type": "number", "required": True}},
    )
    draft = journey_services.journey_create(
        workspace=workspace, name="Draft", definition=API_JOURNEY, context=context
    )
    published = journey_services.journey_create(
        workspace=workspace, name="Live", definition=API_JOURNEY, context=context
    )
    journey_services.journey_publish(journey=published, context=context)
    SEEDED.clear()
    SEEDED.update(
        {
            "profile_id": [profile.pk],
            "segment_id": [segment.pk],
            "template_id": [template.pk],
            "folder_id": [folder.pk],
            "asset_id": [asset.pk],
            "event_schema_id": [event_schema.pk],
            "journey_id": [draft.pk, published.pk],
            "node_id": ["api", "tag"],
            "api_key_id": [spare_key.pk],
            "number": [1],
            "table": ["events", "profiles", "messages"],
        }
    )
    yield {"keys": {role: raw for role, (_, raw) in keys.items()}, "sent": set()}
    SEEDED.clear()


# Least privileged first: a role refused with 403 sees the seeded objects before a role
# allowed to delete or erase them acts.
ROLES = (
    Role.VIEWER,
    Role.CONTENT_EDITOR,
    Role.ANALYST,
    Role.MARKETER,
    Role.ADMIN,
    Role.OWNER,
)


def required_permission(case) -> str | None:
    """The permission the operation's view asks of the role for the request's method
    (HasWorkspacePermission); None for a method the view does not answer (405)."""
    view = resolve(re.sub(r"\{[^}]+\}", "1", case.operation.path)).func.view_class
    required = view.required_permissions
    method = "GET" if case.method.upper() == "HEAD" else case.method.upper()
    return required.get(method) or required.get("*")


def allowed(role: str, permission: str | None) -> bool:
    return permission is None or role_has_permission(role, permission)


def roles_for(case, permission: str | None, already: set[str]) -> list[str]:
    """One role allowed the operation, chosen by the request's content (the same request
    always goes with the same role, so hypothesis can replay a failure); and, on the
    first request of the test, every role not sent yet, so that every role calls every
    operation. Refusals come before any input is read, so one per role is enough."""
    allowed_roles = [role for role in ROLES if allowed(role, permission)]
    content = repr((case.method, case.path_parameters, case.query, case.body)).encode()
    chosen = allowed_roles[zlib.crc32(content) % len(allowed_roles)]
    return [role for role in ROLES if role == chosen or role not in already]


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_as_every_role(case, seeded):
    permission = required_permission(case)
    for role in roles_for(case, permission, seeded["sent"]):
        seeded["sent"].add(role)
        try:
            response = case.call_and_validate(
                headers={"Authorization": f"Bearer {seeded['keys'][role]}"}, checks=CHECKS
            )
            if not allowed(role, permission):
                # Refused, naming the permission; or no such URL (a path parameter the
                # URL does not take) before any permission is looked at.
                body = response.json()
                assert (response.status_code, body["code"]) in (
                    (403, "permission_denied"),
                    (404, "not_found"),
                ), body
                if response.status_code == 403:
                    assert permission in body["message"]
        except Exception as error:
            error.add_note(f"Sent with the secret key of the role {role}.")
            raise


# Exact checks of the two fixes the fuzzing above forced (besides the schema's).


def test_an_api_url_without_a_route_answers_json_404(seeded):
    client = Client(headers={"Authorization": f"Bearer {seeded['keys'][Role.OWNER]}"})
    response = client.get("/api/v1/profiles/not-a-number/")
    assert (response.status_code, response["Content-Type"]) == (404, "application/json")
    assert response.json() == {
        "code": "not_found",
        "message": "The API has no resource at /api/v1/profiles/not-a-number/.",
    }
    page = client.get("/w/fuzz/no-such-page/")
    assert (page.status_code, page["Content-Type"]) == (404, "text/html; charset=utf-8")


def test_a_method_an_api_view_does_not_answer_is_405_for_every_role(seeded):
    for role in ROLES:
        client = Client(headers={"Authorization": f"Bearer {seeded['keys'][role]}"})
        response = client.delete("/api/v1/api-keys/")
        assert (response.status_code, response.json()["code"]) == (405, "method_not_allowed")
        assert response["Allow"] == "GET, POST, HEAD, OPTIONS"
    anonymous = Client().delete("/api/v1/api-keys/")
    assert anonymous.status_code == 401
