"""Writes of the content app (keyword-only, typed, audited where they change state).

Templates: create, save (every save of changed content appends a version), restore an
old version, rename / describe / tag, duplicate, archive, delete, and the test send.
Asset writes live in content/assets.py (upload, process, update, delete, publish).

A template's content is checked on every save: the channel's fields (content/channels.py),
Liquid syntax of every field (an error refuses the save), and variables no profile trait
or event property is known by (a warning kept on the version and shown in the editor).
"""

from __future__ import annotations

import re
from email.utils import formataddr, parseaddr
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from content.assets import normalize_tags
from content.channels import CONTENT_MODELS, ContentError, validate_content
from content.models import Asset, AssetUsage, Channel, Template, TemplateVersion
from engagement_site.workspaces.models import Workspace
from engagement_site.workspaces.services import AuditContext, audit_record

MAX_NAME_LENGTH = 200
# Asset public URLs end in "<public_token>/<file name>"; tokens are 24 URL-safe chars.
_TOKEN_IN_URL = re.compile(r"(?<![A-Za-z0-9_-])([A-Za-z0-9_-]{24})/[A-Za-z0-9._-]+")


class TemplateConflict(ValidationError):
    """The template changed since the editor loaded it (someone else saved)."""


class TestSendUnavailable(ValidationError):
    """The channel cannot send a test message (not set up, or not one tests go on)."""


class TestSendFailed(Exception):
    """The provider did not take the test message; the text says what it answered."""


def _check_name(*, workspace: Workspace, name: str, template: Template | None = None) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "A template needs a name."})
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationError({"name": f"Names are at most {MAX_NAME_LENGTH} characters."})
    others = Template.objects.filter(workspace=workspace, name=name)
    if template is not None:
        others = others.exclude(pk=template.pk)
    if others.exists():
        raise ValidationError({"name": f"A template named {name!r} already exists."})
    return name


def template_content_check(
    *, workspace: Workspace, channel: str, content: Any
) -> tuple[dict, list]:
    """Validate content for saving: (cleaned content, warnings).

    Raises ContentError naming each bad "locale.field" (schema or Liquid syntax)."""
    from content.rendering import check_syntax, undefined_variables
    from content.selectors import known_variables

    try:
        cleaned = validate_content(channel, content)
    except ContentError as error:
        # Report Liquid errors of the other fields in the same answer.
        errors = dict(error.errors)
        if isinstance(content, dict) and all(isinstance(v, dict) for v in content.values()):
            for path, message in check_syntax(channel=channel, content=content).items():
                errors.setdefault(path, message)
        raise ContentError(errors) from None
    syntax_errors = check_syntax(channel=channel, content=cleaned)
    if syntax_errors:
        raise ContentError(syntax_errors)
    traits, event_properties = known_variables(workspace=workspace)
    warnings = undefined_variables(
        channel=channel,
        content=cleaned,
        known_traits=traits,
        known_event_properties=event_properties,
    )
    return cleaned, warnings


def referenced_assets(*, workspace: Workspace, content: dict) -> list[Asset]:
    import orjson

    tokens = set(_TOKEN_IN_URL.findall(orjson.dumps(content).decode()))
    if not tokens:
        return []
    return list(Asset.objects.filter(workspace=workspace, public_token__in=tokens))


def _usages_rebuild(*, template: Template, content: dict) -> list[Asset]:
    """Point the template's asset usages at what its current content references and
    make those assets public (after commit: copying files is not transactional)."""
    from content.assets import asset_publish

    assets = referenced_assets(workspace=template.workspace, content=content)
    AssetUsage.objects.filter(template=template).exclude(asset__in=assets).delete()
    AssetUsage.objects.bulk_create(
        [AssetUsage(asset=asset, template=template) for asset in assets], ignore_conflicts=True
    )
    for asset in assets:
        if not asset.is_public:
            transaction.on_commit(lambda asset_id=asset.pk: _publish_by_id(asset_id, asset_publish))
    return assets


def _publish_by_id(asset_id: int, publish) -> None:
    asset = Asset.objects.filter(pk=asset_id).first()
    if asset is not None:
        publish(asset=asset)


def _append_version(
    *,
    template: Template,
    content: dict,
    warnings: list,
    context: AuditContext,
    note: str = "",
) -> TemplateVersion:
    last = template.versions.order_by("-number").values_list("number", flat=True).first() or 0
    version = TemplateVersion.objects.create(
        template=template,
        number=last + 1,
        content=content,
        warnings=warnings,
        note=(note or "")[:200],
        author=context.actor,
    )
    template.current_version = version
    template.updated_at = timezone.now()
    template.save(update_fields=["current_version", "updated_at"])
    _usages_rebuild(template=template, content=content)
    return version


