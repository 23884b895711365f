"""The journeys list: its columns and counts, the status filter, tenancy and roles, and
its actions: new (blank or from a catalog template), duplicate, archive."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from content import services as content_services
from engagement_site.workspaces.models import AuditLog
from engagement_site.workspaces.roles import Role
from engagement_site.workspaces.services import AuditContext
from journeys import catalog, services, views
from journeys.graph import DefinitionError, check_definition
from journeys.models import Enrollment, Journey, JourneyVersion
from segments.models import Profile, Segment
from tests.conftest import SETUP, logged_in

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
LIST = "/w/acme/journeys/"
DRAFT = {
    "nodes": [
        {"id": "start", "type": "trigger", "trigger": {"kind": "event", "event": "Signed Up"}},
        {"id": "done", "type": "exit"},
    ],
    "edges": [{"source": "start", "port": "next", "target": "done"}],
    "settings": {},
}
LAYOUT = {"nodes": {"start": {"x": 80, "y": 220}, "done": {"x": 340, "y": 220}}}


class _Table(HTMLParser):
    """The text of each cell of each body row of <table data-testid=journeys>."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self._in_table = self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("data-testid") == "journeys":
            self._in_table = True
        elif self._in_table and tag == "tbody":
            self._in_body = True
        elif self._in_body and tag == "tr":
            self.rows.append([])
        elif self._in_body and tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tbody":
            self._in_body = self._in_table = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data.replace("\xa0", " "))


def _rows(response) -> list[list[str]]:
    assert response.status_code == 200
    table = _Table()
    table.feed(response.content.decode())
    return table.rows


def _names(response) -> list[str]:
    return [row[0] for row in _rows(response)]


def _journey(workspace, name: str, *, by=None, status: str = Journey.Status.DRAFT) -> Journey:
    context = AuditContext(actor=by, actor_label=by.username) if by else SETUP
    journey = services.journey_create(
        workspace=workspace, name=name, context=context, definition=DRAFT, layout=LAYOUT
    )
    if status != Journey.Status.DRAFT:
        Journey.objects.filter(pk=journey.pk).update(status=status)
        journey.refresh_from_db()
    return journey


def _publish(journey: Journey, *, number: int, at: datetime) -> JourneyVersion:
    """A live version without the publish service (which needs real templates)."""
    version = JourneyVersion.objects.create(
        journey=journey, number=number, definition=DRAFT, published_at=at
    )
    Journey.objects.filter(pk=journey.pk).update(status=Journey.Status.LIVE, live_version=version)
    journey.refresh_from_db()
    return version


def _enroll(journey, version, user_id: str, **fields) -> Enrollment:
    profile = Profile.objects.create(workspace=journey.workspace, user_id=user_id)
    return Enrollment.objects.create(
        workspace=journey.workspace, journey=journey, version=version, profile=profile,
        current_node="start", **fields,
    )  # fmt: skip


def _audit(workspace, action: str) -> list[AuditLog]:
    return list(AuditLog.objects.filter(workspace=workspace, action=action).order_by("sequence"))


@pytest.fixture
def journeys(workspace, owner, member, other_workspace, outsider):
    """In acme: a live journey with people in it, a draft and an archived one; in
    globex: a journey of its own."""
    with time_machine.travel(T0 - timedelta(days=3), tick=False):
        cart = _journey(workspace, "Abandoned cart", by=owner)
        welcome = _journey(workspace, "Welcome", by=member)
        old = _journey(workspace, "Old promo", by=owner, status=Journey.Status.ARCHIVED)
        theirs = _journey(other_workspace, "Globex onboarding", by=outsider)
    version = _publish(cart, number=2, at=T0 - timedelta(days=1))
    _enroll(cart, version, "ada", state="active")
    _enroll(cart, version, "bob", state="waiting")
    _enroll(cart, version, "cy", state="completed", exit_reason="converted")
    _enroll(cart, version, "dee", state="exited", exit_reason="journey_stopped")
    Journey.objects.filter(pk=cart.pk).update(updated_at=T0 - timedelta(hours=2))
    Journey.objects.filter(pk=welcome.pk).update(updated_at=T0 - timedelta(hours=5))
    return {"cart": cart, "welcome": welcome, "old": old, "theirs": theirs}


