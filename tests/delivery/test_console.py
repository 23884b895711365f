"""The delivery console: who may see and change what, the message log's filters, a
message's page, dead letters retried once through a real receiver or discarded, the
channel settings form built from a channel's Config (secrets encrypted, never shown),
the delivery tab (settings, caps, suppressions, signing secret), and the audit rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal
from uuid import uuid4

import django_rq
import pytest
import time_machine
from pydantic import Field, SecretStr

from content import services as content_services
from delivery.channels.base import CallbackResult, Channel, ChannelConfig, SendResult
from delivery.channels.webhook import signing_secret
from delivery.inbox import user_hash_secret
from delivery.models import (
    ChannelSettings,
    DeliverySettings,
    FrequencyCap,
    Message,
    MessageEvent,
    Suppression,
)
from delivery.services import RETRY_DELAYS
from engagement_site.workspaces.models import AuditLog
from engagement_site.workspaces.roles import Role
from journeys import services as journey_services
from segments.models import Profile
from tests.conftest import logged_in
from tests.delivery.conftest import _one_step_journey
from tests.delivery.test_email import _run_retries, _work
from tests.journeys.test_executor import EDITOR

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
API_KEY = "sk_live_plain_value_that_must_never_show"


# --------------------------------------------------------------------------- a channel with secrets


class ConsoleTestConfig(ChannelConfig):
    base_url: str = Field(description="The provider's API base URL")
    api_key: SecretStr
    region: Literal["eu", "us"] = "eu"
    timeout_seconds: int = Field(default=10, gt=0, le=60)
    sandbox: bool = False
    extra_headers: dict[str, str] = Field(default_factory=dict)


class ConsoleTestChannel(Channel):
    """Needs credentials and takes callbacks, like an SMS provider."""

    id = "consoletest"
    name = "Console test"
    Config = ConsoleTestConfig
    requires_settings = True

    def send(self, outgoing):
        return SendResult.permanent("not used here")

    def handle_callback(self, callback):
        return CallbackResult()


@pytest.fixture
def test_channel(add_channel):
    add_channel("tests.delivery.test_console.ConsoleTestChannel")
    return ConsoleTestChannel


# --------------------------------------------------------------------------- people and messages


@pytest.fixture
def marketer(make_member):
    return make_member(Role.MARKETER)


@pytest.fixture
def analyst(make_member):
    return make_member(Role.ANALYST)


@pytest.fixture
def admin(make_member):
    return make_member(Role.ADMIN)


def _profile(workspace, user_id: str, email: str = "") -> Profile:
    return Profile.objects.create(workspace=workspace, user_id=user_id, email=email)


def _message(workspace, profile, **fields) -> Message:
    fields.setdefault("channel", "email")
    return Message.objects.create(
        workspace=workspace, profile=profile, idempotency_key=f"test:{uuid4()}", **fields
    )


def _dead(workspace, profile, reason="retries_exhausted", **fields) -> Message:
    return _message(
        workspace,
        profile,
        status=Message.Status.FAILED,
        reason=reason,
        attempts=5,
        last_error="503 Service Unavailable: try later",
        failed_at=T0,
        **fields,
    )


def _url(workspace, path: str) -> str:
    return f"/w/{workspace.slug}/{path}"


def _shown_ids(response) -> list[int]:
    return [message.pk for message in response.context["page"]]


# --------------------------------------------------------------------------- permissions


PAGES = [
    "messages/",
    "messages/dead-letters/",
    "settings/channels/",
    "settings/channels/email/",
    "settings/channels/webhook/",
    "settings/delivery/",
]


@pytest.mark.parametrize("role", [Role.MARKETER, Role.ANALYST, Role.ADMIN])
def test_every_page_renders_for_roles_with_delivery_view(workspace, make_member, role):
    message = _message(workspace, _profile(workspace, "ada", "ada@example.com"))
    client = logged_in(make_member(role))
    for path in [*PAGES, f"messages/{message.pk}/"]:
        response = client.get(_url(workspace, path))
        assert response.status_code == 200, path
    home = client.get(_url(workspace, "messages/")).content.decode()
    assert f'href="/w/{workspace.slug}/messages/" aria-current="page"' in home
    assert ">Messages</span>" in home
    tabs = client.get(_url(workspace, "settings/delivery/")).content.decode()
    assert f'href="/w/{workspace.slug}/settings/channels/"' in tabs
    assert f'href="/w/{workspace.slug}/settings/delivery/" aria-current="page"' in tabs


def test_roles_without_delivery_view_are_refused_and_see_no_rail_link(workspace, make_member):
    client = logged_in(make_member(Role.CONTENT_EDITOR))
    for path in PAGES:
        assert client.get(_url(workspace, path)).status_code == 403, path
    assert ">Messages</span>" not in client.get(_url(workspace, "content/")).content.decode()


def test_a_marketer_cannot_write_anything_and_nothing_changes(workspace, marketer, test_channel):
    ada = _profile(workspace, "ada", "ada@example.com")
    dead = _dead(workspace, ada)
    cap = FrequencyCap.objects.create(
        workspace=workspace, channel="", limit=3, window_seconds=86400
    )
    suppressed = Suppression.objects.create(
        workspace=workspace, channel="email", address="x@example.com", reason="manual"
    )
    client = logged_in(marketer)
    audit_before = AuditLog.objects.filter(workspace=workspace).count()
    writes = [
        ("messages/dead-letters/retry/", {"message": [dead.pk]}),
        ("messages/dead-letters/discard/", {"message": [dead.pk]}),
        ("settings/channels/consoletest/", {"base_url": "https://x", "api_key": "k"}),
        ("settings/delivery/", {"utm_source": "x", "fallback_time_zone": "UTC"}),
        ("settings/delivery/caps/", {"limit": 1, "window": 1, "unit": "days"}),
        (f"settings/delivery/caps/{cap.pk}/remove/", {}),
        ("settings/delivery/suppressions/", {"channel": "email", "address": "y@example.com"}),
        (f"settings/delivery/suppressions/{suppressed.pk}/remove/", {}),
    ]
    for path, data in writes:
        assert client.post(_url(workspace, path), data).status_code == 403, path
    for kind in ("webhook-signing", "inbox-user-hash"):
        assert client.post(_url(workspace, f"settings/delivery/secrets/{kind}/")).status_code == 403
    dead.refresh_from_db()
    assert (dead.status, dead.discarded_at, dead.attempts) == ("failed", None, 5)
    assert not ChannelSettings.objects.filter(workspace=workspace).exists()
    assert not DeliverySettings.objects.filter(workspace=workspace).exists()
    assert list(FrequencyCap.objects.values_list("pk", flat=True)) == [cap.pk]
    assert list(Suppression.objects.values_list("address", flat=True)) == ["x@example.com"]
    assert AuditLog.objects.filter(workspace=workspace).count() == audit_before
    assert django_rq.get_queue("delivery-email").count == 0


def test_the_read_only_pages_offer_no_write_controls_to_a_marketer(workspace, marketer):
    _dead(workspace, _profile(workspace, "ada"))
    client = logged_in(marketer)
    dead_page = client.get(_url(workspace, "messages/dead-letters/")).content.decode()
    assert "Retry selected" not in dead_page
    assert "Only owners and admins retry or discard messages." in dead_page
    delivery_page = client.get(_url(workspace, "settings/delivery/")).content.decode()
    assert "Reveal secret" not in delivery_page
    assert signing_secret(workspace.pk) not in delivery_page
    assert 'data-testid="suppression-form"' not in delivery_page


def test_another_workspaces_message_answers_404(workspace, other_workspace, owner):
    theirs = _message(other_workspace, _profile(other_workspace, "eve", "eve@globex.example"))
    client = logged_in(owner)
    assert client.get(_url(workspace, f"messages/{theirs.pk}/")).status_code == 404
    assert client.get(_url(workspace, "messages/999999/")).status_code == 404
    assert _shown_ids(client.get(_url(workspace, "messages/"))) == []
    # Nor can it be retried from here.
    dead = _dead(other_workspace, theirs.profile)
    client.post(_url(workspace, "messages/dead-letters/retry/"), {"message": [dead.pk]})
    dead.refresh_from_db()
    assert dead.status == "failed"


def test_a_user_outside_the_workspace_gets_404(workspace, outsider):
    client = logged_in(outsider)
    assert client.get(_url(workspace, "messages/")).status_code == 404


# --------------------------------------------------------------------------- message log


@pytest.fixture
def log(workspace):
    """Messages across channels, statuses, journeys, reasons and days."""
    welcome = journey_services.journey_create(workspace=workspace, name="Welcome", context=EDITOR)
    winback = journey_services.journey_create(workspace=workspace, name="Winback", context=EDITOR)
    ada = _profile(workspace, "u-ada", "ada@example.com")
    bob = _profile(workspace, "u-bob", "bob@shop.example")
    rows = {
        "ada_email_sent": _message(
            workspace, ada, journey=welcome, node_id="hello", status="sent",
            created_at=datetime(2026, 11, 18, 9, 0, tzinfo=UTC),
        ),
        "ada_webhook_failed": _message(
            workspace, ada, channel="webhook", journey=winback, status="failed",
            reason="provider_refused", created_at=datetime(2026, 11, 19, 9, 0, tzinfo=UTC),
        ),
        "bob_email_suppressed": _message(
            workspace, bob, journey=welcome, node_id="hello", status="suppressed",
            reason="unsubscribed", created_at=datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
        ),
        "bob_email_delivered": _message(
            workspace, bob, journey=winback, status="delivered",
            created_at=datetime(2026, 11, 20, 23, 30, tzinfo=UTC),
        ),
    }  # fmt: skip
    return {"welcome": welcome, "winback": winback, **rows}


def test_the_log_is_newest_first_with_its_columns(workspace, owner, log):
    response = logged_in(owner).get(_url(workspace, "messages/"))
    assert _shown_ids(response) == [
        log["bob_email_delivered"].pk,
        log["bob_email_suppressed"].pk,
        log["ada_webhook_failed"].pk,
        log["ada_email_sent"].pk,
    ]
    html = response.content.decode()
    assert "bob@shop.example" in html and "Winback" in html and "unsubscribed" in html
    assert 'data-status="suppressed"' in html
    assert "4 messages" in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"channel": "webhook"}, ["ada_webhook_failed"]),
        ({"status": "suppressed"}, ["bob_email_suppressed"]),
        ({"reason": "provider_refused"}, ["ada_webhook_failed"]),
        ({"q": "u-bob"}, ["bob_email_delivered", "bob_email_suppressed"]),
        ({"q": "ADA@"}, ["ada_webhook_failed", "ada_email_sent"]),
        ({"q": "u-bo"}, []),  # user ids match exactly
        ({"date_from": "2026-11-19", "date_to": "2026-11-19"}, ["ada_webhook_failed"]),
        ({"date_from": "2026-11-20"}, ["bob_email_delivered", "bob_email_suppressed"]),
        ({"channel": "email", "status": "sent", "q": "u-ada"}, ["ada_email_sent"]),
    ],
)
def test_filters_return_exactly_the_matching_messages(workspace, owner, log, query, expected):
    response = logged_in(owner).get(_url(workspace, "messages/"), query)
    assert _shown_ids(response) == [log[name].pk for name in expected]


def test_the_journey_filter_and_the_workspace_time_zone(workspace, owner, log):
    client = logged_in(owner)
    response = client.get(_url(workspace, "messages/"), {"journey": log["welcome"].pk})
    assert _shown_ids(response) == [log["bob_email_suppressed"].pk, log["ada_email_sent"].pk]
    # 23:30 UTC on the 20th is already the 21st in Berlin.
    workspace.time_zone = "Europe/Berlin"
    workspace.save(update_fields=["time_zone"])
    response = client.get(_url(workspace, "messages/"), {"date_from": "2026-11-21"})
    assert _shown_ids(response) == [log["bob_email_delivered"].pk]


def test_bad_filters_are_named_and_not_applied(workspace, owner, log):
    response = logged_in(owner).get(
        _url(workspace, "messages/"), {"date_from": "2026-11-20", "date_to": "2026-11-19"}
    )
    html = response.content.decode()
    assert "The end date is before the start date." in html
    assert len(_shown_ids(response)) == 4
    response = logged_in(owner).get(_url(workspace, "messages/"), {"status": "lost"})
    assert "Select a valid choice. lost is not one of the available choices." in (
        response.content.decode()
    )


def test_the_log_pages_by_fifty(workspace, owner):
    ada = _profile(workspace, "ada")
    made = [_message(workspace, ada, created_at=T0 + timedelta(minutes=i)).pk for i in range(51)]
    client = logged_in(owner)
    first = client.get(_url(workspace, "messages/"), {"channel": "email"})
    assert _shown_ids(first) == made[::-1][:50]
    assert "channel=email&amp;page=2" in first.content.decode()
    second = client.get(_url(workspace, "messages/"), {"channel": "email", "page": 2})
    assert _shown_ids(second) == [made[0]]


# --------------------------------------------------------------------------- message detail


def test_a_message_page_shows_its_fields_timeline_and_sandboxed_content(workspace, analyst):
    ada = _profile(workspace, "u-ada", "ada@example.com")
    html = '<p onclick="steal()">Hi Ada</p><script>alert(1)</script>'
    message = _message(
        workspace, ada, status="delivered", attempts=2, provider_message_id="prov-77",
        last_error="451 4.3.0 Try again later", sent_at=T0, delivered_at=T0,
        rendered={"subject": "Hello <b>Ada</b>", "html": html, "links": ["https://acme.example/sale"]},
    )  # fmt: skip
    MessageEvent.objects.create(
        workspace=workspace, message=message, kind="retried", at=T0, data={"error": "451 busy"}
    )
    MessageEvent.objects.create(
        workspace=workspace, message=message, kind="sent", at=T0 + timedelta(minutes=1)
    )
    MessageEvent.objects.create(
        workspace=workspace, message=message, kind="delivered", at=T0 + timedelta(minutes=2)
    )
    page = logged_in(analyst).get(_url(workspace, f"messages/{message.pk}/")).content.decode()
    assert "prov-77" in page
    assert '<dd class="tabular" data-testid="attempts">2</dd>' in page
    assert "451 4.3.0 Try again later" in page
    positions = [
        page.index(f"<strong>{kind}</strong>")
        for kind in ("Temporary error, retrying", "Sent", "Delivered")
    ]
    assert positions == sorted(positions)  # oldest first
    assert 'error: <span class="mono">451 busy</span>' in page
    # The HTML only inside a sandboxed frame, escaped into srcdoc; text fields escaped.
    assert 'sandbox="" srcdoc="&lt;p onclick=&quot;steal()&quot;&gt;Hi Ada&lt;/p&gt;' in page
    assert "<script>alert(1)</script>" not in page
    assert "Hello &lt;b&gt;Ada&lt;/b&gt;" in page
    assert "https://acme.example/sale" in page


# --------------------------------------------------------------------------- dead letters


def test_the_dead_letter_list_holds_only_undiscarded_retries_exhausted_and_internal_errors(
    workspace, owner
):
    ada = _profile(workspace, "ada")
    exhausted = _dead(workspace, ada)
    internal = _dead(workspace, ada, reason="internal_error")
    _dead(workspace, ada, reason="provider_refused")
    _dead(workspace, ada, discarded_at=T0)
    _message(workspace, ada, status="queued")
    response = logged_in(owner).get(_url(workspace, "messages/dead-letters/"))
    assert sorted(_shown_ids(response)) == sorted([exhausted.pk, internal.pk])


@pytest.mark.django_db(transaction=True)
def test_discard_hides_a_dead_letter_and_a_second_discard_is_refused(workspace, owner):
    dead = _dead(workspace, _profile(workspace, "ada"))
    client = logged_in(owner)
    response = client.post(
        _url(workspace, "messages/dead-letters/discard/"), {"message": [dead.pk]}, follow=True
    )
    assert "1 message discarded." in response.content.decode()
    assert _shown_ids(response) == []
    dead.refresh_from_db()
    assert dead.status == "failed" and dead.discarded_at is not None
    again = client.post(
        _url(workspace, "messages/dead-letters/discard/"), {"message": [dead.pk]}, follow=True
    )
    assert f"message {dead.pk}. Nothing was changed." in again.content.decode()
    audit = AuditLog.objects.filter(workspace=workspace, object_type="delivery.message")
    assert [(row.action, row.changes["operation"]) for row in audit] == [
        ("message.discard", "discard")
    ]
    assert django_rq.get_queue("delivery-email").count == 0


@pytest.mark.django_db(transaction=True)
def test_bulk_retry_refuses_the_whole_batch_when_one_is_not_a_dead_letter(workspace, admin):
    ada = _profile(workspace, "ada")
    dead = _dead(workspace, ada)
    sent = _message(workspace, ada, status="sent")
    response = logged_in(admin).post(
        _url(workspace, "messages/dead-letters/retry/"),
        {"message": [dead.pk, sent.pk]},
        follow=True,
    )
    assert f"message {sent.pk}. Nothing was changed." in response.content.decode()
    dead.refresh_from_db()
    assert (dead.status, dead.attempts) == ("failed", 5)
    assert not MessageEvent.objects.filter(message=dead).exists()
    assert django_rq.get_queue("delivery-email").count == 0
    nothing = logged_in(admin).post(
        _url(workspace, "messages/dead-letters/retry/"), {}, follow=True
    )
    assert "Choose at least one message." in nothing.content.decode()


@pytest.mark.django_db(transaction=True)
def test_bulk_discard_takes_several(workspace, owner):
    ada = _profile(workspace, "ada")
    first, second = _dead(workspace, ada), _dead(workspace, ada, reason="internal_error")
    response = logged_in(owner).post(
        _url(workspace, "messages/dead-letters/discard/"),
        {"message": [first.pk, second.pk]},
        follow=True,
    )
    assert "2 messages discarded." in response.content.decode()
    assert Message.objects.filter(discarded_at__isnull=False).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_dead_letter_retried_goes_out_once_and_a_second_retry_is_refused(
    workspace, owner, receiver
):
    """A webhook that a busy receiver refused through every retry: Retry queues it from
    the start, the next run delivers it, and pressing Retry again sends nothing."""
    template = content_services.template_create(
        workspace=workspace, name="CRM sync", channel="webhook",
        content={"default": {"method": "POST", "url": f"{receiver.url}/crm", "body": '{"a": 1}'}},
        context=EDITOR,
    )  # fmt: skip
    journey = _one_step_journey(workspace, "Sync", {"kind": "webhook", "template_id": template.pk})
    receiver.answers = [503] * (len(RETRY_DELAYS) + 1)
    ada = _profile(workspace, "ada")
    with time_machine.travel(T0, tick=False):
        journey_services.journey_enroll(journey=journey, profile_id=ada.pk, context=EDITOR)
        _work()
    _run_retries(T0, RETRY_DELAYS)
    message = Message.objects.get(profile=ada)
    assert (message.status, message.reason, message.attempts) == (
        "failed",
        "retries_exhausted",
        len(RETRY_DELAYS) + 1,
    )
    assert len(receiver.requests) == len(RETRY_DELAYS) + 1

    client = logged_in(owner)
    listed = client.get(_url(workspace, "messages/dead-letters/"))
    assert _shown_ids(listed) == [message.pk]
    response = client.post(
        _url(workspace, "messages/dead-letters/retry/"), {"message": [message.pk]}, follow=True
    )
    assert "1 message queued again." in response.content.decode()
    assert _shown_ids(response) == []
    message.refresh_from_db()
    assert (message.status, message.attempts, message.reason) == ("queued", 0, "")
    [event] = MessageEvent.objects.filter(message=message, kind="retried", data__by=owner.username)
    assert event.data["after"] == "retries_exhausted"
    assert django_rq.get_queue("delivery-webhook").count == 1

    _work()
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("sent", 1)
    assert message.provider_message_id == f"req-{len(RETRY_DELAYS) + 2}"
    assert len(receiver.requests) == len(RETRY_DELAYS) + 2

    again = client.post(
        _url(workspace, "messages/dead-letters/retry/"), {"message": [message.pk]}, follow=True
    )
    assert "Not on the dead-letter list" in again.content.decode()
    assert django_rq.get_queue("delivery-webhook").count == 0
    _work()
    assert len(receiver.requests) == len(RETRY_DELAYS) + 2
    audit = AuditLog.objects.filter(workspace=workspace, object_type="delivery.message")
    assert [(row.object_id, row.changes["operation"]) for row in audit] == [
        (str(message.pk), "retry")
    ]
    assert audit[0].actor == owner


# --------------------------------------------------------------------------- channel settings


def test_the_channels_tab_lists_every_registered_channel(workspace, marketer, test_channel):
    html = logged_in(marketer).get(_url(workspace, "settings/channels/")).content.decode()
    for channel in ("email", "webhook", "consoletest"):
        assert f'data-channel="{channel}"' in html
    assert "Needs settings" in html and "Not set up" in html


def test_the_channel_form_is_built_from_the_config(workspace, owner, test_channel):
    html = logged_in(owner).get(_url(workspace, "settings/channels/consoletest/")).content.decode()
    assert 'name="base_url"' in html and "The provider&#x27;s API base URL" in html
    assert 'type="password" name="api_key"' in html
    assert '<select name="region"' in html and '<option value="us">' in html
    assert 'type="number" name="timeout_seconds" value="10"' in html
    assert 'type="checkbox" name="sandbox"' in html
    assert '<textarea name="extra_headers"' in html
    assert "channel_not_configured" in html


def test_saving_channel_settings_encrypts_the_secret_and_never_shows_it(
    workspace, owner, test_channel
):
    client = logged_in(owner)
    url = _url(workspace, "settings/channels/consoletest/")
    response = client.post(
        url,
        {
            "enabled": "on",
            "rate_per_second": "20",
            "base_url": "https://api.provider.example",
            "api_key": API_KEY,
            "region": "us",
            "timeout_seconds": "15",
            "sandbox": "on",
            "extra_headers": '{"X-Account": "acme"}',
        },
    )
    assert response.status_code == 302
    row = ChannelSettings.objects.get(workspace=workspace, channel="consoletest")
    assert row.config == {
        "base_url": "https://api.provider.example",
        "region": "us",
        "timeout_seconds": 15,
        "sandbox": True,
        "extra_headers": {"X-Account": "acme"},
    }
    assert (row.enabled, row.rate_per_second) == (True, 20)
    assert API_KEY not in row.secrets and row.secrets
    from delivery.selectors import channel_instance

    instance = channel_instance(workspace_id=workspace.pk, channel="consoletest")
    assert instance.config.secret("api_key") == API_KEY

    page = client.get(url).content.decode()
    assert API_KEY not in page
    assert "•••• saved" in page
    from delivery.tokens import hook_url

    assert hook_url(channel="consoletest", token=row.hook_token) in page

    # An empty secret keeps the saved one; the other fields change.
    client.post(
        url,
        {"base_url": "https://eu.provider.example", "api_key": "", "region": "eu",
         "timeout_seconds": "10", "extra_headers": ""},
    )  # fmt: skip
    row.refresh_from_db()
    assert row.config["base_url"] == "https://eu.provider.example"
    assert row.enabled is False  # the box was not ticked
    from delivery.selectors import channel_config

    assert channel_config(row=row, cls=ConsoleTestChannel).secret("api_key") == API_KEY

    audits = AuditLog.objects.filter(workspace=workspace, object_type="delivery.channelsettings")
    assert [row.changes["secrets_changed"] for row in audits.order_by("sequence")] == [
        ["api_key"],
        [],
    ]
    assert all(API_KEY not in json.dumps(row.changes) for row in audits)


def test_a_bad_value_shows_its_error_and_stores_nothing(workspace, owner, test_channel):
    client = logged_in(owner)
    url = _url(workspace, "settings/channels/consoletest/")
    response = client.post(
        url,
        {"base_url": "https://api.provider.example", "api_key": API_KEY, "region": "eu",
         "timeout_seconds": "600", "extra_headers": ""},
    )  # fmt: skip
    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors["timeout_seconds"] == ["Input should be less than or equal to 60"]
    html = response.content.decode()
    assert "Input should be less than or equal to 60" in html
    assert API_KEY not in html

    response = client.post(
        url,
        {"base_url": "", "api_key": "", "region": "mars", "timeout_seconds": "10",
         "extra_headers": "{not json"},
    )  # fmt: skip
    errors = response.context["form"].errors
    assert errors["base_url"] == ["This field is required."]
    assert errors["api_key"] == ["This field is required."]
    assert errors["region"] == ["Select a valid choice. mars is not one of the available choices."]
    assert errors["extra_headers"][0].startswith("Not valid JSON:")
    assert not ChannelSettings.objects.filter(workspace=workspace).exists()
    assert not AuditLog.objects.filter(object_type="delivery.channelsettings").exists()


def test_the_cost_per_message_is_saved_audited_and_refused_below_zero(
    workspace, owner, test_channel
):
    client = logged_in(owner)
    url = _url(workspace, "settings/channels/consoletest/")
    fields = {"base_url": "https://api.provider.example", "api_key": API_KEY, "region": "us",
              "timeout_seconds": "10", "extra_headers": ""}  # fmt: skip
    refused = client.post(url, {**fields, "cost_per_message": "-0.01"})
    assert refused.context["form"].errors["cost_per_message"] == [
        "Ensure this value is greater than or equal to 0."
    ]
    assert not ChannelSettings.objects.filter(workspace=workspace).exists()
    assert client.post(url, {**fields, "cost_per_message": "0.0079"}).status_code == 302
    row = ChannelSettings.objects.get(workspace=workspace, channel="consoletest")
    assert row.cost_per_message == Decimal("0.0079")
    assert 'name="cost_per_message" value="0.00790"' in client.get(url).content.decode()
    client.post(url, {**fields, "cost_per_message": ""})
    row.refresh_from_db()
    assert row.cost_per_message is None
    audits = AuditLog.objects.filter(object_type="delivery.channelsettings").order_by("sequence")
    assert [(a.changes["before"] or {}).get("cost") for a in audits] == [None, "0.00790"]
    assert [a.changes["after"]["cost"] for a in audits] == ["0.0079", None]


def test_an_unknown_channel_answers_404(workspace, owner):
    assert (
        logged_in(owner).get(_url(workspace, "settings/channels/carrier-pigeon/")).status_code
        == 404
    )


# --------------------------------------------------------------------------- delivery tab


def test_delivery_settings_save_and_are_audited(workspace, owner):
    client = logged_in(owner)
    response = client.post(
        _url(workspace, "settings/delivery/"),
        {
            "track_opens": "on",
            "utm_domains": "shop.example.com\nhttps://Blog.Example.com/",
            "utm_source": "acme-mail",
            "shadow_mode": "on",
            "quiet_hours_start": "21:00",
            "quiet_hours_end": "08:00",
            "quiet_hours_channels": ["sms", "push"],
            "fallback_time_zone": "Europe/Berlin",
        },
    )
    assert response.status_code == 302
    row = DeliverySettings.objects.get(workspace=workspace)
    assert (row.track_opens, row.track_clicks, row.shadow_mode) == (True, False, True)
    assert row.utm_domains == ["shop.example.com", "blog.example.com"]
    assert (row.utm_source, row.fallback_time_zone) == ("acme-mail", "Europe/Berlin")
    assert (str(row.quiet_hours_start), str(row.quiet_hours_end)) == ("21:00:00", "08:00:00")
    assert row.quiet_hours_channels == ["sms", "push"]
    [audit] = AuditLog.objects.filter(workspace=workspace, object_type="delivery.DeliverySettings")
    assert audit.action == "delivery_settings.update" and audit.changes["shadow_mode"] == [
        False,
        True,
    ]


@pytest.mark.parametrize(
    ("change", "field", "error"),
    [
        ({"fallback_time_zone": "Mars/Olympus"}, "fallback_time_zone", "'Mars/Olympus' is not a time zone; use an IANA name such as Europe/Berlin or UTC."),
        ({"quiet_hours_start": "21:00"}, "quiet_hours_end", "Quiet hours need both a start and an end (or neither)."),
        ({"utm_domains": "not a host"}, "utm_domains", "'not a host' is not a host name such as shop.example.com."),
    ],
)  # fmt: skip
def test_bad_delivery_settings_are_named_and_nothing_is_saved(
    workspace, owner, change, field, error
):
    data = {"utm_source": "engagement", "fallback_time_zone": "UTC", **change}
    response = logged_in(owner).post(_url(workspace, "settings/delivery/"), data)
    assert response.status_code == 400
    assert response.context["form"].errors[field] == [error]
    assert not DeliverySettings.objects.filter(workspace=workspace).exists()


def test_frequency_caps_are_added_and_removed(workspace, owner):
    client = logged_in(owner)
    client.post(
        _url(workspace, "settings/delivery/caps/"),
        {"channel": "email", "limit": "2", "window": "1", "unit": "days"},
    )
    client.post(
        _url(workspace, "settings/delivery/caps/"),
        {"channel": "", "limit": "5", "window": "12", "unit": "hours"},
    )
    caps = {(c.channel, c.limit, c.window_seconds): c for c in FrequencyCap.objects.all()}
    assert set(caps) == {("email", 2, 86400), ("", 5, 43200)}
    html = client.get(_url(workspace, "settings/delivery/")).content.decode()
    assert "At most 2 in 1 day" in html and "At most 5 in 12 hours" in html
    duplicate = client.post(
        _url(workspace, "settings/delivery/caps/"),
        {"channel": "email", "limit": "2", "window": "1", "unit": "days"},
    )
    assert duplicate.status_code == 400 and "This cap exists already." in duplicate.content.decode()
    bad = client.post(
        _url(workspace, "settings/delivery/caps/"), {"limit": "0", "window": "1", "unit": "days"}
    )
    assert bad.context["cap_form"].errors["limit"] == [
        "Ensure this value is greater than or equal to 1."
    ]
    assert FrequencyCap.objects.count() == 2
    client.post(_url(workspace, f"settings/delivery/caps/{caps[('email', 2, 86400)].pk}/remove/"))
    assert list(FrequencyCap.objects.values_list("channel", flat=True)) == [""]
    operations = [
        row.changes["operation"]
        for row in AuditLog.objects.filter(
            workspace=workspace, object_type="delivery.FrequencyCap"
        ).order_by("sequence")
    ]
    assert operations == ["frequency_cap_add", "frequency_cap_add", "frequency_cap_remove"]


def test_another_workspaces_cap_and_suppression_cannot_be_removed(
    workspace, other_workspace, owner
):
    cap = FrequencyCap.objects.create(
        workspace=other_workspace, channel="", limit=1, window_seconds=60
    )
    row = Suppression.objects.create(
        workspace=other_workspace, channel="email", address="e@globex.example", reason="manual"
    )
    client = logged_in(owner)
    assert (
        client.post(_url(workspace, f"settings/delivery/caps/{cap.pk}/remove/")).status_code == 404
    )
    assert (
        client.post(_url(workspace, f"settings/delivery/suppressions/{row.pk}/remove/")).status_code
        == 404
    )
    assert FrequencyCap.objects.filter(pk=cap.pk).exists()
    assert Suppression.objects.filter(pk=row.pk).exists()


def test_the_suppression_list_add_search_and_remove(workspace, owner):
    Suppression.objects.create(
        workspace=workspace, channel="email", address="bounced@example.com", reason="bounce"
    )
    client = logged_in(owner)
    response = client.post(
        _url(workspace, "settings/delivery/suppressions/"),
        {"channel": "email", "address": "  Carol@Example.COM ", "note": "asked by phone"},
    )
    assert response.status_code == 302
    carol = Suppression.objects.get(address="carol@example.com")
    assert (carol.channel, carol.reason, carol.note) == ("email", "manual", "asked by phone")
    page = client.get(_url(workspace, "settings/delivery/"), {"q": "carol"}).content.decode()
    assert "carol@example.com" in page and "bounced@example.com" not in page
    assert "Added by hand" in page
    again = client.post(
        _url(workspace, "settings/delivery/suppressions/"),
        {"channel": "email", "address": "carol@example.com"},
    )
    assert again.context["suppression_form"].errors["address"] == [
        "carol@example.com is already suppressed on email (Added by hand)."
    ]
    invalid = client.post(
        _url(workspace, "settings/delivery/suppressions/"),
        {"channel": "email", "address": "not-an-address"},
    )
    assert invalid.context["suppression_form"].errors["address"] == [
        "'not-an-address' is not an email address."
    ]
    client.post(_url(workspace, f"settings/delivery/suppressions/{carol.pk}/remove/"))
    assert list(Suppression.objects.values_list("address", flat=True)) == ["bounced@example.com"]
    audit = AuditLog.objects.filter(workspace=workspace, object_type="delivery.suppression")
    assert [row.action for row in audit.order_by("sequence")] == [
        "suppression.create",
        "suppression.delete",
    ]
    assert all("carol" not in json.dumps(row.changes) for row in audit)


@pytest.mark.parametrize(
    ("kind", "page_path", "derive"),
    [
        ("webhook-signing", "settings/delivery/", signing_secret),
        ("inbox-user-hash", "settings/channels/in_app/", user_hash_secret),
    ],
)
def test_secrets_are_revealed_only_on_request_to_editors_and_audited(
    workspace, owner, marketer, kind, page_path, derive
):
    client = logged_in(owner)
    page = client.get(_url(workspace, page_path)).content.decode()
    secret = derive(workspace.pk)
    assert secret not in page and "Reveal secret" in page
    assert not AuditLog.objects.filter(workspace=workspace, action="secret.reveal").exists()

    fragment = client.post(_url(workspace, f"settings/delivery/secrets/{kind}/"))
    assert fragment.status_code == 200
    assert secret in fragment.content.decode()
    assert fragment["Cache-Control"] == "no-store"
    row = AuditLog.objects.get(workspace=workspace, action="secret.reveal")
    assert (row.actor_id, row.object_type, row.object_id) == (owner.pk, "delivery.secret", kind)
    assert secret not in json.dumps(row.changes) and secret not in row.object_repr

    # A GET reveals nothing; a marketer sees no button and is refused; unknown kinds 404.
    assert client.get(_url(workspace, f"settings/delivery/secrets/{kind}/")).status_code == 405
    marketer = logged_in(marketer)
    assert "Reveal secret" not in marketer.get(_url(workspace, page_path)).content.decode()
    refused = marketer.post(_url(workspace, f"settings/delivery/secrets/{kind}/"))
    assert refused.status_code == 403 and secret not in refused.content.decode()
    assert client.post(_url(workspace, "settings/delivery/secrets/nope/")).status_code == 404
    assert AuditLog.objects.filter(workspace=workspace, action="secret.reveal").count() == 1


def test_the_log_and_dead_letter_pages_make_no_query_per_row(workspace, owner):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    journey = journey_services.journey_create(workspace=workspace, name="Welcome", context=EDITOR)
    client = logged_in(owner)

    def queries(path: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(_url(workspace, path)).status_code == 200
        return len(captured)

    def add(count: int) -> None:
        for index in range(count):
            person = _profile(workspace, f"u-{uuid4()}", f"p{index}-{uuid4()}@example.com")
            _dead(workspace, person, journey=journey, node_id="hello")

    add(2)
    queries("messages/")  # the first request also stores the workspace in the session
    few = (queries("messages/"), queries("messages/dead-letters/"))
    add(20)
    assert (queries("messages/"), queries("messages/dead-letters/")) == few
