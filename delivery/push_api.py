"""The app reports what a person did with a push notification:

    POST /api/v1/push/opened   {"messageId": "<the payload's message_id>"}
    POST /api/v1/push/clicked  {"messageId": "..."}     (a button or the deep link)

Authenticated by the workspace's write key (delivery.public_api), from mobile apps
(FCM's `data.message_id`) and from web push service workers (the payload's
`message_id`, in `notificationclick`). The id is a signed token, never the database
id, so a key holder cannot walk through other people's messages; a token of another
workspace, or of a message that is not a push, answers 404. A repeat answers the same
and changes nothing; a tap right after delivery counts (no link-scanner guard here).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from delivery.public_api import Refused, json_body, refused, respond, write_key_workspace

METHODS = "POST"
PUSH_CHANNELS = ("push", "web_push")
ACTIONS = ("opened", "clicked")


@csrf_exempt
def push_engagement(request: HttpRequest, action: str) -> HttpResponse:
    from delivery import inbox
    from delivery.models import Message
    from delivery.services import StatusChangeRefused, message_status_record

    if request.method == "OPTIONS":
        return respond(204, methods=METHODS)
    try:
        if request.method != "POST":
            raise Refused(405, "method_not_allowed", "Use POST.")
        if action not in ACTIONS:
            raise Refused(404, "not_found", "Report `opened` or `clicked`.")
        document = json_body(request)
        workspace = write_key_workspace(request, document)
        token = document.get("messageId")
        if not isinstance(token, str) or not token.strip():
            raise Refused(
                400, "invalid_message_id", "`messageId` (the payload's message_id) is required."
            )
        message_id = inbox.message_id_of(token.strip())
        status = (
            Message.objects.filter(pk=message_id, workspace=workspace, channel__in=PUSH_CHANNELS)
            .values_list("status", flat=True)
            .first()
            if message_id is not None
            else None
        )
        if status is None:
            raise Refused(404, "not_found", "This workspace sent no push with that id.")
        if status not in ("sent", "delivered", "opened", "clicked"):
            raise Refused(
                409, "not_sent", f"That push was not sent ({status}): it cannot be {action}."
            )
        try:
            message_status_record(message_id=message_id, status=action)
        except StatusChangeRefused:
            raise Refused(
                409, "not_sent", f"That push was not sent ({status}): it cannot be {action}."
            ) from None
    except Refused as refusal:
        return refused(refusal, methods=METHODS)
    return respond(200, {"success": True}, methods=METHODS)