# --------------------------------------------------------------------------- the list


def test_the_list_shows_each_journeys_columns_and_counts(owner, journeys):
    with time_machine.travel(T0, tick=False):
        response = logged_in(owner).get(LIST)
    refusal = "A live journey cannot be archived: stop it first."
    assert _rows(response) == [
        ["Abandoned cart", "Live", "v2", "4", "2", "1", "1 day ago", "olivia", "2 hours ago",
         f"Duplicate Archive is unavailable. {refusal}"],
        ["Welcome", "Draft", "-", "0", "0", "0", "Never", "mia", "5 hours ago",
         "Duplicate Archive"],
    ]  # fmt: skip
    page = response.content.decode()
    header = re.search(r"<thead>(.*?)</thead>", page, re.S).group(1)
    assert re.findall(r"<th[^>]*>([^<]+)</th>", header) == [
        "Journey", "Status", "Version", "Entered", "In it now", "Converted", "Last published",
        "Owner", "Changed",
    ]  # fmt: skip
    cart = journeys["cart"]
    assert f'href="/w/acme/journeys/{cart.pk}/" data-testid="journey-name"' in page
    assert f'title="{refusal}" data-testid="archive-unavailable"' in page
    assert f'action="/w/acme/journeys/{cart.pk}/archive/"' not in page
    assert f'action="/w/acme/journeys/{journeys["welcome"].pk}/archive/"' in page
    assert 'data-confirm="Archive Welcome?' in page
    assert 'data-testid="new-journey"' in page


def test_the_owner_is_whoever_created_the_journey(workspace, member):
    journey = services.journey_create(
        workspace=workspace, name="Mine", context=AuditContext(actor=member, actor_label="mia")
    )
    assert Journey.objects.get(pk=journey.pk).created_by == member


def test_the_status_filter_shows_one_status_and_archived_only_when_asked(owner, journeys):
    client = logged_in(owner)
    assert _names(client.get(LIST)) == ["Abandoned cart", "Welcome"]
    assert _names(client.get(LIST, {"status": "draft"})) == ["Welcome"]
    assert _names(client.get(LIST, {"status": "live"})) == ["Abandoned cart"]
    assert _names(client.get(LIST, {"status": "archived"})) == ["Old promo"]
    assert _rows(client.get(LIST, {"status": "paused"})) == [["No paused journeys."]]
    # An unknown status is the default view, not an error.
    assert _names(client.get(LIST, {"status": "nonsense"})) == ["Abandoned cart", "Welcome"]
    tabs = re.findall(
        r'data-status="(\w+)">(\w+) <span class="tab-count">(\d+)</span>',
        client.get(LIST, {"status": "archived"}).content.decode(),
    )
    assert tabs == [
        ("all", "All", "2"), ("draft", "Draft", "1"), ("live", "Live", "1"),
        ("paused", "Paused", "0"), ("stopped", "Stopped", "0"), ("archived", "Archived", "1"),
    ]  # fmt: skip
    assert 'href="/w/acme/journeys/?status=archived" aria-current="page"' in (
        client.get(LIST, {"status": "archived"}).content.decode()
    )


def test_the_list_queries_do_not_grow_with_its_rows(workspace, owner, journeys):
    client = logged_in(owner)
    client.get(LIST)  # the session's first touch is not what we measure
    with CaptureQueriesContext(connection) as few:
        client.get(LIST)
    for number in range(5):
        journey = _journey(workspace, f"More {number}", by=owner)
        _enroll(journey, _publish(journey, number=1, at=T0), f"p{number}", state="active")
    with CaptureQueriesContext(connection) as many:
        response = client.get(LIST)
    assert len(_rows(response)) == 7
    assert len(many) == len(few)


