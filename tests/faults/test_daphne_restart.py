"""Daphne restarted with live sockets connected: the builder's `/ws/journeys/<id>/` and
the analytics overview's `/ws/analytics/<slug>/`. Clients reconnect and catch up: the
first frame on the new connection carries the numbers as they are, including what
changed while no server was there to tell them (no later change is needed).

Twice: with Python websocket clients against a Daphne killed outright (SIGKILL, a
crash), comparing each first frame with the numbers computed in the test; and in
headless Chromium, where the pages' live socket module (static/js/live_socket.js) must
notice the drop, retry with a growing pause (checked on Playwright's clock, so the
pauses are exact and no timing is measured), and show the new totals once a Daphne
stopped with SIGTERM (a deploy) is back."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

from analytics.consumers import _overview
from delivery.models import Message
from delivery.services import message_status_record
from journeys import live
from journeys.models import Enrollment, StepLog
from segments.models import Profile
from tests.e2e import conftest as e2e_fixtures
from tests.faults.stack import Daphne, soak_size
from tests.journeys.test_builder_browser import _live_journey, _login

browser = e2e_fixtures.browser
_orm_beside_playwright = e2e_fixtures._orm_beside_playwright

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = soak_size(10, 100)  # of each socket
CHANGES = 7  # people entering, and messages sent, while Daphne is down


@pytest.fixture
def daphne():
    server = Daphne("faults-daphne")
    server.start()
    yield server
    server.close()


def _entered_while_down(workspace, journey, count: int, prefix: str) -> None:
    """People who entered the journey and wait at "hold" (its trigger step logged)."""
    now = timezone.now()
    for n in range(count):
        profile = Profile.objects.create(workspace=workspace, user_id=f"{prefix}{n}")
        enrollment = Enrollment.objects.create(
            workspace=workspace, journey=journey, version=journey.live_version, profile=profile,
            state="waiting", current_node="hold", next_run_at=now + timezone.timedelta(days=1),
            context={"visits": {"cart": 1}}, entered_at=now, updated_at=now,
        )  # fmt: skip
        StepLog.objects.create(
            enrollment=enrollment, node_id="cart", visit=1, outcome="entered", port="next",
            detail={}, created_at=now,
        )  # fmt: skip


def _sent(workspace, journey, count: int, prefix: str) -> None:
    """Messages of the journey recorded as sent (as a send job records them), in a thread
    of its own: its live ping cannot run in a thread with an event loop (Playwright's)."""
    from django.db import connection

    profile = Profile.objects.create(workspace=workspace, user_id=f"{prefix}-reader")
    ids = [
        Message.objects.create(
            workspace=workspace, profile=profile, journey=journey,
            journey_version=journey.live_version, node_id="hold", channel="email",
            idempotency_key=f"{prefix}-{n}",
        ).pk
        for n in range(count)
    ]  # fmt: skip

    def run():
        try:
            for message_id in ids:
                message_status_record(message_id=message_id, status="sent")
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)


def _expected_frames(workspace, journey) -> tuple[dict, dict]:
    """What the two sockets must send now, computed here (JSON, without the time)."""
    journey_frame = {"type": "metrics", **live.journey_metrics(journey=journey)}
    overview_frame = _overview.func(workspace, {})
    return json.loads(json.dumps(journey_frame)), json.loads(json.dumps(overview_frame))


def _open(url: str, origin: str, session: str):
    """A connected client (closed by the caller)."""
    return connect(
        url, origin=origin, additional_headers={"Cookie": f"sessionid={session}"},
        open_timeout=10, proxy=None, legacy=True,
    )  # fmt: skip


def _reconnect(url: str, origin: str, session: str, *, timeout: float):
    """A client's own retry loop with a growing pause; (socket, attempts)."""
    deadline, pause, attempts = time.monotonic() + timeout, 0.2, 0
    while True:
        attempts += 1
        try:
            return _open(url, origin, session), attempts
        except (OSError, InvalidHandshake, TimeoutError):
            assert time.monotonic() < deadline, f"{url}: no connection after {attempts} tries"
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


def _first_frame(socket) -> dict:
    frame = json.loads(socket.recv(timeout=30))
    frame.pop("at")
    return frame


