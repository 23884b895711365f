"""SMS through a local Twilio (tests/delivery/fake_twilio.py): a journey's text arrives
with its exact body and the hook URL as its status callback; invalid numbers fail for
good, rate limits and outages are retried; signed status callbacks move messages and
a bad signature changes nothing; STOP, START and HELP texted in end to end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit

import pytest
import time_machine
from django.test import Client
from pydantic import ValidationError

from content import services as content_services
from delivery.models import Consent, Message, MessageEvent, Suppression
from delivery.services import RETRY_DELAYS, channel_settings_save, messages_enqueue, messages_send
from delivery.tokens import hook_url
from engagement_site.workspaces.services import AuditContext
from journeys import services as journey_services
from segments.models import Profile
from tests.delivery.conftest import _one_step_journey
from tests.delivery.fake_twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.delivery.test_email import _work
from tests.journeys.test_executor import EDITOR

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
SETUP = AuditContext.system("test")
SENDER = "+15005550006"  # Twilio's test number that may send
ADA = "+14155550123"
HELP = "Acme alerts & offers: reply STOP to stop, START to resume. Help: acme.example/help"


@pytest.fixture(autouse=True)
def sms_registered(add_channel):
    add_channel("delivery.channels.sms.SmsChannel")


@pytest.fixture
def sms_settings(workspace, twilio_api):
    return channel_settings_save(
        workspace=workspace,
        channel="sms",
        config={
            "base_url": twilio_api.url,
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "from_number": SENDER,
            "help_reply": HELP,
        },
        context=SETUP,
    )


@pytest.fixture
def sms_template(workspace):
    return content_services.template_create(
        workspace=workspace, name="Code", channel="sms",
        content={"default": {"body": "Hi {{ profile.first_name }}, your code is 4417."}},
        context=EDITOR,
    )  # fmt: skip


def _person(workspace, user_id: str, phone: str) -> Profile:
    """A profile with this phone number, first name from the user id."""
    return Profile.objects.create(
        workspace=workspace, user_id=user_id, phone=phone, traits={"first_name": user_id.title()}
    )


def _message(template, profile, key: str) -> Message:
    """A queued message of the template's channel to the profile, not yet sent."""
    return Message.objects.create(
        workspace_id=profile.workspace_id,
        idempotency_key=key,
        profile=profile,
        channel=template.channel,
        template_version=template.current_version,
    )


def _hook(settings_row) -> str:
    """The hook URL that the settings row's provider calls back."""
    return hook_url(channel=settings_row.channel, token=settings_row.hook_token)


def _callback(twilio_api, settings_row, form: dict, *, signature: str | None = None):
    """POST to the hook as Twilio does: form-encoded, signed over URL and parameters."""
    url = _hook(settings_row)
    headers = {}
    if signature != "":
        headers["HTTP_X_TWILIO_SIGNATURE"] = signature or twilio_api.sign(url, form)
    return Client().post(
        urlsplit(url).path,
        data=urlencode(form),
        content_type="application/x-www-form-urlencoded",
        **headers,
    )


def test_a_journey_text_arrives_with_its_exact_body_once(
    workspace, twilio_api, sms_settings, sms_template
):
    journey = _one_step_journey(
        workspace, "Codes", {"kind": "message", "channel": "sms", "template_id": sms_template.pk}
    )
    ada = _person(workspace, "ada", "+1 (415) 555-0123")
    with time_machine.travel(T0, tick=False):
        journey_services.journey_enroll(journey=journey, profile_id=ada.pk, context=EDITOR)
        _work()
    [request] = twilio_api.received
    assert request.form == {
        "To": ADA,
        "From": SENDER,
        "Body": "Hi Ada, your code is 4417.",
        "StatusCallback": _hook(sms_settings),
    }
    message = Message.objects.get(profile=ada)
    [accepted] = twilio_api.sent
    assert (message.status, message.provider_message_id, message.attempts) == (
        "sent", accepted["sid"], 1,
    )  # fmt: skip
    assert message.provider_message_id.startswith("SM") and len(message.provider_message_id) == 34
    # Queued again, or sent again by hand: Twilio hears of it once.
    messages_enqueue([message.pk], channel="sms")
    _work()
    assert messages_send(message_ids=[message.pk]) == {}
    assert len(twilio_api.received) == 1


def test_a_messaging_service_sends_instead_of_a_number(workspace, twilio_api, sms_template):
    service = "MG" + "ab" * 16
    channel_settings_save(
        workspace=workspace, channel="sms",
        config={"base_url": twilio_api.url, "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN,
                "messaging_service_sid": service},
        context=SETUP,
    )  # fmt: skip
    message = _message(sms_template, _person(workspace, "ada", ADA), "m:1")
    assert messages_send(message_ids=[message.pk]) == {"sent": 1}
    [request] = twilio_api.received
    assert request.form["MessagingServiceSid"] == service and "From" not in request.form