def test_another_workspaces_journeys_never_appear_and_cannot_be_touched(owner, journeys):
    client = logged_in(owner)
    theirs = journeys["theirs"]
    pages = [client.get(LIST, {"status": status}) for status in ("", *Journey.Status.values)]
    assert all("Globex onboarding" not in page.content.decode() for page in pages)
    before = Journey.objects.count()
    responses = [
        client.post(f"/w/acme/journeys/{theirs.pk}/duplicate/"),
        client.post(f"/w/acme/journeys/{theirs.pk}/archive/"),
        client.post(f"/w/globex/journeys/{theirs.pk}/duplicate/"),
        client.post(f"/w/globex/journeys/{theirs.pk}/archive/"),
    ]
    assert [response.status_code for response in responses] == [404, 404, 404, 404]
    theirs.refresh_from_db()
    assert (theirs.status, Journey.objects.count()) == ("draft", before)
    assert _audit(theirs.workspace, "journey.archive") == []
    assert _audit(theirs.workspace, "journey.duplicate") == []


def test_a_viewer_sees_no_write_buttons_and_cannot_post(workspace, make_member, journeys):
    client = logged_in(make_member(Role.VIEWER))
    page = client.get(LIST).content.decode()
    with time_machine.travel(T0, tick=False):
        rows = _rows(client.get(LIST))
    assert rows == [
        ["Abandoned cart", "Live", "v2", "4", "2", "1", "1 day ago", "olivia", "2 hours ago"],
        ["Welcome", "Draft", "-", "0", "0", "0", "Never", "mia", "5 hours ago"],
    ]
    for marker in ('data-testid="new-journey"', "/duplicate/", "/archive/", 'id="new-journey"',
                   "journey_list.js"):  # fmt: skip
        assert marker not in page
    before = (Journey.objects.count(), AuditLog.objects.count())
    welcome = journeys["welcome"]
    responses = [
        client.get("/w/acme/journeys/new/"),
        client.post("/w/acme/journeys/new/", {"name": "Sneaky", "template": "blank"}),
        client.post(f"/w/acme/journeys/{welcome.pk}/duplicate/"),
        client.post(f"/w/acme/journeys/{welcome.pk}/archive/"),
    ]
    assert [response.status_code for response in responses] == [403, 403, 403, 403]
    welcome.refresh_from_db()
    assert welcome.status == "draft"
    assert (Journey.objects.count(), AuditLog.objects.count()) == before


# --------------------------------------------------------------------------- new


def test_create_blank_opens_the_editor_of_a_new_audited_draft(workspace, owner):
    response = logged_in(owner).post(
        "/w/acme/journeys/new/", {"name": " Onboarding ", "template": "blank"}
    )
    journey = Journey.objects.get(workspace=workspace, name="Onboarding")
    assert response.status_code == 302
    assert response["Location"] == f"/w/acme/journeys/{journey.pk}/"
    assert response["Location"] == reverse(
        "journey_editor", kwargs={"workspace_slug": "acme", "journey_id": journey.pk}
    )
    assert (journey.status, journey.created_by, journey.live_version) == ("draft", owner, None)
    assert (journey.draft.definition, journey.draft.layout) == (services.empty_definition(), {})
    [audit] = _audit(workspace, "journey.create")
    assert (audit.actor, audit.object_id) == (owner, str(journey.pk))


def test_new_shows_the_list_with_the_dialog_open(owner, journeys):
    response = logged_in(owner).get("/w/acme/journeys/new/")
    page = response.content.decode()
    assert response.status_code == 200
    assert 'data-open-on-load data-testid="new-journey-dialog"' in page
    assert re.findall(r'name="template" value="(\w+)" data-default-name="([^"]*)"', page) == [
        ("blank", ""),
        ("welcome_series", "Welcome series"),
        ("abandoned_cart", "Abandoned cart"),
        ("win_back", "Win-back"),
        ("at_risk_reengagement", "Re-engagement of at-risk users"),
        ("post_purchase_review", "Post-purchase review request"),
    ]


