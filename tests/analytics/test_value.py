"""Customer value from a small shop worked out by hand (tests/analytics/value_data.py
describes its history): LTV, engagement score, churn risk and tier per profile, the
settings moving the tiers, the computed_trait segment rule, and another workspace's
data never counted."""

from __future__ import annotations

from decimal import Decimal

import pytest

from analytics.models import CustomerValue, CustomerValueSettings
from analytics.value import (
    annuity_factor,
    customer_value_compute,
    customer_value_enqueue,
    customer_value_recompute,
    scheduler_duty,
    value_settings_get,
    workspaces_due_for_value,
)
from segments.describe import rule_summary
from segments.evaluation import segment_evaluate_all
from segments.models import Segment, SegmentMembership
from segments.rules import RuleError, parse_definition
from tests.analytics.value_data import NOW, shop

pytestmark = pytest.mark.django_db


def _values(workspace) -> dict[str, tuple]:
    return {
        value.profile.user_id: (
            value.revenue,
            value.orders,
            value.average_order_value,
            value.purchase_frequency,
            value.ltv,
            value.engagement_score,
            value.churn_risk,
            value.value_tier,
        )
        for value in CustomerValue.objects.filter(workspace=workspace).select_related("profile")
    }


def test_the_annuity_factor():
    # (1 - 1.1^-3) / 0.1 = (1 - 0.7513148) / 0.1 = 2.486852
    assert annuity_factor(discount_rate=0.1, lifespan_years=3) == pytest.approx(2.4868520)
    assert annuity_factor(discount_rate=0, lifespan_years=3) == 3


def test_values_of_the_hand_worked_shop(workspace, other_workspace):
    people = shop(workspace, other_workspace)
    assert customer_value_compute(workspace=workspace, now=NOW) == 5

    # LTV = AOV x orders per year x annuity factor 2.486852 (10%, 3 years).
    # ann: revenue 300 + "100" = 400 over 2 orders, AOV 200; first order 100 days ago,
    #      tenure counted as at least 365 days: 2 x 365 / 365 = 2 a year;
    #      400 a year x 2.486852 = 994.74.
    # ben: 1000 over 1 order; first order 730 days ago: 1 x 365 / 730 = 0.5 a year;
    #      500 a year x 2.486852 = 1243.43.
    # Engagement, counts in the last 90 days and the workspace's caps (95th percentile,
    # discrete, of the counts > 0): web [ann 3, ben 1, cat 3, dan 1] -> 3; email
    # [ann 2, cat 2] -> 2; purchase [ann 1] -> 1 (ben's order is older); mobile
    # [cat 2] -> 2; review [cat 1] -> 1; social and support unused, so the weights
    # that count are 1 + 1 + 2 + 1 + 1.5 = 6.5. A touchpoint gives
    # weight x min(1, ln(1 + n) / ln(1 + cap)).
    # ann: web 1 + email 1 + purchase 2 = 4 -> 100 x 4 / 6.5 = 61.5
    # ben: web ln 2 / ln 4 = 0.5 -> 100 x 0.5 / 6.5 = 7.7
    # cat: web 1 + mobile 1 + review 1.5 + email 1 = 4.5 -> 69.2
    # dan: web 0.5 -> 7.7 (the SMS open and the machine open are not email touches)
    # Churn risk = 1 - exp(-days silent / usual gap), the gap = days between the first
    # and last active day / (active days - 1), else the at-risk days (30):
    # ann: active 100, 10, 5, 4, 3, 2 days ago: gap 98 / 5 = 19.6; silent 2:
    #      1 - exp(-2 / 19.6) = 0.0970
    # ben: active 730 and 20 days ago: gap 710; 1 - exp(-20 / 710) = 0.0278
    # cat: one active day, gap 30; 1 - exp(-1 / 30) = 0.0328
    # dan: one active day, gap 30, silent 45: 1 - exp(-1.5) = 0.7769
    # eve: never engaged: 1.
    # Tiers: eve lost (never engaged); dan at risk (45 >= 30 days); ann champion
    # (994.74 >= 500 and 61.5 >= 60); ben loyal (LTV >= 500); cat potential: highly
    # engaged but LTV 0 < medium 100.
    d = Decimal
    assert _values(workspace) == {
        "ann": (d("400.00"), 2, d("200.00"), 2.0, d("994.74"), 61.5, 0.097, "champion"),
        "ben": (d("1000.00"), 1, d("1000.00"), 0.5, d("1243.43"), 7.7, 0.0278, "loyal"),
        "cat": (d("0.00"), 0, d("0.00"), 0.0, d("0.00"), 69.2, 0.0328, "potential"),
        "dan": (d("0.00"), 0, d("0.00"), 0.0, d("0.00"), 7.7, 0.7769, "at_risk"),
        "eve": (d("0.00"), 0, d("0.00"), 0.0, d("0.00"), 0.0, 1.0, "lost"),
    }
    ann = CustomerValue.objects.get(profile=people["ann"])
    assert (ann.last_engaged_at, ann.computed_at) == (NOW.replace(day=30, month=5), NOW)
    assert CustomerValue.objects.get(profile=people["eve"]).last_engaged_at is None
    assert not CustomerValue.objects.filter(workspace=other_workspace).exists()
    assert value_settings_get(workspace=workspace).last_computed_at == NOW


