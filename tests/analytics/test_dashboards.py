"""The dashboards' numbers (analytics.reports) and pages, for a known history of
message events and conversions worked out by hand; another workspace's identical
history never counts, and its journey answers 404."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from analytics.filters import DateRange, ReportFilters
from analytics.models import Conversion
from analytics.reports import by_channel, by_journey, channel_report, overview
from delivery.models import ChannelSettings, Message
from delivery.services import message_event_record, message_status_record
from engagement_site.workspaces.models import AuditLog
from journeys.models import Enrollment
from segments.models import Profile
from tests.conftest import logged_in
from tests.journeys.test_executor import _run_journey

pytestmark = pytest.mark.django_db

RANGE = {"start": "2026-12-01", "end": "2026-12-03"}
DEC = [datetime(2026, 12, day, 12, tzinfo=UTC) for day in range(1, 4)]
NOV_20 = datetime(2026, 11, 20, 12, tzinfo=UTC)
NODES = [
    {"id": "start", "type": "trigger", "trigger": {"kind": "api"}},
    {"id": "pick", "type": "split", "variants": [{"key": "a", "weight": 50}, {"key": "b", "weight": 50}]},
    {"id": "end_a", "type": "exit"},
    {"id": "end_b", "type": "exit"},
]  # fmt: skip
EDGES = [
    {"source": "start", "target": "pick"},
    {"source": "pick", "port": "a", "target": "end_a"},
    {"source": "pick", "port": "b", "target": "end_b"},
]


def _history(workspace) -> dict:
    """Dec 1: three emails sent (a: delivered, opened, clicked); Dec 2: b delivered, c
    bounced, one SMS sent, delivered, and its person unsubscribed; Nov 20: one email
    sent (outside the range). Conversions: Dec 2 after email a (40.00), Dec 3 after the
    SMS (no revenue)."""
    journey = _run_journey(workspace, "Welcome", NODES, EDGES)
    people = [Profile.objects.create(workspace=workspace, user_id=f"p{n}") for n in range(5)]

    def message(n, channel, *events):
        created = Message.objects.create(
            workspace=workspace, profile=people[n], journey=journey,
            journey_version=journey.live_version, node_id="pick", variant="a",
            channel=channel, idempotency_key=f"{workspace.slug}:{n}",
        )  # fmt: skip
        for status, at in events:
            message_status_record(message_id=created.pk, status=status, at=at)
        return created

    email_a = message(0, "email", ("sent", DEC[0]), ("delivered", DEC[0]), ("opened", DEC[0]), ("clicked", DEC[0]))  # fmt: skip
    message(1, "email", ("sent", DEC[0]), ("delivered", DEC[1]))
    message(2, "email", ("sent", DEC[0]), ("bounced", DEC[1]))
    sms = message(3, "sms", ("sent", DEC[1]), ("delivered", DEC[1]))
    message_event_record(message=sms, kind="unsubscribed", at=DEC[1])
    message(4, "email", ("sent", NOV_20))
    for person, touch, revenue, at in ((people[0], email_a, "40.00", DEC[1]), (people[3], sms, "0", DEC[2])):  # fmt: skip
        enrollment = Enrollment.objects.create(
            workspace=workspace, journey=journey, version=journey.live_version, profile=person,
            state="exited", exit_reason="converted",
        )  # fmt: skip
        Conversion.objects.create(
            workspace=workspace, journey=journey, journey_version=journey.live_version,
            enrollment=enrollment, profile=person, event_name="Order Completed",
            revenue=Decimal(revenue), at=at, first_touch=touch, last_touch=touch,
        )  # fmt: skip
    return {"journey": journey}


def _range(workspace) -> DateRange:
    form = ReportFilters({"start": "2026-12-01", "end": "2026-12-03"}, workspace=workspace)
    return form.date_range()


def test_overview_totals_rates_and_charts_by_hand(workspace, other_workspace):
    _history(workspace)
    _history(other_workspace)
    report = overview(workspace=workspace, date_range=_range(workspace))
    assert report["totals"] == {
        "sent": 4, "delivered": 3, "opened": 1, "clicked": 1, "bounced": 1, "failed": 0,
        "suppressed": 0, "unsubscribed": 1, "complained": 0, "conversions": 2,
    }  # fmt: skip
    assert report["revenue"] == Decimal("40.00")
    assert report["rates"] == {
        "delivery_rate": 0.75, "open_rate": 0.25, "click_rate": 0.25, "bounce_rate": 0.25,
        "unsubscribe_rate": 0.25, "conversion_rate": 0.5,
    }  # fmt: skip
    charts = {chart.key: chart for chart in report["charts"]}
    assert charts["messages"].labels == ["2026-12-01", "2026-12-02", "2026-12-03"]
    assert [(s.name, s.values) for s in charts["messages"].series] == [
        ("email", [3, 0, 0]),
        ("sms", [0, 1, 0]),
    ]
    assert charts["conversions"].rows() == [
        ["2026-12-01", 0, Decimal(0)],
        ["2026-12-02", 1, Decimal("40.00")],
        ["2026-12-03", 1, Decimal("0.00")],
    ]
    sms_only = overview(workspace=workspace, date_range=_range(workspace), channel="sms")
    assert (sms_only["totals"]["sent"], sms_only["totals"]["conversions"]) == (1, 1)
    assert sms_only["revenue"] == Decimal("0")


def test_by_channel_and_channel_costs(workspace):
    _history(workspace)
    rows = by_channel(workspace=workspace, date_range=_range(workspace))
    assert [(r["channel"], r["sent"], r["delivered"], r["bounced"], r["conversions"]) for r in rows] == [
        ("email", 3, 2, 1, 1),
        ("sms", 1, 1, 0, 1),
    ]  # fmt: skip
    report = channel_report(
        workspace=workspace, date_range=_range(workspace), costs={"email": Decimal("0.01")}
    )
    email, sms = report["rows"]
    assert (email["cost"], email["cost_per_conversion"]) == (Decimal("0.03"), Decimal("0.03"))
    assert (sms["cost_per_message"], sms["cost"]) == (None, None)
    charts = {chart.key: chart for chart in report["charts"]}
    # Email: Dec 1 sent 3, delivered 1 that day; Dec 2 nothing sent, so no rate.
    assert charts["delivery-rate"].rows()[0] == ["2026-12-01", 1 / 3, None]
    assert charts["bounce-rate"].rows()[1] == ["2026-12-02", None, 0.0]


def test_overview_page_and_csv_download(workspace, other_workspace, make_member):
    _history(workspace)
    client = logged_in(make_member("viewer"))
    url = reverse("analytics_home", kwargs={"workspace_slug": workspace.slug})
    page = client.get(url, {"start": "2026-12-01", "end": "2026-12-03"})
    assert page.status_code == 200
    html = page.content.decode()
    assert '<dd data-live-stat="sent">4</dd>' in html
    assert '<small class="muted" data-live-rate="click_rate">25.0%</small>' in html
    assert 'data-live-socket="/ws/analytics/acme/?start=2026-12-01&amp;end=2026-12-03' in html
    csv = client.get(url, {"start": "2026-12-01", "end": "2026-12-03", "csv": "messages"})
    assert csv["Content-Type"] == "text/csv"
    assert b"".join(csv.streaming_content).decode() == (
        "Day,email,sms\r\n2026-12-01,3,0\r\n2026-12-02,0,1\r\n2026-12-03,0,0\r\n"
    )
    assert client.get(url, {"csv": "nope"}).status_code == 404
    bad = client.get(url, {"start": "2026-12-05", "end": "2026-12-01"})
    assert bad.status_code == 200
    assert "The end comes before the start." in bad.content.decode()
    outsider_page = logged_in(make_member("viewer", username="eve", in_workspace=other_workspace))
    assert outsider_page.get(url).status_code == 404


def test_journey_report_funnel_experiment_and_winner(workspace, other_workspace, make_member):
    journey = _history(workspace)["journey"]
    foreign = _history(other_workspace)["journey"]
    analyst = logged_in(make_member("analyst"))
    url = reverse(
        "analytics_journey", kwargs={"workspace_slug": workspace.slug, "journey_id": journey.pk}
    )
    page = analyst.get(url, {"start": "2026-12-01", "end": "2026-12-03"})
    assert page.status_code == 200
    html = page.content.decode()
    # Messages of the split node "pick": 5 sent in all (Nov 20 too), 1 opened, 1 bounced.
    assert '<td class="num" data-live-node="pick" data-key="sent">5</td>' in html
    assert '<td class="num" data-live-node="pick" data-key="failed">1</td>' in html
    assert 'data-testid="experiment-pick"' in html
    # The builder links to the report.
    editor = analyst.get(
        reverse(
            "journey_editor", kwargs={"workspace_slug": workspace.slug, "journey_id": journey.pk}
        )
    ).content.decode()
    assert f'href="{url}" data-testid="journey-report"' in editor
    foreign_url = reverse(
        "analytics_journey", kwargs={"workspace_slug": workspace.slug, "journey_id": foreign.pk}
    )
    assert analyst.get(foreign_url).status_code == 404
    winner = reverse(
        "analytics_declare_winner",
        kwargs={"workspace_slug": workspace.slug, "journey_id": journey.pk},
    )
    audits = AuditLog.objects.count()
    assert analyst.post(winner, {"node": "pick", "variant": "b"}).status_code == 403
    journey.refresh_from_db()
    assert (journey.split_winners or {}) == {}
    assert AuditLog.objects.count() == audits
    marketer = logged_in(make_member("marketer"))
    response = marketer.post(winner, {"node": "pick", "variant": "b"})
    assert response.status_code == 302
    journey.refresh_from_db()
    assert journey.split_winners == {"pick": "b"}
    refused = marketer.post(winner, {"node": "pick", "variant": "z"}, follow=True)
    assert "&#x27;z&#x27; is not a variant of &#x27;pick&#x27; (a, b)." in refused.content.decode()
    journey.refresh_from_db()
    assert journey.split_winners == {"pick": "b"}


def test_channel_page_shows_costs_from_channel_settings(workspace, make_member):
    _history(workspace)
    ChannelSettings.objects.create(
        workspace=workspace, channel="email", hook_token="t" * 43, cost_per_message=Decimal("0.01")
    )
    client = logged_in(make_member("viewer"))
    url = reverse("analytics_channels", kwargs={"workspace_slug": workspace.slug})
    html = client.get(url, {"start": "2026-12-01", "end": "2026-12-03"}).content.decode()
    # Sent, delivered, delivery rate, bounced, bounce rate, failed, not sent, complaints,
    # cost per message, cost (3 x 0.01), cost per conversion (0.03 / 1).
    assert _cells(html, 'data-channel="email"') == [
        "email", "3", "2", "66.7%", "1", "33.3%", "0", "0", "0", "0.01", "0.03", "0.03",
    ]  # fmt: skip
    assert _cells(html, 'data-channel="sms"')[9:] == ["set a cost", "—", "—"]
    journeys_page = client.get(
        reverse("analytics_journeys", kwargs={"workspace_slug": workspace.slug}),
        {"start": "2026-12-01", "end": "2026-12-03"},
    )
    # Status, sent, delivered, open rate, CTR, unsubscribed, conversions, revenue.
    assert _cells(journeys_page.content.decode(), "<tbody>", after="journey-results")[1:] == [
        "Live",
        "4",
        "3",
        "25.0%",
        "25.0%",
        "1",
        "2",
        "40.00",
    ]


def _cells(html: str, marker: str, *, after: str = "") -> list[str]:
    """The text of each cell of the first table row that `marker` opens (after `after`)."""
    import re

    html = html[html.index(after) :] if after else html
    row = html[html.index(marker) : html.index("</tr>", html.index(marker))]
    return [
        re.sub(r"<[^>]+>", "", cell).strip()
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    ]


def test_journey_rows_under_a_channel_filter_and_delivery_over_reporting_channels(workspace):
    journey = _history(workspace)["journey"]
    push = Message.objects.create(
        workspace=workspace, profile=Profile.objects.get(workspace=workspace, user_id="p0"),
        journey=journey, journey_version=journey.live_version, node_id="pick", channel="push",
        idempotency_key="push-0",
    )  # fmt: skip
    message_status_record(message_id=push.pk, status="sent", at=DEC[2])
    rows = by_journey(workspace=workspace, date_range=_range(workspace))
    row = rows[journey.pk]
    assert (row["sent"], row["delivered"], row["conversions"], row["revenue"]) == (
        5, 3, 2, Decimal("40.00"),
    )  # fmt: skip
    # Push reported no delivery in the range: 3 delivered of the 4 email and SMS sends.
    assert row["rates"]["delivery_rate"] == 0.75
    sms = by_journey(workspace=workspace, date_range=_range(workspace), channel="sms")[journey.pk]
    # Only the SMS and the conversion it was the last touch of.
    assert (sms["sent"], sms["conversions"], sms["revenue"]) == (1, 1, Decimal("0"))
    push_only = by_journey(workspace=workspace, date_range=_range(workspace), channel="push")
    assert (
        push_only[journey.pk]["conversions"],
        push_only[journey.pk]["rates"]["delivery_rate"],
    ) == (0, None)


def test_chart_csv_cells_that_a_spreadsheet_would_run_are_quoted_as_text(rf):
    from analytics.charts import Chart, Series, charts_csv_response

    chart = Chart(
        key="plans",
        title="Plans",
        kind="bar",
        labels=['=HYPERLINK("http://x")', "@SUM(A1)", "pro", "-2"],
        series=[Series("+people", [1, -2, 3, 4])],
        x_label="Plan",
    )
    response = charts_csv_response(rf.get("/", {"csv": "plans"}), [chart], filename="t")
    assert b"".join(response.streaming_content).decode() == (
        'Plan,\'+people\r\n"\'=HYPERLINK(""http://x"")",1\r\n\'@SUM(A1),-2\r\npro,3\r\n\'-2,4\r\n'
    )


def test_the_pages_make_a_fixed_number_of_queries(workspace, make_member):
    """No query per journey, channel or day: more journeys cost nothing more."""
    _history(workspace)
    client = logged_in(make_member("viewer"))
    urls = {
        name: reverse(name, kwargs={"workspace_slug": workspace.slug})
        for name in ("analytics_home", "analytics_journeys", "analytics_channels")
    }
    for url in urls.values():  # the session's and the process's first reads
        client.get(url, RANGE)
    counts = {}
    for extra in (0, 3):
        for index in range(extra):
            _run_journey(workspace, f"More {extra}-{index}", NODES, EDGES)
        for name, url in urls.items():
            with CaptureQueriesContext(connection) as queries:
                assert client.get(url, RANGE).status_code == 200
            counts.setdefault(name, []).append(len(queries))
    assert counts == {
        "analytics_home": [12, 12],
        "analytics_journeys": [7, 7],
        "analytics_channels": [8, 8],
    }
