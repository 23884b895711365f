"""Browser tests: Daphne serving the test database, driven by Playwright through
Debian's chromium (`make test` installs it; Playwright cannot download browsers here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.servers import ARTIFACTS, free_port, server_environment, start_daphne, stop

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def app_server(django_db_setup, django_db_blocker) -> str:
    """Daphne (the ASGI app with websockets) on a free port, using the test database."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Links that leave the app (public media addresses) point at this server.
    environment = server_environment(PUBLIC_URL=base)
    process = start_daphne(port, ARTIFACTS / "daphne.log", environment)
    yield base
    stop(process)


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright():
    """Playwright's sync API runs an event loop in the test thread, which makes Django's
    ORM refuse to run there. Only these tests' own set-up queries need the exemption;
    the server under test (Daphne) and every other test run without it."""
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture(scope="module")
def browser(_orm_beside_playwright):
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_server):
    context = browser.new_context(base_url=app_server, viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()


def screenshot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
