"""REST API of the content library: assets (multipart upload, list, change, delete),
folders, templates (CRUD, versions, restore, diff, render, test send); scoped to the
caller's workspace, role-checked, audited, and in the OpenAPI schema."""

from __future__ import annotations

import django_rq
import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rq import SimpleWorker

from content.models import Asset, Template, TemplateVersion
from engagement_site.workspaces.models import AuditLog
from engagement_site.workspaces.roles import Role
from engagement_site.workspaces.services import api_key_create
from segments.models import Profile
from tests.conftest import SETUP
from tests.content import samples

pytestmark = pytest.mark.django_db

EMAIL = {
    "default": {"subject": "Hi {{ profile.first_name | default: 'there' }}", "html": "<p>Hello</p>"}
}


def _key_client(workspace, role: str = Role.CONTENT_EDITOR) -> Client:
    _, key = api_key_create(workspace=workspace, kind="secret", role=role, name="ci", context=SETUP)
    return Client(headers={"Authorization": f"Bearer {key}"})


def _post(client: Client, url: str, body: dict):
    return client.post(url, body, content_type="application/json")


def _patch(client: Client, url: str, body: dict):
    return client.patch(url, body, content_type="application/json")


def _create(client: Client, **overrides):
    body = {"name": "Welcome", "channel": "email", "content": EMAIL, **overrides}
    return _post(client, "/api/v1/templates/", body)


# --------------------------------------------------------------------------- templates


def test_create_get_and_list_templates(workspace):
    client = _key_client(workspace)
    created = _create(client, tags=["Onboarding"], description="First mail")
    assert created.status_code == 201
    body = created.json()
    assert {key: body[key] for key in ("name", "channel", "description", "tags", "archived")} == {
        "name": "Welcome",
        "channel": "email",
        "description": "First mail",
        "tags": ["onboarding"],
        "archived": False,
    }
    version = body["current_version"]
    assert (version["number"], version["locales"], version["author"]) == (1, ["default"], None)
    # No profile has a first_name yet: a warning, not an error.
    assert version["warnings"] == [
        {
            "locale": "default",
            "field": "subject",
            "variable": "profile.first_name",
            "message": "no profile has the trait 'first_name'",
        }
    ]
    assert version["content"]["default"]["text"] == ""
    assert client.get(f"/api/v1/templates/{body['id']}/").json() == body
    listed = client.get("/api/v1/templates/", {"channel": "email"}).json()
    assert [item["name"] for item in listed["results"]] == ["Welcome"]
    assert client.get("/api/v1/templates/", {"channel": "sms"}).json()["results"] == []
    assert AuditLog.objects.get(
        workspace=workspace, action="template.create"
    ).actor_label.startswith("API key")


def test_invalid_content_is_refused_with_errors_by_locale_and_field(workspace):
    client = _key_client(workspace)
    response = _create(
        client, content={"default": {"subject": "{% if %}", "html": ""}, "xx-!!": {}}
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"default.html", "xx-!!", "default.subject"}
    assert errors["default.subject"] == "missing expression (line 1, column 4)"
    assert errors["xx-!!"] == "is not a locale tag like 'fr' or 'fr-CA'"
    assert not Template.objects.exists()
    unknown = _post(
        client,
        "/api/v1/templates/",
        {"name": "X", "channel": "email", "content": EMAIL, "color": "red"},
    )
    assert unknown.status_code == 400
    assert unknown.json()["errors"]["color"] == [
        "Unknown field; expected name, channel, content, description, tags, note."
    ]


def test_patch_saves_a_new_version_and_a_stale_base_version_is_a_conflict(workspace):
    client = _key_client(workspace)
    template_id = _create(client).json()["id"]
    url = f"/api/v1/templates/{template_id}/"
    second = {"default": {"subject": "Second", "html": "<p>2</p>"}}
    saved = _patch(client, url, {"content": second, "base_version": 1, "note": "tweak"})
    assert saved.status_code == 200
    assert (saved.json()["current_version"]["number"], saved.json()["current_version"]["note"]) == (
        2,
        "tweak",
    )
    stale = _patch(
        client, url, {"content": {"default": {"subject": "Third", "html": "x"}}, "base_version": 1}
    )
    assert stale.status_code == 409
    assert "saved version 2 after you opened version 1" in stale.json()["message"]
    assert TemplateVersion.objects.filter(template_id=template_id).count() == 2
    renamed = _patch(client, url, {"name": "Welcome v2", "tags": ["a", "A", "b"]})
    assert (renamed.json()["name"], renamed.json()["tags"]) == ("Welcome v2", ["a", "b"])


