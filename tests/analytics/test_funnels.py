"""Funnels and retention over events, with hand-worked numbers: steps in and out of
order, outside the window, repeated steps, local days and weeks across the 2026 DST
change in Berlin (29 March, 02:00 CET -> 03:00 CEST), and another workspace's identical
events, which never count."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import pytest

from analytics.funnels import ReportInputError, funnel_report, retention_report
from segments.models import Event, Profile
from segments.rules import EventStep, PropertyFilter
from tests.conftest import secret_key_client

pytestmark = pytest.mark.django_db

_ids = itertools.count(1)


def at(text: str) -> datetime:
    """A UTC instant from "2026-03-02 10:00"."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def person(space, name: str, *, first_seen: str = "2026-01-01 00:00", **traits) -> Profile:
    return Profile.objects.create(
        workspace=space, user_id=name, first_seen=at(first_seen), traits=traits
    )


def track(profile: Profile, name: str, when: str, **properties) -> None:
    Event.objects.create(
        workspace_id=profile.workspace_id,
        profile=profile,
        name=name,
        properties=properties,
        message_id=f"m{next(_ids)}",
        timestamp=at(when),
    )


def steps(*names: str) -> list[EventStep]:
    return [EventStep(event=name) for name in names]


def numbers(report) -> list[tuple]:
    return [
        (
            step.event,
            step.people,
            step.conversion_from_previous,
            step.conversion_from_first,
            step.median_seconds_from_previous,
        )
        for step in report.steps
    ]


@pytest.fixture
def shop(workspace, other_workspace):
    """view -> cart -> buy in March 2026 (UTC workspace)."""
    a = person(workspace, "a")  # all three, in order
    track(a, "view", "2026-03-02 10:00")
    track(a, "cart", "2026-03-02 11:00")  # +1 h
    track(a, "buy", "2026-03-03 10:00", amount=30)  # +23 h
    b = person(workspace, "b")  # stops after the cart
    track(b, "view", "2026-03-05 09:00")
    track(b, "cart", "2026-03-05 09:30")  # +30 min
    c = person(workspace, "c")  # everything, but in reverse order: only the view counts
    track(c, "buy", "2026-03-04 08:00", amount=99)
    track(c, "cart", "2026-03-04 09:00")
    track(c, "view", "2026-03-04 10:00")
    d = person(workspace, "d")  # the cart comes 8 days later: outside the 7-day window
    track(d, "view", "2026-03-10 00:00")
    track(d, "cart", "2026-03-18 00:00")
    e = person(workspace, "e")  # a first view that leads nowhere, a second that converts
    track(e, "view", "2026-03-01 12:00")
    track(e, "view", "2026-03-20 12:00")
    track(e, "cart", "2026-03-20 14:00")  # +2 h
    track(e, "cart", "2026-03-20 15:00")  # a repeat: changes nothing
    track(e, "buy", "2026-03-21 14:00", amount=80)  # +24 h from the first cart
    f = person(workspace, "f")  # viewed before the range only
    track(f, "view", "2026-02-27 12:00")
    track(f, "cart", "2026-02-28 12:00")
    i = person(workspace, "i")  # the cart exactly 7 days after the view, after the range
    track(i, "view", "2026-03-25 00:00")
    track(i, "cart", "2026-04-01 00:00")
    # Another workspace: the same people doing the same things.
    for name in "abcdefgh":
        twin = person(other_workspace, name)
        track(twin, "view", "2026-03-02 10:00")
        track(twin, "cart", "2026-03-02 11:00")
        track(twin, "buy", "2026-03-03 10:00", amount=30)
    return workspace


