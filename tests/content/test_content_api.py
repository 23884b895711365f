"""REST API of the content library: assets (multipart upload, list, change, delete),
folders, templates (CRUD, versions, restore, diff, render, test send); scoped to the
caller's workspace, role-checked, audited, and in the OpenAPI schema. Each test has its
own asset storage under tmp_path, so "nothing stored" is an empty directory."""

from __future__ import annotations

import hashlib
from pathlib import Path

import django_rq
import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework import serializers
from rq import SimpleWorker

from content.models import Asset, AssetFolder, Template, TemplateVersion
from engagement_site.storage import asset_storages_from_env
from engagement_site.workspaces.models import AuditLog
from engagement_site.workspaces.roles import Role
from engagement_site.workspaces.services import api_key_create
from segments.models import Profile
from tests.conftest import SETUP, logged_in
from tests.content import samples

pytestmark = pytest.mark.django_db

EMAIL = {
    "default": {"subject": "Hi {{ profile.first_name | default: 'there' }}", "html": "<p>Hello</p>"}
}
FIRST_NAME_WARNING = {
    "locale": "default",
    "field": "subject",
    "variable": "profile.first_name",
    "message": "no profile has the trait 'first_name'",
}


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path) -> Path:
    settings.STORAGES = {
        **settings.STORAGES,
        **asset_storages_from_env("local", media_root=tmp_path),
    }
    return tmp_path


def _files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def _key_client(workspace, role: str = Role.CONTENT_EDITOR) -> Client:
    _, key = api_key_create(workspace=workspace, kind="secret", role=role, name="ci", context=SETUP)
    return Client(headers={"Authorization": f"Bearer {key}"})


def _api(user, workspace_slug: str = "acme") -> Client:
    client = logged_in(user)
    client.defaults["HTTP_X_WORKSPACE"] = workspace_slug
    return client


def _post(client: Client, url: str, body: dict):
    return client.post(url, body, content_type="application/json")


def _patch(client: Client, url: str, body: dict):
    return client.patch(url, body, content_type="application/json")


def _create(client: Client, **overrides):
    body = {"name": "Welcome", "channel": "email", "content": EMAIL, **overrides}
    return _post(client, "/api/v1/templates/", body)


def _upload(client: Client, name: str = "a.png", data: bytes | None = None, **fields):
    file = SimpleUploadedFile(name, samples.png() if data is None else data)
    return client.post("/api/v1/assets/", {"file": file, **fields})


def _time(value) -> str:
    return serializers.DateTimeField().to_representation(value)


def _run_jobs() -> None:
    queue = django_rq.get_queue("default")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


# --------------------------------------------------------------------------- templates


def test_create_get_and_list_templates(workspace, owner):
    client = _api(owner)  # the session: the author is the person
    created = _create(client, tags=["Onboarding"], description="First mail")
    assert created.status_code == 201
    template = Template.objects.get()
    version = template.current_version
    expected = {
        "id": template.pk,
        "name": "Welcome",
        "channel": "email",
        "description": "First mail",
        "tags": ["onboarding"],
        "archived": False,
        "created_at": _time(template.created_at),
        "updated_at": _time(template.updated_at),
        "current_version": {
            "number": 1,
            "content": {
                "default": {
                    "subject": "Hi {{ profile.first_name | default: 'there' }}",
                    "preheader": "",
                    "from_name": "",
                    "reply_to": "",
                    "html": "<p>Hello</p>",
                    "text": "",
                }
            },
            "locales": ["default"],
            "note": "",
            # No profile has a first_name yet: a warning, not an error.
            "warnings": [FIRST_NAME_WARNING],
            "author": "olivia",
            "created_at": _time(version.created_at),
        },
    }
    assert created.json() == expected
    assert client.get(f"/api/v1/templates/{template.pk}/").json() == expected
    listed = client.get("/api/v1/templates/", {"channel": "email"}).json()
    assert listed == {"next": None, "previous": None, "results": [expected]}
    assert client.get("/api/v1/templates/", {"channel": "sms"}).json()["results"] == []
    assert [
        t["id"] for t in client.get("/api/v1/templates/", {"q": "first"}).json()["results"]
    ] == [template.pk]
    assert client.get("/api/v1/templates/", {"q": "nothing"}).json()["results"] == []
    audit = AuditLog.objects.get(workspace=workspace, action="template.create")
    assert (audit.actor, audit.changes) == (
        owner,
        {"channel": "email", "version": 1, "locales": ["default"]},
    )


def test_a_secret_key_creates_without_an_author(workspace):
    created = _create(_key_client(workspace))
    assert created.status_code == 201
    assert created.json()["current_version"]["author"] is None
    audit = AuditLog.objects.get(workspace=workspace, action="template.create")
    assert audit.actor_label.startswith("API key")