def test_versions_diff_and_restore(workspace):
    client = _key_client(workspace)
    template_id = _create(client, content={"default": {"subject": "One", "html": "x"}}).json()["id"]
    _patch(
        client,
        f"/api/v1/templates/{template_id}/",
        {"content": {"default": {"subject": "Two", "html": "x"}}},
    )
    versions = client.get(f"/api/v1/templates/{template_id}/versions/").json()
    assert [version["number"] for version in versions] == [2, 1]
    assert "content" not in versions[0]
    one = client.get(f"/api/v1/templates/{template_id}/versions/1").json()
    assert one["content"]["default"]["subject"] == "One"
    diff = client.get(
        f"/api/v1/templates/{template_id}/diff", {"from_version": 1, "to_version": 2}
    ).json()
    assert diff == [
        {
            "locale": "default",
            "field": "subject",
            "status": "changed",
            "lines": [["@", "@@ -1 +1 @@"], ["-", "One"], ["+", "Two"]],
        }
    ]
    restored = _post(client, f"/api/v1/templates/{template_id}/versions/1/restore", {})
    assert restored.status_code == 200
    assert restored.json()["current_version"]["number"] == 3
    assert restored.json()["current_version"]["content"]["default"]["subject"] == "One"
    assert client.get(f"/api/v1/templates/{template_id}/versions/9").status_code == 404


