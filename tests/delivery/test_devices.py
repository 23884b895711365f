"""The device registration API: write key like the tracking API, profiles found or
created the way ingestion does, tokens upserted (and moved), errors naming the field,
nothing touched across workspaces."""

from __future__ import annotations

import base64
import json

import pytest
from django.test import Client

from delivery.devices import device_unreachable_reason
from delivery.models import Device
from engagement_site.workspaces.models import ApiKey
from engagement_site.workspaces.services import AuditContext, api_key_create
from segments.models import Identity, Profile

pytestmark = pytest.mark.django_db

URL = "/api/v1/devices"


def _key(workspace) -> str:
    _, raw = api_key_create(
        workspace=workspace, kind=ApiKey.Kind.WRITE, name="app", context=AuditContext.system("t")
    )
    return raw


def _call(method: str, key: str, body, **headers):
    client = Client()
    auth = base64.b64encode(f"{key}:".encode()).decode()
    data = body if isinstance(body, bytes) else json.dumps(body)
    return getattr(client, method)(
        URL, data=data, content_type="application/json", HTTP_AUTHORIZATION=f"Basic {auth}"
    )


@pytest.fixture
def key(workspace):
    return _key(workspace)


@pytest.fixture
def webpush_hosts(settings):
    settings.WEB_PUSH_ENDPOINT_HOSTS = ["fcm.googleapis.com", "push.services.mozilla.com"]


SUBSCRIPTION = {
    "endpoint": "https://updates.push.services.mozilla.com/wpush/v2/abc",
    "keys": {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA", "auth": "tBHItJI5svbpez7KI4CCXg"},
}


def test_an_app_registers_its_token_for_a_new_profile(workspace, key):
    response = _call(
        "post", key, {"userId": "ada", "kind": "fcm", "token": "tok-1", "platform": "ios"}
    )
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert response["Access-Control-Allow-Origin"] == "*"
    [device] = Device.objects.filter(workspace=workspace)
    ada = Profile.objects.get(workspace=workspace, user_id="ada")
    assert (device.profile_id, device.kind, device.token) == (ada.pk, "fcm", "tok-1")
    assert (device.platform, device.keys, device.disabled_at) == ("ios", {"platform": "ios"}, None)
    assert Identity.objects.filter(workspace=workspace, kind="user_id", value="ada").count() == 1
    assert device_unreachable_reason(profile=ada, channel="push") == ""
    assert device_unreachable_reason(profile=ada, channel="web_push") == "no_device"


def test_a_token_registered_again_moves_to_the_new_profile_and_comes_back(workspace, key):
    assert (
        _call(
            "post", key, {"userId": "ada", "kind": "fcm", "token": "tok-1", "platform": "ios"}
        ).status_code
        == 200
    )
    _call("delete", key, {"kind": "fcm", "token": "tok-1"})
    device = Device.objects.get(token="tok-1")
    assert device.disabled_reason == "unregistered by the app"
    anonymous = {"anonymousId": "anon-7", "kind": "fcm", "token": "tok-1", "platform": "android"}
    assert _call("post", key, anonymous).status_code == 200
    device.refresh_from_db()
    new_owner = Profile.objects.get(workspace=workspace, anonymous_ids__contains=["anon-7"])
    assert (device.profile_id, device.platform, device.disabled_at) == (
        new_owner.pk,
        "android",
        None,
    )
    assert new_owner.user_id == ""
    assert Device.objects.filter(workspace=workspace).count() == 1


def test_a_browser_registers_its_subscription_with_the_write_key_in_the_body(
    workspace, key, webpush_hosts
):
    body = {"writeKey": key, "userId": "ada", "kind": "web_push", "subscription": SUBSCRIPTION}
    response = Client().post(URL, data=json.dumps(body), content_type="text/plain")
    assert response.status_code == 200
    device = Device.objects.get(workspace=workspace)
    assert (device.kind, device.token, device.platform) == (
        "web_push",
        SUBSCRIPTION["endpoint"],
        "web",
    )
    assert device.keys == SUBSCRIPTION["keys"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"userId": "ada", "kind": "sms", "token": "t"}, '`kind` must be "fcm" or "web_push".'),
        ({"userId": "ada", "kind": "fcm", "platform": "ios"}, "`token` is required for fcm devices."),
        ({"userId": "ada", "kind": "fcm", "token": "t", "platform": "nokia"}, "`platform` must be one of ios, android, web."),
        ({"kind": "fcm", "token": "t", "platform": "ios"}, "`userId` or `anonymousId` is required."),
        ({"userId": "ada", "kind": "web_push"}, "`subscription` (the browser's PushSubscription) is required."),
        ({"userId": "ada", "kind": "web_push", "subscription": {**SUBSCRIPTION, "keys": {"p256dh": "x"}}},
         "`subscription.keys.auth` is required."),
        ({"userId": "ada", "kind": "web_push", "subscription": {**SUBSCRIPTION, "endpoint": "https://evil.example/x"}},
         "`subscription.endpoint`: the endpoint's host 'evil.example' is not a known push service."),
        ({"userId": "ada", "kind": "web_push", "subscription": {**SUBSCRIPTION, "endpoint": "http://fcm.googleapis.com/x"}},
         "`subscription.endpoint`: the endpoint must be an https URL."),
    ],
)  # fmt: skip
def test_invalid_registrations_name_the_field_and_store_nothing(
    workspace, key, webpush_hosts, body, message
):
    response = _call("post", key, body)
    assert (response.status_code, response.json()) == (
        400,
        {"code": "invalid_device", "message": message},
    )
    assert Device.objects.count() == 0
    assert Profile.objects.count() == 0


def test_bad_json_and_bad_write_keys_are_refused(workspace, key):
    response = _call("post", key, b"{nope")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    for wrong in ("", "wk_not_a_key"):
        response = _call(
            "post", wrong, {"userId": "ada", "kind": "fcm", "token": "t", "platform": "ios"}
        )
        assert (response.status_code, response.json()["code"]) == (401, "invalid_write_key")
    assert response["Access-Control-Allow-Origin"] == "*"
    assert Device.objects.count() == 0
    assert Profile.objects.count() == 0


def test_the_preflight_is_answered_for_browsers(key):
    response = Client().options(URL)
    assert response.status_code == 204
    assert response["Access-Control-Allow-Methods"] == "POST, DELETE, OPTIONS"


def test_another_workspaces_key_cannot_touch_this_workspaces_profiles_or_devices(
    workspace, other_workspace, key
):
    ada = Profile.objects.create(workspace=workspace, user_id="ada")
    Device.objects.create(
        workspace=workspace, profile=ada, kind="fcm", token="tok-1", platform="ios"
    )
    foreign = _key(other_workspace)
    response = _call(
        "post", foreign, {"userId": "ada", "kind": "fcm", "token": "tok-1", "platform": "ios"}
    )
    assert response.status_code == 200
    assert _call("delete", foreign, {"kind": "fcm", "token": "tok-1"}).status_code == 200
    mine = Device.objects.get(workspace=workspace)
    assert (mine.profile_id, mine.disabled_at) == (ada.pk, None)
    theirs = Device.objects.get(workspace=other_workspace)
    assert theirs.profile.workspace_id == other_workspace.pk
    assert theirs.profile_id != ada.pk
    assert theirs.disabled_reason == "unregistered by the app"