@pytest.mark.soak
@pytest.mark.timeout(soak_size(300, 900))
def test_websocket_clients_reconnect_after_daphne_is_killed_and_catch_up(daphne, workspace, owner):
    journey = _live_journey(workspace)
    _entered_while_down(workspace, journey, 2, "before")
    _sent(workspace, journey, 1, "before")
    client = Client()
    client.force_login(owner)
    session = client.cookies["sessionid"].value
    base = daphne.url.replace("http://", "ws://")
    urls = [f"{base}/ws/journeys/{journey.pk}/"] * CLIENTS + [
        f"{base}/ws/analytics/{workspace.slug}/"
    ] * CLIENTS
    journey_before, overview_before = _expected_frames(workspace, journey)
    assert journey_before["totals"]["entered"] == 2 and overview_before["totals"]["sent"] == 1

    sockets = [_open(url, daphne.url, session) for url in urls]
    first = [_first_frame(socket) for socket in sockets]
    assert first == [journey_before] * CLIENTS + [overview_before] * CLIENTS

    daphne.stop(signal.SIGKILL)
    for socket in sockets:  # every client sees its connection go
        with pytest.raises(ConnectionClosed):
            while True:
                socket.recv(timeout=30)
    _entered_while_down(workspace, journey, CHANGES, "during")
    _sent(workspace, journey, CHANGES, "during")
    journey_now, overview_now = _expected_frames(workspace, journey)
    assert journey_now["totals"]["entered"] == 2 + CHANGES
    assert overview_now["totals"]["sent"] == 1 + CHANGES

    results: list = [None] * len(urls)

    def come_back(index: int) -> None:
        results[index] = _reconnect(urls[index], daphne.url, session, timeout=180)

    threads = [threading.Thread(target=come_back, args=(n,)) for n in range(len(urls))]
    for thread in threads:
        thread.start()
    time.sleep(1)  # the clients knock on a closed port first
    daphne.start()
    for thread in threads:
        thread.join(timeout=200)
    assert all(result is not None for result in results)
    try:
        frames = [_first_frame(socket) for socket, _ in results]
    finally:
        for socket, _ in results:
            socket.close()
    # Nothing changed after the restart: the first frame alone carries what happened.
    assert frames == [journey_now] * CLIENTS + [overview_now] * CLIENTS
    print(
        f"\n{len(urls)} sockets dropped by a killed Daphne; all back after "
        f"{max(attempts for _, attempts in results)} tries at most; first frames: entered "
        f"{journey_before['totals']['entered']} -> {journey_now['totals']['entered']}, "
        f"sent {overview_before['totals']['sent']} -> {overview_now['totals']['sent']}"
    )


@pytest.mark.e2e
def test_the_pages_live_socket_backs_off_reconnects_and_catches_up_after_a_restart(
    daphne, browser, workspace, owner
):
    journey = _live_journey(workspace)
    _sent(workspace, journey, 1, "before")
    context = browser.new_context(base_url=daphne.url)
    page = context.new_page()
    page.set_default_timeout(30_000)
    # Count the page's websockets as they are made and as they close (a listener added
    # at construction runs before the module's own, in the same dispatch).
    page.add_init_script("""(() => {
        const Native = window.WebSocket;
        window.__sockets = {made: 0, closed: 0};
        window.WebSocket = class extends Native {
            constructor(...args) {
                super(...args);
                window.__sockets.made += 1;
                this.addEventListener("close", () => { window.__sockets.closed += 1; });
            }
        };
    })()""")
    page.clock.install()  # the page's timers run on Playwright's clock from here on
    _login(page, owner.username)
    page.goto(f"/w/{workspace.slug}/analytics/")
    root = page.locator("[data-live-socket]")
    sent = page.locator("[data-live-stat=sent]")
    expect(root).to_have_attribute("data-live-state", "live")
    expect(sent).to_have_text("1")

    def sockets() -> dict:
        return page.evaluate("window.__sockets")

    assert sockets() == {"made": 1, "closed": 0}
    page.clock.pause_at(time.time() * 1000 + 60_000)  # timers fire only when told
    daphne.stop(signal.SIGTERM)
    expect(root).to_have_attribute("data-live-state", "reconnecting")
    page.wait_for_function("() => window.__sockets.closed === 1")
    _sent(workspace, journey, CHANGES, "during")

    def knocks_after(pause_ms: int) -> None:
        """No new connection until `pause_ms` has passed on the page's clock, then one,
        refused (no server)."""
        made = sockets()["made"]
        page.clock.run_for(pause_ms - 1)
        page.wait_for_timeout(300)  # real time, for a connection that must not come
        assert sockets() == {"made": made, "closed": made}, f"knocked before {pause_ms} ms"
        page.clock.run_for(1)
        page.wait_for_function(
            f"() => window.__sockets.made === {made + 1} && window.__sockets.closed === {made + 1}"
        )
        expect(root).to_have_attribute("data-live-state", "reconnecting")

    # A second after the drop, then pauses that double: 1 s, 2 s, 4 s.
    for pause in (1000, 1000, 2000, 4000):
        knocks_after(pause)
    expect(sent).to_have_text("1")  # nothing shown while away

    daphne.start()
    page.clock.run_for(8000)  # the next try, which now connects
    expect(root).to_have_attribute("data-live-state", "live")
    # The first frame of the new connection carries what was sent while Daphne was down.
    expect(sent).to_have_text(str(1 + CHANGES))
    assert sockets() == {"made": 6, "closed": 5}
    e2e_fixtures.screenshot(page, "faults-daphne-restart-overview")
    context.close()
    print("\nbrowser: 6 connections (1 before the stop, 4 refused after 1, 1, 2, 4 s, 1 back)")
