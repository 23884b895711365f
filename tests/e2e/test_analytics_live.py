"""The analytics pages in a real browser (Daphne + Debian's chromium): the journey
report's numbers change without a reload when events sent by Segment's Python client
are processed by a real RQ worker and when the journey's messages are sent; the
overview's totals and charts follow new message events; another workspace's member
gets no overview frame."""

from __future__ import annotations

import threading

import pytest
from playwright.sync_api import expect
from segment.analytics import Client as SegmentClient

from delivery.models import Message
from delivery.services import message_status_record
from engagement_site.workspaces.services import api_key_create
from segments.models import Profile
from tests.conftest import SETUP
from tests.e2e import conftest as e2e_fixtures
from tests.journeys.test_builder_browser import _live_journey, _login, _process_events

app_server = e2e_fixtures.app_server
browser = e2e_fixtures.browser
page = e2e_fixtures.page
_orm_beside_playwright = e2e_fixtures._orm_beside_playwright

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _record(message_id: int, *statuses: str) -> None:
    """Record message outcomes as a send job would, in a thread of its own: the live
    ping's async_to_sync cannot run in Playwright's thread, which runs an event loop."""
    from django.db import connection

    def run():
        try:
            for status in statuses:
                message_status_record(message_id=message_id, status=status)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)


def _message(workspace, journey, profile, key: str) -> Message:
    return Message.objects.create(
        workspace=workspace, profile=profile, journey=journey,
        journey_version=journey.live_version, node_id="hold", channel="email",
        idempotency_key=key,
    )  # fmt: skip


def test_journey_report_follows_events_and_sends_without_a_reload(
    page, workspace, owner, app_server
):
    journey = _live_journey(workspace)
    key = api_key_create(workspace=workspace, kind="write", name="app", context=SETUP)[1]
    _login(page, owner.username)
    page.goto(f"/w/{workspace.slug}/analytics/journeys/{journey.pk}/")
    live = page.locator("[data-live-socket]")
    expect(live).to_have_attribute("data-live-state", "live")
    entered = page.locator("[data-live-total=entered]")
    waiting = page.locator("[data-live-node=hold][data-key=waiting]")
    sent = page.locator("[data-live-node=hold][data-key=sent]")
    expect(entered).to_have_text("0")
    expect(sent).to_have_text("0")

    client = SegmentClient(write_key=key, host=app_server, sync_mode=True)
    for n in range(3):
        client.track(user_id=f"shopper-{n}", event="Cart Abandoned", properties={"total": 10 * n})
    client.flush()
    _process_events()
    # The open page changes by itself: no reload.
    expect(entered).to_have_text("3")
    expect(waiting).to_have_text("3")
    expect(page.locator("[data-live-node=cart][data-key=entered]")).to_have_text("3")

    shopper = Profile.objects.get(workspace=workspace, user_id="shopper-0")
    message = _message(workspace, journey, shopper, "report-live-0")
    _record(message.pk, "sent")
    expect(sent).to_have_text("1")
    expect(page.locator("[data-live-total=sent]")).to_have_text("1")
    _record(message.pk, "opened")
    expect(page.locator("[data-live-node=hold][data-key=opened]")).to_have_text("1")
    e2e_fixtures.screenshot(page, "analytics-journey-report")


def test_overview_totals_and_chart_follow_message_events(
    page, browser, app_server, workspace, other_workspace, owner, outsider
):
    journey = _live_journey(workspace)
    ada = Profile.objects.create(workspace=workspace, user_id="ada")
    first = _message(workspace, journey, ada, "overview-live-0")
    message_status_record(message_id=first.pk, status="sent")
    _login(page, owner.username)
    page.goto(f"/w/{workspace.slug}/analytics/")
    live = page.locator("[data-live-socket]")
    expect(live).to_have_attribute("data-live-state", "live")
    sent = page.locator("[data-live-stat=sent]")
    expect(sent).to_have_text("1")
    expect(page.locator("[data-live-rate=open_rate]")).to_have_text("0.0%")

    second = _message(workspace, journey, ada, "overview-live-1")
    _record(second.pk, "sent", "opened")
    expect(sent).to_have_text("2")
    expect(page.locator("[data-live-stat=opened]")).to_have_text("1")
    expect(page.locator("[data-live-rate=open_rate]")).to_have_text("50.0%")
    # The chart's table shows the new numbers too: today's row, email column.
    table = page.locator("[data-chart-table=messages] tbody tr").last
    expect(table.locator("td").nth(1)).to_have_text("2", use_inner_text=False)
    e2e_fixtures.screenshot(page, "analytics-overview")

    # Another workspace's member is refused before the handshake: no frame.
    script = """(url) => new Promise((resolve) => {
        const socket = new WebSocket(url);
        let frames = 0;
        socket.onmessage = () => { frames += 1; };
        socket.onclose = () => resolve({closed: true, frames});
        setTimeout(() => resolve({closed: false, frames}), 5000);
    })"""
    context = browser.new_context(base_url=app_server)
    visitor = context.new_page()
    _login(visitor, outsider.username)
    seen = visitor.evaluate(
        script, app_server.replace("http://", "ws://") + f"/ws/analytics/{workspace.slug}/"
    )
    context.close()
    assert seen == {"closed": True, "frames": 0}