def test_invalid_numbers_fail_for_good_and_are_not_retried(
    workspace, twilio_api, sms_settings, sms_template
):
    invalid = _message(sms_template, _person(workspace, "ivy", "+15005550001"), "m:ivy")
    unroutable = _message(sms_template, _person(workspace, "una", "+15005550002"), "m:una")
    local = _message(sms_template, _person(workspace, "lou", "0171 555 0123"), "m:lou")
    with time_machine.travel(T0, tick=False):
        counts = messages_send(message_ids=[invalid.pk, unroutable.pk, local.pk], now=T0)
    assert counts == {"failed": 3}
    rows = {m.pk: m for m in Message.objects.all()}
    assert [(rows[m.pk].status, rows[m.pk].reason) for m in (invalid, unroutable, local)] == [
        ("failed", "provider_refused")
    ] * 3
    assert rows[invalid.pk].last_error == (
        "400 Twilio 21211: The 'To' number +15005550001 is not a valid phone number."
    )
    assert rows[unroutable.pk].last_error.startswith("400 Twilio 21612: ")
    assert rows[local.pk].last_error == (
        "'0171 555 0123' is not a phone number in E.164 form (+, country code, number)"
    )
    assert [r.form["To"] for r in twilio_api.received] == ["+15005550001", "+15005550002"]
    assert twilio_api.sent == []
    later = T0 + timedelta(hours=3)
    assert messages_send(message_ids=[m.pk for m in rows.values()], now=later) == {}
    assert len(twilio_api.received) == 2
    assert not MessageEvent.objects.filter(kind="retried").exists()


@pytest.mark.parametrize("status", [429, 503])
def test_rate_limits_and_outages_are_retried(
    workspace, twilio_api, sms_settings, sms_template, status
):
    twilio_api.answers = [status]
    message = _message(sms_template, _person(workspace, "ada", ADA), "m:1")
    assert messages_send(message_ids=[message.pk], now=T0) == {"retry": 1}
    message.refresh_from_db()
    assert (message.status, message.attempts, message.next_attempt_at) == (
        "queued", 1, T0 + timedelta(seconds=RETRY_DELAYS[0]),
    )  # fmt: skip
    code = {429: 20429, 503: 20503}[status]
    assert message.last_error.startswith(f"{status} Twilio {code}: ")
    assert twilio_api.sent == []
    # Not before its time; then once.
    assert messages_send(message_ids=[message.pk], now=T0 + timedelta(seconds=30)) == {}
    assert messages_send(message_ids=[message.pk], now=T0 + timedelta(seconds=61)) == {"sent": 1}
    message.refresh_from_db()
    [accepted] = twilio_api.sent
    assert (message.status, message.attempts, message.provider_message_id) == (
        "sent", 2, accepted["sid"],
    )  # fmt: skip
    assert len(twilio_api.received) == 2


def test_refused_credentials_are_ours_to_fix_and_retried(workspace, twilio_api, sms_template):
    channel_settings_save(
        workspace=workspace, channel="sms",
        config={"base_url": twilio_api.url, "account_sid": ACCOUNT_SID,
                "auth_token": "0" * 32, "from_number": SENDER},
        context=SETUP,
    )  # fmt: skip
    message = _message(sms_template, _person(workspace, "ada", ADA), "m:1")
    assert messages_send(message_ids=[message.pk], now=T0) == {"retry": 1}
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("queued", 1)
    assert message.last_error == "401 Twilio 20003: Authenticate"
    retried = MessageEvent.objects.get(message=message, kind="retried")
    assert retried.data == {
        "attempt": 1,
        "error": "401 Twilio 20003: Authenticate",
        "code": "20003",
    }
    assert twilio_api.received == []  # refused before it was read


def test_a_number_that_texted_stop_to_twilio_is_unsubscribed(
    workspace, twilio_api, sms_settings, sms_template
):
    opted_out = _person(workspace, "otto", "+15005550004")
    first = _message(sms_template, opted_out, "m:1")
    assert messages_send(message_ids=[first.pk]) == {"failed": 1}
    first.refresh_from_db()
    assert (first.status, first.reason) == ("failed", "provider_refused")
    assert first.last_error == "400 Twilio 21610: Attempt to send to unsubscribed recipient"
    failed = MessageEvent.objects.get(message=first, kind="failed")
    assert failed.data == {"reason": "provider_refused", "code": "21610"}
    consent = Consent.objects.get(profile=opted_out, channel="sms")
    assert (consent.status, consent.source) == ("unsubscribed", "sms_keyword")
    second = _message(sms_template, opted_out, "m:2")
    assert messages_send(message_ids=[second.pk]) == {"suppressed": 1}
    second.refresh_from_db()
    assert (second.status, second.reason) == ("suppressed", "unsubscribed")
    assert len(twilio_api.received) == 1


