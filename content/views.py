"""Pages of the Content area: templates (list, editor with live preview, versions and
diffs, test send) and the media library (drag-and-drop upload, folders, tags, search,
asset page with "used in")."""

from __future__ import annotations

from typing import Any

import orjson
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from content import selectors, services
from content.channels import DEFAULT_LOCALE, ContentError, resolve_locale
from content.diffing import content_diff
from content.forms import (
    STARTER_CONTENT,
    content_from_post,
    editor_locales,
    errors_by_input,
)
from content.models import Asset, Channel
from engagement_site.workspaces.access import member_can, workspace_view
from engagement_site.workspaces.services import AuditContext

ASSETS_PER_PAGE = 60
TEMPLATES_PER_PAGE = 50
CHANNEL_BLURBS = {
    Channel.EMAIL: "Subject, preheader, HTML with inlined CSS and a plain-text part.",
    Channel.SMS: "A text message with a live character and segment count.",
    Channel.PUSH: "Title, body, image, deep link and a data payload for your apps.",
    Channel.WEB_PUSH: "A browser notification with an icon and the page it opens.",
    Channel.WHATSAPP: "An approved WhatsApp template with its parameters.",
    Channel.IN_APP: "A card in your app's inbox: title, body, image and a button.",
    Channel.WEBHOOK: "An HTTP request to your systems with a JSON body.",
}


def _slug(request: HttpRequest) -> str:
    return request.workspace.slug


# --------------------------------------------------------------------------- templates