@pytest.mark.parametrize(
    ("data", "field", "error"),
    [
        ({"name": "", "template": "blank"}, "name", "A journey needs a name."),
        ({"name": "Welcome", "template": "blank"}, "name", "A journey named &#x27;Welcome&#x27; already exists."),
        ({"name": "Whatever", "template": "flash_sale"}, "template", "Choose Blank or one of the templates."),
    ],
)  # fmt: skip
def test_create_refuses_with_the_reason_and_makes_nothing(owner, journeys, data, field, error):
    before = (Journey.objects.count(), AuditLog.objects.count())
    response = logged_in(owner).post("/w/acme/journeys/new/", data)
    page = response.content.decode()
    assert response.status_code == 400
    assert f"<li>{error}</li>" in page
    assert "data-open-on-load" in page
    assert (Journey.objects.count(), AuditLog.objects.count()) == before


EXPECTED_GRAPHS = {
    "welcome_series": (
        "Welcome series",
        ["signed-up", "welcome-email", "wait-2-days", "opened-welcome", "tips-email",
         "nudge-push", "wait-3-days", "first-order"],
        [("signed-up", "next", "welcome-email"), ("welcome-email", "next", "wait-2-days"),
         ("wait-2-days", "next", "opened-welcome"), ("opened-welcome", "yes", "tips-email"),
         ("opened-welcome", "no", "nudge-push"), ("tips-email", "next", "wait-3-days"),
         ("nudge-push", "next", "wait-3-days"), ("wait-3-days", "next", "first-order")],
    ),
    "abandoned_cart": (
        "Abandoned cart",
        ["cart-abandoned", "wait-1-hour", "cart-reminder", "order-completed"],
        [("cart-abandoned", "next", "wait-1-hour"), ("wait-1-hour", "next", "cart-reminder"),
         ("cart-reminder", "next", "order-completed")],
    ),
    "win_back": (
        "Win-back",
        ["lapsed-customer", "we-miss-you-email", "wait-4-days", "clicked-we-miss-you",
         "offer-email", "wait-3-days", "came-back"],
        [("lapsed-customer", "next", "we-miss-you-email"),
         ("we-miss-you-email", "next", "wait-4-days"),
         ("wait-4-days", "next", "clicked-we-miss-you"),
         ("clicked-we-miss-you", "yes", "came-back"), ("clicked-we-miss-you", "no", "offer-email"),
         ("offer-email", "next", "wait-3-days"), ("wait-3-days", "next", "came-back")],
    ),
    "at_risk_reengagement": (
        "Re-engagement of at-risk users",
        ["became-at-risk", "check-in-push", "wait-2-days", "opened-check-in", "reengage-email",
         "wait-5-days", "back-in-app"],
        [("became-at-risk", "next", "check-in-push"), ("check-in-push", "next", "wait-2-days"),
         ("wait-2-days", "next", "opened-check-in"), ("opened-check-in", "yes", "back-in-app"),
         ("opened-check-in", "no", "reengage-email"), ("reengage-email", "next", "wait-5-days"),
         ("wait-5-days", "next", "back-in-app")],
    ),
    "post_purchase_review": (
        "Post-purchase review request",
        ["order-completed", "wait-7-days", "review-request-email", "review-submitted"],
        [("order-completed", "next", "wait-7-days"), ("wait-7-days", "next", "review-request-email"),
         ("review-request-email", "next", "review-submitted")],
    ),
}  # fmt: skip


def test_the_catalog_is_the_five_templates():
    assert list(catalog.CATALOG) == list(EXPECTED_GRAPHS)