def test_invalid_content_is_refused_with_errors_by_locale_and_field(workspace):
    client = _key_client(workspace)
    response = _create(
        client, content={"default": {"subject": "{% if %}", "html": ""}, "xx-!!": {}}
    )
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "The request has invalid fields.",
        "errors": {
            "default.html": "String should have at least 1 character",
            "default.subject": "missing expression (line 1, column 4)",
            "xx-!!": "is not a locale tag like 'fr' or 'fr-CA'",
        },
    }
    unknown = _post(
        client,
        "/api/v1/templates/",
        {"name": "X", "channel": "email", "content": EMAIL, "color": "red"},
    )
    assert (unknown.status_code, unknown.json()["errors"]) == (
        400,
        {"color": ["Unknown field; expected name, channel, content, description, tags, note."]},
    )
    channel = _create(client, channel="pigeon")
    assert channel.json()["errors"] == {"channel": ['"pigeon" is not a valid choice.']}
    assert not Template.objects.exists()
    assert not AuditLog.objects.filter(workspace=workspace, action="template.create").exists()


def test_a_taken_name_is_refused(workspace):
    client = _key_client(workspace)
    _create(client)
    again = _create(client)
    assert (again.status_code, again.json()["errors"]) == (
        400,
        {"name": ["A template named 'Welcome' already exists."]},
    )
    assert Template.objects.count() == 1


def test_patch_saves_a_new_version_and_a_stale_base_version_is_a_conflict(workspace, owner):
    client = _api(owner)
    template_id = _create(client).json()["id"]
    url = f"/api/v1/templates/{template_id}/"
    second = {"default": {"subject": "Second", "html": "<p>2</p>"}}
    saved = _patch(client, url, {"content": second, "base_version": 1, "note": "tweak"})
    assert saved.status_code == 200
    version = saved.json()["current_version"]
    assert (version["number"], version["note"], version["warnings"]) == (2, "tweak", [])
    assert version["content"]["default"]["subject"] == "Second"

    stale = _patch(
        client, url, {"content": {"default": {"subject": "Third", "html": "x"}}, "base_version": 1}
    )
    assert (stale.status_code, stale.json()) == (
        409,
        {
            "code": "conflict",
            "message": "olivia saved version 2 after you opened version 1. Reload to see "
            "their changes; yours were not saved.",
        },
    )
    assert TemplateVersion.objects.filter(template_id=template_id).count() == 2

    unchanged = _patch(client, url, {"content": second, "base_version": 2})
    assert unchanged.json()["current_version"]["number"] == 2  # same content: no version

    renamed = _patch(client, url, {"name": "Welcome v2", "tags": ["a", "A", "b"]})
    assert (renamed.json()["name"], renamed.json()["tags"]) == ("Welcome v2", ["a", "b"])
    assert AuditLog.objects.get(workspace=workspace, action="template.update").changes == {
        "name": ["Welcome", "Welcome v2"],
        "tags": [[], ["a", "b"]],
    }


def test_patch_is_all_or_nothing(workspace):
    client = _key_client(workspace)
    _create(client, name="Taken")
    template_id = _create(client).json()["id"]
    response = _patch(
        client,
        f"/api/v1/templates/{template_id}/",
        {"content": {"default": {"subject": "New", "html": "x"}}, "name": "Taken"},
    )
    assert (response.status_code, response.json()["errors"]) == (
        400,
        {"name": ["A template named 'Taken' already exists."]},
    )
    template = Template.objects.get(pk=template_id)
    assert (template.name, template.current_version.number) == ("Welcome", 1)
    assert TemplateVersion.objects.filter(template=template).count() == 1
    assert not AuditLog.objects.filter(workspace=workspace, action="template.save").exists()

    invalid = _patch(client, f"/api/v1/templates/{template_id}/", {"content": {"default": {}}})
    assert invalid.json()["errors"] == {
        "default.subject": "Field required",
        "default.html": "Field required",
    }


