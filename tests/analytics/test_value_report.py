"""The value report: its numbers from the hand-worked shop (tests/analytics/value_data.py,
values worked out in test_value.py), the page for each role, the settings form, the
downloads, the API and the command."""

from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from analytics.models import CustomerValueSettings
from analytics.value import customer_value_compute, value_report, value_settings_get
from engagement_site.workspaces.models import AuditLog
from engagement_site.workspaces.roles import Role
from tests.analytics.value_data import NOW, message, shop
from tests.conftest import logged_in, secret_key_client

pytestmark = pytest.mark.django_db

URL = "/w/acme/analytics/value/"


@pytest.fixture
def valued(workspace, other_workspace):
    people = shop(workspace, other_workspace)
    customer_value_compute(workspace=workspace, now=NOW)
    customer_value_compute(workspace=other_workspace, now=NOW)
    return people


def _markdown(people) -> str:
    ann, ben, cat, dan, eve = (people[name].pk for name in ("ann", "ben", "cat", "dan", "eve"))
    # Shares: 1 of 5 people = 20%; revenue 400 + 1000 = 1400: ann 400 / 1400 = 28.6%.
    return f"""# Customer value: acme

Computed at: 2026-06-01T00:00:00+00:00. 5 people, revenue 1400.00.
Settings: discount rate 0.1, lifespan 3 years, high LTV 500.00, medium LTV 100.00, high engagement 60, at risk after 30 days, lost after 90 days.

## Tiers

| Tier | People | Share | Revenue | Revenue share | Average LTV |
|---|---|---|---|---|---|
| Champion | 1 | 20.0% | 400.00 | 28.6% | 994.74 |
| Loyal | 1 | 20.0% | 1000.00 | 71.4% | 1243.43 |
| Potential | 1 | 20.0% | 0.00 | 0.0% | 0.00 |
| At risk | 1 | 20.0% | 0.00 | 0.0% | 0.00 |
| Lost | 1 | 20.0% | 0.00 | 0.0% | 0.00 |

## LTV distribution

| LTV | People |
|---|---|
| 0 | 3 |
| 0-100 | 0 |
| 100-250 | 0 |
| 250-500 | 0 |
| 500-1,000 | 1 |
| 1,000-2,500 | 1 |
| 2,500-5,000 | 0 |
| 5,000+ | 0 |

## Top customers

| Profile | Name | LTV | Revenue | Orders | Engagement | Churn risk | Tier |
|---|---|---|---|---|---|---|---|
| {ben} | ben | 1243.43 | 1000.00 | 1 | 7.7 | 0.03 | loyal |
| {ann} | ann | 994.74 | 400.00 | 2 | 61.5 | 0.10 | champion |
| {cat} | cat | 0.00 | 0.00 | 0 | 69.2 | 0.03 | potential |
| {dan} | dan | 0.00 | 0.00 | 0 | 7.7 | 0.78 | at_risk |
| {eve} | eve | 0.00 | 0.00 | 0 | 0 | 1.00 | lost |

## Strategies

| Tier | People | Journey template | Channel | Why |
|---|---|---|---|---|
| champion | 1 | Post-purchase review request | not enough data (no channel with 30 messages sent) | Your best customers: ask for reviews after each order and keep them close. |
| loyal | 1 | Abandoned cart | not enough data (no channel with 30 messages sent) | They buy or engage often: recover the carts they leave to grow their value. |
| potential | 1 | Welcome series | not enough data (no channel with 30 messages sent) | Recently engaged but not yet valuable: onboard them towards a (next) order. |
| at_risk | 1 | Re-engagement of at-risk users | not enough data (no channel with 30 messages sent) | Quiet for a while: check in before they are lost. |
| lost | 1 | Win-back | not enough data (no channel with 30 messages sent) | Gone for a long time: a win-back offer is the last call. |
"""


def test_the_command_prints_markdown_and_json(valued):
    out = StringIO()
    call_command("value_report", workspace="acme", format="md", stdout=out)
    assert out.getvalue() == _markdown(valued)
    out = StringIO()
    call_command("value_report", workspace="acme", format="json", stdout=out)
    report = json.loads(out.getvalue())
    assert (report["people"], report["revenue"], report["computed_at"]) == (
        5, 1400.0, "2026-06-01T00:00:00+00:00",
    )  # fmt: skip
    assert report["tiers"][0] == {
        "tier": "champion", "label": "Champion", "people": 1, "share": 0.2, "revenue": 400.0,
        "revenue_share": 0.2857, "average_ltv": 994.74, "average_engagement": 61.5,
        "average_churn_risk": 0.097, "buyers": 1,
    }  # fmt: skip
    assert [row["people"] for row in report["ltv_histogram"]] == [3, 0, 0, 0, 1, 1, 0, 0]
    assert [row["name"] for row in report["top_customers"]] == ["ben", "ann", "cat", "dan", "eve"]
    assert [row["journey_template"] for row in report["strategies"]] == [
        "post_purchase_review", "abandoned_cart", "welcome_series", "at_risk_reengagement",
        "win_back",
    ]  # fmt: skip
    # ann's one email, clicked: 1 of 1, too few to recommend.
    assert report["strategies"][0]["channels"] == [
        {"channel": "email", "sent": 1, "clicked": 1, "click_rate": 1.0}
    ]
    assert report == json.loads(json.dumps(value_report(workspace=valued["ann"].workspace)))


