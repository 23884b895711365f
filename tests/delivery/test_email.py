"""Email from a journey to a real SMTP server: rendered, with RFC 8058 one-click
unsubscribe headers; the one-click POST unsubscribes and the next message is
suppressed; a job run twice sends once; 4xx replies retry, 5xx fail and feed the
fallback chain. Jobs run on a real RQ worker, time under test control."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import django_rq
import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from rq import SimpleWorker

from content import services as content_services
from delivery.models import Consent, DeliverySettings, Message
from delivery.services import REQUEUE_GRACE, RETRY_DELAYS, messages_enqueue
from delivery.services import scheduler_duty as delivery_duty
from engagement_site.workspaces.models import AuditLog
from journeys import executor, services
from journeys.models import Enrollment
from segments.models import Profile
from tests.delivery.conftest import _email_template
from tests.journeys.test_executor import EDITOR, _run_journey
from tests.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _work() -> None:
    """Every queued job, on a real worker: the engine's and every channel's."""
    from django.conf import settings

    names = ["journeys", *settings.DELIVERY_CHANNEL_QUEUES, "delivery", "default"]
    queues = [django_rq.get_queue(name) for name in names]
    SimpleWorker(queues, connection=queues[0].connection).work(burst=True)


def _sweep_at(at: datetime) -> None:
    """At `at`: the delivery scheduler's sweep, then every queued job (`_work`)."""
    with time_machine.travel(at, tick=False):
        delivery_duty()
        _work()


def _run_retries(start: datetime, delays) -> datetime:
    """From `start`, a sweep after each delay in turn (plus the requeue grace); the last time."""
    at = start
    for delay in delays:
        at += timedelta(seconds=delay) + REQUEUE_GRACE
        _sweep_at(at)
    return at


def _ada(workspace) -> Profile:
    return Profile.objects.create(
        workspace=workspace, user_id="ada", email="ada@example.com", traits={"first_name": "Ada"}
    )


def test_a_journey_email_arrives_and_one_click_unsubscribe_stops_the_next(
    workspace, weekly, smtp, settings
):
    ada = _ada(workspace)
    with time_machine.travel(T0, tick=False):
        services.journey_enroll(journey=weekly, profile_id=ada.pk, context=EDITOR)
        _work()
    [received] = smtp.received
    first = Message.objects.get(profile=ada, node_id="first")
    assert (first.status, first.attempts, first.sent_at) == ("sent", 1, T0)
    assert received["To"] == "ada@example.com"
    assert received["Subject"] == "Hello Ada"
    assert received["From"] == "Acme <news@acme.example>"
    assert first.provider_message_id == received["Message-ID"]
    assert received["X-Engagement-Message"] == first.idempotency_key
    html = received.get_body(("html",)).get_content()
    assert "Hi Ada, see" in html
    assert f'href="{settings.PUBLIC_URL}/t/c/' in html  # the sale link, tracked
    assert "https://acme.example/sale" not in html
    assert first.rendered["links"] == ["https://acme.example/sale"]
    unsubscribe = str(received["List-Unsubscribe"]).strip()  # folded: a long line
    assert unsubscribe.startswith(f"<{settings.PUBLIC_URL}/u/") and unsubscribe.endswith("/>")
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe[1:-1] in html  # the same link in the body
    text = received.get_body(("plain",)).get_content()
    assert "Hi Ada" in text

    # A mail client's one-click POST: no cookies, no CSRF token, 200 and no redirect.
    path = unsubscribe[1:-1].removeprefix(settings.PUBLIC_URL)
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    assert "You are unsubscribed" in response.content.decode()
    consent = Consent.objects.get(profile=ada, channel="email")
    assert (consent.status, consent.source, consent.message_id) == (
        "unsubscribed", "one_click", first.pk,
    )  # fmt: skip
    assert client.post(path, "List-Unsubscribe=One-Click",
                       content_type="application/x-www-form-urlencoded").status_code == 200  # fmt: skip
    assert AuditLog.objects.filter(action="consent.change").count() == 1

    with time_machine.travel(T0 + DAY, tick=False):
        executor.scheduler_duty()
        _work()
    second = Message.objects.get(profile=ada, node_id="second")
    assert (second.status, second.reason, second.sent_at) == ("suppressed", "unsubscribed", None)
    assert len(smtp.received) == 1  # nothing more left the system
    assert Enrollment.objects.get(profile=ada).state == "exited"


