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
    context = {
        "workspace_name": message.workspace.name,
        "noun": CHANNEL_NOUNS.get(message.channel, "messages"),
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
    """The open pixel: records the first open by a person (not a HEAD or a scanner)."""
    from delivery import services, tracking

    parts = tracking.token_parts(token)
    if parts is not None and not tracking.is_machine(request):
        services.message_engagement_record(message_id=parts[0], engagement="opened")
    response = HttpResponse(PIXEL, content_type="image/gif")
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
    if not tracking.is_machine(request):
        services.message_engagement_record(message_id=message.pk, engagement="clicked")
    response = HttpResponseRedirect(links[parts[1]])
    response["Cache-Control"] = "no-store"
    return response