@pytest.mark.parametrize("key", list(EXPECTED_GRAPHS))
def test_create_from_a_template_makes_its_graph_and_layout(workspace, owner, key):
    name, node_ids, edges = EXPECTED_GRAPHS[key]
    response = logged_in(owner).post("/w/acme/journeys/new/", {"name": "", "template": key})
    journey = Journey.objects.get(workspace=workspace, name=name)
    assert response.status_code == 302
    assert response["Location"] == f"/w/acme/journeys/{journey.pk}/"
    definition, layout = journey.draft.definition, journey.draft.layout
    assert [node["id"] for node in definition["nodes"]] == node_ids
    assert [(e["source"], e["port"], e["target"]) for e in definition["edges"]] == edges
    assert sorted(layout["nodes"]) == sorted(node_ids)  # jsonb keeps no key order
    places = layout["nodes"].values()
    assert {(place["x"] - catalog.ORIGIN_X) % 344 for place in places} == {0}
    assert {(place["y"] - catalog.ORIGIN_Y) % 150 for place in places} == {0}
    # Left to right: every edge goes to a column further right.
    assert all(layout["nodes"][s]["x"] < layout["nodes"][t]["x"] for s, _, t in edges)
    assert journey.description == catalog.CATALOG[key](None)[1]
    [audit] = _audit(workspace, "journey.create")
    assert audit.actor == owner


def test_a_templates_journey_may_be_given_its_own_name(workspace, owner):
    logged_in(owner).post(
        "/w/acme/journeys/new/", {"name": "Cart, EU", "template": "abandoned_cart"}
    )
    journey = Journey.objects.get(workspace=workspace, name="Cart, EU")
    assert journey.draft.definition["nodes"][0]["id"] == "cart-abandoned"


def test_the_welcome_series_in_detail():
    _, _, definition, layout = catalog.welcome_series()
    nodes = {node["id"]: node for node in definition["nodes"]}
    assert nodes["signed-up"]["trigger"] == {"kind": "event", "event": "Signed Up"}
    assert nodes["wait-2-days"]["wait"] == {"kind": "duration", "seconds": 2 * 86400}
    assert nodes["opened-welcome"]["condition"] == {
        "kind": "engagement", "node": "welcome-email", "engagement": "opened",
    }  # fmt: skip
    assert nodes["nudge-push"]["action"] == {"kind": "message", "channel": "push", "template_id": 0}
    assert nodes["wait-3-days"]["wait"] == {"kind": "duration", "seconds": 3 * 86400}
    assert (nodes["first-order"]["event"], nodes["first-order"]["window_seconds"]) == (
        "Order Completed",
        7 * 86400,
    )
    assert layout["nodes"]["opened-welcome"] == {"x": 80 + 3 * 344, "y": 220}
    assert layout["nodes"]["tips-email"] == {"x": 80 + 4 * 344, "y": 220 - 150}
    assert layout["nodes"]["nudge-push"] == {"x": 80 + 4 * 344, "y": 220 + 150}


def test_the_abandoned_cart_falls_back_to_sms_and_converts_within_3_days():
    _, _, definition, _ = catalog.abandoned_cart()
    nodes = {node["id"]: node for node in definition["nodes"]}
    assert nodes["cart-abandoned"]["trigger"] == {"kind": "event", "event": "Cart Abandoned"}
    assert nodes["wait-1-hour"]["wait"] == {"kind": "duration", "seconds": 3600}
    assert nodes["cart-reminder"] == {
        "id": "cart-reminder", "type": "fallback",
        "chain": [{"channel": "email", "template_id": 0}, {"channel": "sms", "template_id": 0}],
        "not_engaged": "opened", "within_seconds": 4 * 3600,
    }  # fmt: skip
    assert (nodes["order-completed"]["event"], nodes["order-completed"]["window_seconds"]) == (
        "Order Completed",
        3 * 86400,
    )