def test_funnel_counts_people_in_order_within_the_window(shop):
    report = funnel_report(
        workspace=shop,
        steps=steps("view", "cart", "buy"),
        start=date(2026, 3, 1),
        end=date(2026, 3, 31),
        window_days=7,
    )
    # view: a b c d e i; cart: a (1 h) b (30 min) e (2 h) i (7 days); buy: a (23 h) e (24 h).
    assert numbers(report) == [
        ("view", 6, None, 1.0, None),
        ("cart", 4, 4 / 6, 4 / 6, (3600 + 7200) / 2),
        ("buy", 2, 2 / 4, 2 / 6, (82800 + 86400) / 2),
    ]
    assert (report.window_days, report.time_zone, report.breakdown) == (7, "UTC", [])


def test_funnel_window_and_range_bound_the_steps(shop):
    # A window of 1 day (from the view): d's and i's carts fall out, a's buy exactly 24 h
    # after its view stays in, e's 26 h after its view falls out.
    report = funnel_report(
        workspace=shop,
        steps=steps("view", "cart", "buy"),
        start=date(2026, 3, 1),
        end=date(2026, 3, 31),
        window_days=1,
    )
    assert [step.people for step in report.steps] == [6, 3, 1]
    # Only the first week: a, b, c, and e's first (fruitless) view.
    report = funnel_report(
        workspace=shop,
        steps=steps("view", "cart"),
        start=date(2026, 3, 1),
        end=date(2026, 3, 7),
        window_days=7,
    )
    assert numbers(report) == [("view", 4, None, 1.0, None), ("cart", 2, 0.5, 0.5, 2700.0)]


def test_funnel_steps_take_property_filters(shop):
    expensive = EventStep(
        event="buy", filters=[PropertyFilter(property="amount", op="gt", value=50)]
    )
    report = funnel_report(
        workspace=shop,
        steps=[EventStep(event="view"), EventStep(event="cart"), expensive],
        start=date(2026, 3, 1),
        end=date(2026, 3, 31),
        window_days=7,
    )
    # a bought for 30: only e's 80 counts (c's 99 came before its view).
    assert numbers(report)[2] == ("buy", 1, 1 / 4, 1 / 6, 86400.0)


def test_funnel_repeating_an_event_needs_another_event(workspace):
    once = person(workspace, "once")
    track(once, "view", "2026-03-02 10:00")
    twice = person(workspace, "twice")
    track(twice, "view", "2026-03-02 10:00")
    track(twice, "view", "2026-03-02 10:00")  # the same instant: the later row is step 2
    thrice = person(workspace, "thrice")
    for hour in (10, 11, 12):
        track(thrice, "view", f"2026-03-02 {hour}:00")
    report = funnel_report(
        workspace=workspace,
        steps=steps("view", "view", "view"),
        start=date(2026, 3, 2),
        end=date(2026, 3, 2),
        window_days=1,
    )
    assert numbers(report) == [
        ("view", 3, None, 1.0, None),
        ("view", 2, 2 / 3, 2 / 3, 1800.0),  # the median of twice's 0 s and thrice's 1 h
        ("view", 1, 0.5, 1 / 3, 3600.0),
    ]


def test_funnel_local_days_and_window_across_dst(workspace):
    workspace.time_zone = "Europe/Berlin"
    workspace.save(update_fields=["time_zone"])
    # 29 March 2026 in Berlin runs from 28 March 23:00 UTC to 29 March 22:00 UTC (23 h).
    early = person(workspace, "early")
    track(early, "view", "2026-03-28 23:30")  # 00:30 CET on the 29th: in
    track(early, "cart", "2026-03-29 23:30")  # 24 h later: inside a 1-day window
    before = person(workspace, "before")
    track(before, "view", "2026-03-28 22:30")  # 23:30 CET on the 28th: out
    track(before, "cart", "2026-03-28 23:00")
    late = person(workspace, "late")
    track(late, "view", "2026-03-29 21:30")  # 23:30 CEST on the 29th: in
    track(late, "cart", "2026-03-30 21:30:01")  # 24 h and 1 s later: outside
    after = person(workspace, "after")
    track(after, "view", "2026-03-29 22:00")  # 00:00 CEST on the 30th: out
    track(after, "cart", "2026-03-29 22:10")
    report = funnel_report(
        workspace=workspace,
        steps=steps("view", "cart"),
        start=date(2026, 3, 29),
        end=date(2026, 3, 29),
        window_days=1,
    )
    assert report.time_zone == "Europe/Berlin"
    assert numbers(report) == [("view", 2, None, 1.0, None), ("cart", 1, 0.5, 0.5, 86400.0)]


