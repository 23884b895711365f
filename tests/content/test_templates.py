"""Templates: versions on every save, conflicts, restore, diffs, translations, pinning
for journeys, asset usage, the editor pages, test sends, permissions and tenancy."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse

from content import services
from content.channels import ContentError
from content.diffing import content_diff
from content.models import Template, TemplateVersion
from content.rendering import build_context, render_version
from engagement_site.workspaces.models import AuditLog
from engagement_site.workspaces.roles import Role
from engagement_site.workspaces.services import AuditContext
from segments.models import Profile
from tests.conftest import logged_in

pytestmark = pytest.mark.django_db

EDITOR = AuditContext.system("test editor")


def _email(subject: str = "Hi {{ profile.first_name }}", html: str = "<p>Hello</p>") -> dict:
    return {"default": {"subject": subject, "html": html}}


def _create(workspace, name="Welcome", content=None, channel="email") -> Template:
    return services.template_create(
        workspace=workspace,
        name=name,
        channel=channel,
        content=content or _email(),
        context=EDITOR,
    )


def _url(name: str, workspace, **kwargs) -> str:
    return reverse(name, kwargs={"workspace_slug": workspace.slug, **kwargs})


# --------------------------------------------------------------------------- services


def test_create_makes_version_one_with_defaults_filled_and_an_audit_row(workspace):
    template = _create(workspace)
    version = template.current_version
    assert version.number == 1
    assert version.content == {
        "default": {
            "subject": "Hi {{ profile.first_name }}",
            "preheader": "",
            "from_name": "",
            "reply_to": "",
            "html": "<p>Hello</p>",
            "text": "",
        }
    }
    row = AuditLog.objects.get(workspace=workspace, action="template.create")
    assert row.object_id == str(template.pk)
    assert row.changes == {"channel": "email", "version": 1, "locales": ["default"]}


def test_every_changed_save_appends_a_version_and_unchanged_saves_do_not(workspace):
    template = _create(workspace)
    second = services.template_save(
        template=template, content=_email("Hello again"), context=EDITOR, base_version=1
    )
    same = services.template_save(
        template=template, content=_email("Hello again"), context=EDITOR, base_version=2
    )
    assert (second.number, same.pk) == (2, second.pk)
    assert list(template.versions.values_list("number", flat=True)) == [2, 1]
    assert AuditLog.objects.filter(workspace=workspace, action="template.save").count() == 1
    assert AuditLog.objects.get(action="template.save").changes == {
        "version": 2,
        "from_version": 1,
        "fields": ["default.subject"],
    }


def test_a_stale_save_is_refused_and_writes_nothing(workspace):
    template = _create(workspace)
    services.template_save(
        template=template, content=_email("First"), context=EDITOR, base_version=1
    )
    stale = Template.objects.get(pk=template.pk)
    with pytest.raises(
        services.TemplateConflict, match="saved version 2 after you opened version 1"
    ):
        services.template_save(
            template=stale, content=_email("Second"), context=EDITOR, base_version=1
        )
    assert TemplateVersion.objects.filter(template=template).count() == 2
    assert (
        Template.objects.get(pk=template.pk).current_version.content["default"]["subject"]
        == "First"
    )


def test_content_errors_name_the_locale_and_field_and_store_nothing(workspace):
    with pytest.raises(ContentError) as caught:
        _create(
            workspace,
            content={
                "default": {"subject": "", "html": "<p>x</p>"},
                "fr": {"subject": "{% if %}", "html": "x"},
            },
        )
    assert set(caught.value.errors) == {"default.subject", "fr.subject"}
    assert "at least 1 character" in caught.value.errors["default.subject"]
    assert not Template.objects.filter(workspace=workspace).exists()
    assert not AuditLog.objects.filter(workspace=workspace, action="template.create").exists()


def test_bad_locale_tags_and_a_missing_default_are_refused(workspace):
    with pytest.raises(ContentError) as caught:
        _create(workspace, content={"french!": {"subject": "x", "html": "x"}})
    assert caught.value.errors == {
        "french!": "is not a locale tag like 'fr' or 'fr-CA'",
        "default": "every template needs a default locale",
    }


def test_duplicate_names_are_refused(workspace):
    _create(workspace)
    with pytest.raises(ValidationError, match="already exists"):
        _create(workspace)


def test_restore_appends_the_old_content_as_a_new_version(workspace):
    template = _create(workspace, content=_email("One"))
    services.template_save(template=template, content=_email("Two"), context=EDITOR)
    restored = services.template_restore(
        template=template, version=template.versions.get(number=1), context=EDITOR
    )
    assert restored.number == 3
    assert restored.note == "Restored version 1"
    assert restored.content["default"]["subject"] == "One"
    assert AuditLog.objects.get(workspace=workspace, action="template.restore").changes == {
        "restored_version": 1,
        "version": 3,
    }


def test_diff_lists_changed_added_and_removed_fields_line_by_line():
    old = {"default": {"subject": "Hi", "html": "<p>a</p>\n<p>b</p>"}}
    new = {
        "default": {"subject": "Hello", "html": "<p>a</p>\n<p>c</p>"},
        "fr": {"subject": "Salut", "html": ""},
    }
    diffs = content_diff(old, new)
    assert [(d.locale, d.field, d.status) for d in diffs] == [
        ("default", "subject", "changed"),
        ("default", "html", "changed"),
        ("fr", "subject", "added"),
    ]
    assert diffs[1].lines == [
        ("@", "@@ -1,2 +1,2 @@"),
        (" ", "<p>a</p>"),
        ("-", "<p>b</p>"),
        ("+", "<p>c</p>"),
    ]
    assert diffs[2].lines == [("+", "Salut")]


def test_a_published_journey_keeps_rendering_the_version_it_pinned(workspace):
    """Editing content never changes a live journey: the journey stores the version id
    it got at publish time and renders that version; publishing again picks the latest."""
    template = _create(workspace, content=_email("Spring sale, {{ profile.first_name }}"))
    pinned = services.template_version_for_publish(workspace=workspace, template_id=template.pk)
    services.template_save(
        template=template, content=_email("Summer sale, {{ profile.first_name }}"), context=EDITOR
    )
    profile = Profile.objects.create(
        workspace=workspace, user_id="u1", traits={"first_name": "Ada"}
    )
    context = build_context(workspace=workspace, profile=profile)

    live = render_version(
        version=TemplateVersion.objects.get(pk=pinned.pk), locale="", context=context
    )
    assert live.fields["subject"] == "Spring sale, Ada"
    republished = services.template_version_for_publish(
        workspace=workspace, template_id=template.pk
    )
    assert (
        render_version(version=republished, locale="", context=context).fields["subject"]
        == "Summer sale, Ada"
    )


def test_pinning_refuses_archived_and_foreign_templates(workspace, other_workspace):
    template = _create(workspace)
    with pytest.raises(ValidationError, match="does not exist in this workspace"):
        services.template_version_for_publish(workspace=other_workspace, template_id=template.pk)
    services.template_archive(template=template, context=EDITOR)
    with pytest.raises(ValidationError, match="is archived"):
        services.template_version_for_publish(workspace=workspace, template_id=template.pk)


def test_translations_fall_back_from_region_to_language_to_default(workspace):
    template = _create(
        workspace,
        content={
            "default": {"subject": "Hello", "html": "x"},
            "fr": {"subject": "Bonjour", "html": "x"},
            "fr-CA": {"subject": "Allô", "html": "x"},
        },
    )
    version = template.current_version
    subjects = {
        locale: render_version(version=version, locale=locale, context={}).fields["subject"]
        for locale in ("fr-CA", "fr_ca", "fr-FR", "fr", "de-DE", "")
    }
    assert subjects == {
        "fr-CA": "Allô",
        "fr_ca": "Allô",
        "fr-FR": "Bonjour",
        "fr": "Bonjour",
        "de-DE": "Hello",
        "": "Hello",
    }


def test_duplicate_copies_the_current_content_under_a_free_name(workspace):
    template = _create(workspace)
    first = services.template_duplicate(template=template, context=EDITOR)
    second = services.template_duplicate(template=template, context=EDITOR)
    assert (first.name, second.name) == ("Welcome (copy)", "Welcome (copy) 2")
    assert first.current_version.content == template.current_version.content
    assert first.current_version.note == "Copied from Welcome v1"


def test_delete_removes_versions_and_is_audited(workspace):
    template = _create(workspace)
    services.template_delete(template=template, context=EDITOR)
    assert not Template.objects.filter(pk=template.pk).exists()
    assert not TemplateVersion.objects.filter(template_id=template.pk).exists()
    assert AuditLog.objects.get(workspace=workspace, action="template.delete").changes == {
        "channel": "email",
        "versions": 1,
    }


def test_test_send_renders_the_version_and_sends_one_email(workspace, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    template = _create(
        workspace,
        content={
            "default": {
                "subject": "Hi {{ profile.first_name }}",
                "from_name": "Acme team",
                "html": "<style>p { color: red; }</style><p>Hello {{ profile.first_name }}</p>",
            }
        },
    )
    profile = Profile.objects.create(
        workspace=workspace, user_id="u1", traits={"first_name": "Ada"}
    )
    result = services.template_send_test(
        template=template,
        version=template.current_version,
        locale="",
        render_context=build_context(workspace=workspace, profile=profile),
        to="qa@example.com",
        context=EDITOR,
    )
    assert result == "Sent version 1 (default) to qa@example.com."
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert (sent.subject, sent.to) == ("[Test] Hi Ada", ["qa@example.com"])
    assert sent.from_email.startswith("Acme team <")
    html = sent.alternatives[0][0]
    assert 'style="color: red' in html and "Hello Ada" in html
    assert "Hello Ada" in sent.body
    audit = AuditLog.objects.get(workspace=workspace, action="template.test_send")
    assert "qa@example.com" not in str(audit.changes)


def test_test_send_refuses_bad_addresses_and_channels_without_delivery(workspace, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    email = _create(workspace)
    with pytest.raises(ValidationError, match="is not an email address"):
        services.template_send_test(
            template=email,
            version=email.current_version,
            locale="",
            render_context={},
            to="nope",
            context=EDITOR,
        )
    sms = _create(workspace, name="Text", channel="sms", content={"default": {"body": "Hi"}})
    with pytest.raises(
        services.TestSendUnavailable,
        match=r"The sms channel cannot send \(channel_not_configured: the sms channel has no "
        r"settings yet\)\. Set it up in Settings → Channels\.",
    ):
        services.template_send_test(
            template=sms,
            version=sms.current_version,
            locale="",
            render_context={},
            to="+15555550123",
            context=EDITOR,
        )
    assert mail.outbox == []
    assert not AuditLog.objects.filter(action="template.test_send").exists()


# --------------------------------------------------------------------------- pages


def test_editor_saves_a_new_version_from_the_form(workspace, owner):
    template = _create(workspace)
    client = logged_in(owner)
    response = client.post(
        _url("content_template_edit", workspace, template_id=template.pk),
        {
            "base_version": "1",
            "locale": ["default", "fr"],
            "f.default.subject": "Hello {{ profile.first_name }}",
            "f.default.html": "<p>Hi</p>",
            "f.fr.subject": "Bonjour",
            "f.fr.html": "<p>Salut</p>",
            "note": "French added",
        },
    )
    assert response.status_code == 302
    version = Template.objects.get(pk=template.pk).current_version
    assert (version.number, version.note, version.locales) == (2, "French added", ["default", "fr"])
    assert version.content["fr"]["subject"] == "Bonjour"


def test_editor_shows_errors_on_their_fields_and_saves_nothing(workspace, owner):
    template = _create(workspace)
    response = logged_in(owner).post(
        _url("content_template_edit", workspace, template_id=template.pk),
        {
            "base_version": "1",
            "locale": ["default"],
            "f.default.subject": "{% for %}",
            "f.default.html": "x",
        },
    )
    assert response.status_code == 400
    assert b"default.subject" in response.content
    assert TemplateVersion.objects.filter(template=template).count() == 1


def test_editor_refuses_a_stale_save_with_409(workspace, owner):
    template = _create(workspace)
    services.template_save(template=template, content=_email("Elsewhere"), context=EDITOR)
    response = logged_in(owner).post(
        _url("content_template_edit", workspace, template_id=template.pk),
        {
            "base_version": "1",
            "locale": ["default"],
            "f.default.subject": "Mine",
            "f.default.html": "x",
        },
    )
    assert response.status_code == 409
    assert b"Reload to see their changes" in response.content
    assert (
        Template.objects.get(pk=template.pk).current_version.content["default"]["subject"]
        == "Elsewhere"
    )


def test_preview_renders_unsaved_content_for_a_profile_in_its_locale(workspace, owner):
    template = _create(workspace)
    profile = Profile.objects.create(
        workspace=workspace, user_id="u1", locale="fr-CA", traits={"first_name": "Ada"}
    )
    response = logged_in(owner).post(
        _url("content_template_preview", workspace, template_id=template.pk),
        {
            "locale": ["default", "fr"],
            "f.default.subject": "Hi {{ profile.first_name }}",
            "f.default.html": "<p>x</p>",
            "f.fr.subject": "Salut {{ profile.first_name }}",
            "f.fr.html": "<p>x</p>",
            "preview_profile": str(profile.pk),
            "preview_locale": "profile",
        },
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert '<dd data-testid="preview-subject">Salut Ada</dd>' in html
    assert "(asked for fr-CA)" in html


def test_preview_for_a_profile_of_another_workspace_uses_sample_data(
    workspace, other_workspace, owner
):
    template = _create(workspace)
    foreign = Profile.objects.create(
        workspace=other_workspace, user_id="x", traits={"first_name": "Mallory"}
    )
    response = logged_in(owner).post(
        _url("content_template_preview", workspace, template_id=template.pk),
        {
            "locale": ["default"],
            "f.default.subject": "Hi {{ profile.first_name }}",
            "f.default.html": "<p>x</p>",
            "preview_profile": str(foreign.pk),
        },
    )
    html = response.content.decode()
    assert "Mallory" not in html
    assert '<dd data-testid="preview-subject">Hi Sam</dd>' in html


def test_sms_preview_counts_characters_and_segments(workspace, owner):
    template = _create(workspace, name="Text", channel="sms", content={"default": {"body": "Hi"}})
    response = logged_in(owner).post(
        _url("content_template_preview", workspace, template_id=template.pk),
        {"locale": ["default"], "f.default.body": "x" * 161},
    )
    assert (
        "<strong>161</strong> characters · <strong>2</strong> segments · GSM-7"
        in response.content.decode()
    )


@pytest.mark.parametrize(
    ("role", "can_edit"),
    [
        (Role.CONTENT_EDITOR, True),
        (Role.ADMIN, True),
        (Role.MARKETER, False),
        (Role.ANALYST, False),
        (Role.VIEWER, False),
    ],
)
def test_only_content_editors_and_admins_change_templates(workspace, make_member, role, can_edit):
    template = _create(workspace)
    client = logged_in(make_member(role))
    assert (
        client.get(_url("content_template_edit", workspace, template_id=template.pk)).status_code
        == 200
    )
    response = client.post(
        _url("content_template_edit", workspace, template_id=template.pk),
        {
            "base_version": "1",
            "locale": ["default"],
            "f.default.subject": "Changed",
            "f.default.html": "x",
        },
    )
    assert response.status_code == (302 if can_edit else 403)
    assert TemplateVersion.objects.filter(template=template).count() == (2 if can_edit else 1)
    new = client.post(_url("content_template_new", workspace), {"name": "Other", "channel": "sms"})
    assert new.status_code == (302 if can_edit else 403)


def test_another_workspaces_template_answers_404(workspace, other_workspace, outsider):
    template = _create(workspace)
    client = logged_in(outsider)
    for name in ("content_template_edit", "content_template_versions"):
        assert (
            client.get(
                reverse(
                    name,
                    kwargs={"workspace_slug": other_workspace.slug, "template_id": template.pk},
                )
            ).status_code
            == 404
        )
    response = client.post(
        reverse(
            "content_template_restore",
            kwargs={
                "workspace_slug": other_workspace.slug,
                "template_id": template.pk,
                "number": 1,
            },
        )
    )
    assert response.status_code == 404


def test_versions_page_shows_the_diff_of_two_versions(workspace, owner):
    template = _create(workspace, content=_email("One"))
    services.template_save(template=template, content=_email("Two"), context=EDITOR)
    response = logged_in(owner).get(
        _url("content_template_versions", workspace, template_id=template.pk) + "?from=1&to=2"
    )
    html = response.content.decode()
    assert "Version 1 → version 2" in html
    assert '<span class="diff-line diff-line--del">- One</span>' in html
    assert '<span class="diff-line diff-line--add">+ Two</span>' in html


def test_template_list_filters_by_channel_and_search(workspace, owner):
    _create(workspace, name="Welcome")
    _create(workspace, name="Receipt text", channel="sms", content={"default": {"body": "Thanks"}})
    client = logged_in(owner)
    sms_only = client.get(_url("content_templates", workspace) + "?channel=sms").content.decode()
    assert "Receipt text" in sms_only and ">Welcome<" not in sms_only
    searched = client.get(_url("content_templates", workspace) + "?q=welc").content.decode()
    assert ">Welcome<" in searched and "Receipt text" not in searched


def test_preview_uses_the_profiles_event_that_has_the_properties_the_template_reads(
    workspace, owner
):
    from datetime import timedelta

    from django.utils import timezone

    from segments.models import Event

    template = _create(workspace, name="Receipt", channel="sms", content={"default": {"body": "x"}})
    profile = Profile.objects.create(
        workspace=workspace, user_id="u1", traits={"first_name": "Ada"}
    )
    now = timezone.now()
    Event.objects.create(
        workspace=workspace, profile=profile, name="order_completed", message_id="m1",
        timestamp=now - timedelta(days=2), properties={"revenue": 19.5, "currency": "EUR"},
    )  # fmt: skip
    Event.objects.create(
        workspace=workspace, profile=profile, name="logged_in", message_id="m2",
        timestamp=now - timedelta(minutes=5), properties={"platform": "web"},
    )  # fmt: skip
    response = logged_in(owner).post(
        _url("content_template_preview", workspace, template_id=template.pk),
        {
            "locale": ["default"],
            "f.default.body": "Paid {{ event.properties.revenue | money: event.properties.currency }}",
            "preview_profile": str(profile.pk),
            "preview_locale": "en",
        },
    )
    html = response.content.decode()
    assert '<span class="mono">order_completed</span>' in html
    assert "Paid €19.50" in html


@pytest.mark.parametrize(
    "channel", ["email", "sms", "push", "web_push", "whatsapp", "in_app", "webhook"]
)
def test_a_new_template_of_every_channel_starts_valid_and_previews(workspace, owner, channel):
    client = logged_in(owner)
    response = client.post(
        _url("content_template_new", workspace), {"name": f"New {channel}", "channel": channel}
    )
    assert response.status_code == 302
    template = Template.objects.get(workspace=workspace, name=f"New {channel}")
    assert (template.channel, template.current_version.number) == (channel, 1)
    editor = client.get(response["Location"])
    assert editor.status_code == 200
    from content.forms import editor_locales

    fields = editor_locales(channel, template.current_version.content)[0]["fields"]
    posted = {"locale": ["default"], **{field["input_name"]: field["value"] for field in fields}}
    preview = client.post(
        _url("content_template_preview", workspace, template_id=template.pk), posted
    )
    assert preview.status_code == 200
    assert b"would fail to send" not in preview.content
    # Posting the form back unchanged makes no new version.
    saved = client.post(
        _url("content_template_edit", workspace, template_id=template.pk),
        {**posted, "base_version": "1"},
    )
    assert saved.status_code == 302
    assert template.versions.count() == 1