def test_render_for_a_profile_in_its_locale_with_an_event(workspace):
    client = _key_client(workspace, Role.MARKETER)  # marketers may preview, not edit
    editor = _key_client(workspace)
    template_id = _create(
        editor,
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
    profile = Profile.objects.create(
        workspace=workspace, user_id="u1", locale="fr-CA", traits={"first_name": "Ada"}
    )
    response = _post(
        client,
        f"/api/v1/templates/{template_id}/render",
        {"profile_id": profile.pk, "event": {"name": "viewed", "properties": {"product": "lampe"}}},
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["locale"], body["version"], body["fields"]["subject"]) == ("fr", 1, "Votre lampe")
    assert "Salut Ada" in body["fields"]["html"]
    assert body["fields"]["text"] == "Salut Ada\n"
    by_user_id = _post(
        client, f"/api/v1/templates/{template_id}/render", {"user_id": "u1", "locale": "de"}
    )
    assert by_user_id.json()["fields"]["subject"] == "Your "


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
    failed = _post(client, f"/api/v1/templates/{template_id}/render", {})
    assert failed.status_code == 422
    assert failed.json() == {
        "code": "render_failed",
        "message": "default.body: loop iteration limit reached (1000)",
    }
    foreign = Profile.objects.create(workspace=other_workspace, user_id="x")
    assert (
        _post(
            client, f"/api/v1/templates/{template_id}/render", {"profile_id": foreign.pk}
        ).status_code
        == 404
    )
    sms = _post(
        client,
        f"/api/v1/templates/{template_id}/render",
        {"content": {"default": {"body": "Hi €"}}},
    )
    assert sms.json()["sms"] == {
        "encoding": "GSM-7",
        "characters": 5,
        "segments": 1,
        "per_segment": 160,
        "remaining": 155,
    }


def test_test_send_email_and_refusal_for_other_channels(workspace, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    client = _key_client(workspace)
    email_id = _create(client).json()["id"]
    sent = _post(client, f"/api/v1/templates/{email_id}/test-send", {"to": "qa@example.com"})
    assert (sent.status_code, sent.json()) == (
        200,
        {"detail": "Sent version 1 (default) to qa@example.com."},
    )
    assert [message.subject for message in mail.outbox] == ["[Test] Hi there"]
    sms_id = _create(
        client, name="Text", channel="sms", content={"default": {"body": "Hi"}}
    ).json()["id"]
    refused = _post(client, f"/api/v1/templates/{sms_id}/test-send", {"to": "+15555550123"})
    assert refused.status_code == 409
    assert len(mail.outbox) == 1


def test_archive_unarchive_and_delete(workspace):
    client = _key_client(workspace)
    template_id = _create(client).json()["id"]
    assert _post(client, f"/api/v1/templates/{template_id}/archive", {}).json()["archived"] is True
    assert client.get("/api/v1/templates/").json()["results"] == []
    assert [
        t["id"] for t in client.get("/api/v1/templates/", {"archived": "true"}).json()["results"]
    ] == [template_id]
    blocked = _patch(client, f"/api/v1/templates/{template_id}/", {"content": EMAIL})
    assert blocked.status_code == 409
    assert (
        _post(client, f"/api/v1/templates/{template_id}/unarchive", {}).json()["archived"] is False
    )
    assert client.delete(f"/api/v1/templates/{template_id}/").status_code == 204
    assert not Template.objects.exists()


@pytest.mark.parametrize(
    ("role", "can_edit"),
    [(Role.OWNER, True), (Role.ADMIN, True), (Role.CONTENT_EDITOR, True), (Role.MARKETER, False), (Role.ANALYST, False), (Role.VIEWER, False)],
)  # fmt: skip
def test_roles(workspace, role, can_edit):
    client = _key_client(workspace, role)
    assert client.get("/api/v1/templates/").status_code == 200
    assert client.get("/api/v1/assets/").status_code == 200
    assert _create(client).status_code == (201 if can_edit else 403)
    upload = client.post("/api/v1/assets/", {"file": SimpleUploadedFile("a.png", samples.png())})
    assert upload.status_code == (201 if can_edit else 403)
    assert Template.objects.count() == Asset.objects.count() == (1 if can_edit else 0)


def test_another_workspaces_objects_answer_404(workspace, other_workspace):
    mine = _key_client(workspace)
    template_id = _create(mine).json()["id"]
    asset_id = mine.post(
        "/api/v1/assets/", {"file": SimpleUploadedFile("a.png", samples.png())}
    ).json()["id"]
    theirs = _key_client(other_workspace)
    for response in (
        theirs.get(f"/api/v1/templates/{template_id}/"),
        theirs.get(f"/api/v1/templates/{template_id}/versions/"),
        theirs.get(f"/api/v1/templates/{template_id}/versions/1"),
        _post(theirs, f"/api/v1/templates/{template_id}/render", {}),
        _post(theirs, f"/api/v1/templates/{template_id}/versions/1/restore", {}),
        _patch(theirs, f"/api/v1/templates/{template_id}/", {"name": "stolen"}),
        theirs.delete(f"/api/v1/templates/{template_id}/"),
        theirs.get(f"/api/v1/assets/{asset_id}/"),
        _patch(theirs, f"/api/v1/assets/{asset_id}/", {"name": "stolen"}),
        theirs.delete(f"/api/v1/assets/{asset_id}/"),
    ):
        assert response.status_code == 404
    assert Template.objects.get().name == "Welcome"
    assert Asset.objects.get().name == "a.png"


# --------------------------------------------------------------------------- assets


def _run_jobs() -> None:
    queue = django_rq.get_queue("default")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


@pytest.mark.django_db(transaction=True)
def test_upload_process_list_change_and_delete_an_asset(workspace):
    client = _key_client(workspace)
    folder = _post(client, "/api/v1/asset-folders/", {"name": "Banners"}).json()
    created = client.post(
        "/api/v1/assets/",
        {
            "file": SimpleUploadedFile("hero.png", samples.png(64, 48)),
            "tags": "Spring, sale",
            "folder": folder["id"],
        },
    )
    assert created.status_code == 201
    asset = created.json()
    assert (asset["name"], asset["mime_type"], asset["status"], asset["tags"], asset["folder"]) == (
        "hero.png", "image/png", "processing", ["spring", "sale"], folder["id"]
    )  # fmt: skip
    assert asset["is_public"] is False and asset["public_url"].endswith("/hero.png")
    _run_jobs()
    ready = client.get(f"/api/v1/assets/{asset['id']}/").json()
    assert (ready["status"], ready["width"], ready["height"], ready["used_by"]) == (
        "ready",
        64,
        48,
        [],
    )
    assert ready["thumbnail_url"].endswith(f"/content/assets/{asset['id']}/thumbnail")
    assert [
        item["id"] for item in client.get("/api/v1/assets/", {"tag": "spring"}).json()["results"]
    ] == [asset["id"]]
    assert client.get("/api/v1/assets/", {"kind": "video"}).json()["results"] == []
    changed = _patch(
        client, f"/api/v1/assets/{asset['id']}/", {"alt_text": "A red square", "folder": None}
    )
    assert (changed.json()["alt_text"], changed.json()["folder"]) == ("A red square", None)

    _create(
        client, content={"default": {"subject": "x", "html": f'<img src="{asset["public_url"]}">'}}
    )
    in_use = client.delete(f"/api/v1/assets/{asset['id']}/")
    assert (in_use.status_code, in_use.json()["message"]) == (
        409,
        "hero.png is used by Welcome. Remove it from them first, or delete it anyway.",
    )
    assert client.delete(f"/api/v1/assets/{asset['id']}/?force=true").status_code == 204
    assert not Asset.objects.exists()


def test_refused_uploads_are_400_or_413_and_store_nothing(workspace, settings):
    client = _key_client(workspace)
    wrong = client.post(
        "/api/v1/assets/", {"file": SimpleUploadedFile("x.png", b"%PDF-1.7 not an image")}
    )
    assert (wrong.status_code, wrong.json()["message"]) == (
        400,
        "x.png: the file's bytes are not a PNG, JPEG, GIF, WebP or SVG image, or an MP4 or WebM video (they look like a PDF document).",
    )
    settings.ASSET_MAX_IMAGE_BYTES = 10
    big = client.post("/api/v1/assets/", {"file": SimpleUploadedFile("y.png", samples.png())})
    assert big.status_code == 413
    assert not Asset.objects.exists()


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
    upload = schema["paths"]["/api/v1/assets/"]["post"]["requestBody"]["content"]
    assert list(upload) == ["multipart/form-data"]
