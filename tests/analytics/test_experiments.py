"""A split node's report from a known history: people per branch, their messages'
opens and clicks (the counters), conversions, each rate with its interval, the
comparison with the control, the probability to be best, and the holdout's lift."""

from __future__ import annotations

import pytest

from analytics import stats
from analytics.experiments import split_reports
from delivery.models import Message
from delivery.services import message_status_record
from journeys.models import Enrollment, StepLog
from segments.models import Profile
from tests.conftest import secret_key_client
from tests.journeys.test_executor import _run_journey

pytestmark = pytest.mark.django_db(transaction=True)


def test_split_report_with_known_numbers(workspace, other_workspace):
    journey = _run_journey(
        workspace, "Test",
        [
            {"id": "start", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "ab", "type": "split", "holdout_percent": 10,
             "variants": [{"key": "a", "name": "Plain", "weight": 50}, {"key": "b", "weight": 50}]},
            {"id": "end", "type": "exit"},
        ],
        [{"source": "start", "target": "ab"}, {"source": "ab", "port": "a", "target": "end"},
         {"source": "ab", "port": "b", "target": "end"}, {"source": "ab", "port": "holdout", "target": "end"}],
    )  # fmt: skip
    # a: 10 people, 2 convert; b: 10 people, 5 convert; holdout: 4 people, 0 convert.
    plan = [("a", 10, 2), ("b", 10, 5), ("holdout", 4, 0)]
    n = 0
    for port, people, converting in plan:
        for index in range(people):
            n += 1
            profile = Profile.objects.create(workspace=workspace, user_id=f"p{n}")
            enrollment = Enrollment.objects.create(
                workspace=workspace, journey=journey, version=journey.live_version,
                profile=profile, state="exited", current_node="end",
                exit_reason="converted" if index < converting else "completed",
            )  # fmt: skip
            StepLog.objects.create(
                enrollment=enrollment, node_id="ab", outcome="branched", port=port
            )
            if port != "holdout":
                message = Message.objects.create(
                    workspace=workspace, profile=profile, journey=journey,
                    journey_version=journey.live_version, node_id="send", variant=port,
                    channel="email", idempotency_key=f"x{n}",
                )  # fmt: skip
                message_status_record(message_id=message.pk, status="sent")
                if index < 6:
                    message_status_record(message_id=message.pk, status="opened")
                if port == "b" and index < 3:
                    message_status_record(message_id=message.pk, status="clicked")

    [report] = split_reports(workspace=workspace, journey=journey)
    a, b = report["variants"]
    assert (report["node"], report["control"], report["small_sample"]) == ("ab", "a", True)
    assert {k: a[k] for k in ("key", "name", "entered", "sent", "opened", "clicked", "converted")} == {
        "key": "a", "name": "Plain", "entered": 10, "sent": 10, "opened": 6, "clicked": 0, "converted": 2,
    }  # fmt: skip
    assert {k: b[k] for k in ("name", "entered", "sent", "opened", "clicked", "converted")} == {
        "name": "B", "entered": 10, "sent": 10, "opened": 6, "clicked": 3, "converted": 5,
    }  # fmt: skip
    wilson = stats.rate(5, 10)
    assert b["conversion_rate"] == {"rate": 0.5, "low": wilson.low, "high": wilson.high}
    assert b["click_rate"]["rate"] == 0.3 and a["open_rate"]["rate"] == 0.6
    expected = stats.compare((2, 10), (5, 10))
    assert b["against_control"]["difference"] == pytest.approx(0.3)
    assert b["against_control"]["p_value"] == pytest.approx(expected.p_value)
    assert b["against_control"]["significant"] is False  # 10 people each: too few to tell
    assert "against_control" not in a
    assert a["probability_best"] + b["probability_best"] == pytest.approx(1.0)
    assert b["probability_best"] > 0.9
    holdout = report["holdout"]
    assert (holdout["entered"], holdout["converted"]) == (4, 0)
    assert holdout["lift"]["absolute"] == pytest.approx(7 / 20)
    assert holdout["lift"]["relative"] is None  # nothing to compare with at 0%
    assert split_reports(workspace=other_workspace, journey=journey) == []


def _ab_journey(workspace, name: str):
    """A live journey: API trigger, an a/b split (no holdout), exit."""
    return _run_journey(
        workspace, name,
        [
            {"id": "start", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "ab", "type": "split", "variants": [{"key": "a", "weight": 50}, {"key": "b", "weight": 50}]},
            {"id": "end", "type": "exit"},
        ],
        [{"source": "start", "target": "ab"}, {"source": "ab", "port": "a", "target": "end"},
         {"source": "ab", "port": "b", "target": "end"}],
    )  # fmt: skip


def test_the_experiments_api_answers_the_report_and_404_elsewhere(workspace, other_workspace):
    journey = _ab_journey(workspace, "Api")
    response = secret_key_client(workspace, "analyst").get(
        f"/api/v1/journeys/{journey.pk}/experiments"
    )
    assert response.status_code == 200
    [report] = response.json()
    assert (report["node"], report["control"], report["small_sample"]) == ("ab", "a", True)
    assert [v["key"] for v in report["variants"]] == ["a", "b"]
    assert report["variants"][0]["conversion_rate"] == {"rate": 0.0, "low": 0.0, "high": 1.0}
    assert report["holdout"]["lift"] is None
    other = secret_key_client(other_workspace, "analyst").get(
        f"/api/v1/journeys/{journey.pk}/experiments"
    )
    assert other.status_code == 404


def test_declaring_a_winner_sends_new_traffic_to_it_and_is_audited(workspace, other_workspace):
    from engagement_site.workspaces.models import AuditLog
    from journeys import services as journey_services
    from tests.delivery.test_email import _work
    from tests.journeys.test_executor import EDITOR

    journey = _ab_journey(workspace, "Decide")
    url = f"/api/v1/journeys/{journey.pk}/experiments/ab/winner"
    marketer = secret_key_client(workspace, "marketer")
    refused = marketer.post(url, {"variant": "c"}, content_type="application/json")
    assert refused.status_code == 400
    assert refused.json()["errors"]["variant"] == ["'c' is not a variant of 'ab' (a, b)."]
    assert (
        marketer.post(
            f"/api/v1/journeys/{journey.pk}/experiments/nope/winner",
            {"variant": "a"},
            content_type="application/json",
        ).status_code
        == 400
    )
    assert (
        secret_key_client(workspace, "analyst")
        .post(url, {"variant": "b"}, content_type="application/json")
        .status_code
        == 403
    )
    assert (
        secret_key_client(other_workspace, "owner")
        .post(url, {"variant": "b"}, content_type="application/json")
        .status_code
        == 404
    )
    journey.refresh_from_db()
    assert journey.split_winners == {}

    assert marketer.post(url, {"variant": "b"}, content_type="application/json").status_code == 200
    journey.refresh_from_db()
    assert journey.split_winners == {"ab": "b"}
    audit = AuditLog.objects.filter(workspace=workspace, changes__operation="declare_winner").get()
    assert (audit.changes["node"], audit.changes["variant"]) == ("ab", "b")

    for n in range(12):
        person = Profile.objects.create(workspace=workspace, user_id=f"w{n}")
        journey_services.journey_enroll(journey=journey, profile_id=person.pk, context=EDITOR)
    _work()
    ports = set(
        StepLog.objects.filter(enrollment__journey=journey, node_id="ab").values_list(
            "port", flat=True
        )
    )
    assert ports == {"b"}