def test_versions_diff_and_restore(workspace):
    client = _key_client(workspace)
    template_id = _create(client, content={"default": {"subject": "One", "html": "x"}}).json()["id"]
    _patch(
        client,
        f"/api/v1/templates/{template_id}/",
        {"content": {"default": {"subject": "Two", "html": "x"}}},
    )
    versions = client.get(f"/api/v1/templates/{template_id}/versions/").json()
    stored = {v.number: v for v in TemplateVersion.objects.filter(template_id=template_id)}
    assert versions == [
        {
            "number": number,
            "locales": ["default"],
            "note": "",
            "warnings": [],
            "author": None,
            "created_at": _time(stored[number].created_at),
        }
        for number in (2, 1)
    ]
    one = client.get(f"/api/v1/templates/{template_id}/versions/1").json()
    assert one == {**versions[1], "content": stored[1].content}
    assert one["content"]["default"]["subject"] == "One"

    diff = client.get(f"/api/v1/templates/{template_id}/diff", {"from": 1, "to": 2})
    assert diff.json() == [
        {
            "locale": "default",
            "field": "subject",
            "status": "changed",
            "lines": [["@", "@@ -1 +1 @@"], ["-", "One"], ["+", "Two"]],
        }
    ]
    missing = client.get(f"/api/v1/templates/{template_id}/diff", {"from": 1})
    assert (missing.status_code, missing.json()["errors"]) == (
        400,
        {"to": ["This field is required."]},
    )
    assert (
        client.get(f"/api/v1/templates/{template_id}/diff", {"from": 1, "to": 9}).status_code == 404
    )

    restored = _post(client, f"/api/v1/templates/{template_id}/versions/1/restore", {})
    assert restored.status_code == 200
    current = restored.json()["current_version"]
    assert (current["number"], current["note"], current["content"]["default"]["subject"]) == (
        3,
        "Restored version 1",
        "One",
    )
    assert AuditLog.objects.get(workspace=workspace, action="template.restore").changes == {
        "restored_version": 1,
        "version": 3,
    }
    assert client.get(f"/api/v1/templates/{template_id}/versions/9").status_code == 404
    assert (
        _post(client, f"/api/v1/templates/{template_id}/versions/9/restore", {}).status_code == 404
    )


def test_archive_unarchive_and_delete(workspace):
    client = _key_client(workspace)
    template_id = _create(client).json()["id"]
    archived = _post(client, f"/api/v1/templates/{template_id}/archive", {})
    assert (archived.status_code, archived.json()["archived"]) == (200, True)
    assert client.get("/api/v1/templates/").json()["results"] == []
    assert [
        t["id"] for t in client.get("/api/v1/templates/", {"archived": "true"}).json()["results"]
    ] == [template_id]
    refused = {
        "code": "conflict",
        "message": "The template is archived; unarchive it to change its content.",
    }
    blocked = _patch(client, f"/api/v1/templates/{template_id}/", {"content": EMAIL})
    assert (blocked.status_code, blocked.json()) == (409, refused)
    restore = _post(client, f"/api/v1/templates/{template_id}/versions/1/restore", {})
    assert (restore.status_code, restore.json()) == (409, refused)
    assert _patch(client, f"/api/v1/templates/{template_id}/", {"name": "Old"}).status_code == 200
    assert (
        _post(client, f"/api/v1/templates/{template_id}/unarchive", {}).json()["archived"] is False
    )
    assert [
        row.action
        for row in AuditLog.objects.filter(
            workspace=workspace, action__in=("template.archive", "template.unarchive")
        ).order_by("sequence")
    ] == ["template.archive", "template.unarchive"]
    assert client.delete(f"/api/v1/templates/{template_id}/").status_code == 204
    assert not Template.objects.exists()
    assert not TemplateVersion.objects.exists()
    assert AuditLog.objects.filter(workspace=workspace, action="template.delete").count() == 1


# --------------------------------------------------------------------------- render


def _bilingual(client: Client) -> int:
    return _create(
        client,
        content={
            "default": {
                "subject": "Your {{ event.properties.product }}",
                "html": "<p>Hi {{ profile.first_name }}</p>",
            },
            "fr": {
                "subject": "Votre {{ event.properties.product }}",
                "html": "<p>Salut {{ profile.first_name }}</p>",
            },
        },
    ).json()["id"]


def test_render_for_a_profile_in_its_locale_with_an_event(workspace):
    template_id = _bilingual(_key_client(workspace))
    client = _key_client(workspace, Role.MARKETER)  # marketers may preview, not edit
    profile = Profile.objects.create(
        workspace=workspace, user_id="u1", locale="fr-CA", traits={"first_name": "Ada"}
    )
    url = f"/api/v1/templates/{template_id}/render"
    response = _post(
        client,
        url,
        {"profile_id": profile.pk, "event": {"name": "viewed", "properties": {"product": "lampe"}}},
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["locale"], body["version"], body["sms"]) == ("fr", 1, None)
    assert body["fields"]["subject"] == "Votre lampe"
    assert "<p>Salut Ada</p>" in body["fields"]["html"]
    assert body["fields"]["text"] == "Salut Ada\n"
    # The variables are known from nowhere yet: the version's warnings come along.
    assert [(w["field"], w["variable"]) for w in body["warnings"]] == [
        ("subject", "event.properties.product"),
        ("html", "profile.first_name"),
        ("subject", "event.properties.product"),
        ("html", "profile.first_name"),
    ]
    by_user_id = _post(client, url, {"user_id": "u1", "locale": "de"}).json()
    assert (by_user_id["locale"], by_user_id["fields"]["subject"]) == ("default", "Your ")
    anonymous = _post(client, url, {}).json()
    assert (anonymous["locale"], anonymous["fields"]["text"]) == ("default", "Hi\n")
    # A preview stores nothing.
    assert TemplateVersion.objects.count() == 1
    assert not AuditLog.objects.filter(workspace=workspace, action="template.save").exists()


