"""The delivery console: the message log and a message's history, the dead letters
(retry, discard), and the Channels and Delivery settings tabs. Reads go through
delivery.console_selectors, writes through delivery.operations (or
delivery.services.channel_settings_save); every POST needs delivery.edit."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from delivery import console_selectors as selectors
from delivery import operations
from delivery.console_forms import (
    ChannelSettingsForm,
    DeliverySettingsForm,
    FrequencyCapForm,
    MessageFilterForm,
    SuppressionAddForm,
    selected_message_ids,
)
from engagement_site.workspaces.access import member_can, workspace_view
from engagement_site.workspaces.services import AuditContext

PAGE_SIZE = 50
EDIT = "delivery.edit"


def _read_only_unless_editor(request: HttpRequest, form) -> None:
    if not member_can(request, EDIT):
        for field in form.fields.values():
            field.disabled = True


# --------------------------------------------------------------------------- message log


@workspace_view("delivery.view")
def message_list(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace
    form = MessageFilterForm(
        request.GET or None,
        journeys=selectors.message_journeys(workspace=workspace),
        reasons=selectors.message_reasons(workspace=workspace),
    )
    filters = selectors.MessageFilters()
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        filters = selectors.MessageFilters(
            channel=data["channel"],
            status=data["status"],
            journey_id=data["journey"],
            reason=data["reason"],
            date_from=data["date_from"],
            date_to=data["date_to"],
            search=data["q"],
        )
    rows = selectors.message_log(workspace=workspace, filters=filters)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "delivery/console/message_list.html",
        {
            "area": "messages",
            "tab": "log",
            "form": form,
            "page": page,
            "query": query.urlencode(),
            "filtered": any(value for key, value in request.GET.items() if key != "page"),
        },
    )


@workspace_view("delivery.view")
def message_detail(request: HttpRequest, message_id: int) -> HttpResponse:
    workspace = request.workspace
    message = selectors.message_get(workspace=workspace, message_id=message_id)
    rendered = message.rendered or {}
    return render(
        request,
        "delivery/console/message_detail.html",
        {
            "area": "messages",
            "tab": "log",
            "message": message,
            "events": selectors.message_timeline(workspace=workspace, message=message),
            "html": rendered.get("html", ""),
            "rendered_fields": _rendered_fields(rendered),
            "links": rendered.get("links", []),
            "is_dead_letter": selectors.dead_letters(workspace=workspace)
            .filter(pk=message.pk)
            .exists(),
        },
    )


def _rendered_fields(rendered: dict) -> list[tuple[str, str, bool]]:
    """(name, text, whether it is structured) of each rendered field but the HTML
    (shown in a sandboxed frame) and the tracked links (listed apart)."""
    import json

    fields = []
    for name, value in rendered.items():
        if name in ("html", "links"):
            continue
        structured = isinstance(value, dict | list)
        text = json.dumps(value, indent=2, ensure_ascii=False) if structured else str(value)
        fields.append((name, text, structured or "\n" in text))
    return fields


# --------------------------------------------------------------------------- dead letters


@workspace_view("delivery.view")
def dead_letters(request: HttpRequest) -> HttpResponse:
    rows = selectors.dead_letters(workspace=request.workspace)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "delivery/console/dead_letters.html",
        {
            "area": "messages",
            "tab": "dead_letters",
            "page": page,
            "can_edit": member_can(request, EDIT),
        },
    )


def _dead_letter_action(request: HttpRequest, operation, done: str) -> HttpResponse:
    try:
        ids = operation(
            workspace=request.workspace,
            message_ids=selected_message_ids(request.POST),
            context=AuditContext.from_request(request),
        )
    except (ValidationError, operations.OperationRefused) as error:
        text = " ".join(error.messages) if isinstance(error, ValidationError) else str(error)
        messages.error(request, text)
    else:
        noun = "message" if len(ids) == 1 else "messages"
        messages.success(request, f"{len(ids)} {noun} {done}.")
    return redirect("delivery_dead_letters", workspace_slug=request.workspace.slug)


@workspace_view(EDIT)
@require_POST
def dead_letters_retry(request: HttpRequest) -> HttpResponse:
    return _dead_letter_action(request, operations.messages_retry, "queued again")


@workspace_view(EDIT)
@require_POST
def dead_letters_discard(request: HttpRequest) -> HttpResponse:
    return _dead_letter_action(request, operations.messages_discard, "discarded")


# --------------------------------------------------------------------------- channels tab


@workspace_view("delivery.view")
def channel_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "delivery/console/channel_list.html",
        {
            "area": "settings",
            "tab": "channels",
            "channel_rows": selectors.channel_overview(workspace=request.workspace),
        },
    )


@workspace_view({"GET": "delivery.view", "POST": EDIT})
def channel_edit(request: HttpRequest, channel: str) -> HttpResponse:
    from pydantic import ValidationError as PydanticError

    from delivery.channels import UnknownChannel, channel_class
    from delivery.selectors import channel_settings
    from delivery.services import channel_settings_save
    from delivery.tokens import hook_url

    workspace = request.workspace
    try:
        cls = channel_class(channel)
    except UnknownChannel:
        raise Http404(f"No delivery channel {channel!r} is installed.") from None
    row = channel_settings(workspace=workspace, channel=channel)
    form = ChannelSettingsForm(request.POST or None, channel_class=cls, row=row)
    _read_only_unless_editor(request, form)
    if request.method == "POST" and form.is_valid():
        try:
            channel_settings_save(
                workspace=workspace,
                channel=channel,
                config=form.config(),
                enabled=form.cleaned_data["enabled"],
                rate_per_second=form.cleaned_data["rate_per_second"],
                cost_per_message=form.cleaned_data["cost_per_message"],
                context=AuditContext.from_request(request),
            )
        except PydanticError as error:
            form.add_pydantic_errors(error)
        else:
            messages.success(request, f"{cls.name or channel} settings saved.")
            return redirect("settings_channel", workspace_slug=workspace.slug, channel=channel)
    return render(
        request,
        "delivery/console/channel_edit.html",
        {
            "area": "settings",
            "tab": "channels",
            "requires_settings": cls.requires_settings,
            "channel": channel,
            "channel_name": cls.name or channel,
            "row": row,
            "form": form,
            "callback_url": hook_url(channel=channel, token=row.hook_token) if row else "",
            "takes_callbacks": _takes_callbacks(cls),
            "can_edit": member_can(request, EDIT),
        },
    )


def _takes_callbacks(cls) -> bool:
    from delivery.channels.base import Channel

    return cls.handle_callback is not Channel.handle_callback


# --------------------------------------------------------------------------- delivery tab


def _delivery_page(
    request: HttpRequest, *, settings_form=None, cap_form=None, suppression_form=None
):
    from delivery.selectors import delivery_settings

    workspace = request.workspace
    invalid = any(form is not None for form in (settings_form, cap_form, suppression_form))
    settings_form = settings_form or DeliverySettingsForm.for_settings(
        delivery_settings(workspace=workspace)
    )
    _read_only_unless_editor(request, settings_form)
    search = request.GET.get("q", "")
    suppressions = Paginator(
        selectors.suppressions(workspace=workspace, search=search), PAGE_SIZE
    ).get_page(request.GET.get("page"))
    return render(
        request,
        "delivery/console/delivery_settings.html",
        {
            "area": "settings",
            "tab": "delivery",
            "form": settings_form,
            "cap_form": cap_form or FrequencyCapForm(),
            "suppression_form": suppression_form or SuppressionAddForm(),
            "caps": selectors.frequency_caps(workspace=workspace),
            "suppressions": suppressions,
            "search": search,
            "can_edit": member_can(request, EDIT),
        },
        status=400 if invalid else 200,
    )


def _back_to_delivery(request: HttpRequest, anchor: str = "") -> HttpResponse:
    response = redirect("settings_delivery", workspace_slug=request.workspace.slug)
    response["Location"] += anchor
    return response


@workspace_view({"GET": "delivery.view", "POST": EDIT})
def delivery_settings(request: HttpRequest) -> HttpResponse:
    from delivery.selectors import delivery_settings as current

    if request.method != "POST":
        return _delivery_page(request)
    form = DeliverySettingsForm.for_settings(current(workspace=request.workspace), request.POST)
    if form.is_valid():
        try:
            operations.delivery_settings_save(
                workspace=request.workspace,
                context=AuditContext.from_request(request),
                **form.cleaned_data,
            )
        except operations.OperationRefused as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, "Delivery settings saved.")
            return _back_to_delivery(request)
    return _delivery_page(request, settings_form=form)


@workspace_view(EDIT)
@require_POST
def frequency_cap_add(request: HttpRequest) -> HttpResponse:
    form = FrequencyCapForm(request.POST)
    if form.is_valid():
        try:
            operations.frequency_cap_add(
                workspace=request.workspace,
                channel=form.cleaned_data["channel"],
                limit=form.cleaned_data["limit"],
                window_seconds=form.window_seconds,
                context=AuditContext.from_request(request),
            )
        except operations.OperationRefused as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, "Frequency cap added.")
            return _back_to_delivery(request, "#caps")
    return _delivery_page(request, cap_form=form)


@workspace_view(EDIT)
@require_POST
def frequency_cap_remove(request: HttpRequest, cap_id: int) -> HttpResponse:
    cap = selectors.frequency_cap_get(workspace=request.workspace, cap_id=cap_id)
    operations.frequency_cap_remove(cap=cap, context=AuditContext.from_request(request))
    messages.success(request, "Frequency cap removed.")
    return _back_to_delivery(request, "#caps")


@workspace_view(EDIT)
@require_POST
def suppression_add(request: HttpRequest) -> HttpResponse:
    form = SuppressionAddForm(request.POST)
    if form.is_valid():
        try:
            row = operations.suppression_add_by_hand(
                workspace=request.workspace,
                channel=form.cleaned_data["channel"],
                address=form.cleaned_data["address"],
                note=form.cleaned_data["note"],
                context=AuditContext.from_request(request),
            )
        except operations.OperationRefused as error:
            form.add_error("address", str(error))
        else:
            messages.success(request, f"{row.address} suppressed on {row.channel}.")
            return _back_to_delivery(request, "#suppressions")
    return _delivery_page(request, suppression_form=form)


@workspace_view(EDIT)
@require_POST
def suppression_remove(request: HttpRequest, suppression_id: int) -> HttpResponse:
    row = selectors.suppression_get(workspace=request.workspace, suppression_id=suppression_id)
    operations.suppression_remove(suppression=row, context=AuditContext.from_request(request))
    messages.success(request, f"{row.address} can be reached on {row.channel} again.")
    return _back_to_delivery(request, "#suppressions")


@workspace_view(EDIT)
@require_POST
def secret_reveal(request: HttpRequest, kind: str) -> HttpResponse:
    """A workspace secret (webhook signing, in-app user hash), fetched when an owner or
    admin clicks Reveal: it is not in any page's HTML before that, and each reveal is
    audited."""
    try:
        secret = operations.secret_reveal(
            workspace=request.workspace, kind=kind, context=AuditContext.from_request(request)
        )
    except operations.OperationRefused as refusal:
        raise Http404(str(refusal)) from None
    response = render(request, "delivery/console/_secret.html", {"secret": secret, "kind": kind})
    response["Cache-Control"] = "no-store"
    return response
