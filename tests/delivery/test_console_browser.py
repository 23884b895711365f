"""The message log and a message's page in a real browser (Daphne + Debian's
chromium): the rail link, a filter, the detail with its timeline and the email in a
sandboxed frame, and a dead letter retried from the list."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from playwright.sync_api import expect

from delivery.models import Message, MessageEvent
from segments.models import Profile
from tests.conftest import PASSWORD
from tests.e2e import conftest as e2e_fixtures

# The browser fixtures of tests/e2e (Daphne on the test database, chromium), used here.
app_server = e2e_fixtures.app_server
browser = e2e_fixtures.browser
page = e2e_fixtures.page
_orm_beside_playwright = e2e_fixtures._orm_beside_playwright

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _login(page, username: str) -> None:
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/w/"))


def _message(workspace, profile, **fields) -> Message:
    return Message.objects.create(
        workspace=workspace, profile=profile, idempotency_key=f"e2e:{uuid4()}", **fields
    )


def test_the_message_log_a_filter_and_a_message_page(page, owner, workspace):
    ada = Profile.objects.create(workspace=workspace, user_id="u-ada", email="ada@example.com")
    bob = Profile.objects.create(workspace=workspace, user_id="u-bob", email="bob@example.com")
    sent = _message(
        workspace, ada, channel="email", status="delivered", attempts=1,
        provider_message_id="prov-ada-1", created_at=T0, sent_at=T0, delivered_at=T0,
        rendered={"subject": "Your November picks", "html": "<h1>Hi Ada</h1><p>Three picks.</p>",
                  "links": ["https://acme.example/picks"]},
    )  # fmt: skip
    for kind, minutes in (("sent", 0), ("delivered", 2)):
        MessageEvent.objects.create(
            workspace=workspace, message=sent, kind=kind, at=T0 + timedelta(minutes=minutes)
        )
    _message(
        workspace, bob, channel="webhook", status="failed", reason="retries_exhausted",
        attempts=5, last_error="503 Service Unavailable", created_at=T0 + timedelta(hours=1),
        failed_at=T0 + timedelta(hours=1),
    )  # fmt: skip
    _login(page, owner.username)

    page.get_by_role("link", name="Messages").click()
    page.wait_for_url(f"**/w/{workspace.slug}/messages/")
    table = page.get_by_test_id("messages")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table).to_contain_text("ada@example.com")
    expect(table).to_contain_text("retries_exhausted")
    page.screenshot(path="/tmp/console-message-log.png", full_page=True)

    page.select_option("select[name=status]", "failed")  # autosubmits
    page.wait_for_url(re.compile(r"status=failed"))
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("bob@example.com")
    expect(page.get_by_test_id("message-count")).to_have_text("1 message")
    page.get_by_role("link", name="Clear").click()
    expect(table.locator("tbody tr")).to_have_count(2)

    table.locator(f"tr[data-message-id='{sent.pk}'] a").first.click()
    page.wait_for_url(f"**/messages/{sent.pk}/")
    expect(page.get_by_role("heading", name=f"Message {sent.pk}")).to_be_visible()
    expect(page.get_by_test_id("message-fields")).to_contain_text("prov-ada-1")
    timeline = page.get_by_test_id("timeline")
    expect(timeline.locator("li")).to_have_count(2)
    expect(timeline.locator("li").nth(1)).to_contain_text("Delivered")
    expect(page.get_by_test_id("rendered-fields")).to_contain_text("Your November picks")
    frame = page.frame_locator("[data-testid=rendered-html]")
    expect(frame.locator("h1")).to_have_text("Hi Ada")
    assert page.get_by_test_id("rendered-html").get_attribute("sandbox") == ""
    page.screenshot(path="/tmp/console-message-detail.png", full_page=True)


def test_a_dead_letter_is_retried_from_the_list(page, owner, workspace):
    bob = Profile.objects.create(workspace=workspace, user_id="u-bob", email="bob@example.com")
    dead = _message(
        workspace, bob, channel="webhook", status="failed", reason="retries_exhausted",
        attempts=5, last_error="503 Service Unavailable", created_at=T0, failed_at=T0,
    )  # fmt: skip
    _login(page, owner.username)
    page.goto(f"/w/{workspace.slug}/messages/dead-letters/")
    expect(page.get_by_test_id("dead-letter-count")).to_have_text("1")
    page.locator(f"tr[data-message-id='{dead.pk}']").get_by_role("button", name="Retry").click()
    expect(page.get_by_text("1 message queued again.")).to_be_visible()
    expect(page.get_by_test_id("dead-letter-count")).to_have_text("0")
    page.screenshot(path="/tmp/console-dead-letters.png", full_page=True)
    dead.refresh_from_db()
    assert (dead.status, dead.attempts, dead.reason) == ("queued", 0, "")


def test_the_delivery_tab_reveals_the_signing_secret_on_click(page, owner, workspace):
    from delivery.channels.webhook import signing_secret

    _login(page, owner.username)
    page.goto(f"/w/{workspace.slug}/settings/channels/")
    expect(page.get_by_test_id("channels")).to_contain_text("Webhook")
    page.get_by_role("link", name="Delivery").click()
    page.wait_for_url(f"**/w/{workspace.slug}/settings/delivery/")
    secret = signing_secret(workspace.pk)
    assert secret not in page.content()
    page.get_by_test_id("reveal-webhook-signing").click()
    expect(page.get_by_test_id("secret-webhook-signing")).to_have_text(secret)
    page.fill("[data-testid=suppression-form] input[name=address]", "Carol@Example.com")
    page.get_by_role("button", name="Suppress").click()
    expect(page.get_by_test_id("suppressions")).to_contain_text("carol@example.com")
    page.screenshot(path="/tmp/console-delivery-settings.png", full_page=True)
