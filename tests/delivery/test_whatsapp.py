"""WhatsApp through a local Twilio (tests/delivery/fake_twilio.py) and a local Meta
Cloud API (tests/delivery/fake_meta.py): approved templates arrive exactly as each
provider wants them; refusals about the person fail for good, rate limits and outages
are retried; Meta's verify handshake, its signed status reports and an inbound STOP
through the hook URL; settings that cannot work are refused naming the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit

import pytest
from django.test import Client
from pydantic import ValidationError

from content import services as content_services
from delivery.models import Consent, Message, MessageEvent, Suppression
from delivery.services import RETRY_DELAYS, channel_settings_save, messages_send
from engagement_site.workspaces.services import AuditContext
from tests.delivery import fake_meta
from tests.delivery.fake_meta import FakeMeta
from tests.delivery.fake_twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.delivery.test_sms import _hook, _message, _person
from tests.journeys.test_executor import EDITOR

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
SETUP = AuditContext.system("test")
SENDER = "+15005550006"
ADA = "+14155550123"
CONTENT_SID = "HX" + "0123456789abcdef" * 2


@pytest.fixture(autouse=True)
def whatsapp_registered(add_channel):
    add_channel("delivery.channels.whatsapp.WhatsAppChannel")


@pytest.fixture
def meta_api():
    with FakeMeta() as server:
        server.templates["order_shipped"] = ({"en_US", "de"}, 2)
        yield server


@pytest.fixture
def template(workspace):
    return content_services.template_create(
        workspace=workspace, name="Shipped", channel="whatsapp",
        content={"default": {
            "template_name": "order_shipped", "language": "en_US",
            "parameters": ["{{ profile.first_name }}", "A-1042"],
        }},
        context=EDITOR,
    )  # fmt: skip


def _twilio_config(twilio_api, **changes) -> dict:
    return {
        "provider": "twilio",
        "base_url": twilio_api.url,
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_number": SENDER,
        "content_sids": {"order_shipped": CONTENT_SID},
        **changes,
    }


def _meta_config(meta_api, **changes) -> dict:
    return {
        "provider": "meta",
        "base_url": meta_api.url,
        "phone_number_id": fake_meta.PHONE_NUMBER_ID,
        "access_token": fake_meta.ACCESS_TOKEN,
        "app_secret": fake_meta.APP_SECRET,
        "verify_token": fake_meta.VERIFY_TOKEN,
        **changes,
    }


def _save(workspace, config: dict):
    return channel_settings_save(
        workspace=workspace, channel="whatsapp", config=config, context=SETUP
    )


# --------------------------------------------------------------------------- Twilio


def test_twilio_sends_the_content_sid_and_variables_to_whatsapp_addresses(
    workspace, twilio_api, template
):
    row = _save(workspace, _twilio_config(twilio_api))
    message = _message(template, _person(workspace, "ada", "+1 415 555 0123"), "m:1")
    assert messages_send(message_ids=[message.pk]) == {"sent": 1}
    [request] = twilio_api.received
    assert request.form == {
        "To": f"whatsapp:{ADA}",
        "From": f"whatsapp:{SENDER}",
        "ContentSid": CONTENT_SID,
        "ContentVariables": '{"1": "Ada", "2": "A-1042"}',
        "StatusCallback": _hook(row),
    }
    assert json.loads(request.form["ContentVariables"]) == {"1": "Ada", "2": "A-1042"}
    [accepted] = twilio_api.sent
    message.refresh_from_db()
    assert (message.status, message.provider_message_id, message.attempts) == (
        "sent", accepted["sid"], 1,
    )  # fmt: skip
    assert messages_send(message_ids=[message.pk]) == {}
    assert len(twilio_api.received) == 1


def test_twilio_a_translation_has_its_own_content_sid(workspace, twilio_api, template):
    german = "HX" + "fedcba9876543210" * 2
    _save(
        workspace,
        _twilio_config(
            twilio_api, content_sids={"order_shipped": CONTENT_SID, "order_shipped:en_US": german}
        ),
    )
    message = _message(template, _person(workspace, "ada", ADA), "m:1")
    assert messages_send(message_ids=[message.pk]) == {"sent": 1}
    assert [r.form["ContentSid"] for r in twilio_api.received] == [german]


def test_twilio_a_template_without_a_content_sid_fails_for_good_and_sends_nothing(
    workspace, twilio_api, template
):
    _save(workspace, _twilio_config(twilio_api, content_sids={"welcome": CONTENT_SID}))
    message = _message(template, _person(workspace, "ada", ADA), "m:1")
    assert messages_send(message_ids=[message.pk], now=T0) == {"failed": 1}
    message.refresh_from_db()
    assert (message.status, message.reason) == ("failed", "provider_refused")
    assert message.last_error == (
        "the WhatsApp template 'order_shipped' has no Twilio Content SID: add it to the "
        "channel's content_sids"
    )
    assert messages_send(message_ids=[message.pk], now=T0 + timedelta(hours=3)) == {}
    assert twilio_api.received == []
    assert not MessageEvent.objects.filter(message=message, kind="retried").exists()


def test_twilio_a_signed_read_status_opens_the_message(workspace, twilio_api, template):
    row = _save(workspace, _twilio_config(twilio_api))
    message = _message(template, _person(workspace, "ada", ADA), "m:1")
    assert messages_send(message_ids=[message.pk]) == {"sent": 1}
    message.refresh_from_db()
    url = _hook(row)

    def post(status: str, signature: str | None = None):
        form = {
            "AccountSid": ACCOUNT_SID, "From": f"whatsapp:{SENDER}", "To": f"whatsapp:{ADA}",
            "MessageSid": message.provider_message_id, "MessageStatus": status,
            "ChannelPrefix": "whatsapp", "ApiVersion": "2010-04-01",
        }  # fmt: skip
        return Client().post(
            urlsplit(url).path,
            data=urlencode(form),
            content_type="application/x-www-form-urlencoded",
            HTTP_X_TWILIO_SIGNATURE=signature or twilio_api.sign(url, form),
        )

    assert post("read", signature="bm90IFR3aWxpbw==").status_code == 403
    message.refresh_from_db()
    assert (message.status, message.opened_at) == ("sent", None)
    assert post("read").status_code == 200
    message.refresh_from_db()
    assert message.status == "opened" and message.opened_at is not None
    assert MessageEvent.objects.filter(message=message, kind="opened").count() == 1


# --------------------------------------------------------------------------- Meta sends


def test_meta_gets_the_exact_template_json_and_bearer_token(workspace, meta_api, template):
    _save(workspace, _meta_config(meta_api))
    message = _message(template, _person(workspace, "ada", "+1 (415) 555-0123"), "m:1")
    assert messages_send(message_ids=[message.pk]) == {"sent": 1}
    [request] = meta_api.received
    assert request.path == f"/v21.0/{fake_meta.PHONE_NUMBER_ID}/messages"
    assert request.headers["Authorization"] == f"Bearer {fake_meta.ACCESS_TOKEN}"
    assert request.json == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "14155550123",
        "type": "template",
        "template": {
            "name": "order_shipped",
            "language": {"code": "en_US"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Ada"},
                        {"type": "text", "text": "A-1042"},
                    ],
                }
            ],
        },
    }
    [accepted] = meta_api.sent
    assert accepted["id"].startswith("wamid.")
    message.refresh_from_db()
    assert (message.status, message.provider_message_id, message.attempts) == (
        "sent", accepted["id"], 1,
    )  # fmt: skip


def test_meta_undeliverable_fails_for_good(workspace, meta_api, template):
    _save(workspace, _meta_config(meta_api))
    meta_api.refuse["14155550123"] = 131026
    message = _message(template, _person(workspace, "ada", ADA), "m:1")
    assert messages_send(message_ids=[message.pk], now=T0) == {"failed": 1}
    message.refresh_from_db()
    assert (message.status, message.reason) == ("failed", "provider_refused")
    assert message.last_error == "Meta 400 code 131026: (#131026) Message Undeliverable."
    assert messages_send(message_ids=[message.pk], now=T0 + timedelta(hours=3)) == {}
    assert len(meta_api.received) == 1
    assert meta_api.sent == []


@pytest.mark.parametrize(("status", "code"), [(429, 130429), (500, 131000), (503, 131000)])
def test_meta_rate_limits_and_outages_are_retried(workspace, meta_api, template, status, code):
    _save(workspace, _meta_config(meta_api))
    meta_api.answers = [status]
    message = _message(template, _person(workspace, "ada", ADA), "m:1")
    assert messages_send(message_ids=[message.pk], now=T0) == {"retry": 1}
    message.refresh_from_db()
    assert (message.status, message.attempts, message.next_attempt_at) == (
        "queued", 1, T0 + timedelta(seconds=RETRY_DELAYS[0]),
    )  # fmt: skip
    assert message.last_error.startswith(f"Meta {status} code {code}: ")
    assert meta_api.sent == []
    assert messages_send(message_ids=[message.pk], now=T0 + timedelta(seconds=30)) == {}
    later = T0 + timedelta(seconds=RETRY_DELAYS[0] + 1)
    assert messages_send(message_ids=[message.pk], now=later) == {"sent": 1}
    message.refresh_from_db()
    [accepted] = meta_api.sent
    assert (message.status, message.attempts, message.provider_message_id) == (
        "sent", 2, accepted["id"],
    )  # fmt: skip
    assert len(meta_api.received) == 2


def test_meta_the_same_job_run_twice_sends_once(workspace, meta_api, template):
    _save(workspace, _meta_config(meta_api))
    message = _message(template, _person(workspace, "ada", ADA), "m:1")
    assert messages_send(message_ids=[message.pk]) == {"sent": 1}
    assert messages_send(message_ids=[message.pk]) == {}
    assert len(meta_api.received) == 1 and len(meta_api.sent) == 1


def test_meta_a_wrong_access_token_is_ours_to_fix_and_retried(workspace, meta_api, template):
    _save(workspace, _meta_config(meta_api, access_token="EAAG" + "y" * 40))
    message = _message(template, _person(workspace, "ada", ADA), "m:1")
    assert messages_send(message_ids=[message.pk], now=T0) == {"retry": 1}
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("queued", 1)
    assert message.last_error == (
        "Meta 401 code 190: Invalid OAuth access token - Cannot parse access token"
    )
    assert meta_api.received == []  # refused before it was read


# --------------------------------------------------------------------------- Meta hooks


def _hook_path(row) -> str:
    path = urlsplit(_hook(row)).path
    assert path == f"/hooks/whatsapp/{row.hook_token}/"
    return path


def _post(meta_api, row, payload: dict, *, signature: str | None = None):
    body = json.dumps(payload).encode()
    headers = {}
    if signature != "":
        headers["HTTP_X_HUB_SIGNATURE_256"] = signature or meta_api.sign(body)
    return Client().post(_hook_path(row), data=body, content_type="application/json", **headers)


def _change(value: dict) -> dict:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881",
                         "phone_number_id": fake_meta.PHONE_NUMBER_ID},
            **value,
        }}]}],
    }  # fmt: skip


def _statuses(message: Message, status: str, timestamp: int, errors=None) -> dict:
    item = {
        "id": message.provider_message_id,
        "status": status,
        "timestamp": str(timestamp),
        "recipient_id": "14155550123",
    }
    if errors:
        item["errors"] = errors
    return _change({"statuses": [item]})


def _sent(workspace, template, user_id: str, phone: str) -> Message:
    message = _message(template, _person(workspace, user_id, phone), f"m:{user_id}")
    assert messages_send(message_ids=[message.pk]) == {"sent": 1}
    message.refresh_from_db()
    return message


def test_meta_verify_handshake_answers_the_challenge_only_with_our_token(workspace, meta_api):
    row = _save(workspace, _meta_config(meta_api))
    path = _hook_path(row)
    good = {"hub.mode": "subscribe", "hub.verify_token": fake_meta.VERIFY_TOKEN,
            "hub.challenge": "1158201444"}  # fmt: skip
    response = Client().get(path, good)
    assert (response.status_code, response["Content-Type"], response.content) == (
        200, "text/plain", b"1158201444",
    )  # fmt: skip
    for query in (
        {**good, "hub.verify_token": "someone-else"},
        {**good, "hub.verify_token": ""},
        {"hub.mode": "subscribe", "hub.challenge": "1158201444"},
        {**good, "hub.mode": "unsubscribe"},
    ):
        response = Client().get(path, query)
        assert response.status_code == 403
        assert b"1158201444" not in response.content


def test_meta_signed_statuses_move_the_message_and_bad_signatures_change_nothing(
    workspace, meta_api, template
):
    row = _save(workspace, _meta_config(meta_api))
    ada = _sent(workspace, template, "ada", ADA)
    delivered_at = int(T0.timestamp())
    delivered = _statuses(ada, "delivered", delivered_at)
    wrong = "sha256=" + "0" * 64
    other_secret = FakeMeta.sign(meta_api, b"")  # shape right, body wrong
    for signature in ("", wrong, other_secret, "sha1=abc"):
        assert _post(meta_api, row, delivered, signature=signature).status_code == 403
    ada.refresh_from_db()
    assert (ada.status, ada.delivered_at) == ("sent", None)
    assert (
        not MessageEvent.objects.filter(message=ada)
        .exclude(kind__in=["sent"])
        .exclude(kind="queued")
        .exists()
    )

    assert _post(meta_api, row, _statuses(ada, "sent", delivered_at - 5)).status_code == 200
    ada.refresh_from_db()
    assert ada.status == "sent"
    assert _post(meta_api, row, delivered).status_code == 200
    ada.refresh_from_db()
    assert (ada.status, ada.delivered_at) == ("delivered", T0)
    assert _post(meta_api, row, _statuses(ada, "read", delivered_at + 60)).status_code == 200
    ada.refresh_from_db()
    assert (ada.status, ada.opened_at) == ("opened", T0 + timedelta(seconds=60))
    # A repeat changes nothing.
    assert _post(meta_api, row, delivered).status_code == 200
    assert MessageEvent.objects.filter(message=ada, kind="delivered").count() == 1
    assert MessageEvent.objects.filter(message=ada, kind="opened").count() == 1


def test_meta_a_report_for_another_number_of_the_app_is_not_ours(workspace, meta_api, template):
    row = _save(workspace, _meta_config(meta_api))
    ada = _sent(workspace, template, "ada", ADA)
    payload = _statuses(ada, "delivered", int(T0.timestamp()))
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"
    assert _post(meta_api, row, payload).status_code == 200
    ada.refresh_from_db()
    assert ada.status == "sent"


def test_meta_failed_statuses_bounce_and_undeliverable_numbers_are_suppressed(
    workspace, meta_api, template
):
    row = _save(workspace, _meta_config(meta_api))
    dead = _sent(workspace, template, "dee", "+14155550150")
    busy = _sent(workspace, template, "bea", "+14155550151")
    at = int(T0.timestamp())
    undeliverable = [{"code": 131026, "title": "Message undeliverable"}]
    limited = [{"code": 131049, "title": "Meta chose not to deliver"}]
    assert _post(meta_api, row, _statuses(dead, "failed", at, undeliverable)).status_code == 200
    assert _post(meta_api, row, _statuses(busy, "failed", at, limited)).status_code == 200
    rows = {m.pk: m for m in Message.objects.all()}
    assert [(rows[m.pk].status, rows[m.pk].reason) for m in (dead, busy)] == [
        ("bounced", "WhatsApp failed 131026: Message undeliverable"),
        ("bounced", "WhatsApp failed 131049: Meta chose not to deliver"),
    ]
    assert list(
        Suppression.objects.filter(workspace=workspace).values_list("channel", "address", "reason")
    ) == [("whatsapp", "+14155550150", "bounce")]
    again = [_message(template, m.profile, f"again:{m.pk}") for m in (dead, busy)]
    assert messages_send(message_ids=[m.pk for m in again]) == {"suppressed": 1, "sent": 1}
    assert [r.json["to"] for r in meta_api.received] == [
        "14155550150", "14155550151", "14155550151",
    ]  # fmt: skip


def _inbound(text: str, sender: str = "14155550123") -> dict:
    return _change({
        "contacts": [{"profile": {"name": "Ada"}, "wa_id": sender}],
        "messages": [{"from": sender, "id": "wamid.HBgLMTQxNTU1NTAxMjM", "timestamp": "1795000000",
                      "type": "text", "text": {"body": text}}],
    })  # fmt: skip


def test_meta_an_inbound_stop_unsubscribes_and_the_next_message_is_suppressed(
    workspace, meta_api, template
):
    row = _save(workspace, _meta_config(meta_api))
    ada = _person(workspace, "ada", ADA)
    bo = _person(workspace, "bo", "+14155550199")
    # Unsigned or mis-signed, a STOP is refused and changes nothing.
    assert _post(meta_api, row, _inbound("STOP"), signature="").status_code == 403
    assert _post(meta_api, row, _inbound("STOP"), signature="sha256=" + "a" * 64).status_code == 403
    assert not Consent.objects.exists()
    # Not the keyword alone: nothing.
    assert _post(meta_api, row, _inbound("stop please")).status_code == 200
    assert not Consent.objects.exists()

    response = _post(meta_api, row, _inbound(" Stop "))
    assert (response.status_code, response.content) == (200, b"")
    consent = Consent.objects.get(profile=ada, channel="whatsapp")
    assert (consent.status, consent.source) == ("unsubscribed", "sms_keyword")
    assert not Consent.objects.filter(profile=bo).exists()
    assert not Consent.objects.filter(profile=ada, channel="sms").exists()
    blocked = _message(template, ada, "m:1")
    assert messages_send(message_ids=[blocked.pk]) == {"suppressed": 1}
    blocked.refresh_from_db()
    assert (blocked.status, blocked.reason) == ("suppressed", "unsubscribed")
    assert meta_api.received == []

    assert _post(meta_api, row, _inbound("START")).status_code == 200
    assert Consent.objects.get(profile=ada, channel="whatsapp").status == "subscribed"
    allowed = _message(template, ada, "m:2")
    assert messages_send(message_ids=[allowed.pk]) == {"sent": 1}
    assert [r.json["to"] for r in meta_api.received] == ["14155550123"]


def test_meta_a_body_that_is_not_a_whatsapp_webhook_is_refused(workspace, meta_api):
    row = _save(workspace, _meta_config(meta_api))
    response = _post(meta_api, row, {"object": "page", "entry": []})
    assert response.status_code == 400
    assert b"whatsapp_business_account" in response.content


# --------------------------------------------------------------------------- settings


def test_settings_that_cannot_work_are_refused_naming_the_field(workspace, meta_api, twilio_api):
    meta = _meta_config(meta_api)
    twilio = _twilio_config(twilio_api)
    cases = [
        ({**meta, "phone_number_id": ""}, "phone_number_id"),
        ({**meta, "phone_number_id": "+1 555"}, "phone_number_id"),
        ({**meta, "access_token": ""}, "access_token"),
        ({**meta, "app_secret": ""}, "app_secret"),
        ({**meta, "verify_token": ""}, "verify_token"),
        ({**meta, "api_version": "21"}, "api_version"),
        ({**meta, "base_url": "graph.example"}, "base_url"),
        ({**twilio, "account_sid": "AC123"}, "account_sid"),
        ({**twilio, "auth_token": ""}, "auth_token"),
        ({**twilio, "from_number": ""}, "from_number or messaging_service_sid"),
        ({**twilio, "from_number": "0171 5550123"}, "from_number"),
        ({**twilio, "content_sids": {"order_shipped": "HX12"}}, "content_sids"),
        ({**twilio, "provider": "telegram"}, "provider"),
    ]
    for config, named in cases:
        with pytest.raises(ValidationError, match=named):
            _save(workspace, config)
    assert not workspace.channel_settings.exists()


def test_without_settings_messages_fail_and_nothing_is_sent(workspace, meta_api, template):
    message = _message(template, _person(workspace, "ada", ADA), "m:1")
    assert messages_send(message_ids=[message.pk]) == {"failed": 1}
    message.refresh_from_db()
    assert (message.status, message.reason) == ("failed", "channel_not_configured")
    assert meta_api.received == []
