"""The funnel and retention pages in a real browser: steps typed with the event-name
autocomplete, the report drawn as Chart.js charts with their tables, a bad step named
next to the form, and the retention heat map."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from segments.models import Event, Profile
from tests.e2e import conftest as e2e_fixtures
from tests.journeys.test_builder_browser import _login

app_server = e2e_fixtures.app_server
browser = e2e_fixtures.browser
page = e2e_fixtures.page
_orm_beside_playwright = e2e_fixtures._orm_beside_playwright

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _track(profile, name: str, day: int, hour: int) -> None:
    Event.objects.create(
        workspace=profile.workspace, profile=profile, name=name,
        message_id=f"{profile.user_id}-{name}-{day}-{hour}",
        timestamp=datetime(2026, 3, day, hour, tzinfo=UTC),
    )  # fmt: skip


def test_funnel_and_retention_pages(page, workspace, owner):
    # Three people view (2, 3 and 9 March), two add to cart (after 1 h and 3 h), one buys.
    for index, day in enumerate((2, 3, 9)):
        profile = Profile.objects.create(
            workspace=workspace, user_id=f"u{index}",
            first_seen=datetime(2026, 3, day, 8, tzinfo=UTC),
        )  # fmt: skip
        _track(profile, "Product Viewed", day, 9)
        if index < 2:
            _track(profile, "Product Added", day, 10 + 2 * index)
        if index == 0:
            _track(profile, "Order Completed", day + 1, 9)
            _track(profile, "Product Viewed", 10, 9)  # back in the second week

    _login(page, owner.username)
    page.goto(f"/w/{workspace.slug}/analytics/funnels/")
    expect(page.get_by_test_id("funnel-empty")).to_be_visible()
    options = page.locator("datalist#event-names option")
    expect(options).to_have_count(3)
    page.get_by_label("Step 1 event").fill("Product Viewed")
    page.get_by_label("Step 2 event").fill("Product Added")
    page.get_by_label("Step 3 event").fill("Order Completed")
    page.fill("input[name=start]", "2026-03-01")
    page.fill("input[name=end]", "2026-03-31")
    page.get_by_role("button", name="Show funnel").click()

    rows = page.get_by_test_id("funnel-table").locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_have_text("1. Product Viewed 3 — 100.0% —", use_inner_text=True)
    expect(rows.nth(1)).to_have_text("2. Product Added 2 66.7% 66.7% 2 h", use_inner_text=True)
    expect(rows.nth(2)).to_have_text("3. Order Completed 1 50.0% 33.3% 23 h", use_inner_text=True)
    # Chart.js drew the people chart; its table shows the same numbers.
    card = page.get_by_test_id("chart-people")
    expect(card.locator("canvas")).to_be_visible()
    assert page.evaluate("() => !!window.Chart && Object.keys(window.Chart.instances).length") >= 3
    card.get_by_text("Table").click()
    expect(card.locator("tbody tr").nth(1)).to_have_text("2. Product Added 2", use_inner_text=True)
    expect(page.get_by_test_id("chart-people-csv")).to_have_attribute(
        "href", "?event=Product+Viewed&event=Product+Added&event=Order+Completed&event=&event="
        "&event=&property=&property=&property=&property=&property=&property=&value=&value=&value="
        "&value=&value=&value=&start=2026-03-01&end=2026-03-31&window_days=7&breakdown="
        "&breakdown_path=&csv=people",
    )  # fmt: skip
    e2e_fixtures.screenshot(page, "analytics-funnel")

    # A step naming an event nobody sent is refused, naming the step.
    page.get_by_label("Step 3 event").fill("Order Complete")
    page.get_by_role("button", name="Show funnel").click()
    expect(page.get_by_test_id("funnel-error")).to_have_text(
        "Step 3: no event named 'Order Complete' in this workspace"
    )
    expect(page.get_by_test_id("funnel-table")).to_have_count(0)

    page.get_by_role("link", name="Retention").click()
    page.fill("input[name=start]", "2026-03-02")
    page.fill("input[name=end]", "2026-03-15")
    page.fill("input[name=weeks]", "2")
    page.get_by_role("button", name="Apply").click()
    heat = page.get_by_test_id("retention-table").locator("tbody tr")
    expect(heat).to_have_count(2)
    # Week of 2 March: u0 and u1; both back in week 0, u0 again in week 1.
    expect(heat.nth(0)).to_have_text("2 Mar 2026 2 100.0% 50.0% 0.0%", use_inner_text=True)
    expect(heat.nth(1)).to_have_text("9 Mar 2026 1 100.0% 0.0% 0.0%", use_inner_text=True)
    strong = heat.nth(0).locator("td.heat").first
    assert strong.evaluate("cell => getComputedStyle(cell).backgroundColor") == (
        "rgba(90, 82, 224, 0.85)"
    )
    expect(page.get_by_test_id("chart-average")).to_be_visible()
    e2e_fixtures.screenshot(page, "analytics-retention")