def test_the_unsubscribe_page_asks_first_and_forged_links_are_refused(
    workspace, weekly, smtp, settings
):
    ada = _ada(workspace)
    services.journey_enroll(journey=weekly, profile_id=ada.pk, context=EDITOR)
    _work()
    link = str(smtp.received[0]["List-Unsubscribe"]).strip()[1:-1]
    path = link.removeprefix(settings.PUBLIC_URL)
    client = Client(enforce_csrf_checks=True)
    page = client.get(path)
    assert page.status_code == 200 and "Unsubscribe from Acme" in page.content.decode()
    assert not Consent.objects.exists()  # a GET (a link scanner) changes nothing
    token = path.split("/")[2]
    message_part, signature = token.split(":")
    for forged in (
        f"{message_part}x:{signature}",
        f"1:{signature}",
        "nonsense",
        f"{message_part}:",
    ):
        assert client.post(f"/u/{forged}/").status_code == 404
    assert not Consent.objects.exists()
    assert client.post(path, {"confirm": "1"}).status_code == 200
    assert Consent.objects.get(profile=ada).source == "unsubscribe_page"


def test_the_same_send_job_twice_sends_once(workspace, weekly, smtp):
    ada = _ada(workspace)
    with time_machine.travel(T0, tick=False):
        services.journey_enroll(journey=weekly, profile_id=ada.pk, context=EDITOR)
        journeys = django_rq.get_queue("journeys")
        SimpleWorker([journeys], connection=journeys.connection).work(burst=True)
        message = Message.objects.get(profile=ada, node_id="first")
        messages_enqueue([message.pk], channel="email")  # a duplicate of the commit's job
        delivery_duty()  # and the scheduler's sweep, which must not add a third
        assert django_rq.get_queue("delivery-email").count == 2
        _work()
    assert [m["To"] for m in smtp.received] == ["ada@example.com"]
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("sent", 1)


def test_a_temporary_refusal_is_retried_with_backoff(workspace, weekly, smtp):
    ada = _ada(workspace)
    smtp.refuse["ada@example.com"] = "451 4.3.0 Mailbox busy, try again later"
    with time_machine.travel(T0, tick=False):
        services.journey_enroll(journey=weekly, profile_id=ada.pk, context=EDITOR)
        _work()
    message = Message.objects.get(profile=ada, node_id="first")
    assert (message.status, message.attempts, message.next_attempt_at) == (
        "queued", 1, T0 + timedelta(seconds=RETRY_DELAYS[0]),
    )  # fmt: skip
    assert message.last_error.startswith("451 4.3.0 Mailbox busy")
    with time_machine.travel(T0 + timedelta(seconds=RETRY_DELAYS[0]), tick=False):
        delivery_duty()  # due, but inside the grace: not yet
        assert django_rq.get_queue("delivery-email").count == 0
    del smtp.refuse["ada@example.com"]
    _sweep_at(T0 + timedelta(seconds=RETRY_DELAYS[0]) + REQUEUE_GRACE)
    message.refresh_from_db()
    assert (message.status, message.attempts, message.last_error) == ("sent", 2, "")
    assert len(smtp.to("ada@example.com")) == 1


def test_temporary_refusals_until_the_retries_run_out_fail_the_message(workspace, weekly, smtp):
    ada = _ada(workspace)
    smtp.refuse["ada@example.com"] = "421 4.7.0 Too many connections"
    with time_machine.travel(T0, tick=False):
        services.journey_enroll(journey=weekly, profile_id=ada.pk, context=EDITOR)
        _work()
    _run_retries(T0, RETRY_DELAYS)
    message = Message.objects.get(profile=ada, node_id="first")
    assert (message.status, message.reason, message.attempts) == (
        "failed", "retries_exhausted", len(RETRY_DELAYS) + 1,
    )  # fmt: skip
    assert smtp.received == []


