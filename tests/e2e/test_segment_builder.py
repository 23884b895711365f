"""The segment builder in a real browser: build a two-level rule from scratch, watch
the live size estimate and summary follow the edits, see an error named on its rule,
save, and find the members computed by the RQ job; then a customer value condition
over computed values, and a value template."""

from __future__ import annotations

import re
from datetime import timedelta

import django_rq
import pytest
from django.utils import timezone
from playwright.sync_api import expect
from rq import SimpleWorker

from analytics.value import customer_value_compute
from engagement_site.workspaces.models import AuditLog
from segments.models import Event, Profile, Segment, SegmentMembership
from tests.analytics.value_data import NOW as VALUE_NOW
from tests.analytics.value_data import shop
from tests.conftest import PASSWORD
from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _people(workspace) -> dict[str, Profile]:
    """Six people; the rule built below matches exactly ada and cy:
    two orders in the last 30 days AND (plan pro OR logged in within the last 7 days)."""
    now = timezone.now()
    people = {}
    layout = {
        # name: (plan, order days ago, login days ago)
        "ada": ("pro", [2, 9], []),
        "bo": ("free", [3, 12], []),  # two orders, but neither pro nor a recent login
        "cy": ("free", [1, 20], [1]),  # two orders and a login yesterday
        "di": ("pro", [5], [2]),  # pro and active, but one order only
        "ed": ("pro", [40, 45], []),  # two orders, too long ago
        "flo": ("free", [], [0]),
    }
    for number, (name, (plan, orders, logins)) in enumerate(layout.items()):
        profile = Profile.objects.create(
            workspace=workspace,
            user_id=f"u-{name}",
            email=f"{name}@example.com",
            traits={"name": name.title(), "plan": plan},
            first_seen=now - timedelta(days=60),
        )
        for index, days in enumerate(orders):
            Event.objects.create(
                workspace=workspace,
                profile=profile,
                name="order_completed",
                timestamp=now - timedelta(days=days),
                properties={"total": 20 + index},
                message_id=f"o-{number}-{index}",
            )
        for index, days in enumerate(logins):
            Event.objects.create(
                workspace=workspace,
                profile=profile,
                name="logged_in",
                timestamp=now - timedelta(days=days, minutes=5),
                properties={},
                message_id=f"l-{number}-{index}",
            )
        people[name] = profile
    return people


def _log_in(page) -> None:
    page.goto("/login/")
    page.fill("input[name=username]", "olivia")
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name=re.compile("log in|sign in", re.I)).click()
    expect(page).to_have_url(re.compile(r"/w/acme/"))


def _count(page):
    return page.get_by_test_id("preview-count")


def _settled(page) -> None:
    """htmx wires a swapped-in tree's selects when it settles (and drops htmx-added
    then); a select changed before that would post a preview instead of a redraw.
    Call after expecting something the new tree has."""
    expect(page.locator("#rule-tree.htmx-added")).to_have_count(0)


