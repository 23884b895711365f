"""In-app cards: a journey's card goes to the profile's inbox, which the app reads with
the workspace's write key; read / clicked / dismissed move the message; other users',
other workspaces' and forged ids are refused and change nothing; identity
verification by user hash when the workspace asks for it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client

from content import services as content_services
from delivery import inbox
from delivery.channels import channels
from delivery.inbox_api import write_key_cache_clear
from delivery.models import ChannelSettings, Consent, Message, MessageEvent
from delivery.services import channel_settings_save, messages_enqueue, messages_send
from engagement_site.workspaces.models import ApiKey
from engagement_site.workspaces.services import AuditContext, api_key_create, api_key_revoke
from journeys import services as journey_services
from segments.models import Profile
from tests.delivery.test_email import _work
from tests.journeys.test_executor import EDITOR, _run_journey

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
SETUP = AuditContext.system("test")
_keys = itertools.count()

CARD = {
    "title": "Hi {{ profile.first_name }}",
    "body": "Your {{ profile.plan }} plan renews soon.",
    "image_url": "https://cdn.acme.example/renew.png",
    "cta_label": "Renew",
    "cta_url": "https://acme.example/renew",
}


@pytest.fixture(autouse=True)
def in_app_channel(settings):
    settings.DELIVERY_CHANNELS = [
        *settings.DELIVERY_CHANNELS,
        "delivery.channels.in_app.InAppChannel",
    ]
    channels.cache_clear()
    write_key_cache_clear()
    yield
    channels.cache_clear()
    write_key_cache_clear()


def _write_key(workspace) -> str:
    return api_key_create(workspace=workspace, kind="write", name="app", context=SETUP)[1]


def _settings(workspace, config: dict) -> ChannelSettings:
    """The in-app settings saved as the console saves them (validated and audited)."""
    return channel_settings_save(
        workspace=workspace, channel="in_app", config=config, context=SETUP
    )


def _basic(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def _template(workspace, content: dict | None = None):
    return content_services.template_create(
        workspace=workspace,
        name=f"Card {next(_keys)}",
        channel="in_app",
        content={"default": content or CARD},
        context=EDITOR,
    )


def _person(workspace, user_id: str = "ada", **traits) -> Profile:
    return Profile.objects.create(
        workspace=workspace,
        user_id=user_id,
        traits={"first_name": "Ada", "plan": "pro", **traits},
    )


def _card(profile, *, at: datetime = T0, template=None, send: bool = True) -> Message:
    """A card decided for the profile and sent through the real send path at `at`."""
    template = template or _template(profile.workspace)
    message = Message.objects.create(
        workspace_id=profile.workspace_id,
        idempotency_key=f"test-card-{next(_keys)}",
        profile=profile,
        channel="in_app",
        template_version=template.current_version,
        created_at=at,
    )
    if send:
        messages_send(message_ids=[message.pk], now=at)
    message.refresh_from_db()
    return message


def _inbox(client: Client, key: str, user_id: str = "ada", query: str = "", **headers):
    response = client.get(f"/api/v1/inbox/{user_id}{query}", **_basic(key), **headers)
    return response.status_code, response.json()


def _act(client: Client, key: str, token: str, action: str, user_id: str = "ada", **headers):
    response = client.post(
        f"/api/v1/inbox/{user_id}/messages/{token}/{action}", **_basic(key), **headers
    )
    return response.status_code, response.json()


def _listed(message: Message, *, read=False, clicked=False, **fields) -> dict:
    return {
        "id": inbox.message_token(message.pk),
        "title": "Hi Ada",
        "body": "Your pro plan renews soon.",
        "image_url": "https://cdn.acme.example/renew.png",
        "cta_label": "Renew",
        "cta_url": "https://acme.example/renew",
        "sent_at": message.sent_at.isoformat(),
        "read": read,
        "clicked": clicked,
        **fields,
    }


def test_a_journey_card_is_sent_without_a_provider_and_listed_in_the_inbox(workspace):
    template = _template(workspace)
    journey = _run_journey(
        workspace, "Renewal",
        [
            {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "card", "type": "action",
             "action": {"kind": "message", "channel": "in_app", "template_id": template.pk}},
            {"id": "end", "type": "exit"},
        ],
        [{"source": "api", "target": "card"}, {"source": "card", "target": "end"}],
    )  # fmt: skip
    key = _write_key(workspace)
    with time_machine.travel(T0, tick=False):
        ada = _person(workspace)
        journey_services.journey_enroll(journey=journey, profile_id=ada.pk, context=EDITOR)
        _work()
    message = Message.objects.get(profile=ada)
    assert (message.status, message.attempts, message.sent_at) == ("sent", 1, T0)
    assert message.provider_message_id == f"inapp-{message.pk}"
    assert message.rendered == {
        "title": "Hi Ada",
        "body": "Your pro plan renews soon.",
        "image_url": "https://cdn.acme.example/renew.png",
        "cta_label": "Renew",
        "cta_url": "https://acme.example/renew",
    }

    client = Client()
    response = client.get("/api/v1/inbox/ada", **_basic(key))
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {
        "messages": [_listed(message) | {"sent_at": "2026-11-20T10:00:00+00:00"}],
        "unread": 1,
        "next_cursor": None,
    }
    token = response.json()["messages"][0]["id"]
    assert str(message.pk) not in token.split(":")[-1] and inbox.message_id_of(token) == message.pk

    # The same send queued again sends nothing more.
    messages_enqueue([message.pk], channel="in_app")
    _work()
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("sent", 1)
    assert list(MessageEvent.objects.filter(message=message).values_list("kind", flat=True)) == [
        "sent"
    ]


def test_read_clicked_and_dismissed_move_the_card_and_the_unread_count(workspace):
    ada = _person(workspace)
    older = _card(ada, at=T0)
    newer = _card(ada, at=T0 + timedelta(minutes=5))
    key = _write_key(workspace)
    client = Client()
    assert _inbox(client, key) == (
        200,
        {"messages": [_listed(newer), _listed(older)], "unread": 2, "next_cursor": None},
    )
    newer_id, older_id = inbox.message_token(newer.pk), inbox.message_token(older.pk)

    read = {"id": newer_id, "read": True, "clicked": False, "dismissed": False}
    assert _act(client, key, newer_id, "read") == (200, read)
    assert _act(client, key, newer_id, "read") == (200, read)  # a repeat changes nothing
    newer.refresh_from_db()
    assert newer.status == "opened" and newer.opened_at is not None
    assert _inbox(client, key)[1]["unread"] == 1
    assert _inbox(client, key)[1]["messages"][0]["read"] is True

    # A click right after the card appears counts (no email link-scanner guard here).
    clicked = {"id": older_id, "read": True, "clicked": True, "dismissed": False}
    assert _act(client, key, older_id, "clicked") == (200, clicked)
    older.refresh_from_db()
    assert older.status == "clicked" and older.opened_at == older.clicked_at
    assert _inbox(client, key)[1] == {
        "messages": [_listed(newer, read=True), _listed(older, read=True, clicked=True)],
        "unread": 0,
        "next_cursor": None,
    }

    dismissed = {"id": newer_id, "read": True, "clicked": False, "dismissed": True}
    assert _act(client, key, newer_id, "dismissed") == (200, dismissed)
    newer.refresh_from_db()
    first_dismissal = newer.dismissed_at
    assert first_dismissal is not None and newer.status == "opened"
    assert _inbox(client, key)[1] == {
        "messages": [_listed(older, read=True, clicked=True)],
        "unread": 0,
        "next_cursor": None,
    }
    # Dismissing again (a retried request) answers the same and changes nothing.
    assert _act(client, key, newer_id, "dismissed") == (200, dismissed)
    newer.refresh_from_db()
    assert newer.dismissed_at == first_dismissal
    assert sorted(MessageEvent.objects.filter(message=newer).values_list("kind", flat=True)) == [
        "delivered",  # implied by the open
        "dismissed",
        "opened",
        "sent",
    ]
    # The unread count falls when an unread card is dismissed.
    third = _card(ada, at=T0 + timedelta(minutes=9))
    assert _inbox(client, key)[1]["unread"] == 1
    _act(client, key, inbox.message_token(third.pk), "dismissed")
    assert _inbox(client, key)[1]["unread"] == 0


def test_a_bad_write_key_is_refused_and_changes_nothing(workspace):
    ada = _person(workspace)
    message = _card(ada)
    token = inbox.message_token(message.pk)
    revoked_key = _write_key(workspace)
    api_key_revoke(api_key=ApiKey.objects.get(key_hash=ApiKey.hash_key(revoked_key)), context=SETUP)
    secret_key = api_key_create(workspace=workspace, kind="secret", name="srv", context=SETUP)[1]
    client = Client()
    refusal = {"code": "invalid_write_key", "message": "The write key is unknown or revoked."}
    for key in ("", "wk_not-a-key", revoked_key, secret_key):
        assert _inbox(client, key) == (401, refusal)
        assert _act(client, key, token, "dismissed") == (401, refusal)
        assert _act(client, key, token, "read") == (401, refusal)
    message.refresh_from_db()
    assert (message.status, message.dismissed_at) == ("sent", None)
    assert MessageEvent.objects.filter(message=message).count() == 1

    # The key also works as a header or a query parameter (browsers).
    good = _write_key(workspace)
    assert client.get("/api/v1/inbox/ada", HTTP_X_WRITE_KEY=good).json()["unread"] == 1
    assert client.get(f"/api/v1/inbox/ada?writeKey={good}").json()["unread"] == 1


def test_another_users_another_workspaces_and_forged_ids_are_not_found(workspace, other_workspace):
    ada = _person(workspace)
    bo = _person(workspace, "bo")
    adas = _card(ada)
    bos = _card(bo)
    globex_ada = _card(_person(other_workspace))
    key = _write_key(workspace)
    client = Client()
    not_found = {"code": "not_found", "message": "This user's inbox has no such message."}
    forged = inbox.message_token(adas.pk)[:-1] + (
        "A" if not inbox.message_token(adas.pk).endswith("A") else "B"
    )
    for token in (
        inbox.message_token(bos.pk),  # bo's card, asked for as ada's
        inbox.message_token(globex_ada.pk),  # another workspace's ada
        forged,
        str(adas.pk),
        f"{adas.pk}:x",
    ):
        for action in ("read", "clicked", "dismissed"):
            assert _act(client, key, token, action) == (404, not_found)
    # A valid id under another user's path is refused too.
    assert _act(client, key, inbox.message_token(adas.pk), "dismissed", user_id="bo") == (
        404,
        not_found,
    )
    assert (
        client.post(
            f"/api/v1/inbox/ada/messages/{inbox.message_token(adas.pk)}/delete", **_basic(key)
        ).status_code
        == 404
    )
    for message in (adas, bos, globex_ada):
        message.refresh_from_db()
        assert (message.status, message.dismissed_at) == ("sent", None)
        assert list(
            MessageEvent.objects.filter(message=message).values_list("kind", flat=True)
        ) == ["sent"]
    # Each inbox lists its own cards only.
    assert [m["id"] for m in _inbox(client, key)[1]["messages"]] == [inbox.message_token(adas.pk)]
    other_key = _write_key(other_workspace)
    assert [m["id"] for m in _inbox(client, other_key)[1]["messages"]] == [
        inbox.message_token(globex_ada.pk)
    ]


def test_an_unknown_user_has_an_empty_inbox(workspace):
    _card(_person(workspace))
    key = _write_key(workspace)
    empty = {"messages": [], "unread": 0, "next_cursor": None}
    _person(workspace, "cy")  # known, with nothing in the inbox: the same answer
    assert _inbox(Client(), key, "nobody") == (200, empty)
    assert _inbox(Client(), key, "cy") == (200, empty)


def test_cards_not_sent_suppressed_or_failed_are_not_listed(workspace):
    ada = _person(workspace)
    template = _template(workspace)
    queued = _card(ada, template=template, send=False)
    Consent.objects.create(
        workspace=workspace, profile=ada, channel="in_app", status="unsubscribed", source="api"
    )
    suppressed = _card(ada, template=template)
    anonymous = Profile.objects.create(workspace=workspace, anonymous_ids=["anon-1"])
    no_user = _card(anonymous, template=template)
    assert queued.status == "queued"
    assert (suppressed.status, suppressed.reason, suppressed.sent_at) == (
        "suppressed",
        "unsubscribed",
        None,
    )
    # No user_id: known at send time, not sent.
    assert (no_user.status, no_user.reason, no_user.last_error) == (
        "suppressed",
        "no_user_id",
        "",
    )
    key = _write_key(workspace)
    assert _inbox(Client(), key) == (200, {"messages": [], "unread": 0, "next_cursor": None})
    assert _act(Client(), key, inbox.message_token(queued.pk), "read")[0] == 404
    queued.refresh_from_db()
    assert (queued.status, queued.opened_at) == ("queued", None)


def test_the_user_hash_is_required_when_the_workspace_asks_for_it(workspace, other_workspace):
    ada = _person(workspace)
    message = _card(ada)
    token = inbox.message_token(message.pk)
    _settings(workspace, {"require_user_hash": True})
    key = _write_key(workspace)
    client = Client()
    secret = inbox.user_hash_secret(workspace.pk)
    assert secret != inbox.user_hash_secret(other_workspace.pk)
    right = hmac.new(secret.encode(), b"ada", hashlib.sha256).hexdigest()
    for wrong in ("", "0" * 64, hmac.new(secret.encode(), b"bo", hashlib.sha256).hexdigest()):
        status, body = _inbox(client, key, HTTP_X_USER_HASH=wrong)
        assert (status, body["code"]) == (403, "invalid_user_hash")
        status, body = _act(client, key, token, "dismissed", HTTP_X_USER_HASH=wrong)
        assert (status, body["code"]) == (403, "invalid_user_hash")
    message.refresh_from_db()
    assert message.dismissed_at is None
    assert _inbox(client, key, HTTP_X_USER_HASH=right)[1]["unread"] == 1
    assert _inbox(client, key, query=f"?userHash={right}")[1]["unread"] == 1
    assert _act(client, key, token, "read", HTTP_X_USER_HASH=right)[0] == 200
    # A workspace that does not ask for it ignores the header.
    other_key = _write_key(other_workspace)
    assert _inbox(client, other_key, HTTP_X_USER_HASH="nonsense")[0] == 200


def test_pages_by_cursor_and_refuses_bad_limits_and_cursors(workspace):
    ada = _person(workspace)
    cards = [_card(ada, at=T0 + timedelta(minutes=minute)) for minute in range(3)]
    key = _write_key(workspace)
    client = Client()
    status, first = _inbox(client, key, query="?limit=2")
    assert status == 200
    assert [m["id"] for m in first["messages"]] == [
        inbox.message_token(cards[2].pk),
        inbox.message_token(cards[1].pk),
    ]
    assert first["unread"] == 3 and first["next_cursor"]
    status, second = _inbox(client, key, query=f"?limit=2&cursor={first['next_cursor']}")
    assert second == {"messages": [_listed(cards[0])], "unread": 3, "next_cursor": None}
    for limit in ("0", "101", "-1"):
        assert _inbox(client, key, query=f"?limit={limit}") == (
            400,
            {"code": "invalid_limit", "message": "limit must be between 1 and 100."},
        )
    assert _inbox(client, key, query="?limit=ten") == (
        400,
        {"code": "invalid_limit", "message": "limit must be a whole number."},
    )
    assert _inbox(client, key, query="?cursor=abc")[1] == {
        "code": "invalid_cursor",
        "message": "The cursor is not one this inbox gave.",
    }
    assert len(_inbox(client, key, query="?limit=100")[1]["messages"]) == 3


def test_only_http_links_and_images_reach_the_app(workspace):
    ada = _person(workspace, link="javascript:alert(document.cookie)")
    template = _template(workspace, {**CARD, "cta_url": "{{ profile.link }}"})
    refused = _card(ada, template=template)
    # Rendering refuses the link, so the card never goes out ...
    assert (refused.status, refused.reason, refused.last_error) == (
        "failed",
        "render_error",
        "default.cta_url: javascript: links are not allowed",
    )
    # ... and a stored card with one (saved before that check) is served without it.
    sent = _card(ada)
    Message.objects.filter(pk=sent.pk).update(
        rendered={**sent.rendered, "image_url": "data:image/svg+xml,x", "cta_url": " JavaScript:x"}
    )
    listed = _inbox(Client(), _write_key(workspace))[1]["messages"]
    assert listed == [_listed(sent, image_url="", cta_url="")]


def test_browsers_get_cors_and_a_preflight_answer(workspace):
    client = Client()
    for path in ("/api/v1/inbox/ada", "/api/v1/inbox/ada/messages/x/read"):
        response = client.options(path)
        assert response.status_code == 204 and response.content == b""
        assert response["Access-Control-Allow-Origin"] == "*"
        assert response["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
        assert response["Access-Control-Allow-Headers"] == (
            "Authorization, Content-Type, X-Write-Key, X-User-Hash"
        )
    response = client.post("/api/v1/inbox/ada", **_basic(_write_key(workspace)))
    assert (response.status_code, response["Allow"]) == (405, "GET, OPTIONS")
    assert response.json()["code"] == "method_not_allowed"


def test_a_warm_inbox_read_costs_one_query_or_two_past_a_page(workspace, django_assert_num_queries):
    ada = _person(workspace)
    for minute in range(3):
        _card(ada, at=T0 + timedelta(minutes=minute))
    key = _write_key(workspace)
    client = Client()
    _inbox(client, key)  # the write key and the workspace's setting are now cached
    with django_assert_num_queries(1):
        assert _inbox(client, key)[1]["unread"] == 3
    with django_assert_num_queries(2):
        assert _inbox(client, key, query="?limit=2")[1]["unread"] == 3