def test_funnel_breakdown_by_trait_keeps_the_top_five_and_other(workspace):
    plans = ["pro", "pro", "pro", "free", "free", None, "team", "x", "y"]
    converting = {0, 1, 3, 8}  # two pros, one free, y
    for index, plan in enumerate(plans):
        traits = {"plan": plan} if plan else {}
        someone = person(workspace, f"p{index}", **traits)
        track(someone, "view", "2026-03-02 10:00")
        if index in converting:
            track(someone, "buy", "2026-03-02 10:10")
    report = funnel_report(
        workspace=workspace,
        steps=steps("view", "buy"),
        start=date(2026, 3, 1),
        end=date(2026, 3, 31),
        window_days=1,
        breakdown="trait",
        breakdown_path="plan",
    )
    assert [step.people for step in report.steps] == [9, 4]
    # Top five by people (ties by value, "" for none first): pro, free, (none), team, x.
    assert [
        (group.value, group.is_other, [step.people for step in group.steps])
        for group in report.breakdown
    ] == [
        ("pro", False, [3, 2]),
        ("free", False, [2, 1]),
        ("(none)", False, [1, 0]),
        ("team", False, [1, 0]),
        ("x", False, [1, 0]),
        ("Other", True, [1, 1]),
    ]
    assert report.breakdown[0].steps[1].conversion_from_first == 2 / 3


def test_funnel_breakdown_by_first_step_property(workspace):
    for index, source in enumerate(["ads", "ads", "mail"]):
        someone = person(workspace, f"s{index}")
        track(someone, "view", "2026-03-02 10:00", source=source)
        track(someone, "view", "2026-03-02 11:00", source="later")  # not the first step's
        if index != 1:
            track(someone, "buy", "2026-03-02 12:00")
    report = funnel_report(
        workspace=workspace,
        steps=steps("view", "buy"),
        start=date(2026, 3, 1),
        end=date(2026, 3, 31),
        window_days=1,
        breakdown="property",
        breakdown_path="source",
    )
    assert [(g.value, [s.people for s in g.steps]) for g in report.breakdown] == [
        ("ads", [2, 1]),
        ("mail", [1, 1]),
    ]


@pytest.mark.parametrize(
    ("arguments", "field", "message"),
    [
        ({"steps": steps("view")}, "steps", "a funnel needs at least 2 steps"),
        ({"steps": steps(*["view"] * 7)}, "steps", "a funnel takes at most 6 steps"),
        ({"window_days": 0}, "window_days", "the conversion window is 1 to 90 days"),
        ({"window_days": 91}, "window_days", "the conversion window is 1 to 90 days"),
        ({"steps": steps("view", "checkout")}, "steps[1].event",
         "no event named 'checkout' in this workspace"),
        ({"start": date(2026, 4, 1)}, "end", "must be on or after the start date"),
        ({"start": date(2025, 1, 1)}, "end", "the date range spans at most 366 days"),
        ({"breakdown": "trait", "breakdown_path": "a..b"}, "breakdown_path",
         "must be a dotted path without empty parts"),
    ],
)  # fmt: skip
def test_funnel_refuses_bad_input_naming_the_field(
    shop, other_workspace, arguments, field, message
):
    # "checkout" exists, but only in the other workspace.
    track(Profile.objects.get(workspace=other_workspace, user_id="a"), "checkout", "2026-03-02")
    query = {
        "workspace": shop,
        "steps": steps("view", "cart"),
        "start": date(2026, 3, 1),
        "end": date(2026, 3, 31),
        "window_days": 7,
        **arguments,
    }
    with pytest.raises(ReportInputError) as refusal:
        funnel_report(**query)
    assert (refusal.value.field, refusal.value.message) == (field, message)