def test_render_pins_a_version_or_previews_unsaved_content(workspace):
    client = _key_client(workspace)
    template_id = _create(client, content={"default": {"subject": "First", "html": "1"}}).json()[
        "id"
    ]
    _patch(
        client,
        f"/api/v1/templates/{template_id}/",
        {"content": {"default": {"subject": "Second", "html": "2"}}},
    )
    url = f"/api/v1/templates/{template_id}/render"
    pinned = _post(client, url, {"version": 1}).json()
    assert (pinned["version"], pinned["fields"]["subject"]) == (1, "First")
    current = _post(client, url, {}).json()
    assert (current["version"], current["fields"]["subject"]) == (2, "Second")
    unsaved = _post(
        client, url, {"content": {"default": {"subject": "Draft {{ profile.plan }}", "html": "d"}}}
    ).json()
    assert (unsaved["version"], unsaved["fields"]["subject"]) == (None, "Draft ")
    assert unsaved["warnings"] == [
        {
            "locale": "default",
            "field": "subject",
            "variable": "profile.plan",
            "message": "no profile has the trait 'plan'",
        }
    ]
    assert TemplateVersion.objects.filter(template_id=template_id).count() == 2
    invalid = _post(client, url, {"content": {"default": {"subject": "{{ x", "html": "d"}}})
    assert (invalid.status_code, list(invalid.json()["errors"])) == (400, ["default.subject"])
    both = _post(client, url, {"version": 1, "content": EMAIL})
    assert (both.status_code, both.json()["errors"]) == (
        400,
        {"content": ["Give version or content, not both."]},
    )
    assert _post(client, url, {"version": 7}).status_code == 404


def test_render_errors_and_foreign_profiles(workspace, other_workspace):
    client = _key_client(workspace)
    template_id = _create(
        client,
        name="Loop",
        channel="sms",
        content={
            "default": {
                "body": "{% for i in (1..100) %}{% for j in (1..100) %}x{% endfor %}{% endfor %}"
            }
        },
    ).json()["id"]
    url = f"/api/v1/templates/{template_id}/render"
    failed = _post(client, url, {})
    assert (failed.status_code, failed.json()) == (
        422,
        {
            "code": "render_failed",
            "message": "default.body: loop iteration limit reached (1000)",
            "locale": "default",
            "field": "body",
        },
    )
    Profile.objects.create(workspace=workspace, user_id="mine")
    foreign = Profile.objects.create(workspace=other_workspace, user_id="theirs")
    for body in ({"profile_id": foreign.pk}, {"user_id": "theirs"}, {"profile_id": 10**9}):
        response = _post(client, url, body)
        assert response.status_code == 404, body
    both = _post(client, url, {"profile_id": foreign.pk, "user_id": "mine"})
    assert both.json()["errors"] == {"user_id": ["Give profile_id or user_id, not both."]}
    sms = _post(client, url, {"content": {"default": {"body": "Hi €"}}})
    assert sms.json()["sms"] == {
        "encoding": "GSM-7",
        "characters": 5,
        "segments": 1,
        "per_segment": 160,
        "remaining": 155,
    }


# --------------------------------------------------------------------------- test send


