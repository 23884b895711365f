"""Web push from a journey to a local push service: the VAPID JWT it verifies, the
payload it decrypts with the subscription's private key, 410 disabling the
subscription, 413 final, 429/5xx retried."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from pydantic import ValidationError

from content import services as content_services
from delivery import inbox
from delivery.channels.web_push import WebPushChannel, vapid_key_pair
from delivery.models import Device, Message
from delivery.services import RETRY_DELAYS, messages_enqueue
from journeys import services
from segments.models import Profile
from tests.delivery.conftest import _one_step_journey
from tests.delivery.fake_webpush import FakePushService
from tests.delivery.test_email import _run_retries, _work
from tests.delivery.test_push import settings_row
from tests.journeys.test_executor import EDITOR

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
KEYS = vapid_key_pair()


@pytest.fixture
def push_service(settings, add_channel):
    settings.WEB_PUSH_ENDPOINT_HOSTS = ["127.0.0.1"]
    add_channel("delivery.channels.web_push.WebPushChannel")
    with FakePushService() as server:
        yield server


@pytest.fixture
def news_journey(workspace, push_service):
    settings_row(
        workspace=workspace,
        channel="web_push",
        config={
            "vapid_private_key": KEYS[0],
            "vapid_public_key": KEYS[1],
            "subject": "mailto:push@acme.example",
            "ttl_seconds": 3600,
        },
    )
    template = content_services.template_create(
        workspace=workspace, name="News", channel="web_push",
        content={"default": {
            "title": "News for {{ profile.traits.first_name }}",
            "body": "Spring sale starts today",
            "icon_url": "https://cdn.acme.example/icon.png",
            "url": "https://acme.example/sale",
        }},
        context=EDITOR,
    )  # fmt: skip
    return _one_step_journey(
        workspace,
        "News push",
        {"kind": "message", "channel": "web_push", "template_id": template.pk},
    )


def _person(workspace, push_service, user_id: str, browsers: list[str]) -> Profile:
    profile = Profile.objects.create(
        workspace=workspace, user_id=user_id, traits={"first_name": user_id.title()}
    )
    for name in browsers:
        subscription = push_service.subscribe(name)
        Device.objects.create(
            workspace=workspace,
            profile=profile,
            kind="web_push",
            token=subscription["endpoint"],
            keys=subscription["keys"],
            platform="web",
        )
    return profile


def _enroll(journey, profile) -> None:
    services.journey_enroll(journey=journey, profile_id=profile.pk, context=EDITOR)


def test_the_push_service_decrypts_exactly_what_was_rendered_and_verifies_vapid(
    workspace, news_journey, push_service
):
    ada = _person(workspace, push_service, "ada", ["ada-firefox"])
    _enroll(news_journey, ada)
    _work()
    message = Message.objects.get(profile=ada)
    [push] = push_service.received
    assert json.loads(push["payload"]) == {
        "title": "News for Ada",
        "body": "Spring sale starts today",
        "icon": "https://cdn.acme.example/icon.png",
        "url": "https://acme.example/sale",
        "message_id": inbox.message_token(message.pk),
    }
    assert message.rendered["title"] == "News for Ada"
    # Signed with the workspace's key, for this push service, by this sender.
    assert push["public_key"] == KEYS[1]
    assert push["claims"]["aud"] == push_service.origin
    assert push["claims"]["sub"] == "mailto:push@acme.example"
    assert push["headers"]["ttl"] == "3600"
    assert push["headers"]["content-encoding"] == "aes128gcm"
    assert (message.status, message.attempts) == ("sent", 1)
    assert message.provider_message_id == f"{push_service.origin}/m/1"
    messages_enqueue([message.pk], channel="web_push")
    _work()
    assert len(push_service.requests) == 1


def test_a_gone_subscription_is_disabled_and_with_none_left_the_message_fails(
    workspace, news_journey, push_service
):
    ada = _person(workspace, push_service, "ada", ["ada-old", "ada-new"])
    push_service.gone = {"ada-old"}
    _enroll(news_journey, ada)
    _work()
    assert Message.objects.get(profile=ada).status == "sent"
    old = Device.objects.get(token__endswith="/push/ada-old")
    assert (
        old.disabled_reason == "provider: 410 Gone: push subscription has unsubscribed or expired"
    )
    assert Device.objects.get(token__endswith="/push/ada-new").disabled_at is None
    assert [push["name"] for push in push_service.received] == ["ada-new"]

    bo = _person(workspace, push_service, "bo", ["bo-only"])
    push_service.gone.add("bo-only")
    _enroll(news_journey, bo)
    _work()
    failed = Message.objects.get(profile=bo)
    assert (failed.status, failed.reason) == ("failed", "provider_refused")
    assert failed.last_error.startswith("no_device: every device is unregistered (410 Gone")
    assert Device.objects.get(token__endswith="/push/bo-only").disabled_at is not None


def test_too_large_is_final_and_busy_is_retried(workspace, news_journey, push_service):
    ada = _person(workspace, push_service, "ada", ["ada-chrome"])
    push_service.answers = [413]
    _enroll(news_journey, ada)
    _work()
    refused = Message.objects.get(profile=ada)
    assert (refused.status, refused.reason) == ("failed", "provider_refused")
    assert refused.last_error == "413 Request Entity Too Large: scripted 413"
    assert Device.objects.get(token__endswith="/push/ada-chrome").disabled_at is None

    bo = _person(workspace, push_service, "bo", ["bo-chrome"])
    push_service.answers = [429, 502]
    with time_machine.travel(T0, tick=False):
        _enroll(news_journey, bo)
        _work()
    message = Message.objects.get(profile=bo)
    assert (message.status, message.attempts) == ("queued", 1)
    assert message.next_attempt_at == T0 + timedelta(seconds=RETRY_DELAYS[0])
    assert message.last_error == "429 Too Many Requests: scripted 429"
    _run_retries(T0, RETRY_DELAYS[:2])
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("sent", 3)
    assert [push["name"] for push in push_service.received] == ["bo-chrome"]


def test_a_profile_without_subscriptions_contacts_no_push_service(
    workspace, news_journey, push_service
):
    nobody = _person(workspace, push_service, "nobody", [])
    _enroll(news_journey, nobody)
    _work()
    message = Message.objects.get(profile=nobody)
    assert (message.status, message.reason, message.attempts) == ("suppressed", "no_device", 0)
    assert push_service.requests == []


def test_an_endpoint_off_the_push_services_is_never_called(workspace, news_journey, push_service):
    ada = _person(workspace, push_service, "ada", ["ada-x"])
    Device.objects.filter(profile=ada).update(token="http://10.0.0.5/push/ada-x")
    _enroll(news_journey, ada)
    _work()
    message = Message.objects.get(profile=ada)
    assert message.status == "failed"
    assert message.last_error == "the endpoint's host '10.0.0.5' is not a known push service"
    assert push_service.requests == []


def test_vapid_settings_are_checked():
    private, public = vapid_key_pair()
    other_public = vapid_key_pair()[1]
    config = {"vapid_private_key": private, "vapid_public_key": public, "subject": "mailto:a@b.c"}
    assert WebPushChannel.validate(config).vapid_public_key == public
    with pytest.raises(ValidationError, match="not the public half of vapid_private_key"):
        WebPushChannel.validate({**config, "vapid_public_key": other_public})
    with pytest.raises(ValidationError, match="subject must be a mailto: address or an https"):
        WebPushChannel.validate({**config, "subject": "acme"})
    with pytest.raises(ValidationError, match="vapid_private_key cannot be read"):
        WebPushChannel.validate({**config, "vapid_private_key": "bad"})