# --------------------------------------------------------------------------- retention


@pytest.fixture
def cohorts(workspace, other_workspace):
    """Signups in Berlin's March 2026: weeks starting Monday 2, 9 and 16 March."""
    workspace.time_zone = "Europe/Berlin"
    workspace.save(update_fields=["time_zone"])
    r1 = person(workspace, "r1", first_seen="2026-03-02 10:00")
    for when in ("2026-03-02 10:00", "2026-03-04 10:00", "2026-03-10 10:00", "2026-03-11 10:00",
                 "2026-03-24 10:00"):  # fmt: skip
        track(r1, "open", when)  # the first at signup itself: not a return
    r2 = person(workspace, "r2", first_seen="2026-03-03 10:00")
    track(r2, "open", "2026-03-17 10:00")
    # Sunday 23:30 CET: week of 2 March; its event Monday 00:30 CET: week 1 (not 0).
    r3 = person(workspace, "r3", first_seen="2026-03-08 22:30")
    track(r3, "open", "2026-03-08 23:30")
    r4 = person(workspace, "r4", first_seen="2026-03-01 23:30")  # Monday 00:30 CET: in
    r5 = person(workspace, "r5", first_seen="2026-03-10 10:00")
    track(r5, "open", "2026-03-12 10:00")
    track(r5, "open", "2026-03-20 10:00")
    r6 = person(workspace, "r6", first_seen="2026-03-16 12:00")
    track(r6, "open", "2026-03-29 21:30")  # Sunday 23:30 CEST: week 1
    track(r6, "open", "2026-03-30 22:30")  # Tuesday 00:30 CEST: week 2
    track(r6, "open", "2026-03-29 22:30")  # Monday 00:30 CEST (UTC: still Sunday): week 2
    r7 = person(workspace, "r7", first_seen="2026-03-01 22:00")  # Sunday 23:00 CET: out
    track(r7, "open", "2026-03-03 10:00")
    twin = person(other_workspace, "r1", first_seen="2026-03-02 10:00")
    for when in ("2026-03-04 10:00", "2026-03-10 10:00", "2026-03-17 10:00"):
        track(twin, "open", when)
    assert (r4.pk, r7.pk) != (None, None)
    return workspace


def table(report) -> list[tuple]:
    return [(c.week_start, c.size, c.retained, c.shares) for c in report.cohorts]


def test_retention_by_signup_week_with_exact_shares(cohorts):
    report = retention_report(
        workspace=cohorts,
        start=date(2026, 3, 2),
        end=date(2026, 3, 22),
        weeks=3,
        now=at("2026-04-15 12:00"),
    )
    assert table(report) == [
        (date(2026, 3, 2), 4, [1, 2, 1, 1], [0.25, 0.5, 0.25, 0.25]),  # r1 r2 r3 r4
        (date(2026, 3, 9), 1, [1, 1, 0, 0], [1.0, 1.0, 0.0, 0.0]),  # r5
        (date(2026, 3, 16), 1, [0, 1, 1, 0], [0.0, 1.0, 1.0, 0.0]),  # r6
    ]
    assert report.average == [2 / 6, 4 / 6, 2 / 6, 1 / 6]
    assert (report.time_zone, report.weeks, report.return_event) == ("Europe/Berlin", 3, "")