def test_build_a_two_level_rule_see_its_size_and_save_it(page, workspace, owner):
    people = _people(workspace)
    _log_in(page)
    page.goto("/w/acme/segments/")
    page.get_by_test_id("new-segment").click()
    expect(page).to_have_url(re.compile(r"/w/acme/segments/new$"))
    page.wait_for_load_state("domcontentloaded")

    page.fill("#segment-name", "Engaged repeat buyers")
    tree = page.get_by_test_id("rule-tree")

    # Level one: order_completed at least 2 times in the last 30 days (the default leaf).
    first = tree.locator("[data-path='r-0']")
    first.get_by_label("Event").fill("order_completed")
    first.get_by_label("Times").fill("2")
    expect(_count(page)).to_have_text("3")  # ada, bo, cy; not ed (40+ days ago)
    expect(page.get_by_test_id("preview-summary")).to_have_text(
        "People who did order_completed at least twice in the last 30 days"
    )

    # Level two: a group matching any of (plan is pro, logged_in in the last 7 days).
    tree.locator("[data-path='r'] > .rule-group-actions").get_by_test_id("add-group").click()
    group = tree.locator("fieldset[data-path='r-1']")
    expect(group).to_be_visible()
    expect(group.get_by_label("How the conditions combine")).to_have_value("any")
    login = group.locator("[data-path='r-1-0']")
    login.get_by_label("Event").fill("logged_in")
    login.get_by_label("Days").fill("7")
    expect(_count(page)).to_have_text("1")  # cy only, so far

    group.locator(":scope > .rule-group-actions summary").click()
    group.locator(":scope > .rule-group-actions").get_by_test_id("add-attribute").click()
    plan = tree.locator("[data-path='r-1-1']")
    expect(plan).to_be_visible()
    plan.get_by_label("Trait", exact=True).fill("plan")
    plan.get_by_label("Value").fill("pro")
    expect(_count(page)).to_have_text("2")
    expect(page.get_by_test_id("preview-summary")).to_have_text(
        "People who did order_completed at least twice in the last 30 days and "
        "(who did logged_in in the last 7 days or whose plan is pro)"
    )
    sample = page.get_by_test_id("preview-sample")
    expect(sample.get_by_role("link")).to_have_count(2)
    expect(sample).to_contain_text("Ada")
    expect(sample).to_contain_text("Cy")
    screenshot(page, "segment-builder")

    # A broken value is named on its rule, and the estimate says what is wrong.
    login.get_by_label("Days").fill("0")
    expect(page.get_by_test_id("preview-error")).to_contain_text("rules[1].rules[0] (event_count)")
    expect(login).to_have_class(re.compile(r"rule--invalid"))
    expect(login.locator("[data-rule-error]")).to_contain_text("last_days must be ≥ 1")
    screenshot(page, "segment-builder-error")
    login.get_by_label("Days").fill("7")
    expect(_count(page)).to_have_text("2")
    expect(login).not_to_have_class(re.compile(r"rule--invalid"))

    page.get_by_test_id("save-segment").click()
    expect(page).to_have_url(re.compile(r"/w/acme/segments/\d+/$"))
    segment = Segment.objects.get(workspace=workspace, name="Engaged repeat buyers")
    assert segment.created_by == owner
    assert segment.definition == {
        "type": "and",
        "rules": [
            {
                "type": "event_count",
                "event": "order_completed",
                "filters": [],
                "op": "gte",
                "count": 2,
                "window": {"last_days": 30},
            },
            {
                "type": "or",
                "rules": [
                    {
                        "type": "event_count",
                        "event": "logged_in",
                        "filters": [],
                        "op": "gte",
                        "count": 1,
                        "window": {"last_days": 7},
                    },
                    {"type": "attribute", "op": "eq", "trait": "plan", "value": "pro"},
                ],
            },
        ],
    }
    assert (
        AuditLog.objects.filter(
            workspace=workspace, action="segment.create", object_id=str(segment.pk), actor=owner
        ).count()
        == 1
    )

    # The first computation is an RQ job queued on commit; run it as the worker would.
    queue = django_rq.get_queue("default")
    assert queue.job_ids == [f"segment-recompute-{segment.pk}"]
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    assert queue.failed_job_registry.get_job_ids() == []
    assert set(
        SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True).values_list(
            "profile_id", flat=True
        )
    ) == {people["ada"].pk, people["cy"].pk}
    page.reload()
    expect(page.get_by_test_id("member-count")).to_have_text("2")
    expect(page.get_by_test_id("members")).to_contain_text("Ada")
    expect(page.get_by_test_id("segment-summary")).to_contain_text("whose plan is pro")
    screenshot(page, "segment-page")

    # Editing starts from the saved rule, level two included.
    page.get_by_test_id("edit-segment").click()
    expect(
        page.locator("fieldset[data-path='r-1'] [data-path='r-1-1']").get_by_label("Value")
    ).to_have_value("pro")
    expect(_count(page)).to_have_text("2")


