"""The metrics REST API on the dashboards' known history (tests/analytics/
test_dashboards.py): grouped rows with hand-worked numbers, a journey's metrics, the
conversions list, refusals naming the field, and 404 for another workspace's journey."""

from __future__ import annotations

import pytest

from tests.analytics.test_dashboards import _history
from tests.conftest import secret_key_client

pytestmark = pytest.mark.django_db
RANGE = {"start": "2026-12-01", "end": "2026-12-03"}
ZERO = {
    "sent": 0, "delivered": 0, "opened": 0, "clicked": 0, "bounced": 0, "failed": 0,
    "suppressed": 0, "unsubscribed": 0, "complained": 0, "conversions": 0,
}  # fmt: skip


def test_metrics_grouped_by_day_and_channel(workspace, other_workspace):
    _history(workspace)
    _history(other_workspace)
    response = secret_key_client(workspace, "viewer").get(
        "/api/v1/metrics", {**RANGE, "group_by": "day,channel"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["totals"] == {**ZERO, "sent": 4, "delivered": 3, "opened": 1, "clicked": 1,
                              "bounced": 1, "unsubscribed": 1, "conversions": 2}  # fmt: skip
    assert body["revenue"] == "40.00"
    assert body["rates"]["conversion_rate"] == 0.5
    rows = [
        {key: row[key] for key in ("day", "channel", "sent", "delivered", "bounced", "conversions", "revenue")}
        for row in body["rows"]
    ]  # fmt: skip
    # Conversions are credited to their last touch's channel, on the day they happened.
    assert rows == [
        {"day": "2026-12-01", "channel": "email", "sent": 3, "delivered": 1, "bounced": 0, "conversions": 0, "revenue": "0.00"},
        {"day": "2026-12-02", "channel": "email", "sent": 0, "delivered": 1, "bounced": 1, "conversions": 1, "revenue": "40.00"},
        {"day": "2026-12-02", "channel": "sms", "sent": 1, "delivered": 1, "bounced": 0, "conversions": 0, "revenue": "0.00"},
        {"day": "2026-12-03", "channel": "sms", "sent": 0, "delivered": 0, "bounced": 0, "conversions": 1, "revenue": "0.00"},
    ]  # fmt: skip


def test_metrics_by_node_and_variant_for_one_journey(workspace):
    journey = _history(workspace)["journey"]
    response = secret_key_client(workspace, "analyst").get(
        "/api/v1/metrics", {**RANGE, "journey": journey.pk, "group_by": "node,variant"}
    )
    assert response.status_code == 200
    [row] = response.json()["rows"]
    assert (row["node"], row["variant"], row["sent"], row["conversions"]) == ("pick", "a", 4, 2)


def test_metrics_refusals_name_the_field(workspace, other_workspace):
    foreign = _history(other_workspace)["journey"]
    client = secret_key_client(workspace, "viewer")
    bad_group = client.get("/api/v1/metrics", {"group_by": "day,colour"})
    assert bad_group.status_code == 400
    assert bad_group.json()["errors"] == {
        "group_by": ["Unknown or repeated dimension colour: use day, journey, version, node, variant, channel."]
    }  # fmt: skip
    backwards = client.get("/api/v1/metrics", {"start": "2026-12-05", "end": "2026-12-01"})
    assert backwards.status_code == 400
    assert backwards.json()["errors"] == {"end": ["The end comes before the start."]}
    not_a_date = client.get("/api/v1/metrics", {"start": "yesterday"})
    assert not_a_date.status_code == 400
    assert list(not_a_date.json()["errors"]) == ["start"]
    assert client.get("/api/v1/metrics", {"journey": foreign.pk}).status_code == 404
    assert client.get(f"/api/v1/journeys/{foreign.pk}/metrics").status_code == 404


def test_journey_metrics_and_conversions(workspace, other_workspace):
    journey = _history(workspace)["journey"]
    _history(other_workspace)
    client = secret_key_client(workspace, "viewer")
    body = client.get(f"/api/v1/journeys/{journey.pk}/metrics", RANGE).json()
    assert [node["id"] for node in body["nodes"]] == ["start", "pick", "end_a", "end_b"]
    pick = body["nodes"][1]
    assert (pick["sent"], pick["opened"], pick["clicked"], pick["failed"]) == (5, 1, 1, 1)
    assert body["attribution"]["conversions"] == 2
    assert body["attribution"]["revenue"] == "40.00"
    assert [(row["channel"], row["last_conversions"], row["last_revenue"]) for row in body["attribution"]["rows"]] == [
        ("email", 1, "40.00"), ("sms", 1, "0.00"),
    ]  # fmt: skip
    assert [(row["day"], row["sent"], row["conversions"]) for row in body["daily"]] == [
        ("2026-12-01", 3, 0), ("2026-12-02", 1, 1), ("2026-12-03", 0, 1),
    ]  # fmt: skip
    conversions = client.get("/api/v1/conversions", RANGE).json()
    assert [(row["revenue"], row["last_touch"]["channel"]) for row in conversions["results"]] == [
        ("0.00", "sms"), ("40.00", "email"),
    ]  # fmt: skip
    assert conversions["results"][1]["user_id"] == "p0"
    assert (
        client.get("/api/v1/conversions", {"start": "2026-12-03", "end": "2026-12-03"}).json()[
            "results"
        ][0]["event"]
        == "Order Completed"
    )


def test_metrics_are_in_the_openapi_schema(owner_client):
    schema = owner_client.get("/api/schema/", {"format": "json"}).json()
    for path in ("/api/v1/metrics", "/api/v1/journeys/{journey_id}/metrics", "/api/v1/conversions"):
        assert "get" in schema["paths"][path], path