def test_retention_leaves_weeks_that_have_not_begun_empty(cohorts):
    # Wednesday 25 March: the week of 23 March has begun, that of 30 March has not.
    report = retention_report(
        workspace=cohorts,
        start=date(2026, 3, 2),
        end=date(2026, 3, 22),
        weeks=3,
        now=at("2026-03-25 12:00"),
    )
    assert table(report) == [
        (date(2026, 3, 2), 4, [1, 2, 1, 1], [0.25, 0.5, 0.25, 0.25]),
        (date(2026, 3, 9), 1, [1, 1, 0, None], [1.0, 1.0, 0.0, None]),
        (date(2026, 3, 16), 1, [0, 1, None, None], [0.0, 1.0, None, None]),
    ]
    assert report.average == [2 / 6, 4 / 6, 1 / 5, 1 / 4]


def test_retention_from_a_start_event_to_a_return_event(workspace):
    s1 = person(workspace, "s1")
    track(s1, "signup", "2026-03-03 10:00")
    track(s1, "purchase", "2026-03-05 10:00")
    track(s1, "purchase", "2026-03-12 10:00")
    s2 = person(workspace, "s2")  # signed up before the range: not new in March
    track(s2, "signup", "2026-02-20 10:00")
    track(s2, "signup", "2026-03-04 10:00")
    track(s2, "purchase", "2026-03-05 10:00")
    s3 = person(workspace, "s3")  # comes back, but never buys
    track(s3, "signup", "2026-03-04 10:00")
    track(s3, "view", "2026-03-06 10:00")
    s4 = person(workspace, "s4")  # bought before signing up only
    track(s4, "purchase", "2026-03-09 09:00")
    track(s4, "signup", "2026-03-09 10:00")
    report = retention_report(
        workspace=workspace,
        start=date(2026, 3, 1),
        end=date(2026, 3, 14),
        weeks=1,
        start_step=EventStep(event="signup"),
        return_step=EventStep(event="purchase"),
        now=at("2026-06-01 00:00"),
    )
    assert table(report) == [
        (date(2026, 2, 23), 0, [0, 0], [None, None]),  # 1 March is a Sunday
        (date(2026, 3, 2), 2, [1, 1], [0.5, 0.5]),
        (date(2026, 3, 9), 1, [0, 0], [0.0, 0.0]),
    ]
    assert report.average == [1 / 3, 1 / 3]
    assert (report.start_event, report.return_event) == ("signup", "purchase")


@pytest.mark.parametrize(
    ("arguments", "field", "message"),
    [
        ({"weeks": 0}, "weeks", "retention covers 1 to 12 weeks"),
        ({"weeks": 13}, "weeks", "retention covers 1 to 12 weeks"),
        ({"return_step": EventStep(event="nope")}, "return_event",
         "no event named 'nope' in this workspace"),
        ({"start_step": EventStep(event="nope")}, "start_event",
         "no event named 'nope' in this workspace"),
        ({"end": date(2026, 2, 1)}, "end", "must be on or after the start date"),
    ],
)  # fmt: skip
def test_retention_refuses_bad_input_naming_the_field(cohorts, arguments, field, message):
    query = {"workspace": cohorts, "start": date(2026, 3, 2), "end": date(2026, 3, 22), **arguments}
    with pytest.raises(ReportInputError) as refusal:
        retention_report(**query)
    assert (refusal.value.field, refusal.value.message) == (field, message)


# --------------------------------------------------------------------------- API


def post(client, url: str, body: dict):
    return client.post(url, body, content_type="application/json")


FUNNEL = {
    "steps": [{"event": "view"}, {"event": "cart"}, {"event": "buy"}],
    "start": "2026-03-01",
    "end": "2026-03-31",
    "window_days": 7,
}


