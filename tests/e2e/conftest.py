"""Browser tests: Daphne serving the test database, driven by Playwright through
Debian's chromium (`make test` installs it; Playwright cannot download browsers here)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from django.db import connection
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
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


def database_url_of(settings_dict: dict) -> str:
    """DATABASE_URL with the database swapped for the one Django uses (the test database)."""
    parsed = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parsed._replace(path=f"/{settings_dict['NAME']}"))


@pytest.fixture(scope="session")
def app_server(django_db_setup, django_db_blocker) -> str:
    """Daphne (the ASGI app with websockets) on a free port, using the test database."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    environment = {
        **os.environ,
        "DATABASE_URL": database_url_of(connection.settings_dict),
        # Links that leave the app (public media addresses) point at this server.
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    environment.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "daphne.log"
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("daphne")), "-b", "127.0.0.1", "-p", str(port), "engagement_site.asgi:application"],
        cwd=ROOT, env=environment, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{base}/login/", timeout=2)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("Daphne did not start:\n" + log.read_text()) from None
            time.sleep(0.2)
    yield base
    process.terminate()
    process.wait(timeout=20)


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