def test_the_command_refuses_an_unknown_workspace(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No workspace with the slug 'nope'"):
        call_command("value_report", workspace="nope", stdout=StringIO())


def test_the_best_channel_per_tier_with_enough_messages(valued, workspace):
    ann = valued["ann"]
    for index in range(30):  # email: 6 of 30 more clicked; with the first, 7 of 31
        message(ann, 3, kinds=("clicked",) if index < 6 else ())
    for index in range(30):  # sms: 12 of 30 clicked
        message(ann, 3, channel="sms", kinds=("clicked",) if index < 12 else ())
    champion = value_report(workspace=workspace)["strategies"][0]
    # sms 12 / 30 = 40.0% beats email 7 / 31 = 22.6%.
    assert (champion["channel"], champion["channel_note"]) == (
        "sms", "sms: 40.0% of 30 messages clicked",
    )  # fmt: skip
    assert champion["channels"] == [
        {"channel": "sms", "sent": 30, "clicked": 12, "click_rate": 0.4},
        {"channel": "email", "sent": 31, "clicked": 7, "click_rate": 0.2258},
    ]


@pytest.mark.parametrize("role", [Role.ANALYST, Role.VIEWER])
def test_the_page_renders_for_analyst_and_viewer(valued, make_member, role):
    client = logged_in(make_member(role))
    response = client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-tier="champion"' in html and "Post-purchase review request" in html
    assert f"/w/acme/profiles/{valued['ben'].pk}/" in html
    assert ('data-testid="value-settings-form"' in html) is (role == Role.ANALYST)
    assert ('data-testid="value-download-md"' in html) is (role == Role.ANALYST)
    csv = client.get(URL, {"csv": "tiers"})
    assert b"".join(csv.streaming_content).decode() == (
        "Tier,People\r\nChampion,1\r\nLoyal,1\r\nPotential,1\r\nAt risk,1\r\nLost,1\r\n"
    )


def test_another_workspaces_member_gets_404(valued, outsider):
    assert logged_in(outsider).get(URL).status_code == 404
    assert logged_in(outsider).get(URL, {"download": "md"}).status_code == 404


def _form(**changes) -> dict:
    data = {
        "action": "settings", "discount_rate": "0.1", "lifespan_years": "3",
        "revenue_events": "Order Completed", "revenue_properties": "revenue, total",
        "engagement_window_days": "90", "high_ltv": "1000", "medium_ltv": "100",
        "high_engagement": "60", "at_risk_days": "15", "lost_days": "90",
    }  # fmt: skip
    for touchpoint, weight in (("email", 1), ("web", 1), ("mobile", 1), ("social", 1),
                               ("support", 0.5), ("purchase", 2), ("review", 1.5)):  # fmt: skip
        data[f"weight_{touchpoint}"] = str(weight)
        data[f"events_{touchpoint}"] = ""
    data["events_purchase"] = "Order Completed"
    data["events_review"] = "Review Submitted, Rated"
    return {**data, **changes}


def _audits(workspace, action: str) -> list:
    return list(AuditLog.objects.filter(workspace=workspace, action=action).order_by("sequence"))


def test_the_settings_form_saves_audits_and_queues_a_recompute(
    valued, workspace, make_member, django_capture_on_commit_callbacks
):
    import django_rq

    client = logged_in(make_member(Role.ANALYST))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, _form())
    assert response.status_code == 302
    settings = CustomerValueSettings.objects.get(workspace=workspace)
    assert (settings.high_ltv, settings.at_risk_days) == (Decimal("1000.00"), 15)
    assert settings.touchpoint_events["review"] == ["Review Submitted", "Rated"]
    assert settings.touchpoint_events["social"] == []
    [audit] = _audits(workspace, "value.settings")
    assert audit.changes == {
        "high_ltv": {"before": "500.00", "after": "1000.00"},
        "at_risk_days": {"before": 30, "after": 15},
        "touchpoint_events": {
            "before": {"email": [], "web": [], "mobile": [], "social": ["Shared"],
                       "support": ["Ticket Created"], "purchase": ["Order Completed"],
                       "review": ["Review Submitted"]},
            "after": {"email": [], "web": [], "mobile": [], "social": [], "support": [],
                      "purchase": ["Order Completed"], "review": ["Review Submitted", "Rated"]},
        },
    }  # fmt: skip
    assert django_rq.get_queue("default").job_ids == [f"customer-value-{workspace.pk}"]
    # The recompute moves the tiers as test_value.py works out: ann loyal, ben at risk.
    customer_value_compute(workspace=workspace, now=NOW)
    tiers = {row["tier"]: row["people"] for row in value_report(workspace=workspace)["tiers"]}
    assert tiers == {"champion": 0, "loyal": 1, "potential": 1, "at_risk": 2, "lost": 1}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"medium_ltv": "2000"}, "The medium LTV must not be above the high LTV."),
        ({"lost_days": "10"}, "Lost must come after at risk (more days)."),
        ({"revenue_events": " , "}, "Name at least one revenue event."),
        ({"discount_rate": "1.5"}, "Ensure this value is less than or equal to 1."),
        (
            {
                f"weight_{t}": "0"
                for t in ("email", "web", "mobile", "social", "support", "purchase", "review")
            },
            "At least one touchpoint needs a weight above 0.",
        ),
    ],
)
def test_bad_settings_are_refused_naming_the_problem(
    valued, workspace, make_member, changes, message
):
    before = value_settings_get(workspace=workspace).updated_at
    response = logged_in(make_member(Role.ANALYST)).post(URL, _form(**changes))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert value_settings_get(workspace=workspace).updated_at == before
    assert _audits(workspace, "value.settings") == []