def test_funnel_api_answers_the_callers_workspace_only(shop, other_workspace):
    response = post(secret_key_client(shop), "/api/v1/metrics/funnel", FUNNEL)
    assert response.status_code == 200
    assert response.json() == {
        "start": "2026-03-01",
        "end": "2026-03-31",
        "window_days": 7,
        "time_zone": "UTC",
        "steps": [
            {"event": "view", "people": 6, "conversion_from_previous": None,
             "conversion_from_first": 1.0, "median_seconds_from_previous": None},
            {"event": "cart", "people": 4, "conversion_from_previous": 4 / 6,
             "conversion_from_first": 4 / 6, "median_seconds_from_previous": 5400.0},
            {"event": "buy", "people": 2, "conversion_from_previous": 0.5,
             "conversion_from_first": 2 / 6, "median_seconds_from_previous": 84600.0},
        ],
        "breakdown": [],
    }  # fmt: skip
    # The other workspace's key: its own eight twins, all converting.
    theirs = post(secret_key_client(other_workspace), "/api/v1/metrics/funnel", FUNNEL).json()
    assert [step["people"] for step in theirs["steps"]] == [8, 8, 8]


def test_funnel_api_breakdown_and_filters(shop):
    body = {
        **FUNNEL,
        "steps": [
            {"event": "view"},
            {"event": "buy", "filters": [{"property": "amount", "op": "gte", "value": 30}]},
        ],
        "breakdown": "property",
        "breakdown_path": "amount",
    }
    response = post(secret_key_client(shop), "/api/v1/metrics/funnel", body)
    assert response.status_code == 200
    # The views carry no amount: one group, "(none)"; a (30) and e (80) buy within 7 days.
    assert [(g["value"], g["is_other"], [s["people"] for s in g["steps"]])
            for g in response.json()["breakdown"]] == [("(none)", False, [6, 2])]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"steps": [{"event": "view"}]}, {"steps": {"non_field_errors": ["Ensure this field has at least 2 elements."]}}),
        ({"steps": [{"event": "view"}, {"event": "nope"}]},
         {"steps[1].event": ["no event named 'nope' in this workspace"]}),
        ({"window_days": 0}, {"window_days": ["Ensure this value is greater than or equal to 1."]}),
        ({"window_days": 91}, {"window_days": ["Ensure this value is less than or equal to 90."]}),
        ({"start": "2026-04-01"}, {"end": ["must be on or after the start date"]}),
        ({"start": "March"}, {"start": ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]}),
        ({"steps": [{"event": "view"}, {"event": "buy", "filters": [{"property": "amount", "op": "near"}]}]},
         {"steps": {"1": {"filters": ["filters[0].op: Input should be 'eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'contains', 'in', 'exists', 'not_exists', 'before', 'after' or 'within_last_days'"]}}}),
        ({"breakdown": "city"}, {"breakdown": ['"city" is not a valid choice.']}),
    ],
)  # fmt: skip
def test_funnel_api_refuses_bad_input_naming_the_field(shop, change, errors):
    response = post(secret_key_client(shop), "/api/v1/metrics/funnel", {**FUNNEL, **change})
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid", "message": "The request has invalid fields.", "errors": errors
    }  # fmt: skip


def test_retention_api_with_exact_shares(cohorts):
    body = {"start": "2026-03-09", "end": "2026-03-15", "weeks": 1,
            "return_event": {"event": "open"}}  # fmt: skip
    response = post(secret_key_client(cohorts, "analyst"), "/api/v1/metrics/retention", body)
    assert response.status_code == 200
    assert response.json() == {
        "start": "2026-03-09",
        "end": "2026-03-15",
        "weeks": 1,
        "time_zone": "Europe/Berlin",
        "start_event": "",
        "return_event": "open",
        "cohorts": [
            {"week_start": "2026-03-09", "size": 1, "retained": [1, 1], "shares": [1.0, 1.0]}
        ],
        "average": [1.0, 1.0],
    }


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"weeks": 13}, {"weeks": ["Ensure this value is less than or equal to 12."]}),
        ({"return_event": {"event": "nope"}}, {"return_event": ["no event named 'nope' in this workspace"]}),
        ({"start_event": {"filters": []}}, {"start_event": {"event": ["This field is required."]}}),
    ],
)  # fmt: skip
def test_retention_api_refuses_bad_input_naming_the_field(cohorts, change, errors):
    body = {"start": "2026-03-02", "end": "2026-03-22", **change}
    response = post(secret_key_client(cohorts), "/api/v1/metrics/retention", body)
    assert (response.status_code, response.json()["errors"]) == (400, errors)


