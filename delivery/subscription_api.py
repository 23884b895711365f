"""Subscriptions from the customer's own forms and apps: `POST /api/v1/subscriptions`
asks for messages on a channel (or a topic), `DELETE` takes the yes back. Same write
key, CORS and answers as the device API (delivery.public_api).

    POST   {"userId" | "anonymousId", "email": "ada@example.com", "channel": "email",
            "topic": "news"}        -> 200 {"success": true, "status": "pending" | "subscribed"}
    DELETE {"userId" | "anonymousId", "channel": "email", "topic": "news"}
                                    -> 200 {"success": true, "status": "unsubscribed"}

With double opt-in on for email, a POST leaves the answer pending and sends the
confirmation email; the person is subscribed when they click it. Everything else is
subscribed at once.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from delivery.public_api import (
    Refused,
    json_body,
    refused,
    respond,
    string_field,
    write_key_workspace,
)

METHODS = "POST, DELETE"
CODE = "invalid_subscription"


def _profile(workspace, document: dict, *, create: bool):
    from delivery.devices import profile_resolve
    from segments.models import Profile

    user_id = string_field(document, "userId", code=CODE)
    anonymous_id = string_field(document, "anonymousId", code=CODE)
    if not user_id and not anonymous_id:
        raise Refused(400, CODE, "`userId` or `anonymousId` is required.")
    email = string_field(document, "email", code=CODE)
    if email is not None:
        try:
            validate_email(email)
        except ValidationError:
            raise Refused(400, CODE, f"`email` {email!r} is not an email address.") from None
    if not create:
        found = Profile.objects.filter(workspace=workspace)
        found = (
            found.filter(user_id=user_id)
            if user_id
            else found.filter(anonymous_ids__contains=[anonymous_id])
        )
        return found.first()
    return profile_resolve(
        workspace=workspace,
        user_id=user_id,
        anonymous_id=anonymous_id,
        traits={"email": email} if email else None,
    )


def _channel_and_topic(workspace, document: dict) -> tuple[str, str]:
    from delivery.channels import channels
    from delivery.models import Topic

    channel = string_field(document, "channel", code=CODE) or "email"
    if channel not in channels():
        raise Refused(400, CODE, f"`channel` {channel!r} is not a delivery channel here.")
    topic = string_field(document, "topic", code=CODE) or ""
    if topic and not Topic.objects.filter(workspace=workspace, key=topic).exists():
        raise Refused(400, CODE, f"`topic` {topic!r} is not one of the workspace's topics.")
    return channel, topic


@csrf_exempt
def subscriptions(request: HttpRequest) -> HttpResponse:
    from delivery import services
    from delivery.policies import unreachable_reason

    if request.method == "OPTIONS":
        return respond(204, methods=METHODS)
    try:
        if request.method not in ("POST", "DELETE"):
            raise Refused(405, "method_not_allowed", "Use POST to subscribe, DELETE to leave.")
        document = json_body(request)
        workspace = write_key_workspace(request, document)
        # Checked before the profile is resolved, so a bad request creates nobody.
        channel, topic = _channel_and_topic(workspace, document)
        if request.method == "DELETE":
            profile = _profile(workspace, document, create=False)
            if profile is not None:
                services.consent_set(
                    profile=profile,
                    channel=channel,
                    topic=topic,
                    status="unsubscribed",
                    source="api",
                )
            return respond(200, {"success": True, "status": "unsubscribed"}, methods=METHODS)
        given_email = string_field(document, "email", code=CODE)
        probe = _profile(workspace, document, create=False)
        no_address = probe is None or unreachable_reason(profile=probe, channel="email")
        if channel == "email" and not given_email and no_address:
            raise Refused(400, CODE, "`email` is required: this person has no email address yet.")
        before = (probe.email or "").strip().lower() if probe is not None else ""
        profile = _profile(workspace, document, create=True)
        try:
            status = services.consent_request(
                profile=profile,
                channel=channel,
                topic=topic,
                source="api",
                address_changed=bool(before) and (profile.email or "").strip().lower() != before,
            )
        except services.ConsentRefused as refusal:
            raise Refused(409, "opted_out", str(refusal)) from None
    except Refused as refusal:
        return refused(refusal, methods=METHODS)
    return respond(200, {"success": True, "status": status}, methods=METHODS)