def template_create(
    *,
    workspace: Workspace,
    name: str,
    channel: str,
    content: Any,
    context: AuditContext,
    description: str = "",
    tags=(),
    note: str = "",
) -> Template:
    """Create a template with its first version. Raises ValidationError (name,
    channel) or ContentError (content)."""
    if channel not in CONTENT_MODELS:
        raise ValidationError(
            {"channel": f"Unknown channel {channel!r}; use one of {', '.join(Channel.values)}."}
        )
    name = _check_name(workspace=workspace, name=name)
    cleaned, warnings = template_content_check(
        workspace=workspace, channel=channel, content=content
    )
    with transaction.atomic():
        try:
            template = Template.objects.create(
                workspace=workspace,
                name=name,
                channel=channel,
                description=(description or "")[:500],
                tags=normalize_tags(tags),
                created_by=context.actor,
            )
        except IntegrityError:
            raise ValidationError({"name": f"A template named {name!r} already exists."}) from None
        version = _append_version(
            template=template, content=cleaned, warnings=warnings, context=context, note=note
        )
        audit_record(
            context=context,
            action="template.create",
            workspace=workspace,
            target=template,
            changes={"channel": channel, "version": version.number, "locales": version.locales},
        )
    return template


def template_save(
    *,
    template: Template,
    content: Any,
    context: AuditContext,
    base_version: int | None = None,
    note: str = "",
) -> TemplateVersion:
    """Save new content as a new version (unchanged content makes none and returns the
    current version). `base_version` is the version the editor started from: if someone
    saved since, TemplateConflict is raised and nothing is written."""
    cleaned, warnings = template_content_check(
        workspace=template.workspace, channel=template.channel, content=content
    )
    with transaction.atomic():
        locked = Template.objects.select_for_update().get(pk=template.pk)
        current = locked.current_version
        if base_version is not None and current is not None and current.number != base_version:
            author = current.author.get_username() if current.author else "someone else"
            raise TemplateConflict(
                f"{author} saved version {current.number} after you opened version "
                f"{base_version}. Reload to see their changes; yours were not saved."
            )
        if current is not None and current.content == cleaned:
            return current
        version = _append_version(
            template=locked, content=cleaned, warnings=warnings, context=context, note=note
        )
        audit_record(
            context=context,
            action="template.save",
            workspace=template.workspace,
            target=locked,
            changes={
                "version": version.number,
                "from_version": current.number if current else None,
                "fields": _changed_paths(current.content if current else {}, cleaned),
            },
        )
    template.current_version = version
    template.updated_at = locked.updated_at
    return version


def _changed_paths(before: dict, after: dict) -> list[str]:
    paths = []
    for locale in sorted(set(before) | set(after)):
        old, new = before.get(locale), after.get(locale)
        if old is None or new is None:
            paths.append(locale)
            continue
        paths.extend(
            f"{locale}.{field}"
            for field in sorted(set(old) | set(new))
            if old.get(field) != new.get(field)
        )
    return paths


def template_restore(
    *, template: Template, version: TemplateVersion, context: AuditContext
) -> TemplateVersion:
    """Make an old version's content current again, as a new version (history is kept)."""
    if version.template_id != template.pk:
        raise ValidationError("That version belongs to another template.")
    restored = template_save(
        template=template,
        content=version.content,
        context=context,
        note=f"Restored version {version.number}",
    )
    audit_record(
        context=context,
        action="template.restore",
        workspace=template.workspace,
        target=template,
        changes={"restored_version": version.number, "version": restored.number},
    )
    return restored


def template_update(
    *,
    template: Template,
    context: AuditContext,
    name: str | None = None,
    description: str | None = None,
    tags=None,
) -> Template:
    """Rename, describe or tag a template (its content is changed by template_save)."""
    changes: dict[str, Any] = {}
    if name is not None and name.strip() != template.name:
        changes["name"] = [
            template.name,
            _check_name(workspace=template.workspace, name=name, template=template),
        ]
        template.name = changes["name"][1]
    if description is not None and description != template.description:
        changes["description"] = [template.description, description[:500]]
        template.description = description[:500]
    if tags is not None and normalize_tags(tags) != template.tags:
        changes["tags"] = [template.tags, normalize_tags(tags)]
        template.tags = changes["tags"][1]
    if not changes:
        return template
    with transaction.atomic():
        try:
            template.save(update_fields=["name", "description", "tags"])
        except IntegrityError:
            raise ValidationError(
                {"name": f"A template named {template.name!r} already exists."}
            ) from None
        audit_record(
            context=context,
            action="template.update",
            workspace=template.workspace,
            target=template,
            changes=changes,
        )
    return template


def template_duplicate(*, template: Template, context: AuditContext, name: str = "") -> Template:
    """A new template with the current content of this one (its history starts anew)."""
    name = name or _free_copy_name(template)
    return template_create(
        workspace=template.workspace,
        name=name,
        channel=template.channel,
        content=template.current_version.content,
        context=context,
        description=template.description,
        tags=template.tags,
        note=f"Copied from {template.name} v{template.current_version.number}",
    )


def _free_copy_name(template: Template) -> str:
    base = f"{template.name} (copy)"[:MAX_NAME_LENGTH]
    taken = set(
        Template.objects.filter(
            workspace=template.workspace, name__startswith=base[: MAX_NAME_LENGTH - 4]
        ).values_list("name", flat=True)
    )
    if base not in taken:
        return base
    number = 2
    while f"{base} {number}" in taken:
        number += 1
    return f"{base} {number}"


