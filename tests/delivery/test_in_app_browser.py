"""The in-app snippet (static/engagement-inbox.js) on a customer's page in a real
browser: the page lives on another origin than the platform (Daphne), loads the
script from it and calls the inbox API with the write key, as an app would. Cards
show, are marked read when seen, dismissed by their close button, clicked through
their button; new cards arrive by polling; message text never becomes markup."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from delivery import inbox
from delivery.models import Message
from tests.delivery.test_in_app import CARD, _card, _person, _template, _write_key
from tests.e2e import conftest as e2e_fixtures

app_server = e2e_fixtures.app_server
browser = e2e_fixtures.browser
_orm_beside_playwright = e2e_fixtures._orm_beside_playwright

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Acme</title></head>
<body style="max-width:420px;margin:40px auto">
<h1>Acme</h1>
<div id="inbox"></div>
<script src="%(app)s/static/engagement-inbox.js"></script>
<script>
  window.inboxHandle = EngagementInbox.mount(%(options)s);
</script>
</body></html>
"""


class _CustomerSite:
    """The customer's own web server: the page with the snippet, and the page the
    card's button leads to. Another port is another origin, so the browser applies
    CORS to every inbox request as it would on a real site."""

    def __init__(self):
        self.options: dict = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/":
                    body = (PAGE % site.rendered()).encode()
                else:
                    body = f"<!doctype html><h1>You are at {self.path}</h1>".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.app = ""
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def rendered(self) -> dict:
        return {"app": self.app, "options": json.dumps(self.options)}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def customer_site(app_server):
    site = _CustomerSite()
    site.app = app_server
    yield site
    site.close()


@pytest.fixture
def customer_page(browser, customer_site):
    context = browser.new_context(viewport={"width": 1024, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == []


def _status(message: Message) -> Message:
    message.refresh_from_db()
    return message


def test_cards_show_are_read_dismissed_clicked_and_new_ones_arrive(
    customer_page, customer_site, workspace
):
    page = customer_page
    renew = {**CARD, "cta_url": f"{customer_site.url}/renewed"}
    template = _template(workspace, renew)
    ada = _person(workspace)
    older = _card(ada, at=T0, template=template)
    newer = _card(ada, at=T0 + timedelta(minutes=5), template=template)
    customer_site.options = {
        "host": customer_site.app,
        "writeKey": _write_key(workspace),
        "userId": "ada",
        "element": "#inbox",
        "pollSeconds": 1,
        "title": "Updates",
    }

    page.goto(customer_site.url + "/")
    cards = page.locator(".ei-card")
    expect(cards).to_have_count(2)
    newer_token, older_token = inbox.message_token(newer.pk), inbox.message_token(older.pk)
    expect(cards.nth(0)).to_have_attribute("data-id", newer_token)
    expect(cards.nth(0).locator(".ei-title")).to_have_text("Hi Ada")
    expect(cards.nth(0).locator(".ei-body")).to_have_text("Your pro plan renews soon.")
    expect(cards.nth(0).locator("img.ei-image")).to_have_attribute(
        "src", "https://cdn.acme.example/renew.png"
    )
    # Both cards are in view, so both are read: the badge goes and the server knows.
    expect(page.get_by_test_id("ei-unread")).to_be_hidden()
    expect(page.locator(".ei-unread")).to_have_count(0)
    page.wait_for_function("() => window.inboxHandle.unread() === 0")
    for message in (older, newer):
        _wait_for(lambda message=message: _status(message).status == "opened")
    page.screenshot(path="/tmp/in-app-snippet.png", full_page=True)

    # The close button dismisses the card here and on the server.
    cards.nth(0).get_by_role("button", name="Dismiss").click()
    expect(cards).to_have_count(1)
    _wait_for(lambda: _status(newer).dismissed_at is not None)

    # A card sent now arrives by polling, unread, with the badge counting it.
    third = _card(ada, at=T0 + timedelta(minutes=9), template=template)
    expect(cards).to_have_count(2)
    expect(cards.nth(0)).to_have_attribute("data-id", inbox.message_token(third.pk))
    _wait_for(lambda: _status(third).status == "opened")
    expect(page.locator(f".ei-card[data-id='{newer_token}']")).to_have_count(0)

    # The button records the click, then takes the visitor to the card's address.
    page.locator(f".ei-card[data-id='{older_token}'] .ei-cta").click()
    page.wait_for_url(f"{customer_site.url}/renewed")
    assert _status(older).status == "clicked"
    assert older.clicked_at is not None
    assert _status(third).clicked_at is None


def test_message_text_is_text_and_a_bad_key_shows_nothing(customer_page, customer_site, workspace):
    page = customer_page
    hostile = {
        "title": '<img src="x" onerror="window.__owned = 1">Sale',
        "body": "<script>window.__owned = 2</script>",
        "cta_label": "Open",
        "cta_url": "https://acme.example/open?next=<b>",
    }
    ada = _person(workspace)
    message = _card(ada, at=T0, template=_template(workspace, hostile))
    customer_site.options = {
        "host": customer_site.app,
        "writeKey": _write_key(workspace),
        "userId": "ada",
        "element": "#inbox",
        "pollSeconds": 0,
    }
    page.goto(customer_site.url + "/")
    card = page.locator(".ei-card")
    expect(card).to_have_count(1)
    expect(card.locator(".ei-title")).to_have_text('<img src="x" onerror="window.__owned = 1">Sale')
    expect(card.locator(".ei-body")).to_have_text("<script>window.__owned = 2</script>")
    expect(card.locator("img")).to_have_count(0)
    expect(card.locator("a.ei-cta")).to_have_attribute("href", "https://acme.example/open?next=<b>")
    assert page.evaluate("() => window.__owned") is None
    _wait_for(lambda: _status(message).status == "opened")
    seen_at = message.opened_at

    # A wrong key lists nothing and changes nothing (the console says why).
    warnings: list[str] = []
    page.on("console", lambda entry: entry.type == "warning" and warnings.append(entry.text))
    customer_site.options = {**customer_site.options, "writeKey": "wk_not_a_key"}
    page.goto(customer_site.url + "/")
    expect(page.locator(".ei-inbox")).to_have_attribute("data-state", "error")
    expect(page.locator(".ei-card")).to_have_count(0)
    assert warnings == ["EngagementInbox: inbox answered 401"]
    assert _status(message).opened_at == seen_at and message.dismissed_at is None


def _wait_for(condition, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the server did not record it in time")
        time.sleep(0.1)