def test_a_customer_value_condition_counts_computed_values(page, workspace, other_workspace, owner):
    """The hand-worked shop (tests/analytics/value_data.py) with its values computed: ann
    champion, ben loyal, cat potential, dan at risk (churn risk 0.78), eve lost (1)."""
    people = shop(workspace, other_workspace)
    customer_value_compute(workspace=workspace, now=VALUE_NOW)
    customer_value_compute(workspace=other_workspace, now=VALUE_NOW)  # a champion not ours
    _log_in(page)
    page.goto("/w/acme/segments/new")
    page.fill("#segment-name", "Slipping away")
    tree = page.get_by_test_id("rule-tree")
    leaf = tree.locator("[data-path='r-0']")

    # The first condition becomes a customer value: value tier is champion.
    leaf.get_by_label("Kind of condition").select_option(label="Customer value")
    expect(leaf.get_by_label("Value tier", exact=True)).to_have_value("champion")
    _settled(page)
    expect(_count(page)).to_have_text("1")  # ann
    expect(page.get_by_test_id("preview-summary")).to_have_text(
        "People whose value tier is champion"
    )

    # is one of: champion stays ticked; ticking At risk adds dan.
    leaf.get_by_label("Comparison").select_option(label="is one of")
    tiers = leaf.get_by_role("group", name="Value tiers")
    expect(tiers.get_by_label("Champion")).to_be_checked()
    _settled(page)
    tiers.get_by_label("At risk").check()
    expect(_count(page)).to_have_text("2")
    expect(page.get_by_test_id("preview-summary")).to_have_text(
        "People whose value tier is one of champion, at risk"
    )
    sample = page.get_by_test_id("preview-sample")
    expect(sample).to_contain_text("ann@example.com")
    expect(sample).to_contain_text("dan@example.com")
    screenshot(page, "segment-builder-value-tiers")

    # Churn risk: a number is needed, and the rule says so until one is typed.
    leaf.get_by_label("Customer value").select_option(label="churn risk")
    expect(leaf.get_by_label("Value", exact=True)).to_have_value("")
    _settled(page)
    expect(leaf).to_have_class(re.compile(r"rule--invalid"))
    expect(leaf.locator("[data-rule-error]")).to_contain_text("churn_risk needs a number")
    leaf.get_by_label("Value", exact=True).fill("0.7")
    expect(_count(page)).to_have_text("2")  # dan 0.7769, eve 1
    expect(leaf).not_to_have_class(re.compile(r"rule--invalid"))
    expect(page.get_by_test_id("preview-summary")).to_have_text(
        "People whose churn risk is at least 0.7"
    )
    screenshot(page, "segment-builder-customer-value")

    page.get_by_test_id("save-segment").click()
    expect(page).to_have_url(re.compile(r"/w/acme/segments/\d+/$"))
    segment = Segment.objects.get(workspace=workspace, name="Slipping away")
    assert segment.definition == {
        "type": "computed_trait",
        "trait": "churn_risk",
        "op": "gte",
        "value": 0.7,
    }
    queue = django_rq.get_queue("default")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    assert set(
        SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True).values_list(
            "profile_id", flat=True
        )
    ) == {people["dan"].pk, people["eve"].pk}

    # Re-opened, the rule shows what was saved.
    page.get_by_test_id("edit-segment").click()
    leaf = page.get_by_test_id("rule-tree").locator("[data-path='r-0']")
    expect(leaf.get_by_label("Customer value")).to_have_value("churn_risk")
    expect(leaf.get_by_label("Comparison")).to_have_value("gte")
    expect(leaf.get_by_label("Value", exact=True)).to_have_value("0.7")
    expect(_count(page)).to_have_text("2")

    # A template starts from a computed tier.
    page.goto("/w/acme/segments/new")
    page.get_by_test_id("templates-menu").click()
    page.get_by_role("link", name=re.compile("^Champions")).click()
    expect(page.locator("#segment-name")).to_have_value("Champions")
    expect(_count(page)).to_have_text("1")