def test_a_permanent_refusal_fails_the_email_and_the_chain_moves_on(workspace, smtp):
    email = _email_template(workspace)
    card = content_services.template_create(
        workspace=workspace, name="Card", channel="in_app",
        content={"default": {"title": "Hi", "body": "Hi"}}, context=EDITOR,
    )  # fmt: skip
    journey = _run_journey(
        workspace, "Email, else in-app",
        [
            {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "reach", "type": "fallback",
             "chain": [{"channel": "email", "template_id": email.pk},
                       {"channel": "in_app", "template_id": card.pk}]},
            {"id": "end", "type": "exit"},
        ],
        [{"source": "api", "target": "reach"}, {"source": "reach", "target": "end"}],
    )  # fmt: skip
    ada = _ada(workspace)
    smtp.refuse["ada@example.com"] = "550 5.1.1 No such user"
    services.journey_enroll(journey=journey, profile_id=ada.pk, context=EDITOR)
    _work()
    email_message = Message.objects.get(profile=ada, channel="email")
    assert (email_message.status, email_message.reason) == ("failed", "provider_refused")
    assert email_message.last_error.startswith("550 5.1.1 No such user")
    card_message = Message.objects.get(profile=ada, channel="in_app")
    # The chain moved on to the in-app card, which reached her inbox.
    assert (card_message.chain_index, card_message.status, card_message.reason) == (
        1, "sent", "",
    )  # fmt: skip
    enrollment = Enrollment.objects.get(profile=ada)
    step = enrollment.steps.get(node_id="reach")
    assert (enrollment.state, step.detail["channel"], step.detail["message"]) == (
        "exited", "in_app", card_message.pk,
    )  # fmt: skip
    assert [(t["channel"], t["status"]) for t in step.detail["tried"]] == [
        ("email", "failed"), ("in_app", "sent"),
    ]  # fmt: skip
    assert smtp.received == []


def test_a_mail_server_that_is_down_delays_the_email_and_loses_nothing(
    workspace, weekly, smtp, settings
):
    ada = _ada(workspace)
    live_port = settings.EMAIL_PORT
    settings.EMAIL_PORT = free_port()  # nobody listens there
    with time_machine.travel(T0, tick=False):
        services.journey_enroll(journey=weekly, profile_id=ada.pk, context=EDITOR)
        _work()
    message = Message.objects.get(profile=ada, node_id="first")
    assert (message.status, message.attempts) == ("queued", 1)
    assert "ConnectionRefusedError" in message.last_error
    settings.EMAIL_PORT = live_port
    _sweep_at(T0 + timedelta(seconds=RETRY_DELAYS[0]) + REQUEUE_GRACE)
    message.refresh_from_db()
    assert message.status == "sent"
    assert [m["X-Engagement-Message"] for m in smtp.received] == [message.idempotency_key]


