"""The journeys list in a real browser (Daphne + Debian's chromium): the "New journey"
dialog creates a journey from the Abandoned cart template and lands on its editor."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from journeys.models import Journey
from tests.conftest import PASSWORD
from tests.e2e import conftest as e2e_fixtures

# The browser fixtures of tests/e2e (Daphne on the test database, chromium), used here.
app_server = e2e_fixtures.app_server
browser = e2e_fixtures.browser
page = e2e_fixtures.page
_orm_beside_playwright = e2e_fixtures._orm_beside_playwright

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _login(page, username: str) -> None:
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/w/"))


def test_a_journey_from_the_abandoned_cart_template_opens_in_the_editor(page, owner, workspace):
    _login(page, owner.username)
    page.goto(f"/w/{workspace.slug}/journeys/")
    dialog = page.get_by_test_id("new-journey-dialog")
    expect(dialog).to_be_hidden()

    page.get_by_test_id("new-journey").click()
    expect(dialog).to_be_visible()
    dialog.get_by_label("Abandoned cart").check()
    expect(dialog.locator("input[name=name]")).to_have_attribute("placeholder", "Abandoned cart")
    page.screenshot(path="/tmp/journey-list-new-dialog.png", full_page=True)
    dialog.get_by_test_id("create-journey").click()

    page.wait_for_url(re.compile(rf"/w/{workspace.slug}/journeys/\d+/$"))
    journey = Journey.objects.get(workspace=workspace, name="Abandoned cart")
    assert page.url.endswith(f"/w/{workspace.slug}/journeys/{journey.pk}/")

    page.goto(f"/w/{workspace.slug}/journeys/")
    row = page.get_by_test_id("journeys").locator(f"tr[data-journey-id='{journey.pk}']")
    expect(row.get_by_test_id("status")).to_have_text("Draft")
    expect(row.get_by_test_id("archive")).to_be_visible()
    page.screenshot(path="/tmp/journey-list.png", full_page=True)