def test_a_viewer_can_neither_change_nor_recompute_nor_download(valued, workspace, make_member):
    import django_rq

    client = logged_in(make_member(Role.VIEWER))
    before = value_settings_get(workspace=workspace).updated_at
    assert client.post(URL, _form()).status_code == 403
    assert client.post(URL, {"action": "recompute"}).status_code == 403
    assert client.get(URL, {"download": "md"}).status_code == 403
    settings = value_settings_get(workspace=workspace)
    assert (settings.updated_at, settings.high_ltv) == (before, Decimal("500.00"))
    assert _audits(workspace, "value.settings") == []
    assert _audits(workspace, "value.export") == []
    assert django_rq.get_queue("default").job_ids == []


def test_downloads_are_audited_exports(valued, workspace, make_member):
    client = logged_in(make_member(Role.ANALYST))
    response = client.get(URL, {"download": "md"})
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="acme-customer-value.md"'
    assert response.content.decode() == _markdown(valued)
    response = client.get(URL, {"download": "json"})
    assert json.loads(response.content)["people"] == 5
    assert [audit.changes for audit in _audits(workspace, "value.export")] == [
        {"format": "md"}, {"format": "json"},
    ]  # fmt: skip


def test_recompute_now_queues_one_job(
    valued, workspace, make_member, django_capture_on_commit_callbacks
):
    import django_rq

    client = logged_in(make_member(Role.ANALYST))
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            assert client.post(URL, {"action": "recompute"}).status_code == 302
    assert django_rq.get_queue("default").job_ids == [f"customer-value-{workspace.pk}"]
    # Each request is audited, with whether it queued a job.
    assert [row.changes for row in _audits(workspace, "value.recompute")] == [
        {"queued": True}, {"queued": False},
    ]  # fmt: skip


def test_the_api(valued, workspace, other_workspace):
    # The report names customers: a viewer (no analytics.export) is refused, unaudited.
    assert secret_key_client(workspace, "viewer").get("/api/v1/value-report").status_code == 403
    assert not AuditLog.objects.filter(action="value.export").exists()
    client = secret_key_client(workspace, "analyst")
    response = client.get("/api/v1/value-report")
    assert response.status_code == 200
    assert response.json() == json.loads(json.dumps(value_report(workspace=workspace)))
    assert list(
        AuditLog.objects.filter(action="value.export").values_list("changes", flat=True)
    ) == [{"format": "api"}]
    ann = valued["ann"]
    response = client.get(f"/api/v1/profiles/{ann.pk}/value")
    assert response.json() == {
        "profile_id": ann.pk, "revenue": 400.0, "orders": 2, "average_order_value": 200.0,
        "purchase_frequency": 2.0, "ltv": 994.74, "engagement_score": 61.5,
        "value_tier": "champion", "churn_risk": 0.097,
        "last_engaged_at": "2026-05-30T00:00:00Z", "computed_at": "2026-06-01T00:00:00Z",
    }  # fmt: skip
    other = secret_key_client(other_workspace, "analyst")
    assert other.get(f"/api/v1/profiles/{ann.pk}/value").status_code == 404
    theirs = other.get("/api/v1/value-report").json()
    assert (theirs["people"], theirs["revenue"]) == (1, 99999.0)


def test_the_api_is_in_the_schema(db):
    schema = Client().get("/api/schema/", {"format": "json"}).json()
    assert "/api/v1/value-report" in schema["paths"]
    assert "/api/v1/profiles/{profile_id}/value" in schema["paths"]
