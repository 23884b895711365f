"""Double opt-in for email: a signup through `POST /api/v1/subscriptions` leaves the
answer pending and sends one confirmation email (to a real SMTP server); marketing
email waits for the click; a GET of the link (a mail scanner) confirms nobody, the
person's POST does; expired, forged and overtaken links change nothing; bad requests
are refused naming the field and create nobody."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client

from delivery.models import Consent, DeliverySettings, Message, Suppression, Topic
from delivery.services import messages_send
from engagement_site.workspaces.models import AuditLog
from engagement_site.workspaces.services import AuditContext, api_key_create
from segments.models import Profile
from tests.conftest import logged_in
from tests.delivery.conftest import _email_template
from tests.delivery.test_email import _work

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
SETUP = AuditContext.system("test")


@pytest.fixture
def double_opt_in(workspace):
    return DeliverySettings.objects.create(workspace=workspace, email_double_opt_in=True)


@pytest.fixture
def key(workspace) -> str:
    return api_key_create(workspace=workspace, kind="write", name="site", context=SETUP)[1]


def _subscribe(key: str, body: dict, method: str = "post"):
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    response = getattr(Client(), method)(
        "/api/v1/subscriptions", body, content_type="application/json", HTTP_AUTHORIZATION=auth
    )
    return response.status_code, response.json()


def _marketing_email(profile, template, at: datetime) -> Message:
    message = Message.objects.create(
        workspace_id=profile.workspace_id,
        idempotency_key=f"test:{profile.pk}:{at.isoformat()}",
        profile=profile,
        channel="email",
        template_version=template.current_version,
        created_at=at,
    )
    messages_send(message_ids=[message.pk], now=at)
    message.refresh_from_db()
    return message


def _confirm_path(received, settings) -> str:
    """The confirmation link in the email, followed through click tracking."""
    html = received.get_body(("html",)).get_content()
    tracked = re.search(r'href="([^"]*/t/c/[^"]+)"', html).group(1)
    redirect = Client().get(tracked.removeprefix(settings.PUBLIC_URL))
    assert redirect.status_code == 302
    assert redirect["Location"].startswith(f"{settings.PUBLIC_URL}/c/")
    return redirect["Location"].removeprefix(settings.PUBLIC_URL)


def test_a_signup_is_confirmed_by_the_click_and_only_then_gets_marketing(
    workspace, double_opt_in, key, smtp, settings
):
    template = _email_template(workspace)
    with time_machine.travel(T0, tick=False):
        assert _subscribe(key, {"userId": "ada", "email": "ada@example.com"}) == (
            200,
            {"success": True, "status": "pending"},
        )
        _work()
    ada = Profile.objects.get(workspace=workspace, user_id="ada")
    assert ada.email == "ada@example.com"
    Profile.objects.filter(pk=ada.pk).update(traits={"first_name": "Ada"})
    consent = Consent.objects.get(profile=ada, channel="email")
    assert (consent.status, consent.source) == ("pending", "api")
    [confirmation] = Message.objects.filter(profile=ada)
    assert (confirmation.purpose, confirmation.transactional, confirmation.status) == (
        "opt_in_confirmation",
        True,
        "sent",
    )
    [received] = smtp.received
    assert received["To"] == "ada@example.com"
    assert received["Subject"] == "Please confirm your subscription to Acme"
    # The default confirmation email was made in the content library and chosen.
    double_opt_in.refresh_from_db()
    assert double_opt_in.opt_in_template.name == "Confirm your subscription"
    assert confirmation.template_version.template_id == double_opt_in.opt_in_template_id

    # Marketing waits for the yes: suppressed with the reason, nothing sent.
    held = _marketing_email(ada, template, T0 + timedelta(minutes=1))
    assert (held.status, held.reason) == ("suppressed", "opt_in_pending")
    assert len(smtp.received) == 1

    # A GET of the link (a scanner, a preview) shows a button and confirms nobody.
    path = _confirm_path(received, settings)
    client = Client()
    with time_machine.travel(T0 + timedelta(minutes=2), tick=False):
        page = client.get(path)
        assert page.status_code == 200
        assert "Yes, subscribe me" in page.content.decode()
        assert Consent.objects.get(profile=ada, channel="email").status == "pending"

        response = client.post(path)
        assert response.status_code == 200 and "You are subscribed" in response.content.decode()
        consent = Consent.objects.get(profile=ada, channel="email")
        assert (consent.status, consent.source, consent.message_id) == (
            "subscribed",
            "double_opt_in",
            confirmation.pk,
        )
        assert client.post(path).status_code == 200  # a second click changes nothing
    statuses = [
        row.changes["status"]
        for row in AuditLog.objects.filter(workspace=workspace, action="consent.change").order_by(
            "sequence"
        )
    ]
    assert statuses == [["", "pending"], ["pending", "subscribed"]]

    sent = _marketing_email(ada, template, T0 + timedelta(minutes=5))
    assert sent.status == "sent"
    assert [m["Subject"] for m in smtp.received] == [
        "Please confirm your subscription to Acme",
        "Hello Ada",
    ]
    # Asking again once subscribed sends no new confirmation.
    assert _subscribe(key, {"userId": "ada"})[1]["status"] == "subscribed"
    _work()
    assert Message.objects.filter(profile=ada, purpose="opt_in_confirmation").count() == 1


def test_one_confirmation_per_ten_minutes_and_people_who_never_asked_get_none(
    workspace, double_opt_in, key, smtp
):
    with time_machine.travel(T0, tick=False):
        for _ in range(3):
            assert _subscribe(key, {"userId": "ada", "email": "ada@example.com"})[0] == 200
        _work()
    assert len(smtp.received) == 1
    with time_machine.travel(T0 + timedelta(minutes=11), tick=False):
        _subscribe(key, {"userId": "ada"})
        _work()
    assert len(smtp.received) == 2

    # A confirmation message for someone who is not pending does not go out.
    bob = Profile.objects.create(workspace=workspace, user_id="bob", email="bob@example.com")
    double_opt_in.refresh_from_db()
    stray = Message.objects.create(
        workspace=workspace,
        idempotency_key="stray",
        profile=bob,
        channel="email",
        template_version=double_opt_in.opt_in_template.current_version,
        purpose="opt_in_confirmation",
        transactional=True,
    )
    messages_send(message_ids=[stray.pk])
    stray.refresh_from_db()
    assert (stray.status, stray.reason) == ("suppressed", "not_pending")
    assert smtp.to("bob@example.com") == []


def test_expired_forged_and_overtaken_links_change_nothing(
    workspace, double_opt_in, key, smtp, settings
):
    with time_machine.travel(T0, tick=False):
        _subscribe(key, {"userId": "ada", "email": "ada@example.com"})
        _work()
        path = _confirm_path(smtp.received[0], settings)
    ada = Profile.objects.get(user_id="ada")
    client = Client()
    with time_machine.travel(T0 + timedelta(days=8), tick=False):
        expired = client.post(path)
    assert expired.status_code == 410 and "expired" in expired.content.decode()
    assert Consent.objects.get(profile=ada).status == "pending"

    token = path.split("/")[2]
    for forged in (token[:-1] + ("A" if token[-1] != "A" else "B"), "nonsense", "1:2:3"):
        assert client.post(f"/c/{forged}/").status_code == 404
    # An unsubscribe link is not a confirmation link.
    unsubscribe = str(smtp.received[0]["List-Unsubscribe"]).strip()[1:-1]
    assert client.post(f"/c/{unsubscribe.split('/')[-2]}/").status_code == 404

    # Unsubscribed after asking: the old link cannot subscribe them.
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        assert client.post(unsubscribe.removeprefix(settings.PUBLIC_URL)).status_code == 200
        overtaken = client.post(path)
    assert overtaken.status_code == 409
    assert "unsubscribed after asking" in overtaken.content.decode()
    assert Consent.objects.get(profile=ada).status == "unsubscribed"


def test_a_suppressed_address_gets_no_confirmation(workspace, double_opt_in, key, smtp):
    Suppression.objects.create(
        workspace=workspace, channel="email", address="ada@example.com", reason="bounce"
    )
    _subscribe(key, {"userId": "ada", "email": "Ada@Example.com"})
    _work()
    confirmation = Message.objects.get(purpose="opt_in_confirmation")
    assert (confirmation.status, confirmation.reason) == ("suppressed", "suppressed_bounce")
    assert smtp.received == []


def test_without_double_opt_in_a_signup_subscribes_at_once(workspace, key, smtp):
    Topic.objects.create(workspace=workspace, key="news", name="News", opt_in=True)
    assert _subscribe(key, {"userId": "ada", "email": "ada@example.com"}) == (
        200,
        {"success": True, "status": "subscribed"},
    )
    assert _subscribe(key, {"userId": "ada", "topic": "news"})[1]["status"] == "subscribed"
    _work()
    answers = set(Consent.objects.values_list("channel", "topic", "status", "source"))
    assert answers == {("email", "", "subscribed", "api"), ("email", "news", "subscribed", "api")}
    assert smtp.received == [] and not Message.objects.exists()

    assert _subscribe(key, {"userId": "ada", "topic": "news"}, method="delete") == (
        200,
        {"success": True, "status": "unsubscribed"},
    )
    assert Consent.objects.get(topic="news").status == "unsubscribed"
    # Leaving for someone unknown answers the same and creates nobody.
    assert _subscribe(key, {"userId": "nobody"}, method="delete")[0] == 200
    assert list(Profile.objects.values_list("user_id", flat=True)) == ["ada"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"email": "ada@example.com"}, "`userId` or `anonymousId` is required."),
        ({"userId": "ada", "email": "not an address"}, "`email` 'not an address' is not an email address."),
        ({"userId": "ada", "email": "ada@example.com", "channel": "fax"}, "`channel` 'fax' is not a delivery channel here."),
        ({"userId": "ada", "email": "ada@example.com", "topic": "nope"}, "`topic` 'nope' is not one of the workspace's topics."),
        ({"userId": "ada"}, "`email` is required: this person has no email address yet."),
        ({"userId": ["ada"], "email": "ada@example.com"}, "`userId` must be a string."),
    ],
)  # fmt: skip
def test_bad_requests_name_the_field_and_create_nobody(
    workspace, double_opt_in, key, smtp, body, message
):
    assert _subscribe(key, body) == (400, {"code": "invalid_subscription", "message": message})
    _work()
    assert not Profile.objects.exists() and not Consent.objects.exists()
    assert smtp.received == []


def test_a_bad_key_is_refused_and_other_methods_are_not_allowed(workspace, key):
    assert _subscribe("wk_nope", {"userId": "ada", "email": "a@example.com"}) == (
        401,
        {"code": "invalid_write_key", "message": "The write key is missing, unknown or revoked."},
    )
    status, document = _subscribe(key, {}, method="get")
    assert (status, document["code"]) == (405, "method_not_allowed")
    preflight = Client().options("/api/v1/subscriptions")
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Methods"] == "POST, DELETE, OPTIONS"
    assert not Profile.objects.exists()


def test_owners_turn_it_on_in_the_delivery_tab_with_their_own_template(workspace, owner):
    from content import services as content_services
    from tests.journeys.test_executor import EDITOR

    mine = content_services.template_create(
        workspace=workspace,
        name="Our confirmation",
        channel="email",
        content={
            "default": {"subject": "Confirm", "html": '<a href="{{ message.confirm_url }}">Yes</a>'}
        },
        context=EDITOR,
    )
    client = logged_in(owner)
    url = f"/w/{workspace.slug}/settings/delivery/"
    page = client.get(url).content.decode()
    assert "Double opt-in for email" in page and "Our confirmation" in page
    form = {
        "track_opens": "on",
        "track_clicks": "on",
        "utm_source": "engagement",
        "fallback_time_zone": "UTC",
        "email_double_opt_in": "on",
        "opt_in_template_id": str(mine.pk),
        "opt_in_channels": ["sms"],
    }
    assert client.post(url, form).status_code == 302
    row = DeliverySettings.objects.get(workspace=workspace)
    assert (row.email_double_opt_in, row.opt_in_template_id, row.opt_in_channels) == (
        True,
        mine.pk,
        ["sms"],
    )
    audit = AuditLog.objects.filter(workspace=workspace, object_type="delivery.DeliverySettings")
    assert audit.order_by("-sequence").first().changes["email_double_opt_in"] == [False, True]
    # A template of another channel (or workspace) is refused by the form.
    sms = content_services.template_create(
        workspace=workspace, name="Text", channel="sms", content={"default": {"body": "Hi"}},
        context=EDITOR,
    )  # fmt: skip
    refused = client.post(url, {**form, "opt_in_template_id": str(sms.pk)})
    assert refused.status_code == 400
    row.refresh_from_db()
    assert row.opt_in_template_id == mine.pk


def test_one_address_gets_one_confirmation_whatever_profiles_ask_for_it(
    workspace, double_opt_in, key, smtp
):
    for n in range(4):
        assert (
            _subscribe(key, {"anonymousId": f"visitor-{n}", "email": "ada@example.com"})[0] == 200
        )
    _work()
    assert len(smtp.to("ada@example.com")) == 1


def test_a_new_address_is_confirmed_anew_and_old_links_do_not_confirm_it(
    workspace, double_opt_in, key, smtp, settings
):
    with time_machine.travel(T0, tick=False):
        _subscribe(key, {"userId": "ada", "email": "ada@example.com"})
        _work()
        first_link = _confirm_path(smtp.received[0], settings)
        assert Client().post(first_link).status_code == 200
    ada = Profile.objects.get(user_id="ada")
    assert Consent.objects.get(profile=ada).status == "subscribed"
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        # Someone with the write key points Ada's profile at another address.
        assert _subscribe(key, {"userId": "ada", "email": "mallory@example.com"}) == (
            200,
            {"success": True, "status": "pending"},
        )
        _work()
        assert Consent.objects.get(profile=ada).status == "pending"
        assert len(smtp.to("mallory@example.com")) == 1
        # Ada's old link names her old address: it cannot confirm the new one.
        refused = Client().post(first_link)
        assert refused.status_code == 409
        assert "no longer uses" in refused.content.decode()
    assert Consent.objects.get(profile=ada).status == "pending"


def test_a_lost_confirmation_job_is_sent_by_the_scheduler(workspace, double_opt_in, key, smtp):
    import django_rq

    from delivery.services import scheduler_duty as delivery_duty

    with time_machine.travel(T0, tick=False):
        _subscribe(key, {"userId": "ada", "email": "ada@example.com"})
    django_rq.get_connection("default").flushdb()  # the queued job is lost with Redis
    with time_machine.travel(T0 + timedelta(seconds=30), tick=False):
        delivery_duty()
        _work()
    assert len(smtp.to("ada@example.com")) == 1