@workspace_view("content.view")
def template_list(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace
    channel = request.GET.get("channel", "")
    if channel not in Channel.values:
        channel = ""
    query = request.GET.get("q", "").strip()
    archived = request.GET.get("archived") == "1"
    templates = selectors.workspace_templates(
        workspace=workspace, channel=channel, query=query, include_archived=archived
    )
    if archived:
        templates = templates.filter(archived_at__isnull=False)
    page = Paginator(templates, TEMPLATES_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "content/template_list.html",
        {
            "area": "content",
            "tab": "templates",
            "page": page,
            "channel": channel,
            "query": query,
            "archived": archived,
            "channels": Channel.choices,
            "has_any": selectors.workspace_templates(
                workspace=workspace, include_archived=True
            ).exists(),
        },
    )


@workspace_view("content.edit")
@require_http_methods(["GET", "POST"])
def template_new(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace
    errors: dict[str, str] = {}
    channel = request.POST.get("channel") or request.GET.get("channel") or Channel.EMAIL
    name = request.POST.get("name", "")
    if request.method == "POST":
        if channel not in Channel.values:
            errors["channel"] = "Pick a channel."
        else:
            try:
                template = services.template_create(
                    workspace=workspace,
                    name=name,
                    channel=channel,
                    content=_starter(channel),
                    context=AuditContext.from_request(request),
                    note="Created",
                )
            except ValidationError as error:
                errors.update({k: " ".join(v) for k, v in error.message_dict.items()})
            except ContentError:
                # The starter of a channel with required fields left blank (e.g. a push
                # title) is saved with a placeholder the editor asks to replace.
                raise
            else:
                return redirect(
                    "content_template_edit", workspace_slug=workspace.slug, template_id=template.pk
                )
    return render(
        request,
        "content/template_new.html",
        {
            "area": "content",
            "channels": [(value, label, CHANNEL_BLURBS[value]) for value, label in Channel.choices],
            "channel": channel,
            "name": name,
            "errors": errors,
        },
    )


def _starter(channel: str) -> dict[str, dict[str, Any]]:
    fields = dict(STARTER_CONTENT[channel])
    placeholders = {
        "push": {"title": "Title"},
        "web_push": {"title": "Title"},
        "in_app": {"title": "Title"},
        "whatsapp": {"template_name": "order_update"},
        "webhook": {"url": "https://example.com/hooks/engagement"},
    }
    fields.update(placeholders.get(channel, {}))
    return {DEFAULT_LOCALE: fields}


def _editor_context(
    request: HttpRequest,
    template,
    *,
    content: dict | None = None,
    errors: dict[str, str] | None = None,
    base_version: int | None = None,
    conflict: str = "",
) -> dict[str, Any]:
    version = template.current_version
    content = content if content is not None else version.content
    return {
        "area": "content",
        "template": template,
        "version": version,
        "base_version": base_version or version.number,
        "locales": editor_locales(template.channel, content, errors_by_input(errors or {})),
        "error_list": errors or {},
        "conflict": conflict,
        "can_edit": member_can(request, "content.edit") and template.archived_at is None,
        "warnings": version.warnings if content is version.content else [],
        "is_email": template.channel == Channel.EMAIL,
    }


@workspace_view({"GET": "content.view", "POST": "content.edit"})
def template_edit(request: HttpRequest, template_id: int) -> HttpResponse:
    workspace = request.workspace
    template = selectors.template_get(workspace=workspace, template_id=template_id)
    if request.method == "GET":
        return render(request, "content/template_edit.html", _editor_context(request, template))
    if template.archived_at is not None:
        messages.error(request, "This template is archived; bring it back to edit it.")
        return redirect(
            "content_template_edit", workspace_slug=workspace.slug, template_id=template.pk
        )
    content, parse_errors = content_from_post(template.channel, request.POST)
    try:
        base_version = int(request.POST.get("base_version", ""))
    except ValueError:
        base_version = None
    if parse_errors:
        return render(
            request,
            "content/template_edit.html",
            _editor_context(
                request, template, content=content, errors=parse_errors, base_version=base_version
            ),
            status=400,
        )
    try:
        version = services.template_save(
            template=template,
            content=content,
            context=AuditContext.from_request(request),
            base_version=base_version,
            note=request.POST.get("note", ""),
        )
    except ContentError as error:
        return render(
            request,
            "content/template_edit.html",
            _editor_context(
                request, template, content=content, errors=error.errors, base_version=base_version
            ),
            status=400,
        )
    except services.TemplateConflict as error:
        return render(
            request,
            "content/template_edit.html",
            _editor_context(
                request,
                template,
                content=content,
                base_version=base_version,
                conflict=error.messages[0],
            ),
            status=409,
        )
    if base_version is not None and version.number == base_version:
        messages.info(request, f"Nothing changed since version {version.number}.")
    else:
        note = f"Saved version {version.number}."
        if version.warnings:
            note += f" {len(version.warnings)} variable(s) to check."
        messages.success(request, note)
    return redirect("content_template_edit", workspace_slug=workspace.slug, template_id=template.pk)


def _preview_render(request: HttpRequest, template, content: dict) -> dict[str, Any]:
    """Render posted (unsaved) content for the preview pane."""
    from content.rendering import TemplateRenderError, build_context, render_content
    from segments.selectors import profile_get

    workspace = request.workspace
    profile = None
    profile_id = request.POST.get("preview_profile", "").strip()
    if profile_id.isdigit():
        try:
            profile = profile_get(workspace=workspace, profile_id=int(profile_id))
        except Http404:
            profile = None
    event, event_error = _preview_event(request, profile, channel=template.channel, content=content)
    locale_choice = request.POST.get("preview_locale", "")
    if locale_choice == "profile":
        locale = profile.locale if profile is not None else ""
    else:
        locale = locale_choice
    context = build_context(
        workspace=workspace,
        profile=profile if profile is not None else _sample_profile(),
        event=event,
        journey={"id": 0, "name": "Preview journey", "version": 1},
    )
    result: dict[str, Any] = {
        "profile": profile,
        "event": event,
        "event_error": event_error,
        "locale_asked": locale or DEFAULT_LOCALE,
        "locale_used": resolve_locale(content, locale),
        "width": "mobile" if request.POST.get("preview_width") == "mobile" else "desktop",
    }
    try:
        rendered = render_content(
            channel=template.channel, content=content, locale=locale, context=context
        )
    except TemplateRenderError as error:
        result["error"] = error
        return result
    result["rendered"] = rendered
    result["fields"] = _show_unpublished_assets(workspace, content, rendered.fields)
    if template.channel == Channel.WEBHOOK and rendered.fields.get("body"):
        try:
            result["pretty_body"] = orjson.dumps(
                orjson.loads(rendered.fields["body"]), option=orjson.OPT_INDENT_2
            ).decode()
        except orjson.JSONDecodeError:
            result["pretty_body"] = rendered.fields["body"]
    return result


PREVIEW_INLINE_MAX_BYTES = 2 * 1024 * 1024


def _show_unpublished_assets(workspace, content: dict, fields: dict[str, Any]) -> dict[str, Any]:
    """Library images become public when the template is saved; until then the preview
    shows them inline (data: URLs), so what you see is what will be sent."""
    import base64

    from django.core.files.storage import storages

    replacements: dict[str, str] = {}
    for asset in services.referenced_assets(workspace=workspace, content=content):
        if asset.is_public or asset.kind != Asset.Kind.IMAGE:
            continue
        name, mime_type = asset.file.name, asset.mime_type
        if asset.size_bytes > PREVIEW_INLINE_MAX_BYTES and asset.thumbnail:
            name, mime_type = asset.thumbnail.name, "image/webp"
        try:
            with storages["assets"].open(name, "rb") as handle:
                data = base64.b64encode(handle.read()).decode()
        except FileNotFoundError:
            continue
        replacements[asset.public_url] = f"data:{mime_type};base64,{data}"
    if not replacements:
        return fields

    def swap(value: Any) -> Any:
        if isinstance(value, str):
            for url, inline in replacements.items():
                value = value.replace(url, inline)
            return value
        if isinstance(value, dict):
            return {key: swap(item) for key, item in value.items()}
        if isinstance(value, list):
            return [swap(item) for item in value]
        return value

    return swap(fields)


def _sample_profile() -> dict[str, Any]:
    return {
        "id": 0,
        "user_id": "sample-user",
        "email": "sam.sample@example.com",
        "phone": "+15555550123",
        "locale": "en",
        "time_zone": "Europe/Berlin",
        "traits": {"first_name": "Sam", "last_name": "Sample", "plan": "pro"},
    }


EVENTS_SEARCHED_FOR_PREVIEW = 200


def _preview_event(request, profile, *, channel: str, content: dict):
    """The trigger event of a preview: the JSON the editor typed, else the profile's
    latest event carrying the most of the properties the template reads, else a
    sample built from those property names."""
    from content.rendering import template_variables
    from segments.selectors import profile_events_latest

    raw = request.POST.get("preview_event", "").strip()
    if raw:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            return None, f"The trigger event is not JSON: {error}"
        if not isinstance(value, dict):
            return None, "The trigger event must be a JSON object."
        return value, ""
    wanted = {
        item["segments"][2]
        for item in template_variables(channel=channel, content=content)
        if item["segments"][:2] == ["event", "properties"] and len(item["segments"]) > 2
    }
    if profile is not None:
        events = profile_events_latest(
            workspace=request.workspace, profile=profile, limit=EVENTS_SEARCHED_FOR_PREVIEW
        )
        if events:

            def matches(event) -> int:
                properties = event.properties if isinstance(event.properties, dict) else {}
                return len(wanted & set(properties))

            best = max(events, key=lambda event: (matches(event), event.timestamp))
            if matches(best) or not wanted:
                return best, ""
    if wanted:
        recent = _recent_event_with(request.workspace, wanted)
        if recent is not None:
            return recent, ""
    return {
        "name": "sample_event",
        "properties": {name: _sample_value(name) for name in sorted(wanted)},
    }, ""


def _recent_event_with(workspace, wanted: set[str]):
    """The workspace's latest event (of the last 30 days) carrying what the template reads."""
    from datetime import timedelta

    from django.db import OperationalError, connection, transaction
    from django.utils import timezone

    from segments.models import Event

    try:
        with transaction.atomic():
            # A preview must stay quick however many events the workspace holds.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL statement_timeout = 500")
            return (
                Event.objects.filter(
                    workspace=workspace,
                    timestamp__gte=timezone.now() - timedelta(days=30),
                    properties__has_any_keys=sorted(wanted),
                )
                .order_by("-timestamp")
                .first()
            )
    except OperationalError:
        return None


def _sample_value(name: str):
    lowered = name.lower()
    if any(word in lowered for word in ("value", "revenue", "total", "price", "amount")):
        return 42.5
    if any(word in lowered for word in ("count", "quantity", "number")):
        return 2
    if "currency" in lowered:
        return "EUR"
    if lowered.endswith("url"):
        return "https://example.com/"
    return f"sample {name}"


@workspace_view("content.view")
@require_POST
def template_preview(request: HttpRequest, template_id: int) -> HttpResponse:
    template = selectors.template_get(workspace=request.workspace, template_id=template_id)
    content, parse_errors = content_from_post(template.channel, request.POST)
    context: dict[str, Any] = {"template": template, "parse_errors": parse_errors}
    if not parse_errors:
        context.update(_preview_render(request, template, content))
    return render(request, "content/_preview.html", context)


@workspace_view("content.view")
def profile_picker(request: HttpRequest) -> HttpResponse:
    from segments.selectors import profile_search

    query = request.GET.get("q", "")
    profiles = list(profile_search(workspace=request.workspace, query=query)[:8])
    return render(request, "content/_profile_options.html", {"profiles": profiles, "query": query})


@workspace_view("content.view")
def template_versions(request: HttpRequest, template_id: int) -> HttpResponse:
    workspace = request.workspace
    template = selectors.template_get(workspace=workspace, template_id=template_id)
    versions = list(selectors.template_versions(workspace=workspace, template=template)[:200])
    diff = None
    from_version = to_version = None
    numbers = {version.number: version for version in versions}
    try:
        from_number = int(request.GET.get("from", ""))
        to_number = int(request.GET.get("to", ""))
    except ValueError:
        from_number = to_number = None
    if from_number is not None and to_number is not None:
        from_version = numbers.get(from_number) or selectors.template_version_get(
            workspace=workspace, template=template, number=from_number
        )
        to_version = numbers.get(to_number) or selectors.template_version_get(
            workspace=workspace, template=template, number=to_number
        )
        diff = content_diff(from_version.content, to_version.content)
    return render(
        request,
        "content/template_versions.html",
        {
            "area": "content",
            "template": template,
            "versions": versions,
            "diff": diff,
            "from_version": from_version,
            "to_version": to_version,
            "can_edit": member_can(request, "content.edit") and template.archived_at is None,
        },
    )


@workspace_view("content.edit")
@require_POST
def template_restore(request: HttpRequest, template_id: int, number: int) -> HttpResponse:
    workspace = request.workspace
    template = selectors.template_get(workspace=workspace, template_id=template_id)
    version = selectors.template_version_get(workspace=workspace, template=template, number=number)
    try:
        restored = services.template_restore(
            template=template, version=version, context=AuditContext.from_request(request)
        )
    except (ValidationError, ContentError) as error:
        messages.error(request, f"Version {number} cannot be restored: {error}")
        return redirect(
            "content_template_versions", workspace_slug=workspace.slug, template_id=template.pk
        )
    messages.success(request, f"Restored version {number} as version {restored.number}.")
    return redirect("content_template_edit", workspace_slug=workspace.slug, template_id=template.pk)


@workspace_view("content.edit")
@require_POST
def template_settings(request: HttpRequest, template_id: int) -> HttpResponse:
    workspace = request.workspace
    template = selectors.template_get(workspace=workspace, template_id=template_id)
    try:
        services.template_update(
            template=template,
            context=AuditContext.from_request(request),
            name=request.POST.get("name", template.name),
            description=request.POST.get("description", template.description),
            tags=[tag for tag in request.POST.get("tags", "").split(",")],
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, "Template details saved.")
    return redirect("content_template_edit", workspace_slug=workspace.slug, template_id=template.pk)


@workspace_view("content.edit")
@require_POST
def template_duplicate(request: HttpRequest, template_id: int) -> HttpResponse:
    template = selectors.template_get(workspace=request.workspace, template_id=template_id)
    copy = services.template_duplicate(
        template=template, context=AuditContext.from_request(request)
    )
    messages.success(request, f"Copied to {copy.name}.")
    return redirect(
        "content_template_edit", workspace_slug=request.workspace.slug, template_id=copy.pk
    )


@workspace_view("content.edit")
@require_POST
def template_archive(request: HttpRequest, template_id: int) -> HttpResponse:
    template = selectors.template_get(workspace=request.workspace, template_id=template_id)
    archive = request.POST.get("archived", "1") == "1"
    services.template_archive(
        template=template, context=AuditContext.from_request(request), archived=archive
    )
    messages.success(request, f"{template.name} {'archived' if archive else 'is back'}.")
    return redirect(
        "content_template_edit", workspace_slug=request.workspace.slug, template_id=template.pk
    )


@workspace_view("content.edit")
@require_POST
def template_delete(request: HttpRequest, template_id: int) -> HttpResponse:
    template = selectors.template_get(workspace=request.workspace, template_id=template_id)
    try:
        services.template_delete(template=template, context=AuditContext.from_request(request))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect(
            "content_template_edit", workspace_slug=request.workspace.slug, template_id=template.pk
        )
    messages.success(request, f"Deleted {template.name}.")
    return redirect("content_templates", workspace_slug=request.workspace.slug)


@workspace_view("content.view")
@require_POST
def template_test_send(request: HttpRequest, template_id: int) -> HttpResponse:
    """Send the saved current version (what a journey would pin) to one address."""
    from content.rendering import TemplateRenderError, build_context
    from segments.selectors import profile_get

    workspace = request.workspace
    template = selectors.template_get(workspace=workspace, template_id=template_id)
    profile = None
    if request.POST.get("preview_profile", "").isdigit():
        try:
            profile = profile_get(
                workspace=workspace, profile_id=int(request.POST["preview_profile"])
            )
        except Http404:
            profile = None
    event, _ = _preview_event(
        request, profile, channel=template.channel, content=template.current_version.content
    )
    locale = request.POST.get("preview_locale", "")
    if locale == "profile":
        locale = profile.locale if profile is not None else ""
    render_context = build_context(
        workspace=workspace,
        profile=profile if profile is not None else _sample_profile(),
        event=event,
        journey={"id": 0, "name": "Test send", "version": 1},
    )
    status, text = 200, ""
    try:
        text = services.template_send_test(
            template=template,
            version=template.current_version,
            locale=locale,
            render_context=render_context,
            to=request.POST.get("to", ""),
            context=AuditContext.from_request(request),
        )
    except services.TestSendUnavailable as error:
        status, text = 409, error.messages[0]
    except ValidationError as error:
        status, text = 400, " ".join(error.messages)
    except TemplateRenderError as error:
        status, text = 422, f"The saved version does not render: {error}"
    except services.TestSendFailed as error:
        status, text = 502, str(error)
    except OSError as error:  # SMTP down or refusing
        status, text = 502, f"The mail server did not take the message: {error}"
    return render(
        request,
        "content/_test_send_result.html",
        {"ok": status == 200, "text": text},
        status=status,
    )


# --------------------------------------------------------------------------- media library


@workspace_view("content.view")
def asset_library(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace
    query = request.GET.get("q", "").strip()
    tag = request.GET.get("tag", "").strip().lower()
    kind = request.GET.get("kind", "")
    if kind not in Asset.Kind.values:
        kind = ""
    folder = None
    folder_param = request.GET.get("folder", "")
    if folder_param.isdigit():
        folder = selectors.asset_folder_get(workspace=workspace, folder_id=int(folder_param))
    assets = selectors.workspace_assets(
        workspace=workspace,
        query=query,
        tag=tag,
        kind=kind,
        folder=folder,
        unfiled=folder_param == "none",
    )
    page = Paginator(assets, ASSETS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "area": "content",
        "tab": "media",
        "page": page,
        "query": query,
        "tag": tag,
        "kind": kind,
        "folder": folder,
        "folder_param": folder_param,
        "folders": list(selectors.asset_folders(workspace=workspace)),
        "tags": selectors.asset_tags(workspace=workspace),
        "used_bytes": selectors.asset_storage_used(workspace=workspace),
        "can_edit": member_can(request, "content.edit"),
        "picker": request.GET.get("picker") == "1",
    }
    from django.conf import settings

    context["quota_bytes"] = settings.ASSET_WORKSPACE_QUOTA_BYTES
    context["quota_percent"] = min(
        100, round(100 * context["used_bytes"] / context["quota_bytes"], 1)
    )
    if context["picker"]:
        return render(request, "content/_asset_picker.html", context)
    if request.htmx and request.htmx.target == "asset-grid":
        return render(request, "content/_asset_grid.html", context)
    return render(request, "content/asset_library.html", context)


@workspace_view("content.edit")
@require_POST
def asset_upload(request: HttpRequest) -> HttpResponse:
    """One file per request (the page sends each dropped file on its own, with its own
    progress bar). Answers JSON: the asset's card, or the reason it was refused."""
    from content.assets import asset_upload as upload_service
    from content.media import UploadRejected

    workspace = request.workspace
    uploaded = request.FILES.get("file")
    if uploaded is None:
        return JsonResponse({"error": "No file arrived. Choose or drop a file."}, status=400)
    folder = None
    if request.POST.get("folder", "").isdigit():
        folder = selectors.asset_folder_get(
            workspace=workspace, folder_id=int(request.POST["folder"])
        )
    try:
        asset = upload_service(
            workspace=workspace,
            uploaded_file=uploaded,
            context=AuditContext.from_request(request),
            folder=folder,
            tags=[tag for tag in request.POST.get("tags", "").split(",") if tag.strip()],
            user=request.user,
        )
    except UploadRejected as error:
        return JsonResponse({"error": str(error)}, status=400)
    card = render(
        request, "content/_asset_card.html", {"asset": asset, "can_edit": True}
    ).content.decode()
    return JsonResponse({"id": asset.pk, "name": asset.name, "card": card}, status=201)


@workspace_view("content.view")
def asset_card(request: HttpRequest, asset_id: int) -> HttpResponse:
    """One card of the grid (polled while the asset is processing)."""
    asset = selectors.asset_get(workspace=request.workspace, asset_id=asset_id)
    return render(
        request,
        "content/_asset_card.html",
        {"asset": asset, "can_edit": member_can(request, "content.edit")},
    )


@workspace_view({"GET": "content.view", "POST": "content.edit"})
def asset_detail(request: HttpRequest, asset_id: int) -> HttpResponse:
    from content.assets import asset_update

    workspace = request.workspace
    asset = selectors.asset_get(workspace=workspace, asset_id=asset_id)
    if request.method == "POST":
        folder_param = request.POST.get("folder", "")
        folder = (
            selectors.asset_folder_get(workspace=workspace, folder_id=int(folder_param))
            if folder_param.isdigit()
            else None
        )
        try:
            asset_update(
                asset=asset,
                context=AuditContext.from_request(request),
                name=request.POST.get("name", asset.name),
                tags=[tag for tag in request.POST.get("tags", "").split(",")],
                folder=folder,
                alt_text=request.POST.get("alt_text", asset.alt_text),
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, "Saved.")
        return redirect("content_asset_detail", workspace_slug=workspace.slug, asset_id=asset.pk)
    return render(
        request,
        "content/asset_detail.html",
        {
            "area": "content",
            "asset": asset,
            "usages": selectors.asset_usages(workspace=workspace, asset=asset),
            "folders": list(selectors.asset_folders(workspace=workspace)),
            "can_edit": member_can(request, "content.edit"),
        },
    )


@workspace_view("content.edit")
@require_POST
def asset_delete(request: HttpRequest, asset_id: int) -> HttpResponse:
    from content.assets import AssetInUse
    from content.assets import asset_delete as delete_service

    workspace = request.workspace
    asset = selectors.asset_get(workspace=workspace, asset_id=asset_id)
    try:
        delete_service(
            asset=asset,
            context=AuditContext.from_request(request),
            force=request.POST.get("force") == "1",
        )
    except AssetInUse as error:
        messages.error(request, str(error))
        return redirect("content_asset_detail", workspace_slug=workspace.slug, asset_id=asset.pk)
    messages.success(request, f"Deleted {asset.name}.")
    return redirect("content_assets", workspace_slug=workspace.slug)


@workspace_view("content.edit")
@require_POST
def asset_folder_create(request: HttpRequest) -> HttpResponse:
    from content.assets import asset_folder_create as create_folder

    workspace = request.workspace
    try:
        folder = create_folder(
            workspace=workspace,
            name=request.POST.get("name", ""),
            context=AuditContext.from_request(request),
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("content_assets", workspace_slug=workspace.slug)
    return redirect(
        reverse("content_assets", kwargs={"workspace_slug": workspace.slug})
        + f"?folder={folder.pk}"
    )
