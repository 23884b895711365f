"""Mobile push from a journey through a local FCM HTTP v1 stand-in: the OAuth2 token
google-auth gets for the service account, the exact message body, one request per
device, UNREGISTERED disabling a device, 429/503 retried, a job run twice sending once,
and a profile without devices contacting nobody."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from content import services as content_services
from delivery import inbox
from delivery.models import ChannelSettings, Device, Message
from delivery.services import (
    REQUEUE_GRACE,
    RETRY_DELAYS,
    channel_settings_save,
    messages_enqueue,
)
from engagement_site.workspaces.services import AuditContext
from journeys import services
from segments.models import Profile
from tests.delivery import fake_fcm
from tests.delivery.conftest import _one_step_journey
from tests.delivery.test_email import _sweep_at, _work
from tests.journeys.test_executor import EDITOR

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture
def push_installed(add_channel):
    add_channel("delivery.channels.push.PushChannel")


@pytest.fixture
def fcm():
    with fake_fcm.FakeFcm() as server:
        yield server


def settings_row(*, workspace, channel: str, config: dict) -> ChannelSettings:
    """The channel's settings saved as the console saves them (validated, secrets
    encrypted, audited)."""
    return channel_settings_save(
        workspace=workspace, channel=channel, config=config, context=AuditContext.system("test")
    )


@pytest.fixture
def configured(workspace, fcm, push_installed):
    return settings_row(
        workspace=workspace,
        channel="push",
        config={
            "project_id": fcm.project_id,
            "service_account_json": json.dumps(fcm.service_account()),
            "base_url": fcm.url,
        },
    )


@pytest.fixture
def cart_journey(workspace, configured):
    template = content_services.template_create(
        workspace=workspace, name="Cart", channel="push",
        content={"default": {
            "title": "Hi {{ profile.traits.first_name }}",
            "body": "Your cart misses you",
            "image_url": "https://cdn.acme.example/cart.png",
            "deep_link": "acme://cart/{{ profile.user_id }}",
            "data": {"campaign": "cart"},
        }},
        context=EDITOR,
    )  # fmt: skip
    return _one_step_journey(
        workspace, "Cart push", {"kind": "message", "channel": "push", "template_id": template.pk}
    )


def _person(workspace, user_id: str, tokens: list[str]) -> Profile:
    profile = Profile.objects.create(
        workspace=workspace, user_id=user_id, traits={"first_name": user_id.title()}
    )
    for token in tokens:
        Device.objects.create(
            workspace=workspace, profile=profile, kind="fcm", token=token, platform="ios"
        )
    return profile


def _enroll(journey, profile) -> None:
    services.journey_enroll(journey=journey, profile_id=profile.pk, context=EDITOR)


def test_a_push_reaches_fcm_with_the_exact_message_and_a_token_the_fake_issued(
    workspace, cart_journey, fcm
):
    ada = _person(workspace, "ada", ["tok-phone", "tok-tablet"])
    with time_machine.travel(T0, tick=False):
        _enroll(cart_journey, ada)
        _work()
    message = Message.objects.get(profile=ada)
    # One token for the batch, obtained with a JWT signed by the service account.
    [claims] = fcm.token_requests
    assert claims["iss"] == fcm.client_email
    assert claims["scope"] == fake_fcm.FCM_SCOPE
    assert len(fcm.sends) == 2
    assert {send["authorization"] for send in fcm.sends} == {f"Bearer {fcm.issued[0]}"}
    assert {send["path"] for send in fcm.sends} == {"/v1/projects/acme-app/messages:send"}
    bodies = [json.loads(send["body"]) for send in fcm.sends]
    assert sorted(body["message"]["token"] for body in bodies) == ["tok-phone", "tok-tablet"]
    assert bodies[0]["message"] | {"token": "x"} == {
        "token": "x",
        "notification": {
            "title": "Hi Ada",
            "body": "Your cart misses you",
            "image": "https://cdn.acme.example/cart.png",
        },
        "data": {
            "campaign": "cart",
            "message_id": inbox.message_token(message.pk),
            "link": "acme://cart/ada",
        },
        "android": {"priority": "high"},
        "apns": {"payload": {"aps": {"sound": "default", "mutable-content": 1}}},
    }
    assert message.status == "sent"
    assert message.attempts == 1
    first_name = "projects/acme-app/messages/0:1"
    assert message.provider_message_id == first_name
    assert [d["status"] for d in message.rendered["deliveries"]] == ["sent", "sent"]
    # The same send queued again reaches nobody.
    messages_enqueue([message.pk], channel="push")
    _work()
    assert len(fcm.sends) == 2
    assert len(fcm.token_requests) == 1


def test_unregistered_devices_are_disabled_and_with_none_left_the_message_fails(
    workspace, cart_journey, fcm
):
    ada = _person(workspace, "ada", ["tok-old", "tok-new"])
    fcm.unregistered = {"tok-old"}
    with time_machine.travel(T0, tick=False):
        _enroll(cart_journey, ada)
        _work()
    message = Message.objects.get(profile=ada)
    assert message.status == "sent"
    old, new = Device.objects.get(token="tok-old"), Device.objects.get(token="tok-new")
    assert old.disabled_at is not None
    assert old.disabled_reason.startswith("provider: 404 UNREGISTERED")
    assert new.disabled_at is None
    assert {d["device_id"]: d["status"] for d in message.rendered["deliveries"]} == {
        old.pk: "gone",
        new.pk: "sent",
    }

    bo = _person(workspace, "bo", ["tok-bo"])
    fcm.unregistered.add("tok-bo")
    fcm.sends.clear()
    _enroll(cart_journey, bo)
    _work()
    failed = Message.objects.get(profile=bo)
    assert (failed.status, failed.reason, failed.attempts) == ("failed", "provider_refused", 1)
    assert failed.last_error.startswith("no_device: every device is unregistered (404 UNREGISTERED")
    assert Device.objects.get(token="tok-bo").disabled_at is not None
    assert len(fcm.sends) == 1


def test_quota_and_unavailable_are_retried_then_sent(workspace, cart_journey, fcm):
    ada = _person(workspace, "ada", ["tok-phone"])
    fcm.answers = [429, 503]
    with time_machine.travel(T0, tick=False):
        _enroll(cart_journey, ada)
        _work()
    message = Message.objects.get(profile=ada)
    assert (message.status, message.attempts) == ("queued", 1)
    assert message.next_attempt_at == T0 + timedelta(seconds=RETRY_DELAYS[0])
    assert message.last_error == "429 QUOTA_EXCEEDED: Quota exceeded for sending messages."
    at = T0 + timedelta(seconds=RETRY_DELAYS[0]) + REQUEUE_GRACE
    _sweep_at(at)
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("queued", 2)
    assert message.last_error == "503 UNAVAILABLE: The service is currently unavailable."
    at += timedelta(seconds=RETRY_DELAYS[1]) + REQUEUE_GRACE
    _sweep_at(at)
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("sent", 3)
    assert message.provider_message_id == "projects/acme-app/messages/0:3"
    assert len(fcm.sends) == 3
    assert Device.objects.get(token="tok-phone").disabled_at is None


def test_invalid_argument_is_final(workspace, cart_journey, fcm):
    ada = _person(workspace, "ada", ["tok-phone"])
    fcm.answers = [400]
    _enroll(cart_journey, ada)
    _work()
    message = Message.objects.get(profile=ada)
    assert (message.status, message.reason) == ("failed", "provider_refused")
    assert message.last_error == "400 INVALID_ARGUMENT: Request contains an invalid argument."
    assert Device.objects.get(token="tok-phone").disabled_at is None
    assert len(fcm.sends) == 1


def test_a_profile_without_devices_gets_nothing_and_a_clear_reason(workspace, cart_journey, fcm):
    nobody = _person(workspace, "nobody", [])
    gone = _person(workspace, "gone", ["tok-gone"])
    Device.objects.filter(token="tok-gone").update(disabled_at=T0, disabled_reason="test")
    _enroll(cart_journey, nobody)
    _enroll(cart_journey, gone)
    _work()
    for person in (nobody, gone):
        message = Message.objects.get(profile=person)
        # Known when the journey decided: not sent, nothing tried.
        assert (message.status, message.reason, message.attempts) == ("suppressed", "no_device", 0)
    assert fcm.sends == []
    assert fcm.token_requests == []


def test_another_workspaces_devices_are_not_used(workspace, other_workspace, cart_journey, fcm):
    ada = _person(workspace, "ada", [])
    stranger = Profile.objects.create(workspace=other_workspace, user_id="ada")
    Device.objects.create(
        workspace=other_workspace, profile=stranger, kind="fcm", token="tok-x", platform="ios"
    )
    _enroll(cart_journey, ada)
    _work()
    message = Message.objects.get(profile=ada)
    assert (message.status, message.reason) == ("suppressed", "no_device")
    assert fcm.sends == []


def test_a_service_account_that_is_not_json_is_refused_naming_the_field(workspace, push_installed):
    from pydantic import ValidationError

    cases = [
        ("{nope", "service_account_json is not JSON"),
        ('{"client_email": "a@b"}', "service_account_json lacks private_key, token_uri"),
    ]
    for service_account_json, named in cases:
        with pytest.raises(ValidationError, match=named):
            channel_settings_save(
                workspace=workspace,
                channel="push",
                config={"project_id": "p", "service_account_json": service_account_json},
                context=AuditContext.system("test"),
            )


def _report(key: str, action: str, body: dict):
    import base64

    from django.test import Client

    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    response = Client().post(
        f"/api/v1/push/{action}", body, content_type="application/json", HTTP_AUTHORIZATION=auth
    )
    return response.status_code, response.json()


def test_the_app_reports_opens_and_taps_with_the_payloads_id(
    workspace, other_workspace, cart_journey, fcm
):
    from engagement_site.workspaces.services import api_key_create

    ada = _person(workspace, "ada", ["tok-phone"])
    with time_machine.travel(T0, tick=False):
        _enroll(cart_journey, ada)
        _work()
    message = Message.objects.get(profile=ada)
    token = json.loads(fcm.sends[0]["body"])["message"]["data"]["message_id"]
    setup = AuditContext.system("test")
    key = api_key_create(workspace=workspace, kind="write", name="app", context=setup)[1]
    other_key = api_key_create(workspace=other_workspace, kind="write", name="app", context=setup)[
        1
    ]

    # Another workspace's key, a forged id and the database id are not found.
    not_found = {"code": "not_found", "message": "This workspace sent no push with that id."}
    assert _report(other_key, "opened", {"messageId": token}) == (404, not_found)
    assert _report(key, "opened", {"messageId": token[:-2] + "xx"}) == (404, not_found)
    assert _report(key, "opened", {"messageId": str(message.pk)}) == (404, not_found)
    assert _report(key, "opened", {}) == (
        400,
        {
            "code": "invalid_message_id",
            "message": "`messageId` (the payload's message_id) is required.",
        },
    )
    message.refresh_from_db()
    assert (message.status, message.opened_at) == ("sent", None)

    assert _report(key, "opened", {"messageId": token}) == (200, {"success": True})
    assert _report(key, "opened", {"messageId": token}) == (200, {"success": True})
    message.refresh_from_db()
    first_open = message.opened_at
    assert message.status == "opened" and first_open is not None
    # A tap right away counts: no link-scanner guard for an app's own report.
    assert _report(key, "clicked", {"messageId": token}) == (200, {"success": True})
    message.refresh_from_db()
    assert (message.status, message.opened_at) == ("clicked", first_open)
    kinds = sorted(message.events.values_list("kind", flat=True))
    assert kinds == ["clicked", "delivered", "opened", "sent"]  # the open implies delivery
    assert _report(key, "dismissed", {"messageId": token})[0] == 404

    # A push still queued (a retry pending) cannot be opened either.
    Message.objects.filter(pk=message.pk).update(status="queued")
    status, document = _report(key, "clicked", {"messageId": token})
    assert (status, document["code"]) == (409, "not_sent")
    assert Message.objects.get(pk=message.pk).status == "queued"
    # A push that never went out cannot be opened.
    bob = _person(workspace, "bob", [])
    with time_machine.travel(T0, tick=False):
        _enroll(cart_journey, bob)
        _work()
    failed = Message.objects.get(profile=bob)
    assert failed.status in ("failed", "suppressed")
    status, document = _report(key, "opened", {"messageId": inbox.message_token(failed.pk)})
    assert (status, document["code"]) == (409, "not_sent")
    failed.refresh_from_db()
    assert failed.opened_at is None