def test_message_nodes_use_the_librarys_template_of_that_channel_and_name(workspace, owner):
    def template(name, channel, content):
        return content_services.template_create(
            workspace=workspace, name=name, channel=channel, content=content, context=SETUP
        ).pk

    email = {"default": {"subject": "Hi", "html": "<p>Hi</p>"}}
    welcome = template("Welcome email", "email", email)
    checkout = template("checkout REMINDER", "email", email)
    template("Welcome nudge push", "sms", {"default": {"body": "Hi"}})  # the wrong channel
    _, _, definition, _ = catalog.journey_template(key="welcome_series", workspace=workspace)
    assert {
        node["id"]: node["action"]["template_id"]
        for node in definition["nodes"]
        if node["type"] == "action"
    } == {"welcome-email": welcome, "tips-email": 0, "nudge-push": 0}
    _, _, definition, _ = catalog.journey_template(key="abandoned_cart", workspace=workspace)
    assert definition["nodes"][2]["chain"] == [
        {"channel": "email", "template_id": checkout},
        {"channel": "sms", "template_id": 0},
    ]


def _filled(value, ids: dict[str, int], channel: str = ""):
    """The definition with each template_id 0 set to the template of its channel and
    each segment_id 0 to the segment."""
    if isinstance(value, list):
        return [_filled(item, ids, channel) for item in value]
    if not isinstance(value, dict):
        return value
    channel = value.get("channel", channel)
    filled = {key: _filled(item, ids, channel) for key, item in value.items()}
    if filled.get("template_id") == 0:
        filled["template_id"] = ids[channel]
    if filled.get("segment_id") == 0:
        filled["segment_id"] = ids["segment"]
    return filled


@pytest.mark.parametrize("key", list(EXPECTED_GRAPHS))
def test_each_template_checks_once_its_templates_and_segment_are_chosen(workspace, key):
    _, _, definition, _ = catalog.CATALOG[key](None)
    with pytest.raises(DefinitionError) as raised:
        check_definition(definition)
    # The only problems are the ids the builder asks for.
    assert {re.sub(r"^.*\.(\w+_id):.*$", r"\1", str(e)) for e in raised.value.errors} <= {
        "template_id",
        "segment_id",
    }
    contents = {
        "email": {"default": {"subject": "Hi", "html": "<p>Hi</p>"}},
        "sms": {"default": {"body": "Hi"}},
        "push": {"default": {"title": "Hi", "body": "Hi"}},
    }
    ids = {
        channel: content_services.template_create(
            workspace=workspace, name=f"{channel} one", channel=channel, content=content,
            context=SETUP,
        ).pk
        for channel, content in contents.items()
    }  # fmt: skip
    ids["segment"] = Segment.objects.create(
        workspace=workspace,
        name="Lapsed",
        definition={"type": "attribute", "trait": "plan", "op": "eq", "value": "pro"},
    ).pk
    filled = _filled(definition, ids)
    check_definition(filled)
    journey = services.journey_create(
        workspace=workspace, name=key, context=SETUP, definition=filled
    )
    services.journey_check(journey=journey)  # the workspace's references too


# --------------------------------------------------------------------------- duplicate


def test_duplicate_copies_the_draft_exactly_and_names_the_copy_uniquely(workspace, owner, journeys):
    cart = journeys["cart"]
    services.journey_draft_save(
        journey=cart, context=SETUP, definition=copy.deepcopy(DRAFT) | {"settings": {"shadow_mode": True}},
        layout={"nodes": {"start": {"x": 1, "y": 2}, "done": {"x": 3, "y": 4}}},
    )  # fmt: skip
    client = logged_in(owner)
    first = client.post(f"/w/acme/journeys/{cart.pk}/duplicate/")
    second = client.post(f"/w/acme/journeys/{cart.pk}/duplicate/")
    copy_one = Journey.objects.get(workspace=workspace, name="Abandoned cart (copy)")
    copy_two = Journey.objects.get(workspace=workspace, name="Abandoned cart (copy 2)")
    assert (first.status_code, first["Location"]) == (302, f"/w/acme/journeys/{copy_one.pk}/")
    assert (second.status_code, second["Location"]) == (302, f"/w/acme/journeys/{copy_two.pk}/")
    cart.draft.refresh_from_db()
    for duplicate in (copy_one, copy_two):
        assert duplicate.draft.definition == cart.draft.definition
        assert duplicate.draft.layout == cart.draft.layout
        assert (duplicate.status, duplicate.live_version, duplicate.created_by) == (
            "draft",
            None,
            owner,
        )
        assert duplicate.enrollments.count() == 0
    assert [(a.object_id, a.changes, a.actor) for a in _audit(workspace, "journey.duplicate")] == [
        (str(copy_one.pk), {"source": cart.pk, "source_name": "Abandoned cart"}, owner),
        (str(copy_two.pk), {"source": cart.pk, "source_name": "Abandoned cart"}, owner),
    ]
    cart.refresh_from_db()
    assert (cart.status, cart.name) == ("live", "Abandoned cart")


