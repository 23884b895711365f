"""The app shell in a real browser: login, navigation (mouse and keyboard), the
workspace switcher, settings, logout; screenshots land in test-artifacts/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from engagement_site.workspaces.models import AuditLog, Membership
from engagement_site.workspaces.roles import Role
from tests.conftest import PASSWORD
from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _log_in(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.get_by_role("button", name=re.compile("log in|sign in", re.I)).click()


def test_login_navigate_switch_workspace_and_log_out(page, workspace, other_workspace, owner):
    Membership.objects.create(workspace=other_workspace, user=owner, role=Role.VIEWER)

    _log_in(page, "olivia", "not the password")
    expect(
        page.get_by_text(re.compile("enter a correct username and password", re.I))
    ).to_be_visible()

    _log_in(page, "olivia")
    expect(page).to_have_url(re.compile(r"/w/acme/journeys/$"))
    expect(page.get_by_role("heading", name="Journeys", exact=True)).to_be_visible()
    screenshot(page, "shell-journeys")

    page.get_by_role("link", name="Segments", exact=True).click()
    expect(page).to_have_url(re.compile(r"/w/acme/segments/$"))

    # Shortcuts live in a module script, which runs before DOMContentLoaded: wait for it,
    # or the keys can arrive before anyone listens.
    page.wait_for_load_state("domcontentloaded")
    page.keyboard.press("g")
    page.keyboard.press("c")
    expect(page).to_have_url(re.compile(r"/w/acme/content/$"))

    page.wait_for_load_state("domcontentloaded")
    page.keyboard.press("g")
    page.keyboard.press(",")
    expect(page).to_have_url(re.compile(r"/w/acme/settings/$"))
    screenshot(page, "shell-settings")

    page.locator("[data-testid=workspace-switcher] summary").click()
    page.locator("[data-testid=workspace-switcher]").get_by_role(
        "link", name=re.compile("Globex")
    ).click()
    expect(page).to_have_url(re.compile(r"/w/globex/journeys/$"))
    # A viewer in Globex: the Settings pages are not offered.
    expect(page.get_by_role("link", name="Members")).to_have_count(0)

    page.locator("[data-testid=user-menu] summary").click()
    page.get_by_role("button", name=re.compile("log out", re.I)).click()
    expect(page).to_have_url(re.compile(r"/login/$"))
    assert list(
        AuditLog.objects.filter(workspace=None)
        .order_by("sequence")
        .values_list("action", flat=True)
    ) == [
        "user.login_failed",
        "user.login",
        "user.logout",
    ]


def test_create_a_write_key_and_see_it_once(page, workspace, owner):
    _log_in(page, "olivia")
    page.goto("/w/acme/settings/api-keys/")
    page.fill("input[name=name]", "Website")
    page.select_option("select[name=kind]", "secret")
    page.select_option("select[name=role]", "analyst")
    page.get_by_role("button", name=re.compile("create", re.I)).click()
    shown = page.locator("[data-testid=new-key]")
    expect(shown).to_contain_text("sk_")
    screenshot(page, "shell-api-key-created")
    page.goto("/w/acme/settings/api-keys/")  # a fresh visit: the secret is gone for good
    expect(page.locator("[data-testid=new-key]")).to_have_count(0)
    expect(page.get_by_role("cell", name="Website")).to_be_visible()