def test_settings_move_the_tiers_and_a_recompute_replaces_the_rows(workspace, other_workspace):
    shop(workspace, other_workspace)
    customer_value_compute(workspace=workspace, now=NOW)
    settings = value_settings_get(workspace=workspace)
    # ann's 994.74 is under a high LTV of 1000: still engaged (61.5 >= 60) with LTV
    # over the medium 100, so loyal; ben's 20 silent days reach an at-risk limit of 15.
    settings.high_ltv = Decimal("1000")
    settings.at_risk_days = 15
    settings.save()
    customer_value_compute(workspace=workspace, now=NOW)
    tiers = dict(CustomerValue.objects.values_list("profile__user_id", "value_tier"))
    assert tiers == {
        "ann": "loyal", "ben": "at_risk", "cat": "potential", "dan": "at_risk", "eve": "lost",
    }  # fmt: skip
    assert CustomerValue.objects.count() == 5
    # No discount and a 1-year life: LTV = one year's value; ben 500, ann 400.
    settings.discount_rate, settings.lifespan_years = Decimal("0"), Decimal("1")
    settings.save()
    customer_value_compute(workspace=workspace, now=NOW)
    ltv = dict(CustomerValue.objects.values_list("profile__user_id", "ltv"))
    assert (ltv["ann"], ltv["ben"]) == (Decimal("400.00"), Decimal("500.00"))


def test_zero_weight_touchpoints_leave_the_score(workspace, other_workspace):
    shop(workspace, other_workspace)
    settings = value_settings_get(workspace=workspace)
    settings.touchpoint_weights = {**settings.touchpoint_weights, "web": 0, "purchase": 0}
    settings.save()
    customer_value_compute(workspace=workspace, now=NOW)
    # Weights left: email 1 + mobile 1 + review 1.5 = 3.5. ann: email 1 -> 28.6;
    # cat: 1 + 1 + 1.5 = 3.5 -> 100; ben and dan: nothing weighed -> 0.
    scores = dict(CustomerValue.objects.values_list("profile__user_id", "engagement_score"))
    assert scores == {"ann": 28.6, "ben": 0.0, "cat": 100.0, "dan": 0.0, "eve": 0.0}


def test_computed_trait_rules(workspace, other_workspace):
    people = shop(workspace, other_workspace)
    customer_value_recompute(workspace=workspace, now=NOW)
    ids = {profile.pk: name for name, profile in people.items()}

    def members(definition):
        found = segment_evaluate_all(segment_or_definition=definition, workspace=workspace, now=NOW)
        return sorted(ids[pk] for pk in found)

    tier = {"type": "computed_trait", "trait": "value_tier"}
    assert members({**tier, "op": "in", "value": ["champion", "loyal"]}) == ["ann", "ben"]
    assert members({**tier, "op": "eq", "value": "lost"}) == ["eve"]
    assert members({"type": "computed_trait", "trait": "ltv", "op": "gte", "value": 1000}) == [
        "ben"
    ]
    assert members({"type": "computed_trait", "trait": "churn_risk", "op": "gt", "value": 0.5}) == [
        "dan",
        "eve",
    ]
    assert members(
        {"type": "computed_trait", "trait": "engagement_score", "op": "lte", "value": 7.7}
    ) == ["ben", "dan", "eve"]
    # A profile computed later (none yet) matches only ne.
    fresh = people["eve"].__class__.objects.create(workspace=workspace, user_id="fay")
    ids[fresh.pk] = "fay"
    assert members({**tier, "op": "ne", "value": "champion"}) == ["ben", "cat", "dan", "eve", "fay"]
    assert "fay" not in members({**tier, "op": "in", "value": ["lost", "potential"]})
    assert rule_summary({**tier, "op": "in", "value": ["champion", "at_risk"]}) == (
        "People whose value tier is one of champion, at risk"
    )
    assert rule_summary({"type": "computed_trait", "trait": "ltv", "op": "gte", "value": 500}) == (
        "People whose lifetime value is at least 500"
    )


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"trait": "value_tier", "op": "gt", "value": "loyal"}, "value_tier takes eq, ne or in"),
        ({"trait": "value_tier", "op": "eq", "value": "gold"}, "value must be one of champion"),
        ({"trait": "ltv", "op": "gte", "value": "lots"}, "ltv needs a number"),
        ({"trait": "churn_risk", "op": "in", "value": [1]}, "churn_risk takes eq, ne, gt"),
        ({"trait": "age", "op": "eq", "value": 3}, "root (computed_trait): trait"),
    ],
)
def test_computed_trait_refuses_bad_rules(definition, message):
    with pytest.raises(RuleError) as error:
        parse_definition({"type": "computed_trait", **definition})
    assert message in str(error.value)