def test_without_settings_messages_fail_and_nothing_is_sent(workspace, twilio_api, sms_template):
    message = _message(sms_template, _person(workspace, "ada", ADA), "m:1")
    assert messages_send(message_ids=[message.pk]) == {"failed": 1}
    message.refresh_from_db()
    assert (message.status, message.reason) == ("failed", "channel_not_configured")
    assert message.last_error == "the sms channel has no settings yet"
    assert twilio_api.received == []


def test_settings_that_cannot_work_are_refused_naming_the_field(workspace):
    base = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from_number": SENDER}
    cases = [
        ({**base, "account_sid": "AC123"}, "account_sid"),
        ({**base, "from_number": "0171 5550123"}, "from_number"),
        ({**base, "from_number": ""}, "set from_number or messaging_service_sid"),
        ({**base, "messaging_service_sid": "MG1"}, "messaging_service_sid"),
        ({**base, "base_url": "api.twilio.com"}, "base_url"),
        ({**base, "auth_token": ""}, "auth_token"),
    ]
    for config, named in cases:
        with pytest.raises(ValidationError, match=named):
            channel_settings_save(workspace=workspace, channel="sms", config=config, context=SETUP)
    assert not workspace.channel_settings.exists()


# --------------------------------------------------------------------------- callbacks


def _sent(workspace, template, user_id: str, phone: str) -> Message:
    message = _message(template, _person(workspace, user_id, phone), f"m:{user_id}")
    assert messages_send(message_ids=[message.pk]) == {"sent": 1}
    message.refresh_from_db()
    return message


def _status(message: Message, status: str, error_code: str = "") -> dict:
    form = {
        "AccountSid": ACCOUNT_SID, "From": SENDER, "To": message.rendered.get("to", ADA),
        "MessageSid": message.provider_message_id, "SmsSid": message.provider_message_id,
        "MessageStatus": status, "SmsStatus": status, "ApiVersion": "2010-04-01",
    }  # fmt: skip
    if error_code:
        form["ErrorCode"] = error_code
    return form


def test_signed_status_callbacks_move_messages_and_bad_ones_change_nothing(
    workspace, twilio_api, sms_settings, sms_template
):
    ada = _sent(workspace, sms_template, "ada", ADA)
    forged = _status(ada, "delivered")
    for signature in ("", "c2lnbmVkIGJ5IHNvbWVib2R5IGVsc2U="):
        response = _callback(twilio_api, sms_settings, forged, signature=signature)
        assert response.status_code == 403
    # Signed over another URL (another workspace's hook) is not this hook's.
    other = twilio_api.sign("http://127.0.0.1:8000/hooks/sms/another/", forged)
    assert _callback(twilio_api, sms_settings, forged, signature=other).status_code == 403
    ada.refresh_from_db()
    assert (ada.status, ada.delivered_at) == ("sent", None)

    assert _callback(twilio_api, sms_settings, _status(ada, "sent")).status_code == 200
    ada.refresh_from_db()
    assert ada.status == "sent"
    response = _callback(twilio_api, sms_settings, _status(ada, "delivered"))
    assert (response.status_code, response.content) == (200, b"")
    ada.refresh_from_db()
    assert ada.status == "delivered" and ada.delivered_at is not None
    # A repeat changes nothing and records nothing twice.
    assert _callback(twilio_api, sms_settings, _status(ada, "delivered")).status_code == 200
    assert MessageEvent.objects.filter(message=ada, kind="delivered").count() == 1


def test_undelivered_numbers_bounce_and_only_dead_ones_are_suppressed(
    workspace, twilio_api, sms_settings, sms_template
):
    dead = _sent(workspace, sms_template, "dee", "+14155550150")
    off = _sent(workspace, sms_template, "ola", "+14155550151")
    landline = _sent(workspace, sms_template, "lan", "+14155550152")
    for message, status, code in (
        (dead, "undelivered", "30005"),
        (off, "undelivered", "30003"),
        (landline, "failed", "30006"),
    ):
        assert (
            _callback(twilio_api, sms_settings, _status(message, status, code)).status_code == 200
        )
    rows = {m.pk: m for m in Message.objects.all()}
    assert [(rows[m.pk].status, rows[m.pk].reason) for m in (dead, off, landline)] == [
        ("bounced", "Twilio error 30005"),
        ("bounced", "Twilio error 30003"),
        ("bounced", "Twilio error 30006"),
    ]
    assert sorted(
        Suppression.objects.filter(workspace=workspace).values_list("channel", "address", "reason")
    ) == [("sms", "+14155550150", "bounce"), ("sms", "+14155550152", "bounce")]
    # The suppressed number gets nothing more; the one that was off does.
    again = [_message(sms_template, m.profile, f"again:{m.pk}") for m in (dead, off)]
    assert messages_send(message_ids=[m.pk for m in again]) == {"suppressed": 1, "sent": 1}
    assert [r.form["To"] for r in twilio_api.received][-1] == "+14155550151"
    assert Message.objects.get(pk=again[0].pk).reason == "suppressed_bounce"


