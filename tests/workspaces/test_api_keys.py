"""API keys: the command, Bearer authentication, roles of keys, revocation."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from engagement_site.workspaces.models import ApiKey
from engagement_site.workspaces.services import api_key_create, api_key_revoke
from tests.conftest import SETUP


def _bearer(key: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {key}"})


def test_create_api_key_prints_a_working_secret_key(workspace):
    out = StringIO()
    call_command(
        "create_api_key", "--workspace", "acme", "--kind", "secret", "--role", "analyst", stdout=out
    )
    raw = out.getvalue().strip()
    api_key = ApiKey.objects.get(workspace=workspace)
    assert raw.startswith("sk_")
    assert (api_key.kind, api_key.role, api_key.public_value, api_key.key_hash) == (
        "secret",
        "analyst",
        "",
        ApiKey.hash_key(raw),
    )
    response = _bearer(raw).get("/api/v1/workspace/")
    assert response.json() == {
        "slug": "acme",
        "name": "Acme",
        "time_zone": "UTC",
        "default_locale": "en",
        "role": "analyst",
    }


def test_create_api_key_write_kind_keeps_the_public_value(workspace):
    out = StringIO()
    call_command("create_api_key", "--workspace", "acme", "--kind", "write", stdout=out)
    raw = out.getvalue().strip()
    assert raw.startswith("wk_")
    assert ApiKey.objects.get(workspace=workspace).public_value == raw


def test_create_api_key_names_an_unknown_workspace(db):
    with pytest.raises(CommandError, match="No workspace with the slug 'nope'"):
        call_command("create_api_key", "--workspace", "nope", "--kind", "write")
    assert ApiKey.objects.count() == 0


def test_unknown_and_revoked_keys_get_401_with_code_and_message(workspace):
    api_key, raw = api_key_create(
        workspace=workspace, kind="secret", role="admin", name="ci", context=SETUP
    )
    api_key_revoke(api_key=api_key, context=SETUP)
    for key in (raw, "sk_not-a-real-key"):
        response = _bearer(key).get("/api/v1/workspace/")
        assert response.status_code == 401
        assert response.json() == {
            "code": "authentication_failed",
            "message": "Unknown or revoked secret key.",
        }
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_write_key_is_not_a_secret_key(workspace):
    _, raw = api_key_create(workspace=workspace, kind="write", name="web", context=SETUP)
    assert _bearer(raw).get("/api/v1/workspace/").status_code == 401


def test_a_key_acts_with_its_role(workspace):
    _, viewer_key = api_key_create(
        workspace=workspace, kind="secret", role="viewer", name="read-only", context=SETUP
    )
    _, admin_key = api_key_create(
        workspace=workspace, kind="secret", role="admin", name="ops", context=SETUP
    )
    denied = _bearer(viewer_key).post(
        "/api/v1/api-keys/", {"name": "x", "kind": "write"}, content_type="application/json"
    )
    created = _bearer(admin_key).post(
        "/api/v1/api-keys/", {"name": "Android", "kind": "write"}, content_type="application/json"
    )
    assert denied.status_code == 403
    assert denied.json() == {
        "code": "permission_denied",
        "message": "This role (viewer) lacks the permission api_keys.edit.",
    }
    assert created.status_code == 201
    assert created.json()["key"].startswith("wk_")
    assert sorted(ApiKey.objects.values_list("name", flat=True)) == ["Android", "ops", "read-only"]


def test_bad_input_is_refused_with_the_field_named(workspace):
    _, admin_key = api_key_create(
        workspace=workspace, kind="secret", role="admin", name="ops", context=SETUP
    )
    response = _bearer(admin_key).post(
        "/api/v1/api-keys/", {"name": "x", "kind": "master"}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert response.json()["errors"] == {"kind": ['"master" is not a valid choice.']}
    assert ApiKey.objects.count() == 1


def test_last_used_is_recorded(workspace):
    api_key, raw = api_key_create(
        workspace=workspace, kind="secret", role="viewer", name="ci", context=SETUP
    )
    assert api_key.last_used_at is None
    _bearer(raw).get("/api/v1/workspace/")
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_the_secret_is_not_stored(workspace):
    api_key, raw = api_key_create(
        workspace=workspace, kind="secret", role="viewer", name="ci", context=SETUP
    )
    stored = ApiKey.objects.filter(pk=api_key.pk).values().get()
    assert raw not in {str(value) for value in stored.values()}