def template_archive(
    *, template: Template, context: AuditContext, archived: bool = True
) -> Template:
    """Archive (hide from pickers) or bring back a template. Journeys already published
    keep rendering the version they pinned."""
    if (template.archived_at is not None) == archived:
        return template
    template.archived_at = timezone.now() if archived else None
    with transaction.atomic():
        template.save(update_fields=["archived_at"])
        audit_record(
            context=context,
            action="template.archive" if archived else "template.unarchive",
            workspace=template.workspace,
            target=template,
        )
    return template


def template_delete(*, template: Template, context: AuditContext) -> None:
    """Delete a template and its versions. Refused while a journey pins one of them, and
    once messages were made from it (the message log keeps the version each used)."""
    from content.selectors import template_journey_usages, template_message_count

    users = template_journey_usages(workspace=template.workspace, template=template)
    if users:
        raise ValidationError(
            f"{template.name!r} is used by {', '.join(users)}; archive it instead."
        )
    sent = template_message_count(workspace=template.workspace, template=template)
    if sent:
        raise ValidationError(
            f"{template.name!r} has been used for {sent} message{'s' if sent != 1 else ''}, "
            "which keep the version they were made from; archive it instead."
        )
    with transaction.atomic():
        audit_record(
            context=context,
            action="template.delete",
            workspace=template.workspace,
            target=template,
            changes={"channel": template.channel, "versions": template.versions.count()},
        )
        Template.objects.filter(pk=template.pk).update(current_version=None)
        template.delete()


def template_version_for_publish(*, workspace: Workspace, template_id: int) -> TemplateVersion:
    """The version a journey pins when it is published: the template's current one.

    A journey version stores this version's id and renders it from then on, so later
    edits of the template reach the journey only when it is published again."""
    template = (
        Template.objects.filter(workspace=workspace, pk=template_id)
        .select_related("current_version")
        .first()
    )
    if template is None or template.current_version is None:
        raise ValidationError(f"Template {template_id} does not exist in this workspace.")
    if template.archived_at is not None:
        raise ValidationError(f"Template {template.name!r} is archived.")
    return template.current_version


def template_send_test(
    *,
    template: Template,
    version: TemplateVersion,
    locale: str,
    render_context: dict,
    to: str,
    context: AuditContext,
) -> str:
    """Render a version and send it once to `to` through the channel. Returns what
    was done, for the editor to show. Email goes through Django's mail backend; SMS,
    WhatsApp and webhooks through the workspace's channel settings
    (delivery.test_sends); push and in-app raise TestSendUnavailable, as does a channel
    not set up; a provider's refusal raises TestSendFailed."""
    from django.core.mail import EmailMultiAlternatives
    from django.core.validators import validate_email

    from content.rendering import render_version

    if template.channel != Channel.EMAIL:
        return _send_test_through_channel(
            template=template, version=version, locale=locale,
            render_context=render_context, to=to, context=context,
        )  # fmt: skip
    to = (to or "").strip()
    try:
        validate_email(to)
    except ValidationError:
        raise ValidationError({"to": f"{to!r} is not an email address."}) from None
    rendered = render_version(version=version, locale=locale, context=render_context)
    fields = rendered.fields
    sender = settings.DEFAULT_FROM_EMAIL
    if fields.get("from_name"):
        sender = formataddr((fields["from_name"], parseaddr(sender)[1]))
    message = EmailMultiAlternatives(
        subject=f"[Test] {fields['subject']}",
        body=fields["text"],
        from_email=sender,
        to=[to],
        reply_to=[fields["reply_to"]] if fields.get("reply_to") else None,
    )
    message.attach_alternative(fields["html"], "text/html")
    message.send()
    _test_send_audit(template=template, version=version, locale=rendered.locale, context=context)
    return f"Sent version {version.number} ({rendered.locale}) to {to}."


def _send_test_through_channel(
    *, template, version, locale: str, render_context: dict, to: str, context: AuditContext
) -> str:
    from content.rendering import render_version
    from delivery.test_sends import TestSendRefused, channel_test_send

    rendered = render_version(version=version, locale=locale, context=render_context)
    try:
        text = channel_test_send(
            workspace=template.workspace, channel=template.channel, fields=rendered.fields, to=to
        )
    except TestSendRefused as refusal:
        if refusal.field:
            raise ValidationError({refusal.field: str(refusal)}) from None
        if refusal.unavailable:
            raise TestSendUnavailable(str(refusal)) from None
        raise TestSendFailed(str(refusal)) from None
    _test_send_audit(template=template, version=version, locale=rendered.locale, context=context)
    return f"Sent version {version.number} ({rendered.locale}): {text}"


def _test_send_audit(*, template, version, locale: str, context: AuditContext) -> None:
    """A test send happened: which version and locale, on which channel (never to whom)."""
    audit_record(
        context=context,
        action="template.test_send",
        workspace=template.workspace,
        target=template,
        changes={"version": version.number, "locale": locale, "channel": template.channel},
    )
