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
