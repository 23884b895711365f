"""The builder's inspector: each node type's form opened from the palette's starting
node, changes applied through the form, references checked against the workspace,
roles, tenancy, the event-name autocomplete and bad requests."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html.parser import HTMLParser
from itertools import count

import pytest
from django.core.cache import cache
from django.utils import timezone

from content import services as content_services
from engagement_site.workspaces.roles import Role
from engagement_site.workspaces.services import AuditContext
from journeys import editor
from journeys.services import journey_create
from segments.models import Event, Profile, Segment
from tests.conftest import SETUP, logged_in

pytestmark = pytest.mark.django_db

_ids = count(1)


# --------------------------------------------------------------------------- helpers


class _Fields(HTMLParser):
    """The form's controls as the browser would post them: {name: value or [values]},
    plus the names of disabled controls and the options of each select."""

    def __init__(self):
        super().__init__()
        self.values: dict[str, object] = {}
        self.options: dict[str, list[tuple[str, str]]] = {}
        self.disabled_fieldset = False
        self._select: str | None = None
        self._option: tuple[str, bool] | None = None
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        name = attributes.get("name")
        if tag == "fieldset" and "disabled" in attributes:
            self.disabled_fieldset = True
        if tag == "input" and name:
            kind = attributes.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in attributes:
                    if kind == "checkbox":
                        self.values.setdefault(name, []).append(attributes.get("value"))
                    else:
                        self.values[name] = attributes.get("value")
                elif kind == "checkbox":
                    self.values.setdefault(name, [])
            else:
                self.values[name] = attributes.get("value", "")
        elif tag == "select" and name:
            self._select = name
            self.options[name] = []
        elif tag == "option" and self._select:
            self._option = (attributes.get("value", ""), "selected" in attributes)
            self._text = ""
        elif tag == "textarea" and name:
            self._textarea, self._text = name, ""

    def handle_data(self, data):
        self._text += data

    def handle_endtag(self, tag):
        if tag == "option" and self._select and self._option:
            value, selected = self._option
            self.options[self._select].append((value, self._text.strip()))
            if selected or self._select not in self.values:
                self.values[self._select] = value
            self._option = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.values[self._textarea] = self._text
            self._textarea = None


def _fields(response) -> _Fields:
    parser = _Fields()
    parser.feed(response.content.decode())
    return parser


def _result(response) -> dict:
    html = response.content.decode()
    found = re.findall(
        r'<script id="inspector-result" type="application/json">(.*?)</script>', html, re.S
    )
    assert len(found) == 1
    # The result is the fragment's last element.
    assert re.search(
        r'<script id="inspector-result" type="application/json">[^<]*</script>\s*</div>\s*$', html
    )
    return json.loads(found[0])


@pytest.fixture
def journey(workspace):
    return journey_create(workspace=workspace, name="Cart", context=SETUP)


def _url(journey, what: str = "", slug: str = "acme") -> str:
    return f"/w/{slug}/journeys/{journey.pk}/inspector/{what}"


def _open(client, journey, node: dict, others: list | None = None):
    data = {"node": json.dumps(node)}
    if others is not None:
        data["others"] = json.dumps(others)
    return client.post(_url(journey), data)


def _apply(client, journey, node_id: str, node_type: str, others: list | None = None, **fields):
    data = {"node_id": node_id, "node_type": node_type, "others": json.dumps(others or [])}
    data.update(fields)
    return client.post(_url(journey, "apply/"), data)


def _palette(key: str, node_id: str = "n1") -> dict:
    return {"id": node_id, **editor.PALETTE[key][3]}


def _template(workspace, name: str, channel: str, content: dict | None = None):
    defaults = {
        "email": {"subject": f"{name} subject", "html": "<p>Hello {{ profile.first_name }}, your cart waits.</p>"},
        "sms": {"body": f"{name}: come back"},
        "push": {"title": f"{name} title", "body": "Tap to finish"},
        "webhook": {"method": "POST", "url": "https://hooks.example.com/cart", "body": "{}"},
    }  # fmt: skip
    return content_services.template_create(
        workspace=workspace,
        name=name,
        channel=channel,
        content={"default": content or defaults[channel]},
        context=AuditContext.system("test"),
    )


# --------------------------------------------------------------------------- opening each palette node

TITLES = {
    "trigger": "Trigger", "wait": "Wait", "condition": "Condition", "split": "A/B split",
    "action": "Action", "fallback": "Fallback chain", "goal": "Goal", "exit": "Exit",
}  # fmt: skip

PALETTE_CASES = {
    "trigger_event": (
        {"trigger_kind": "event", "event": ""},
        ["Event: choose or type an event name"],
        "When … happens",
        ["next"],
    ),
    "trigger_segment": (
        {"trigger_kind": "segment", "segment_id": "", "on": "entered"},
        ["Segment: choose a segment"],
        "Someone enters a segment",
        ["next"],
    ),
    "trigger_schedule": (
        {"trigger_kind": "schedule", "segment_id": "", "schedule_mode": "repeat", "cron": "0 9 * * 1", "time_zone": "UTC"},
        ["Audience: choose a segment"],
        "A segment on 0 9 * * 1",
        ["next"],
    ),
    "trigger_api": ({"trigger_kind": "api"}, [], "Entered through the API", ["next"]),
    "wait_duration": ({"wait_kind": "duration", "amount": "1", "unit": "hours"}, [], "Wait 1 hour", ["next"]),
    "wait_time": (
        {"wait_kind": "until_time", "at": "09:00", "weekdays": [], "fallback_time_zone": "UTC"},
        [],
        "Wait until 09:00",
        ["next"],
    ),
    "wait_event": (
        {"wait_kind": "event", "event": "", "timeout_amount": "1", "timeout_unit": "days"},
        ["Event: choose or type an event name"],
        "Wait for …, at most 1 day",
        ["on_event", "on_timeout"],
    ),
    "condition": ({"condition_kind": "rule", "match": "all"}, ["Rule: add at least one comparison"], "Set a rule", ["yes", "no"]),
    "split": (
        {"variants-0-key": "a", "variants-0-name": "A", "variants-0-weight": "50", "variants-1-key": "b", "variants-1-weight": "50", "holdout_percent": "0"},
        [],
        "2 variants (50 / 50)",
        ["a", "b"],
    ),
    "email": ({"action_kind": "message", "channel": "email", "template_id": ""}, ["Template: choose an email template"], "Email: choose a template", ["next"]),
    "sms": ({"channel": "sms", "template_id": ""}, ["Template: choose an SMS template"], "SMS: choose a template", ["next"]),
    "push": ({"channel": "push"}, ["Template: choose a push template"], "Push: choose a template", ["next"]),
    "web_push": ({"channel": "web_push"}, ["Template: choose a web push template"], "Web push: choose a template", ["next"]),
    "whatsapp": ({"channel": "whatsapp"}, ["Template: choose a WhatsApp template"], "WhatsApp: choose a template", ["next"]),
    "in_app": ({"channel": "in_app"}, ["Template: choose an in-app template"], "In-app: choose a template", ["next"]),
    "webhook": ({"action_kind": "webhook", "template_id": ""}, ["Template: choose a webhook template"], "Webhook: choose a template", ["next"]),
    "fallback": (
        {"chain-0-channel": "push", "chain-0-template_id": "", "chain-1-channel": "sms", "chain-1-template_id": "", "not_engaged": ""},
        ["Step 1 template: choose a push template", "Step 2 template: choose an SMS template"],
        "Push → SMS",
        ["next"],
    ),
    "update_attribute": (
        {"action_kind": "update_attribute", "trait": "", "value": ""},
        ["Attribute: name the attribute to set"],
        "Set …",
        ["next"],
    ),
    "segment_change": (
        {"action_kind": "segment", "segment_id": "", "op": "add"},
        ["Segment: choose a static segment"],
        "Add to a segment",
        ["next"],
    ),
    "goal": (
        {"event": "", "window_amount": "1", "window_unit": "weeks"},
        ["Event: choose or type an event name"],
        "Goal: … within 1 week",
        [],
    ),
    "exit": ({}, [], "Leave the journey", []),
}  # fmt: skip


@pytest.mark.parametrize("key", list(PALETTE_CASES))
def test_a_palette_node_opens_with_its_values_and_the_exact_result(key, journey, owner):
    fields, errors, summary, ports = PALETTE_CASES[key]
    node = _palette(key, node_id=f"{key.replace('_', '-')}-1")
    response = _open(logged_in(owner), journey, node)
    assert response.status_code == 200
    shown = _fields(response)
    assert {name: shown.values.get(name) for name in fields} == fields
    assert (shown.values["node_id"], shown.values["node_type"]) == (node["id"], node["type"])
    assert shown.disabled_fieldset is False
    assert _result(response) == {
        "node": node,
        "valid": not errors,
        "errors": errors,
        "summary": summary,
        "ports": ports,
    }
    page = response.content.decode()
    assert f'<h2 class="inspector-title">{TITLES[node["type"]]}</h2>' in page
    assert f'<code class="inspector-id" title="Node id">{node["id"]}</code>' in page


def test_every_node_type_has_a_palette_case():
    assert {editor.PALETTE[key][3]["type"] for key in PALETTE_CASES} == {
        "trigger", "wait", "condition", "split", "action", "fallback", "goal", "exit",
    }  # fmt: skip
    assert set(PALETTE_CASES) == set(editor.PALETTE)


# --------------------------------------------------------------------------- applying changes


def test_a_wait_of_two_hours(journey, owner):
    response = _apply(
        logged_in(owner), journey, "w1", "wait", wait_kind="duration", amount="2", unit="hours"
    )
    assert response.status_code == 200
    assert _result(response) == {
        "node": {"id": "w1", "type": "wait", "wait": {"kind": "duration", "seconds": 7200}},
        "valid": True,
        "errors": [],
        "summary": "Wait 2 hours",
        "ports": ["next"],
    }
    assert {k: _fields(response).values[k] for k in ("amount", "unit")} == {
        "amount": "2",
        "unit": "hours",
    }


@pytest.mark.parametrize(
    ("amount", "unit", "error"),
    [
        ("30", "minutes", None),
        ("0.5", "minutes", "Wait: at least 1 minute"),
        ("", "hours", "Wait: enter a number"),
        ("367", "days", "Wait: at most 366 days"),
    ],
)
def test_a_wait_says_what_is_wrong_with_its_duration(journey, owner, amount, unit, error):
    result = _result(
        _apply(
            logged_in(owner), journey, "w1", "wait", wait_kind="duration", amount=amount, unit=unit
        )
    )
    assert (result["valid"], result["errors"]) == (error is None, [error] if error else [])


def test_a_wait_until_a_time_on_weekdays_and_for_an_event_with_a_timeout(journey, owner):
    client = logged_in(owner)
    data = {"wait_kind": "until_time", "at": "08:30", "fallback_time_zone": "Europe/Berlin"}
    response = client.post(
        _url(journey, "apply/"),
        {"node_id": "w2", "node_type": "wait", "others": "[]", "weekdays": ["4", "0"], **data},
    )
    assert _result(response)["node"] == {
        "id": "w2",
        "type": "wait",
        "wait": {"kind": "until_time", "at": "08:30:00", "weekdays": [0, 4], "fallback_time_zone": "Europe/Berlin"},
    }  # fmt: skip
    assert _fields(response).values["weekdays"] == ["0", "4"]
    event = _result(
        _apply(
            client,
            journey,
            "w3",
            "wait",
            wait_kind="event",
            event="order_completed",
            timeout_amount="3",
            timeout_unit="days",
            **{"filters-0-property": "total", "filters-0-op": "gte", "filters-0-value": "50"},
        )
    )
    assert event == {
        "node": {"id": "w3", "type": "wait", "wait": {"kind": "event", "event": "order_completed", "filters": [{"property": "total", "op": "gte", "value": 50}], "timeout_seconds": 259200}},
        "valid": True,
        "errors": [],
        "summary": "Wait for order_completed, at most 3 days",
        "ports": ["on_event", "on_timeout"],
    }  # fmt: skip
    no_timeout = _result(
        _apply(client, journey, "w3", "wait", wait_kind="event", event="x", timeout_amount="")
    )
    assert (no_timeout["node"]["wait"]["timeout_seconds"], no_timeout["ports"]) == (
        None,
        ["on_event"],
    )


def test_an_event_trigger_adds_and_removes_filter_rows(journey, owner):
    client = logged_in(owner)
    base = {"trigger_kind": "event", "event": "checkout_started"}
    added = _apply(
        client, journey, "t", "trigger", action="add_filter", **base,
        **{"filters-0-property": "cart.total", "filters-0-op": "gt", "filters-0-value": "20"},
    )  # fmt: skip
    assert _result(added)["node"]["trigger"]["filters"] == [
        {"property": "cart.total", "op": "gt", "value": 20},
        {"property": "", "op": "eq", "value": ""},
    ]
    assert _result(added)["errors"] == ["Filter 2: choose a property"]
    assert _fields(added).values["filters-1-property"] == ""
    removed = _apply(
        client, journey, "t", "trigger", action="remove_filter:0", **base,
        **{"filters-0-property": "cart.total", "filters-0-op": "gt", "filters-0-value": "20",
           "filters-1-property": "plan", "filters-1-op": "in", "filters-1-value": "pro, team"},
    )  # fmt: skip
    assert _result(removed)["node"] == {
        "id": "t",
        "type": "trigger",
        "trigger": {"kind": "event", "event": "checkout_started", "filters": [{"property": "plan", "op": "in", "value": ["pro", "team"]}]},
    }  # fmt: skip
    assert _result(removed)["valid"] is True
    assert _fields(removed).values["filters-0-value"] == "pro, team"


def test_a_schedule_trigger_once_in_a_time_zone_and_a_cron_with_its_hint(journey, owner, workspace):
    segment = Segment.objects.create(workspace=workspace, name="Newsletter", definition={})
    client = logged_in(owner)
    once = _apply(
        client, journey, "t", "trigger", trigger_kind="schedule", segment_id=str(segment.pk),
        schedule_mode="once", at="2027-03-01T09:00", time_zone="Europe/Berlin",
    )  # fmt: skip
    assert _result(once)["node"]["trigger"] == {
        "kind": "schedule",
        "segment_id": segment.pk,
        "cron": "",
        "at": "2027-03-01T09:00:00+01:00",
        "time_zone": "Europe/Berlin",
    }
    assert (_result(once)["valid"], _fields(once).values["at"]) == (True, "2027-03-01T09:00")
    repeat = _apply(
        client, journey, "t", "trigger", trigger_kind="schedule", segment_id=str(segment.pk),
        schedule_mode="repeat", cron="0 9 * * 1", time_zone="Nowhere/City",
    )  # fmt: skip
    assert _result(repeat)["errors"] == ["Time zone: choose a time zone from the list"]
    assert 'data-testid="cron-hint">At 09:00 on Monday</p>' in repeat.content.decode()
    broken = _apply(
        client, journey, "t", "trigger", trigger_kind="schedule", segment_id=str(segment.pk),
        schedule_mode="repeat", cron="0 9 * *", time_zone="UTC",
    )  # fmt: skip
    assert _result(broken)["errors"] == ["Schedule: five fields: minute hour day month weekday"]


def test_a_condition_rule_of_attribute_comparisons_is_the_segment_rule_language(journey, owner):
    from segments.rules import parse_definition

    response = _apply(
        logged_in(owner), journey, "c", "condition", condition_kind="rule", match="any",
        **{"rules-0-target": "trait", "rules-0-trait": "plan", "rules-0-op": "eq", "rules-0-value": "pro",
           "rules-1-target": "email", "rules-1-op": "contains", "rules-1-value": "@acme.com",
           "rules-2-target": "trait", "rules-2-trait": "orders", "rules-2-op": "exists", "rules-2-value": "x"},
    )  # fmt: skip
    rule = {
        "type": "or",
        "rules": [
            {"type": "attribute", "trait": "plan", "op": "eq", "value": "pro"},
            {"type": "attribute", "column": "email", "op": "contains", "value": "@acme.com"},
            {"type": "attribute", "trait": "orders", "op": "exists"},
        ],
    }
    assert _result(response) == {
        "node": {"id": "c", "type": "condition", "condition": {"kind": "rule", "rule": rule}},
        "valid": True,
        "errors": [],
        "summary": "Profile matches a rule",
        "ports": ["yes", "no"],
    }
    parse_definition(rule)
    assert _fields(response).values["match"] == "any"
    one = _apply(
        logged_in(owner), journey, "c", "condition", condition_kind="rule", match="all",
        **{"rules-0-target": "trait", "rules-0-trait": "", "rules-0-op": "gt", "rules-0-value": "3"},
    )  # fmt: skip
    assert _result(one)["node"]["condition"]["rule"] == {
        "type": "attribute", "trait": "", "op": "gt", "value": 3,
    }  # fmt: skip
    assert _result(one)["errors"] == ["Comparison 1: name the attribute"]


def test_an_engagement_condition_offers_only_earlier_message_nodes(journey, owner):
    others = [
        {"id": "start", "type": "trigger", "summary": "When cart happens"},
        {"id": "mail", "type": "action", "summary": "Email: Cart"},
        {"id": "chain", "type": "fallback", "summary": "Push → SMS"},
        {"id": "pause", "type": "wait", "summary": "Wait 1 hour"},
    ]
    node = {"id": "c", "type": "condition", "condition": {"kind": "engagement", "node": "pause", "engagement": "opened"}}  # fmt: skip
    opened = _open(logged_in(owner), journey, node, others)
    assert [value for value, _ in _fields(opened).options["message_node"]] == [
        "", "mail", "chain", "pause",
    ]  # fmt: skip
    assert _fields(opened).options["message_node"][-1] == ("pause", "Unavailable step pause")
    assert _result(opened)["errors"] == ["Message step: choose an earlier message step"]
    applied = _apply(
        logged_in(owner), journey, "c", "condition", others, condition_kind="engagement",
        message_node="chain", engagement="clicked",
    )  # fmt: skip
    assert _result(applied) == {
        "node": {"id": "c", "type": "condition", "condition": {"kind": "engagement", "node": "chain", "engagement": "clicked"}},
        "valid": True,
        "errors": [],
        "summary": "Did they click chain?",
        "ports": ["yes", "no"],
    }  # fmt: skip


def test_a_split_with_three_variants_and_a_holdout_shows_each_share(journey, owner):
    response = _apply(
        logged_in(owner), journey, "s", "split", holdout_percent="10",
        **{"variants-0-key": "a", "variants-0-name": "Control", "variants-0-weight": "50",
           "variants-1-key": "b", "variants-1-name": "Discount", "variants-1-weight": "25",
           "variants-2-key": "c", "variants-2-name": "", "variants-2-weight": "25"},
    )  # fmt: skip
    assert _result(response) == {
        "node": {
            "id": "s",
            "type": "split",
            "variants": [
                {"key": "a", "name": "Control", "weight": 50},
                {"key": "b", "name": "Discount", "weight": 25},
                {"key": "c", "name": "", "weight": 25},
            ],
            "holdout_percent": 10,
        },
        "valid": True,
        "errors": [],
        "summary": "3 variants (50 / 25 / 25), 10% holdout",
        "ports": ["a", "b", "c", "holdout"],
    }
    shares = re.findall(r'data-testid="variant-share">([^<]*)<', response.content.decode())
    assert shares == ["45%", "22.5%", "22.5%"]


def test_a_split_adds_a_variant_with_even_weights_and_refuses_bad_keys(journey, owner):
    client = logged_in(owner)
    two = {"variants-0-key": "a", "variants-0-name": "A", "variants-0-weight": "50",
           "variants-1-key": "b", "variants-1-name": "B", "variants-1-weight": "50"}  # fmt: skip
    added = _apply(client, journey, "s", "split", action="add_variant", holdout_percent="0", **two)
    assert _result(added)["node"]["variants"] == [
        {"key": "a", "name": "A", "weight": 34},
        {"key": "b", "name": "B", "weight": 33},
        {"key": "c", "name": "C", "weight": 33},
    ]
    bad = _apply(
        client, journey, "s", "split", holdout_percent="60",
        **{**two, "variants-1-key": "a", "variants-0-weight": "0", "variants-1-weight": "0"},
    )  # fmt: skip
    assert _result(bad)["errors"] == [
        "Variant 2 key: another variant has it",
        "Variants: at least one variant needs a weight above 0",
        "Holdout: a percentage from 0 to 50",
    ]
    assert _result(bad)["valid"] is False


def test_a_message_picks_a_template_of_its_channel_with_a_preview(journey, owner, workspace):
    email = _template(workspace, "Cart reminder", "email")
    sms = _template(workspace, "Cart SMS", "sms")
    client = logged_in(owner)
    response = _apply(
        client, journey, "m", "action", action_kind="message", channel="email",
        template_id=str(email.pk),
    )  # fmt: skip
    assert _result(response) == {
        "node": {"id": "m", "type": "action", "action": {"kind": "message", "channel": "email", "template_id": email.pk}},
        "valid": True,
        "errors": [],
        "summary": "Email: Cart reminder",
        "ports": ["next"],
    }  # fmt: skip
    shown = _fields(response)
    assert shown.options["template_id"] == [
        ("", "Choose an email template…"),
        (str(email.pk), "Cart reminder"),
    ]
    page = response.content.decode()
    assert '<p class="inspector-preview-subject">Cart reminder subject</p>' in page
    assert "Hello Sam, your cart waits." in page
    assert 'sandbox=""' in page
    wrong = _apply(
        client, journey, "m", "action", action_kind="message", channel="email",
        template_id=str(sms.pk),
    )  # fmt: skip
    assert _result(wrong)["errors"] == [
        "Template: “Cart SMS” is an SMS template; choose an email template"
    ]
    variants = _apply(
        client, journey, "m", "action", action_kind="message", channel="email",
        template_id=str(email.pk), action="add_variant_template",
        **{"variant_templates-0-key": "a", "variant_templates-0-template_id": str(email.pk)},
    )  # fmt: skip
    assert _result(variants)["node"]["action"]["variant_templates"] == {"a": email.pk, "b": 0}
    assert _result(variants)["errors"] == ["Template for variant b: choose an email template"]


def test_another_workspaces_template_or_segment_is_refused_and_not_offered(
    journey, owner, workspace, other_workspace
):
    theirs = _template(other_workspace, "Globex promo", "email")
    their_segment = Segment.objects.create(
        workspace=other_workspace, name="Globex VIPs", kind=Segment.Kind.STATIC
    )
    mine = Segment.objects.create(workspace=workspace, name="Acme list", kind=Segment.Kind.STATIC)
    Segment.objects.create(workspace=workspace, name="Acme dynamic", definition={})
    client = logged_in(owner)
    node = {"id": "m", "type": "action", "action": {"kind": "message", "channel": "email", "template_id": theirs.pk}}  # fmt: skip
    opened = _open(client, journey, node)
    assert _result(opened)["valid"] is False
    assert _result(opened)["errors"] == ["Template: this template is not in this workspace"]
    assert _fields(opened).options["template_id"] == [
        ("", "Choose an email template…"),
        (str(theirs.pk), f"Unavailable template #{theirs.pk}"),
    ]
    assert "Globex" not in opened.content.decode()
    applied = _apply(
        client, journey, "g", "action", action_kind="segment", segment_id=str(their_segment.pk),
        op="remove",
    )  # fmt: skip
    assert _result(applied)["node"]["action"] == {
        "kind": "segment",
        "segment_id": their_segment.pk,
        "op": "remove",
    }
    assert _result(applied)["errors"] == ["Segment: this segment is not in this workspace"]
    assert [label for _, label in _fields(applied).options["segment_id"]] == [
        "Choose a static segment…",
        "Acme list",
        f"Unavailable segment #{their_segment.pk}",
    ]
    assert "Globex" not in applied.content.decode()
    good = _apply(
        client, journey, "g", "action", action_kind="segment", segment_id=str(mine.pk), op="add"
    )
    assert (_result(good)["valid"], _result(good)["summary"]) == (True, "Add to Acme list")


def test_a_fallback_chain_is_reordered_extended_and_moves_on_when_not_opened(
    journey, owner, workspace
):
    push = _template(workspace, "Cart push", "push")
    sms = _template(workspace, "Cart SMS", "sms")
    client = logged_in(owner)
    chain = {"chain-0-channel": "sms", "chain-0-template_id": str(sms.pk),
             "chain-1-channel": "push", "chain-1-template_id": str(push.pk)}  # fmt: skip
    moved = _apply(
        client, journey, "f", "fallback", action="step_up:1", not_engaged="opened",
        within_amount="2", within_unit="hours", **chain,
    )  # fmt: skip
    assert _result(moved) == {
        "node": {
            "id": "f",
            "type": "fallback",
            "chain": [
                {"channel": "push", "template_id": push.pk},
                {"channel": "sms", "template_id": sms.pk},
            ],
            "not_engaged": "opened",
            "within_seconds": 7200,
        },
        "valid": True,
        "errors": [],
        "summary": "Push → SMS, next if not opened in 2 hours",
        "ports": ["next"],
    }
    assert _fields(moved).values["chain-0-channel"] == "push"
    extended = _apply(client, journey, "f", "fallback", action="add_step", not_engaged="", **chain)
    assert _result(extended)["node"]["chain"][2] == {"channel": "email", "template_id": 0}
    assert _result(extended)["node"]["within_seconds"] is None
    assert _result(extended)["errors"] == ["Step 3 template: choose an email template"]
    kept = _apply(client, journey, "f", "fallback", action="remove_step:0", not_engaged="", **chain)
    assert len(_result(kept)["node"]["chain"]) == 2


def test_update_attribute_goal_and_exit(journey, owner):
    client = logged_in(owner)
    typed = _result(
        _apply(
            client,
            journey,
            "u",
            "action",
            action_kind="update_attribute",
            trait="vip",
            value="true",
        )
    )
    assert (typed["node"]["action"], typed["valid"]) == (
        {"kind": "update_attribute", "trait": "vip", "value": True},
        True,
    )
    cleared = _result(
        _apply(
            client, journey, "u", "action", action_kind="update_attribute", trait="1x", value="null"
        )
    )
    assert cleared["node"]["action"]["value"] is None
    assert cleared["errors"] == ["Attribute: letters, digits, _ . - (starting with a letter or _)"]
    goal = _result(
        _apply(
            client,
            journey,
            "g",
            "goal",
            event="order_completed",
            window_amount="3",
            window_unit="days",
        )
    )
    assert goal == {
        "node": {"id": "g", "type": "goal", "event": "order_completed", "filters": [], "window_seconds": 259200},
        "valid": True,
        "errors": [],
        "summary": "Goal: order_completed within 3 days",
        "ports": [],
    }  # fmt: skip
    assert _result(_apply(client, journey, "x", "exit"))["node"] == {"id": "x", "type": "exit"}


# --------------------------------------------------------------------------- roles, tenancy, requests


def test_a_viewer_sees_disabled_inputs_and_cannot_apply(journey, make_member):
    viewer = logged_in(make_member(Role.VIEWER))
    opened = _open(viewer, journey, _palette("wait_duration"))
    assert opened.status_code == 200
    assert _fields(opened).disabled_fieldset is True
    assert "hx-post" not in opened.content.decode()
    assert "Read only" in opened.content.decode()
    applied = _apply(viewer, journey, "n1", "wait", wait_kind="duration", amount="2", unit="hours")
    assert applied.status_code == 403
    assert b"inspector-result" not in applied.content
    marketer = logged_in(make_member(Role.MARKETER))
    assert _fields(_open(marketer, journey, _palette("wait_duration"))).disabled_fieldset is False


def test_another_workspaces_journey_answers_404(owner, other_workspace):
    theirs = journey_create(workspace=other_workspace, name="Theirs", context=SETUP)
    client = logged_in(owner)
    assert _open(client, theirs, _palette("exit")).status_code == 404
    assert _apply(client, theirs, "x", "exit").status_code == 404
    # …also through their own workspace's URL, which the owner is not a member of.
    response = client.post(_url(theirs, slug="globex"), {"node": json.dumps(_palette("exit"))})
    assert response.status_code == 404


def test_bad_requests_are_answered_with_a_message(journey, owner):
    client = logged_in(owner)
    bad_json = client.post(_url(journey), {"node": "{not json"})
    assert bad_json.status_code == 400
    assert bad_json.content.decode().startswith("`node` is not valid JSON:")
    missing = client.post(_url(journey), {})
    assert (missing.status_code, missing.content.decode()) == (
        400,
        "Send the node's JSON in the `node` field.",
    )
    unknown = client.post(_url(journey), {"node": json.dumps({"id": "x", "type": "teleport"})})
    assert unknown.status_code == 400
    assert unknown.content.decode().startswith("`node` has an unknown type 'teleport'")
    others = client.post(_url(journey), {"node": json.dumps(_palette("exit")), "others": "{}"})
    assert (others.status_code, others.content.decode()) == (
        400,
        "`others` must be a JSON list of {id, type, summary} objects.",
    )
    get = client.get(_url(journey))
    assert (get.status_code, get["Allow"]) == (405, "POST")
    assert get.content.decode() == "The inspector takes a POST with the node's JSON in `node`."
    assert client.get(_url(journey, "apply/")).status_code == 405
    no_type = client.post(_url(journey, "apply/"), {"node_id": "x"})
    assert no_type.status_code == 400


def test_others_default_to_the_saved_draft(workspace, owner):
    definition = {
        "nodes": [
            {"id": "start", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "mail", "type": "action", "action": {"kind": "message", "channel": "email", "template_id": 0}},
            {"id": "c", "type": "condition", "condition": {"kind": "engagement", "node": "mail", "engagement": "opened"}},
        ]
    }  # fmt: skip
    journey = journey_create(
        workspace=workspace, name="Draft", context=SETUP, definition=definition
    )
    response = _open(logged_in(owner), journey, definition["nodes"][2])
    assert _fields(response).options["message_node"] == [
        ("", "Choose a message step…"),
        ("mail", "Email: choose a template (mail)"),
    ]
    assert json.loads(_fields(response).values["others"]) == [
        {"id": "start", "type": "trigger", "summary": "Entered through the API"},
        {"id": "mail", "type": "action", "summary": "Email: choose a template"},
    ]
    assert _result(response)["valid"] is True


# --------------------------------------------------------------------------- event names


def _events(workspace, profile, name: str, times: int) -> None:
    now = timezone.now()
    Event.objects.bulk_create(
        Event(
            workspace=workspace,
            profile=profile,
            name=name,
            message_id=f"m-{next(_ids)}",
            timestamp=now - timedelta(minutes=index),
        )
        for index in range(times)
    )


def test_event_names_are_this_workspaces_filtered_and_most_frequent_first(
    workspace, other_workspace, owner
):
    cache.clear()
    profile = Profile.objects.create(workspace=workspace, user_id="u1")
    theirs = Profile.objects.create(workspace=other_workspace, user_id="u2")
    _events(workspace, profile, "Cart Viewed", 3)
    _events(workspace, profile, "cart_abandoned", 5)
    _events(workspace, profile, "order_completed", 9)
    _events(other_workspace, theirs, "cart_secret", 20)
    for index in range(25):
        _events(workspace, profile, f"page_{index:02d}", 1)
    client = logged_in(owner)
    url = "/w/acme/journeys/event-names/"
    assert client.get(url, {"q": "CART"}).json() == {"names": ["cart_abandoned", "Cart Viewed"]}
    everything = client.get(url).json()["names"]
    assert everything[:3] == ["order_completed", "cart_abandoned", "Cart Viewed"]
    assert everything[3:] == [f"page_{index:02d}" for index in range(17)]
    assert "cart_secret" not in client.get(url, {"q": "secret"}).json()["names"]
    assert client.get(url, {"q": "secret"}).json() == {"names": []}


def test_the_event_field_offers_the_workspaces_names(journey, owner, workspace):
    cache.clear()
    profile = Profile.objects.create(workspace=workspace, user_id="u1")
    _events(workspace, profile, "signed_up", 2)
    response = _open(logged_in(owner), journey, _palette("trigger_event"))
    page = response.content.decode()
    assert '<datalist id="i-event-names"><option value="signed_up"></datalist>' in page
    assert 'data-event-names-url="/w/acme/journeys/event-names/"' in page
