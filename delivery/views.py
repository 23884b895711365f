"""Pages for the people messages go to (no login): unsubscribe.

`/u/<token>/` is the link in every message and in its List-Unsubscribe header. A GET
shows what it does and a button; a POST unsubscribes at once and answers 200 (RFC
8058: mail clients POST `List-Unsubscribe=One-Click` without cookies or a CSRF
token, and do not follow redirects). Both are idempotent."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from delivery.models import Consent, Message
from delivery.services import consent_set
from delivery.tokens import unsubscribe_message_id
from engagement_site.workspaces.access import workspace_view

CHANNEL_NOUNS = {"email": "emails", "sms": "text messages", "whatsapp": "WhatsApp messages"}


@csrf_exempt  # the token is the credential; one-click clients send no cookies
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    message_id = unsubscribe_message_id(token)
    message = (
        Message.objects.select_related("profile", "workspace").filter(pk=message_id).first()
        if message_id is not None
        else None
    )
    if message is None:
        raise Http404("This unsubscribe link is not valid.")
    from delivery.tokens import preferences_url

    context = {
        "workspace_name": message.workspace.name,
        "noun": CHANNEL_NOUNS.get(message.channel, "messages"),
        "preferences_url": preferences_url(message.profile_id),
    }
    if request.method == "POST":
        consent_set(
            profile=message.profile,
            channel=message.channel,
            status=Consent.Status.UNSUBSCRIBED,
            source="one_click" if "List-Unsubscribe" in request.POST else "unsubscribe_page",
            message=message,
        )
        return render(request, "delivery/unsubscribed.html", context)
    return render(request, "delivery/unsubscribe.html", context)


# --------------------------------------------------------------------------- dev outbox


def _outbox_enabled() -> None:
    from django.conf import settings

    if not settings.DEV_OUTBOX_ENABLED:
        raise Http404("The development outbox exists only outside production.")


@workspace_view("delivery.view")
def outbox(request: HttpRequest) -> HttpResponse:
    """What the development mail server took for this workspace, newest first."""
    from delivery import devmail, selectors

    _outbox_enabled()
    workspace = request.workspace
    messages = devmail.outbox_messages(
        keys_of=lambda keys: selectors.message_keys_in_workspace(workspace=workspace, keys=keys)
    )
    selected = request.GET.get("message", "")
    current = next((m for m in messages if m.id == selected), messages[0] if messages else None)
    return render(
        request,
        "delivery/outbox.html",
        {"area": "outbox", "outbox_messages": messages, "current": current},
    )


# --------------------------------------------------------------------------- tracking

# The smallest transparent GIF.
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)


@require_http_methods(["GET", "HEAD"])
def track_open(request: HttpRequest, token: str) -> HttpResponse:
    """The open pixel: records the first open by a person (not a HEAD or a scanner). A
    token that is not ours is a 404 (still a blank image, so no mail client shows a
    broken one) and records nothing."""
    from delivery import services, tracking

    parts = tracking.token_parts(token)
    if parts is not None:
        services.message_engagement_record(
            message_id=parts[0], engagement="opened", machine=tracking.machine_reason(request)
        )
    response = HttpResponse(PIXEL, content_type="image/gif", status=200 if parts else 404)
    response["Cache-Control"] = "no-store, max-age=0"
    return response


@require_http_methods(["GET", "HEAD"])
def track_click(request: HttpRequest, token: str) -> HttpResponse:
    """A tracked link: records the click (people only) and sends the reader on to the
    URL stored with the message, never one taken from the request."""
    from django.http import HttpResponseRedirect

    from delivery import services, tracking

    parts = tracking.token_parts(token)
    message = Message.objects.filter(pk=parts[0]).first() if parts is not None else None
    links = (message.rendered or {}).get("links", []) if message is not None else []
    if parts is None or not 0 <= parts[1] < len(links):
        raise Http404("This link is not valid.")
    services.message_engagement_record(
        message_id=message.pk, engagement="clicked", machine=tracking.machine_reason(request)
    )
    response = HttpResponseRedirect(links[parts[1]])
    response["Cache-Control"] = "no-store"
    return response


# --------------------------------------------------------------------------- provider hooks


@csrf_exempt  # providers sign their requests; the token in the URL names the settings
@require_http_methods(["GET", "POST"])
def provider_hook(request: HttpRequest, channel: str, token: str) -> HttpResponse:
    """`/hooks/<channel>/<token>/`: a provider's delivery receipts and inbound messages
    for one workspace's channel settings. The channel checks the signature and reads the
    request; receipts update messages, inbound texts run the keyword rules."""
    from django.conf import settings

    from delivery import selectors, services
    from delivery.channels import ChannelUnavailable
    from delivery.channels.base import Callback, CallbackRefused

    row = selectors.channel_settings_for_hook(channel=channel, hook_token=token)
    if row is None:
        raise Http404("No such hook.")
    try:
        instance = selectors.channel_instance(workspace_id=row.workspace_id, channel=channel)
    except ChannelUnavailable as error:
        return HttpResponse(str(error), status=409, content_type="text/plain")
    callback = Callback(
        method=request.method,
        # As the provider was told it (PUBLIC_URL): a proxy in front changes the host.
        url=f"{settings.PUBLIC_URL.rstrip('/')}{request.get_full_path()}",
        headers=request.headers,
        body=request.body,
        form=request.POST.dict() if request.method == "POST" else {},
        query=request.GET.dict(),
    )
    try:
        result = instance.handle_callback(callback)
    except CallbackRefused as refusal:
        return HttpResponse(str(refusal), status=refusal.status, content_type="text/plain")
    for receipt in result.receipts:
        services.message_receipt_record(workspace=row.workspace, channel=channel, receipt=receipt)
    response = result.response
    for inbound in result.inbound:
        reply = services.inbound_message_record(
            workspace=row.workspace,
            channel=channel,
            inbound=inbound,
            help_text=getattr(instance.config, "help_reply", ""),
        )
        if reply:
            response = instance.inbound_reply(reply) or response
    if response is None:
        return HttpResponse(status=200)
    status, content_type, body = response
    return HttpResponse(body, status=status, content_type=content_type)


# --------------------------------------------------------------------------- preference centre


@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest, token: str) -> HttpResponse:
    """`/p/<token>/`: a person's own page (the signed link in every message) to choose
    the channels and topics they want, or to leave everything at once."""
    from delivery import selectors, services
    from delivery.tokens import preferences_profile_id
    from segments.models import Profile

    profile_id = preferences_profile_id(token)
    profile = (
        Profile.objects.select_related("workspace").filter(pk=profile_id).first()
        if profile_id is not None
        else None
    )
    if profile is None:
        raise Http404("This preferences link is not valid.")
    saved = False
    if request.method == "POST":
        current = selectors.profile_preferences(workspace=profile.workspace, profile=profile)
        everything_off = "unsubscribe_all" in request.POST
        services.preferences_save(
            profile=profile,
            channels={
                item["id"]: not everything_off and f"channel:{item['id']}" in request.POST
                for item in current["channels"]
            },
            topics={
                item["key"]: not everything_off and f"topic:{item['key']}" in request.POST
                for item in current["topics"]
            },
        )
        saved = True
    return render(
        request,
        "delivery/preferences.html",
        {
            "workspace_name": profile.workspace.name,
            "preferences": selectors.profile_preferences(
                workspace=profile.workspace, profile=profile
            ),
            "saved": saved,
        },
    )


# --------------------------------------------------------------------------- double opt-in


@require_http_methods(["GET", "POST"])
def opt_in_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """`/c/<token>/`: the link in a confirmation email. A GET only shows a button, so
    mail scanners that fetch every link confirm nobody; the person's POST subscribes
    them. A link older than a week, or one for someone who unsubscribed since, says so
    and changes nothing."""
    from delivery import services
    from delivery.tokens import confirm_parts, preferences_url

    message_id, digest, expired = confirm_parts(token)
    message = (
        Message.objects.select_related("profile", "workspace")
        .filter(pk=message_id, purpose="opt_in_confirmation")
        .first()
        if message_id is not None
        else None
    )
    if message is None:
        raise Http404("This confirmation link is not valid.")
    context = {
        "workspace_name": message.workspace.name,
        "noun": CHANNEL_NOUNS.get(message.channel, "messages"),
        "preferences_url": preferences_url(message.profile_id),
        "problem": "",
        "confirmed": False,
    }
    status = 200
    if expired:
        context["problem"] = "This link has expired. Sign up again to get a new one."
        status = 410
    elif request.method == "POST":
        try:
            services.opt_in_confirm(message=message, address_digest=digest)
            context["confirmed"] = True
        except services.ConfirmationRefused as refusal:
            context["problem"] = str(refusal)
            status = 409
    return render(request, "delivery/opt_in_confirm.html", context, status=status)