def test_reports_api_needs_a_member_of_the_workspace(shop, other_workspace, owner_client):
    from django.test import Client

    anonymous = Client().post(
        "/api/v1/metrics/funnel", FUNNEL, content_type="application/json",
        headers={"X-Workspace": shop.slug},
    )  # fmt: skip
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "not_authenticated")
    # A session of Acme's owner naming Globex: no such workspace for them.
    response = owner_client.post(
        "/api/v1/metrics/funnel", FUNNEL, content_type="application/json",
        headers={"X-Workspace": other_workspace.slug},
    )  # fmt: skip
    assert response.status_code == 404
    response = owner_client.post(
        "/api/v1/metrics/retention", {}, content_type="application/json",
        headers={"X-Workspace": shop.slug},
    )  # fmt: skip
    assert response.status_code == 200


def test_reports_api_is_in_the_openapi_schema(owner_client):
    schema = owner_client.get("/api/schema/", {"format": "json"}).json()
    funnel = schema["paths"]["/api/v1/metrics/funnel"]["post"]
    retention = schema["paths"]["/api/v1/metrics/retention"]["post"]
    assert (funnel["summary"], retention["summary"]) == (
        "A funnel over events",
        "Weekly cohort retention",
    )
    properties = schema["components"]["schemas"]["FunnelInputRequest"]["properties"]
    assert properties["steps"]["description"] == "2 to 6 steps, in order."
    assert (properties["window_days"]["minimum"], properties["window_days"]["maximum"]) == (1, 90)


# --------------------------------------------------------------------------- pages


def page(client, name: str, space, query: str = ""):
    from django.urls import reverse

    return client.get(reverse(name, kwargs={"workspace_slug": space.slug}) + query)


FUNNEL_QUERY = "?event=view&event=cart&event=buy&start=2026-03-01&end=2026-03-31&window_days=7"


def test_funnel_page_shows_the_steps_charts_and_csv(shop, owner_client):
    response = page(owner_client, "analytics_funnels", shop, FUNNEL_QUERY)
    assert response.status_code == 200
    assert [(row["step"].people, row["median"]) for row in response.context["step_rows"]] == [
        (6, "—"),
        (4, "1 h 30 min"),
        (2, "23 h 30 min"),
    ]
    html = response.content.decode()
    assert '<td class="num">66.7%</td>' in html and '<td class="num">33.3%</td>' in html
    assert [chart.key for chart in response.context["charts"]] == ["people", "conversion", "time"]
    assert '<datalist id="event-names"><option value="buy"><option value="cart">' in html
    csv = page(owner_client, "analytics_funnels", shop, FUNNEL_QUERY + "&csv=people")
    assert csv["Content-Type"] == "text/csv"
    assert b"".join(csv.streaming_content).decode() == (
        "Step,People\r\n1. view,6\r\n2. cart,4\r\n3. buy,2\r\n"
    )