# --------------------------------------------------------------------------- keywords


def _text(twilio_api, sms_settings, body: str, sender: str = ADA):
    form = {
        "AccountSid": ACCOUNT_SID, "MessageSid": "SM" + "9" * 32, "SmsMessageSid": "SM" + "9" * 32,
        "From": sender, "To": SENDER, "Body": body, "NumMedia": "0", "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }  # fmt: skip
    return _callback(twilio_api, sms_settings, form)


EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'


def test_stop_start_and_help_texted_in(workspace, twilio_api, sms_settings, sms_template):
    ada = _person(workspace, "ada", ADA)
    bo = _person(workspace, "bo", "+14155550199")

    response = _text(twilio_api, sms_settings, "  stop ")
    assert (response.status_code, response["Content-Type"], response.content) == (
        200, "application/xml", EMPTY_TWIML,
    )  # fmt: skip
    consent = Consent.objects.get(profile=ada, channel="sms")
    assert (consent.status, consent.source) == ("unsubscribed", "sms_keyword")
    assert not Consent.objects.filter(profile=bo).exists()
    blocked = _message(sms_template, ada, "m:1")
    assert messages_send(message_ids=[blocked.pk]) == {"suppressed": 1}
    assert Message.objects.get(pk=blocked.pk).reason == "unsubscribed"
    assert twilio_api.received == []
    # The STOP binds the number: a profile made later with it is not texted, and no
    # form or app can subscribe it again; only START does.
    assert list(Suppression.objects.values_list("address", "reason")) == [(ADA, "keyword")]
    twin = _person(workspace, "ada-2", ADA)
    later = _message(sms_template, twin, "m:twin")
    assert messages_send(message_ids=[later.pk]) == {"suppressed": 1}
    assert Message.objects.get(pk=later.pk).reason == "suppressed_keyword"
    from delivery.services import ConsentRefused, consent_request

    with pytest.raises(ConsentRefused, match="texted STOP"):
        consent_request(profile=ada, channel="sms", source="api")
    assert Consent.objects.get(profile=ada, channel="sms").status == "unsubscribed"

    # Not the keyword alone: nothing changes.
    assert _text(twilio_api, sms_settings, "STOP please").content == EMPTY_TWIML
    assert _text(twilio_api, sms_settings, "START now").content == EMPTY_TWIML
    assert Consent.objects.get(profile=ada, channel="sms").status == "unsubscribed"

    assert _text(twilio_api, sms_settings, "Start").content == EMPTY_TWIML
    assert Consent.objects.get(profile=ada, channel="sms").status == "subscribed"
    assert not Suppression.objects.exists()
    allowed = _message(sms_template, ada, "m:2")
    assert messages_send(message_ids=[allowed.pk]) == {"sent": 1}
    assert [r.form["To"] for r in twilio_api.received] == [ADA]

    response = _text(twilio_api, sms_settings, "help")
    assert (response.status_code, response["Content-Type"], response.content) == (
        200, "application/xml",
        b'<?xml version="1.0" encoding="UTF-8"?><Response><Message>Acme alerts &amp; offers: '
        b"reply STOP to stop, START to resume. Help: acme.example/help</Message></Response>",
    )  # fmt: skip
    assert Consent.objects.get(profile=ada, channel="sms").status == "subscribed"

    # "STOP please" changed nothing for Bo either; an unsigned STOP is refused.
    form = {"MessageSid": "SM" + "8" * 32, "From": "+14155550199", "To": SENDER, "Body": "STOP"}
    assert _callback(twilio_api, sms_settings, form, signature="").status_code == 403
    assert not Consent.objects.filter(profile=bo).exists()


def test_stop_from_a_number_nobody_has_suppresses_it(
    workspace, twilio_api, sms_settings, sms_template
):
    assert _text(twilio_api, sms_settings, "STOP", sender="+14155550177").content == EMPTY_TWIML
    assert list(
        Suppression.objects.filter(workspace=workspace).values_list("address", "reason")
    ) == [("+14155550177", "keyword")]
    later = _message(sms_template, _person(workspace, "new", "+14155550177"), "m:new")
    assert messages_send(message_ids=[later.pk]) == {"suppressed": 1}
    assert twilio_api.received == []