def test_test_send_email_and_refusals(workspace, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    client = _key_client(workspace, Role.MARKETER)
    email_id = _create(_key_client(workspace)).json()["id"]
    profile = Profile.objects.create(
        workspace=workspace, user_id="u1", locale="fr", traits={"first_name": "Ada"}
    )
    url = f"/api/v1/templates/{email_id}/test-send"
    sent = _post(client, url, {"to": "qa@example.com"})
    assert (sent.status_code, sent.json()) == (
        200,
        {"detail": "Sent version 1 (default) to qa@example.com."},
    )
    personal = _post(client, url, {"to": "qa@example.com", "profile_id": profile.pk})
    assert personal.status_code == 200
    assert [(m.subject, m.to) for m in mail.outbox] == [
        ("[Test] Hi there", ["qa@example.com"]),
        ("[Test] Hi Ada", ["qa@example.com"]),
    ]
    audit = AuditLog.objects.filter(workspace=workspace, action="template.test_send").first()
    assert audit.changes == {"version": 1, "locale": "default", "channel": "email"}

    not_an_address = _post(client, url, {"to": "nobody"})
    assert (not_an_address.status_code, not_an_address.json()["errors"]) == (
        400,
        {"to": ["'nobody' is not an email address."]},
    )
    sms_id = _create(
        _key_client(workspace), name="Text", channel="sms", content={"default": {"body": "Hi"}}
    ).json()["id"]
    refused = _post(client, f"/api/v1/templates/{sms_id}/test-send", {"to": "+15555550123"})
    assert (refused.status_code, refused.json()) == (
        409,
        {
            "code": "conflict",
            "message": "The sms channel cannot send (channel_not_configured: the sms channel "
            "has no settings yet). Set it up in Settings → Channels.",
        },
    )
    assert len(mail.outbox) == 2
    assert AuditLog.objects.filter(workspace=workspace, action="template.test_send").count() == 2


def test_test_send_that_does_not_render_or_reach_the_mail_server(workspace, settings, monkeypatch):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    client = _key_client(workspace)
    loop = "{% for i in (1..100) %}{% for j in (1..100) %}x{% endfor %}{% endfor %}"
    broken_id = _create(client, content={"default": {"subject": "Hi", "html": loop}}).json()["id"]
    failed = _post(client, f"/api/v1/templates/{broken_id}/test-send", {"to": "qa@example.com"})
    assert (failed.status_code, failed.json()) == (
        422,
        {
            "code": "render_failed",
            "message": "default.html: loop iteration limit reached (1000)",
            "locale": "default",
            "field": "html",
        },
    )
    fine_id = _create(client, name="Fine").json()["id"]

    def refuse(self, fail_silently=False):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr("django.core.mail.EmailMessage.send", refuse)
    down = _post(client, f"/api/v1/templates/{fine_id}/test-send", {"to": "qa@example.com"})
    assert (down.status_code, down.json()) == (
        502,
        {
            "code": "mail_server_refused",
            "message": "The mail server did not take the message: [Errno 111] Connection refused",
        },
    )
    assert mail.outbox == []
    assert not AuditLog.objects.filter(workspace=workspace, action="template.test_send").exists()


# --------------------------------------------------------------------------- roles


@pytest.mark.parametrize(
    ("role", "can_edit"),
    [(Role.OWNER, True), (Role.ADMIN, True), (Role.CONTENT_EDITOR, True), (Role.MARKETER, False), (Role.ANALYST, False), (Role.VIEWER, False)],
)  # fmt: skip
def test_roles(workspace, role, can_edit, media_root):
    template_id = _create(_key_client(workspace), name="Existing").json()["id"]
    client = _key_client(workspace, role)
    assert client.get("/api/v1/templates/").status_code == 200
    assert client.get(f"/api/v1/templates/{template_id}/versions/").status_code == 200
    assert client.get("/api/v1/assets/").status_code == 200
    assert client.get("/api/v1/asset-folders/").status_code == 200
    assert _post(client, f"/api/v1/templates/{template_id}/render", {}).status_code == 200
    created = _create(client)
    assert created.status_code == (201 if can_edit else 403)
    if not can_edit:
        assert created.json() == {
            "code": "permission_denied",
            "message": f"This role ({role}) lacks the permission content.edit.",
        }
    renamed = _patch(client, f"/api/v1/templates/{template_id}/", {"name": "Renamed"})
    assert renamed.status_code == (200 if can_edit else 403)
    assert _post(client, "/api/v1/asset-folders/", {"name": "F"}).status_code == (
        201 if can_edit else 403
    )
    assert _upload(client).status_code == (201 if can_edit else 403)
    assert Template.objects.count() == (2 if can_edit else 1)
    assert Asset.objects.count() == (1 if can_edit else 0)
    assert bool(_files(media_root)) is can_edit


def test_session_members_act_with_their_role(workspace, make_member, outsider):
    viewer = _api(make_member(Role.VIEWER, username="vera"))
    assert viewer.get("/api/v1/templates/").status_code == 200
    assert _create(viewer).status_code == 403
    editor = _api(make_member(Role.CONTENT_EDITOR, username="eddie"))
    assert _create(editor).status_code == 201
    no_header = logged_in(outsider).get("/api/v1/templates/")
    assert (no_header.status_code, no_header.json()["errors"]) == (
        400,
        {"X-Workspace": "Name the workspace (its slug) in the X-Workspace header."},
    )
    assert _api(outsider).get("/api/v1/templates/").status_code == 404  # not a member


# --------------------------------------------------------------------------- tenancy


def test_another_workspaces_objects_answer_404(workspace, other_workspace, media_root):
    mine = _key_client(workspace)
    template_id = _create(mine).json()["id"]
    folder_id = _post(mine, "/api/v1/asset-folders/", {"name": "Mine"}).json()["id"]
    asset_id = _upload(mine).json()["id"]
    stored = _files(media_root)
    theirs = _key_client(other_workspace)
    t = f"/api/v1/templates/{template_id}"
    for response in (
        theirs.get(f"{t}/"),
        theirs.get(f"{t}/versions/"),
        theirs.get(f"{t}/versions/1"),
        theirs.get(f"{t}/diff", {"from": 1, "to": 1}),
        _post(theirs, f"{t}/render", {}),
        _post(theirs, f"{t}/test-send", {"to": "qa@example.com"}),
        _post(theirs, f"{t}/versions/1/restore", {}),
        _post(theirs, f"{t}/archive", {}),
        _post(theirs, f"{t}/unarchive", {}),
        _patch(theirs, f"{t}/", {"name": "stolen"}),
        theirs.delete(f"{t}/"),
        theirs.get(f"/api/v1/assets/{asset_id}/"),
        _patch(theirs, f"/api/v1/assets/{asset_id}/", {"name": "stolen"}),
        theirs.delete(f"/api/v1/assets/{asset_id}/?force=true"),
        theirs.get("/api/v1/assets/", {"folder": folder_id}),
        _upload(theirs, "theirs.png", folder=folder_id),
        _post(theirs, "/api/v1/asset-folders/", {"name": "Sub", "parent": folder_id}),
        _patch(theirs, f"/api/v1/asset-folders/{folder_id}/", {"name": "stolen"}),
        theirs.delete(f"/api/v1/asset-folders/{folder_id}/"),
    ):
        assert response.status_code == 404, response.request["PATH_INFO"]
    # Nor do their own asset's changes reach into this workspace's folder.
    their_asset = _upload(theirs, "theirs.png").json()["id"]
    assert (
        _patch(theirs, f"/api/v1/assets/{their_asset}/", {"folder": folder_id}).status_code == 404
    )
    assert theirs.get("/api/v1/templates/").json()["results"] == []
    assert [a["id"] for a in theirs.get("/api/v1/assets/").json()["results"]] == [their_asset]
    assert theirs.get("/api/v1/asset-folders/").json() == []
    template = Template.objects.get()
    assert (template.name, template.archived_at, template.versions.count()) == ("Welcome", None, 1)
    assert Asset.objects.get(pk=asset_id).name == "a.png"
    assert AssetFolder.objects.get().name == "Mine"
    assert stored < _files(media_root)  # theirs added one file, nothing of mine went


# --------------------------------------------------------------------------- assets


@pytest.mark.django_db(transaction=True)
def test_upload_process_list_change_and_delete_an_asset(workspace, owner, media_root):
    client = _api(owner)
    folder = _post(client, "/api/v1/asset-folders/", {"name": "Banners"}).json()
    data = samples.png(64, 48)
    created = client.post(
        "/api/v1/assets/",
        {
            "file": SimpleUploadedFile("hero.png", data),
            "tags": ["Spring, sale", "hero"],  # repeated and comma-separated
            "folder": folder["id"],
        },
    )
    assert created.status_code == 201
    asset = Asset.objects.get()
    assert created.json() == {
        "id": asset.pk,
        "name": "hero.png",
        "kind": "image",
        "mime_type": "image/png",
        "size_bytes": len(data),
        "checksum_sha256": hashlib.sha256(data).hexdigest(),
        "width": 64,
        "height": 48,
        "duration_ms": None,
        "frame_count": 1,
        "status": "processing",
        "progress": 0,
        "error": "",
        "tags": ["spring", "sale", "hero"],
        "alt_text": "",
        "folder": folder["id"],
        "public_url": asset.public_url,
        "is_public": False,
        "file_url": f"http://testserver/w/acme/content/assets/{asset.pk}/file",
        "thumbnail_url": None,
        "uploaded_by": "olivia",
        "created_at": _time(asset.created_at),
        "used_by": [],
    }
    assert asset.public_url.startswith("http://127.0.0.1:8000/media/public/")
    assert AuditLog.objects.get(workspace=workspace, action="asset.upload").changes == {
        "name": "hero.png",
        "mime_type": "image/png",
        "size_bytes": len(data),
    }

    _run_jobs()
    ready = client.get(f"/api/v1/assets/{asset.pk}/").json()
    assert (ready["status"], ready["progress"], ready["width"], ready["height"]) == (
        "ready",
        100,
        64,
        48,
    )
    assert ready["thumbnail_url"] == f"http://testserver/w/acme/content/assets/{asset.pk}/thumbnail"
    assert client.get(ready["thumbnail_url"]).status_code == 200
    assert len(_files(media_root)) == 2  # the original and its thumbnail

    changed = _patch(
        client,
        f"/api/v1/assets/{asset.pk}/",
        {"name": "Hero", "alt_text": "A red square", "tags": ["Red"], "folder": None},
    )
    assert changed.status_code == 200
    assert {k: changed.json()[k] for k in ("name", "alt_text", "tags", "folder")} == {
        "name": "Hero",
        "alt_text": "A red square",
        "tags": ["red"],
        "folder": None,
    }

    _create(
        client, content={"default": {"subject": "x", "html": f'<img src="{asset.public_url}">'}}
    )
    assert client.get(f"/api/v1/assets/{asset.pk}/").json()["used_by"] == [
        {"id": Template.objects.get().pk, "name": "Welcome"}
    ]
    in_use = client.delete(f"/api/v1/assets/{asset.pk}/")
    assert (in_use.status_code, in_use.json()) == (
        409,
        {
            "code": "conflict",
            "message": "Hero is used by Welcome. Remove it from them first, or delete it anyway.",
        },
    )
    assert Asset.objects.filter(pk=asset.pk).exists()
    assert client.delete(f"/api/v1/assets/{asset.pk}/?force=true").status_code == 204
    assert not Asset.objects.exists()
    assert _files(media_root) == set()
    assert AuditLog.objects.get(workspace=workspace, action="asset.delete").changes == {
        "name": "Hero",
        "forced": True,
        "used_by": ["Welcome"],
    }


def test_refused_uploads_are_400_or_413_and_store_nothing(workspace, settings, media_root):
    client = _key_client(workspace)
    wrong = _upload(client, "x.png", b"%PDF-1.7 not an image")
    assert (wrong.status_code, wrong.json()) == (
        400,
        {
            "code": "invalid",
            "message": "x.png: the file's bytes are not a PNG, JPEG, GIF, WebP or SVG image, "
            "or an MP4 or WebM video (they look like a PDF document).",
        },
    )
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    script = _upload(client, "quota.svg", svg)  # a name that must not read as "too large"
    assert (script.status_code, script.json()["message"]) == (
        400,
        "SVG refused: quota.svg contains a <script> element.",
    )
    size = len(samples.png())
    settings.ASSET_MAX_IMAGE_BYTES = 100
    big = _upload(client, "y.png")
    assert (big.status_code, big.json()) == (
        413,
        {
            "code": "too_large",
            "message": f"y.png is {size} bytes; images may be at most 100 bytes.",
        },
    )
    settings.ASSET_MAX_IMAGE_BYTES = 10 * 1024 * 1024
    settings.ASSET_WORKSPACE_QUOTA_BYTES = 100
    over = _upload(client, "z.png")
    assert (over.status_code, over.json()["message"]) == (
        413,
        f"z.png: the workspace's media would take {size} bytes, over its quota of 100 bytes "
        "(0 bytes used). Delete unused media first.",
    )
    no_file = client.post("/api/v1/assets/", {"tags": "x"})
    assert (no_file.status_code, no_file.json()["errors"]) == (
        400,
        {"file": ["No file was submitted."]},
    )
    assert not Asset.objects.exists()
    assert _files(media_root) == set()
    assert not AuditLog.objects.filter(workspace=workspace, action="asset.upload").exists()


def test_list_filters_assets(workspace):
    client = _key_client(workspace)
    folder_id = _post(client, "/api/v1/asset-folders/", {"name": "Banners"}).json()["id"]
    hero = _upload(client, "hero.png", tags="spring", folder=folder_id).json()["id"]
    logo = _upload(client, "logo.png", samples.jpeg(), tags="brand").json()["id"]

    def ids(**query) -> list[int]:
        response = client.get("/api/v1/assets/", query)
        assert response.status_code == 200, response.json()
        return [asset["id"] for asset in response.json()["results"]]

    assert ids() == [logo, hero]  # newest first
    assert ids(q="HERO") == [hero]
    assert ids(q="brand") == [logo]
    assert ids(tag="Spring") == [hero]
    assert ids(kind="image") == [logo, hero]
    assert ids(kind="video") == []
    assert ids(folder=folder_id) == [hero]
    page = client.get("/api/v1/assets/", {"page_size": 1}).json()
    assert [a["id"] for a in page["results"]] == [logo]
    assert [a["id"] for a in client.get(page["next"]).json()["results"]] == [hero]
    bad = client.get("/api/v1/assets/", {"kind": "audio"})
    assert (bad.status_code, bad.json()["errors"]) == (
        400,
        {"kind": ['"audio" is not a valid choice.']},
    )


def test_the_asset_list_costs_the_same_queries_for_one_asset_or_many(
    workspace, owner, django_assert_num_queries
):
    client = _api(owner)
    _upload(client, "one.png")
    # The session, its user, the membership, the page.
    with django_assert_num_queries(4):
        assert len(client.get("/api/v1/assets/").json()["results"]) == 1
    for index in range(5):
        _upload(client, f"many-{index}.png")
    with django_assert_num_queries(4):
        assert len(client.get("/api/v1/assets/").json()["results"]) == 6


def test_asset_changes_are_checked(workspace):
    client = _key_client(workspace)
    asset_id = _upload(client).json()["id"]
    url = f"/api/v1/assets/{asset_id}/"
    unknown = _patch(client, url, {"kind": "video"})
    assert unknown.json()["errors"] == {
        "kind": ["Unknown field; expected name, alt_text, tags, folder."]
    }
    assert _patch(client, url, {"folder": 10**9}).status_code == 404
    assert Asset.objects.get().kind == "image"
    assert not AuditLog.objects.filter(workspace=workspace, action="asset.update").exists()


def test_folders(workspace):
    client = _key_client(workspace)
    banners = _post(client, "/api/v1/asset-folders/", {"name": "Banners"})
    assert banners.status_code == 201
    banners_id = banners.json()["id"]
    assert banners.json() == {"id": banners_id, "name": "Banners", "parent": None}
    spring = _post(client, "/api/v1/asset-folders/", {"name": "Spring", "parent": banners_id})
    spring_id = spring.json()["id"]
    assert spring.json() == {"id": spring_id, "name": "Spring", "parent": banners_id}
    taken = _post(client, "/api/v1/asset-folders/", {"name": "Banners"})
    assert (taken.status_code, taken.json()) == (
        400,
        {"code": "invalid", "message": "A folder named 'Banners' already exists here."},
    )
    renamed = _patch(client, f"/api/v1/asset-folders/{banners_id}/", {"name": "Heroes"})
    assert renamed.json() == {"id": banners_id, "name": "Heroes", "parent": None}
    moved = _patch(client, f"/api/v1/asset-folders/{spring_id}/", {"name": "S", "parent": None})
    assert (moved.status_code, moved.json()["errors"]) == (
        400,
        {"parent": ["Unknown field; expected name."]},
    )
    assert client.get("/api/v1/asset-folders/").json() == [
        {"id": banners_id, "name": "Heroes", "parent": None},
        {"id": spring_id, "name": "Spring", "parent": banners_id},
    ]
    asset_id = _upload(client, folder=spring_id).json()["id"]
    assert client.delete(f"/api/v1/asset-folders/{banners_id}/").status_code == 204
    assert not AssetFolder.objects.exists()  # with its sub-folder
    assert client.get(f"/api/v1/assets/{asset_id}/").json()["folder"] is None
    assert [
        row.action
        for row in AuditLog.objects.filter(
            workspace=workspace, action__startswith="asset_folder."
        ).order_by("sequence")
    ] == [
        "asset_folder.create",
        "asset_folder.create",
        "asset_folder.rename",
        "asset_folder.delete",
    ]


def test_channel_fields(workspace):
    body = _key_client(workspace, Role.VIEWER).get("/api/v1/templates/channels").json()
    assert [field["name"] for field in body["sms"]] == ["body"]
    assert [field["name"] for field in body["email"]] == [
        "subject",
        "preheader",
        "from_name",
        "reply_to",
        "html",
        "text",
    ]


# --------------------------------------------------------------------------- schema


def test_every_content_endpoint_is_in_the_openapi_schema(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operations = {
        (path, method)
        for path, item in schema["paths"].items()
        for method in item
        if path.startswith(("/api/v1/templates", "/api/v1/assets", "/api/v1/asset-folders"))
    }
    assert operations == {
        ("/api/v1/assets/", "get"),
        ("/api/v1/assets/", "post"),
        ("/api/v1/assets/{asset_id}/", "get"),
        ("/api/v1/assets/{asset_id}/", "patch"),
        ("/api/v1/assets/{asset_id}/", "delete"),
        ("/api/v1/asset-folders/", "get"),
        ("/api/v1/asset-folders/", "post"),
        ("/api/v1/asset-folders/{folder_id}/", "patch"),
        ("/api/v1/asset-folders/{folder_id}/", "delete"),
        ("/api/v1/templates/", "get"),
        ("/api/v1/templates/", "post"),
        ("/api/v1/templates/channels", "get"),
        ("/api/v1/templates/{template_id}/", "get"),
        ("/api/v1/templates/{template_id}/", "patch"),
        ("/api/v1/templates/{template_id}/", "delete"),
        ("/api/v1/templates/{template_id}/archive", "post"),
        ("/api/v1/templates/{template_id}/unarchive", "post"),
        ("/api/v1/templates/{template_id}/render", "post"),
        ("/api/v1/templates/{template_id}/test-send", "post"),
        ("/api/v1/templates/{template_id}/versions/", "get"),
        ("/api/v1/templates/{template_id}/versions/{number}", "get"),
        ("/api/v1/templates/{template_id}/versions/{number}/restore", "post"),
        ("/api/v1/templates/{template_id}/diff", "get"),
    }
    paths = schema["paths"]
    upload = paths["/api/v1/assets/"]["post"]
    assert list(upload["requestBody"]["content"]) == ["multipart/form-data"]
    # Every operation also documents its errors (engagement_site.api.document_error_responses).
    assert set(upload["responses"]) == {"201", "400", "401", "403", "404"}
    diff = paths["/api/v1/templates/{template_id}/diff"]["get"]
    assert [(p["name"], p["in"]) for p in diff["parameters"] if p["in"] == "query"] == [
        ("from", "query"),
        ("to", "query"),
    ]
    render = paths["/api/v1/templates/{template_id}/render"]["post"]
    assert set(render["responses"]) == {"200", "422", "400", "401", "403", "404"}
    assets_list = paths["/api/v1/assets/"]["get"]
    assert {p["name"] for p in assets_list["parameters"]} >= {"q", "tag", "kind", "folder"}