def test_funnel_page_filter_and_breakdown(shop, owner_client):
    query = FUNNEL_QUERY + "&property=&property=&property=amount&value=&value=&value=80"
    query += "&breakdown=property&breakdown_path=amount"
    response = page(owner_client, "analytics_funnels", shop, query)
    report = response.context["report"]
    assert [step.people for step in report.steps] == [6, 4, 1]  # only e's buy of 80
    assert [(g.value, [s.people for s in g.steps]) for g in report.breakdown] == [
        ("(none)", [6, 4, 1])
    ]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?event=view", "Steps: a funnel needs at least 2 steps"),
        ("?event=view&event=nope", "Step 2: no event named &#x27;nope&#x27; in this workspace"),
        ("?event=view&event=cart&window_days=0",
         "Conversion window: Ensure this value is greater than or equal to 1."),
        ("?event=view&event=cart&start=2026-03-02&end=2026-03-01",
         "End: The end comes before the start."),
        ("?event=view&event=cart&breakdown=trait&breakdown_path=.x",
         "Breakdown by: must be a dotted path without empty parts"),
        # Not a number PostgreSQL can compare: refused, not a 500.
        ("?event=view&property=total&value=NaN&event=cart",
         "Step 1: eq needs a finite number (not NaN or infinity)"),
        # The row as the form shows it, though the first row is blank.
        ("?event=&property=&value=&event=view&property=a..b&value=1&event=cart",
         "Step 2: must be a dotted path without empty parts"),
    ],
)  # fmt: skip
def test_funnel_page_names_the_field_of_bad_input(shop, owner_client, query, message):
    response = page(owner_client, "analytics_funnels", shop, query)
    assert response.status_code == 200
    assert response.context["report"] is None
    assert message in response.content.decode()


def test_funnel_and_retention_pages_are_for_members_only(shop, other_workspace, outsider):
    from tests.conftest import logged_in

    client = logged_in(outsider)
    assert page(client, "analytics_funnels", shop, FUNNEL_QUERY).status_code == 404
    assert page(client, "analytics_retention", shop).status_code == 404
    assert page(client, "analytics_funnels", other_workspace).status_code == 200


def test_retention_page_heat_map_and_csv(cohorts, owner_client):
    query = "?start=2026-03-02&end=2026-03-22&weeks=3"
    response = page(owner_client, "analytics_retention", cohorts, query)
    assert response.status_code == 200
    rows = response.context["heat_rows"]
    assert [(row["size"], [cell["share"] for cell in row["cells"]]) for row in rows] == [
        (4, [0.25, 0.5, 0.25, 0.25]),
        (1, [1.0, 1.0, 0.0, 0.0]),
        (1, [0.0, 1.0, 1.0, 0.0]),
    ]
    html = response.content.decode()
    assert 'style="--heat: 0.425" title="2 of 4">50.0%</td>' in html
    csv = page(owner_client, "analytics_retention", cohorts, query + "&csv=cohorts")
    assert b"".join(csv.streaming_content).decode() == (
        "Cohort week,People,Week 0,Week 1,Week 2,Week 3\r\n"
        "2026-03-02,4,0.25,0.5,0.25,0.25\r\n"
        "2026-03-09,1,1.0,1.0,0.0,0.0\r\n"
        "2026-03-16,1,0.0,1.0,1.0,0.0\r\n"
    )
    average = page(owner_client, "analytics_retention", cohorts, query + "&csv=average")
    assert (
        b"".join(average.streaming_content).decode().splitlines()[1] == "Week 0,0.3333333333333333"
    )


def test_retention_page_names_an_unknown_event(cohorts, owner_client):
    response = page(owner_client, "analytics_retention", cohorts, "?return_event=nope&weeks=4")
    assert response.context["report"] is None
    assert "Return event: no event named &#x27;nope&#x27; in this workspace" in (
        response.content.decode()
    )
    response = page(owner_client, "analytics_retention", cohorts, "?weeks=13")
    assert "Weeks: Ensure this value is less than or equal to 12." in response.content.decode()


def test_each_report_is_one_statement_after_the_event_check(shop, django_assert_num_queries):
    # One probe for unknown event names, then the report itself: no query per person.
    with django_assert_num_queries(2):
        funnel_report(
            workspace=shop,
            steps=steps("view", "cart", "buy"),
            start=date(2026, 3, 1),
            end=date(2026, 3, 31),
            window_days=7,
            breakdown="property",
            breakdown_path="amount",
        )
    with django_assert_num_queries(2):
        retention_report(
            workspace=shop,
            start=date(2026, 3, 1),
            end=date(2026, 3, 31),
            weeks=4,
            return_step=EventStep(event="buy"),
        )