def test_tracked_links_and_the_open_pixel_record_people_not_machines(
    workspace, weekly, smtp, settings
):
    DeliverySettings.objects.create(workspace=workspace, utm_domains=["acme.example"])
    ada = _ada(workspace)
    with time_machine.travel(T0, tick=False):
        services.journey_enroll(journey=weekly, profile_id=ada.pk, context=EDITOR)
        _work()
    html = smtp.received[0].get_body(("html",)).get_content()
    click = re.search(r'href="([^"]*/t/c/[^"]+)"', html).group(1).removeprefix(settings.PUBLIC_URL)
    pixel = re.search(r'src="([^"]*/t/o/[^"]+)"', html).group(1).removeprefix(settings.PUBLIC_URL)
    message = Message.objects.get(profile=ada, node_id="first")
    assert message.rendered["links"] == [
        "https://acme.example/sale?utm_source=engagement&utm_medium=email&utm_campaign=weekly"
    ]
    client = Client()
    scanner = {"User-Agent": "Mozilla/5.0 (compatible; Barracuda Sentinel)"}
    with time_machine.travel(T0 + timedelta(seconds=1), tick=False):
        # Within seconds of the send: a security scanner following links, not Ada.
        early = client.get(click)
        assert (early.status_code, early["Location"]) == (302, message.rendered["links"][0])
        assert client.head(pixel).status_code == 200
        assert client.get(pixel, headers=scanner).status_code == 200
        # Apple Mail Privacy Protection fetches images on arrival, as "Mozilla/5.0".
        assert client.get(pixel, headers={"User-Agent": "Mozilla/5.0"}).status_code == 200
    message.refresh_from_db()
    assert (message.status, message.opened_at, message.clicked_at) == ("sent", None, None)
    # The machines are kept apart, once per kind with the first reason, for analytics.
    machine = {
        event.kind: event.data for event in message.events.filter(kind__startswith="machine_")
    }
    assert machine == {
        "machine_clicked": {"reason": "too_soon_after_send"},
        "machine_opened": {"reason": "head"},
    }
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        opened = client.get(pixel)
        assert (opened.status_code, opened["Content-Type"]) == (200, "image/gif")
    with time_machine.travel(T0 + timedelta(minutes=6), tick=False):
        assert client.get(click)["Location"] == message.rendered["links"][0]
        assert client.get(click, headers=scanner).status_code == 302
    message.refresh_from_db()
    assert (message.status, message.opened_at, message.clicked_at) == (
        "clicked", T0 + timedelta(minutes=5), T0 + timedelta(minutes=6),
    )  # fmt: skip
    # The open implies the delivery: recorded once, as its own event.
    assert sorted(message.events.values_list("kind", flat=True)) == [
        "clicked", "delivered", "machine_clicked", "machine_opened", "opened", "sent",
    ]  # fmt: skip
    token = click.split("/")[3]
    message_part, signature = token.split(":")
    for forged in (
        f"{message_part}:{signature[:-1]}x",
        "1.5:abc",
        f"{message_part[:-1]}9:{signature}",
    ):
        assert client.get(f"/t/c/{forged}/").status_code == 404
    assert client.get("/t/c/nonsense/").status_code == 404


def test_utm_parameters_join_a_links_own_and_never_replace_them():
    from delivery.tracking import with_utm

    options = {
        "domains": ["acme.example"],
        "source": "engagement",
        "campaign": "spring",
        "medium": "email",
    }
    assert with_utm("https://shop.acme.example/p?utm_source=partner&x=1", **options) == (
        "https://shop.acme.example/p?utm_source=partner&x=1&utm_medium=email&utm_campaign=spring"
    )
    assert with_utm("https://elsewhere.example/p", **options) == "https://elsewhere.example/p"
    assert with_utm("https://notacme.example/p", **options) == "https://notacme.example/p"


def test_a_job_past_its_send_budget_hands_the_rest_back_and_nothing_goes_twice(
    workspace, weekly, smtp, monkeypatch
):
    import django_rq

    from delivery import services as delivery_services

    people = [
        Profile.objects.create(workspace=workspace, user_id=f"u{n}", email=f"u{n}@example.com")
        for n in range(3)
    ]
    template_version = weekly.live_version.definition["nodes"][1]["action"]["template_id"]
    from content.models import Template

    version = Template.objects.get(pk=template_version).current_version
    messages = [
        Message.objects.create(
            workspace=workspace,
            profile=person,
            channel="email",
            template_version=version,
            idempotency_key=f"budget:{person.pk}",
        )
        for person in people
    ]
    ids = [message.pk for message in messages]
    monkeypatch.setattr(delivery_services, "SEND_BUDGET", timedelta(0))
    assert delivery_services.messages_send(message_ids=ids) == {"handed_back": 3}
    assert smtp.received == []
    for message in Message.objects.filter(pk__in=ids):
        assert (message.status, message.attempts) == ("queued", 0)
        assert message.next_attempt_at is not None
        assert message.next_attempt_at <= timezone.now()
    queued = django_rq.get_queue("delivery-email").get_jobs()
    assert [job.args for job in queued] == [(ids,)]

    monkeypatch.setattr(delivery_services, "SEND_BUDGET", timedelta(minutes=5))
    _work()
    assert sorted(m["To"] for m in smtp.received) == [p.email for p in people]
    assert set(Message.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"sent"}