def test_a_recompute_refreshes_segments_that_read_computed_traits(workspace, other_workspace):
    people = shop(workspace, other_workspace)
    champions = Segment.objects.create(
        workspace=workspace, name="Champions",
        definition={"type": "computed_trait", "trait": "value_tier", "op": "eq", "value": "champion"},
    )  # fmt: skip
    unrelated = Segment.objects.create(
        workspace=workspace, name="Pages",
        definition={"type": "event_count", "event": "Home", "op": "gte", "count": 1},
    )  # fmt: skip
    customer_value_recompute(workspace=workspace, now=NOW)
    open_rows = SegmentMembership.objects.filter(exited_at__isnull=True)
    assert list(open_rows.filter(segment=champions).values_list("profile_id", flat=True)) == [
        people["ann"].pk
    ]
    assert not open_rows.filter(segment=unrelated).exists()  # not this job's business
    champions.refresh_from_db()
    assert (champions.member_count, champions.last_computed_at) == (1, NOW)


def test_the_scheduler_duty_queues_each_due_workspace_once(
    workspace, other_workspace, django_capture_on_commit_callbacks
):
    import django_rq

    queue = django_rq.get_queue("default")
    assert [w.slug for w in workspaces_due_for_value()] == ["acme", "globex"]
    for _ in range(2):  # the second run finds the jobs waiting and queues nothing
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            scheduler_duty()
        assert len(callbacks) == (2 if _ == 0 else 0)
    assert sorted(queue.job_ids) == [
        f"customer-value-{workspace.pk}", f"customer-value-{other_workspace.pk}",
    ]  # fmt: skip
    customer_value_compute(workspace=workspace)
    assert [w.slug for w in workspaces_due_for_value()] == ["globex"]
    assert CustomerValueSettings.objects.get(workspace=workspace).last_computed_at is not None


def test_liquid_reads_the_computed_values(workspace, other_workspace):
    from content.rendering import build_context

    people = shop(workspace, other_workspace)
    assert build_context(profile=people["ann"])["profile"]["computed"] == {}
    customer_value_compute(workspace=workspace, now=NOW)
    assert build_context(profile=people["ann"])["profile"]["computed"] == {
        "ltv": 994.74, "engagement_score": 61.5, "value_tier": "champion", "churn_risk": 0.097,
    }  # fmt: skip


def test_profile_computed_costs_no_query_when_loaded_with_the_profile(
    workspace, other_workspace, django_assert_num_queries
):
    """Send batches load the values with their profiles (select_related), so a batch of
    messages does not pay a query per message for profile.computed."""
    from content.rendering import build_context, render_content
    from segments.models import Profile

    people = shop(workspace, other_workspace)
    customer_value_compute(workspace=workspace, now=NOW)
    ann = Profile.objects.select_related("value").get(pk=people["ann"].pk)
    with django_assert_num_queries(0):
        rendered = render_content(
            channel="sms",
            content={
                "default": {"body": "{{ profile.traits.name }}: {{ profile.computed.value_tier }}"}
            },
            locale="",
            context=build_context(profile=ann),
        )
    assert rendered.fields["body"] == "ann: champion"
    eve = Profile.objects.select_related("value").get(pk=people["eve"].pk)
    with django_assert_num_queries(0):
        assert build_context(profile=eve)["profile"]["computed"]["value_tier"] == "lost"


def test_an_absurd_amount_is_ignored_instead_of_failing_the_workspace(workspace, other_workspace):
    from tests.analytics.value_data import event

    people = shop(workspace, other_workspace)
    # 10^12 overflows the stored columns; a billion is over the per-order bound; both
    # count as orders without revenue. Ann's 400.00 stays as worked out by hand.
    event(people["eve"], 3, "Order Completed", revenue=1e12)
    event(people["eve"], 2, "Order Completed", total="1000000000")
    assert customer_value_compute(workspace=workspace, now=NOW) == 5
    eve = CustomerValue.objects.get(profile=people["eve"])
    assert (eve.orders, eve.revenue, eve.ltv) == (2, Decimal("0.00"), Decimal("0.00"))
    assert CustomerValue.objects.get(profile=people["ann"]).revenue == Decimal("400.00")


def test_a_failed_run_is_not_queued_again_on_every_tick(
    workspace, django_capture_on_commit_callbacks
):
    import django_rq
    from rq.job import Job, JobStatus

    queue = django_rq.get_queue("default")
    with django_capture_on_commit_callbacks(execute=True):
        assert customer_value_enqueue(workspace=workspace) is True
    job = Job.fetch(f"customer-value-{workspace.pk}", connection=queue.connection)
    job.set_status(JobStatus.FAILED)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        scheduler_duty()
    assert callbacks == []
    assert customer_value_enqueue(workspace=workspace) is False
    # A person asking (Recompute now) retries at once.
    with django_capture_on_commit_callbacks(execute=True):
        assert customer_value_enqueue(workspace=workspace, retry_failed=True) is True
    assert Job.fetch(job.id, connection=queue.connection).get_status() == JobStatus.QUEUED