def test_a_duplicates_name_fits_the_limit(workspace):
    long = services.journey_create(workspace=workspace, name="x" * 200, context=SETUP)
    duplicate = services.journey_duplicate(journey=long, context=SETUP)
    assert duplicate.name == "x" * 193 + " (copy)"
    named = services.journey_duplicate(journey=long, context=SETUP, name="Chosen")
    assert named.name == "Chosen"


def test_duplicate_of_a_copy_is_a_copy_of_the_copy(workspace, journeys):
    copy_one = services.journey_duplicate(journey=journeys["welcome"], context=SETUP)
    assert services.journey_duplicate(journey=copy_one, context=SETUP).name == (
        "Welcome (copy) (copy)"
    )


def test_duplicate_answers_only_post(owner, journeys):
    response = logged_in(owner).get(f"/w/acme/journeys/{journeys['welcome'].pk}/duplicate/")
    assert response.status_code == 405


# --------------------------------------------------------------------------- archive


def test_archive_of_a_live_journey_is_refused_with_the_reason(workspace, owner, journeys):
    cart = journeys["cart"]
    response = logged_in(owner).post(f"/w/acme/journeys/{cart.pk}/archive/", follow=True)
    assert response.redirect_chain == [(LIST, 302)]
    assert [str(m) for m in response.context["messages"]] == [
        "The journey is live; it cannot be archived."
    ]
    cart.refresh_from_db()
    assert cart.status == "live"
    assert _audit(workspace, "journey.archive") == []


def test_archive_of_a_draft_hides_it_and_is_audited(workspace, owner, journeys):
    welcome = journeys["welcome"]
    client = logged_in(owner)
    response = client.post(
        f"/w/acme/journeys/{welcome.pk}/archive/", {"status": "draft"}, follow=True
    )
    assert response.redirect_chain == [(f"{LIST}?status=draft", 302)]
    assert [str(m) for m in response.context["messages"]] == ["Archived Welcome."]
    welcome.refresh_from_db()
    assert welcome.status == "archived"
    [audit] = _audit(workspace, "journey.archive")
    assert (audit.actor, audit.object_id) == (owner, str(welcome.pk))
    assert _names(client.get(LIST)) == ["Abandoned cart"]
    assert _names(client.get(LIST, {"status": "archived"})) == ["Welcome", "Old promo"]


@pytest.mark.parametrize("status", Journey.Status.values)
def test_the_archive_button_shows_exactly_where_archiving_works(workspace, owner, status):
    journey = _journey(workspace, "Any", by=owner, status=status)
    page = logged_in(owner).get(LIST, {"status": status}).content.decode()
    has_button = f'action="/w/acme/journeys/{journey.pk}/archive/"' in page
    try:
        services.journey_archive(journey=journey, context=SETUP)
    except services.JourneyStateError as error:
        assert has_button is False
        if status != "archived":
            assert f'title="{views.NOT_ARCHIVABLE_REASONS[status]}"' in page
        assert error.messages
    else:
        assert has_button is True
