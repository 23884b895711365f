"""The builder's customer value condition (the computed_trait leaf): the form round
trip (post, get the exact definition, re-open and see and re-post the same values),
switching trait and operator, the live preview over computed values, refusals naming
the field, and the value templates. Values come from analytics.value over the
hand-worked shop of tests/analytics/value_data.py: ann champion, ben loyal, cat
potential, dan at risk (churn risk 0.7769), eve lost (churn risk 1)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.http import QueryDict
from django.urls import reverse

from analytics.value import customer_value_compute
from engagement_site.workspaces.models import AuditLog
from segments import builder
from segments.evaluation import segment_evaluate_all
from segments.models import Segment
from segments.rules import parse_definition
from tests.analytics.value_data import NOW, shop
from tests.conftest import logged_in

pytestmark = pytest.mark.django_db


def url(name: str, **kwargs) -> str:
    return reverse(name, kwargs={"workspace_slug": "acme", **kwargs})


def leaf_form(*pairs: tuple[str, str], name: str = "Value") -> QueryDict:
    """The builder form with one leaf at r-0; pairs are (field, value) after "r-0-",
    repeated for checkboxes. Post it as `posted(form)`. Unless given, the hidden
    "shown" field says the inputs were drawn for the posted trait, as in the page."""
    fields = dict(pairs)
    if "shown" not in fields and "trait" in fields:
        pairs = (("shown", fields["trait"]), *pairs)
    form = QueryDict(mutable=True)
    for key, value in (
        ("name", name),
        ("description", ""),
        ("interval", "300"),
        ("r-kind", "group"),
        ("r-match", "all"),
        ("r-0-kind", "leaf"),
        ("r-0-type", "computed_trait"),
        *((f"r-0-{field}", value) for field, value in pairs),
    ):
        form.appendlist(key, value)
    return form


def posted(form: QueryDict) -> dict[str, list[str]]:
    """The test client's data for a form: lists post a field once per value (a
    QueryDict's items() would keep only the last)."""
    return dict(form.lists())


@pytest.fixture
def valued(workspace, other_workspace) -> dict[str, int]:
    """The shop with its values computed in both workspaces; user id -> profile id."""
    people = shop(workspace, other_workspace)
    assert customer_value_compute(workspace=workspace, now=NOW) == 5
    assert customer_value_compute(workspace=other_workspace, now=NOW) == 1
    return {name: profile.pk for name, profile in people.items()}


class _FormFields(HTMLParser):
    """What a browser would post for the builder form: named inputs, checked boxes,
    each select's selected option (else its first)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        name = attributes.get("name")
        if tag == "input" and name and attributes.get("type") not in ("submit", "button"):
            if attributes.get("type") == "checkbox" and "checked" not in attributes:
                return
            self.fields.append((name, attributes.get("value") or ""))
        elif tag == "select" and name:
            self._select, self._options = name, []
        elif tag == "option" and self._select:
            self._options.append((attributes.get("value") or "", "selected" in attributes))

    def handle_endtag(self, tag):
        if tag == "select" and self._select:
            chosen = [value for value, selected in self._options if selected]
            if chosen or self._options:
                self.fields.append((self._select, (chosen or [self._options[0][0]])[0]))
            self._select = None


def rule_fields(html: str) -> list[tuple[str, str]]:
    parser = _FormFields()
    parser.feed(html)
    return [(name, value) for name, value in parser.fields if name.startswith("r")]


# --------------------------------------------------------------------------- form <-> draft


@pytest.mark.parametrize(
    ("pairs", "definition"),
    [
        (
            [("shown", "value_tier"), ("trait", "value_tier"), ("op", "eq"), ("value", "champion")],
            {"type": "computed_trait", "trait": "value_tier", "op": "eq", "value": "champion"},
        ),
        (
            [("trait", "value_tier"), ("op", "ne"), ("value", "lost")],
            {"type": "computed_trait", "trait": "value_tier", "op": "ne", "value": "lost"},
        ),
        (
            [("trait", "value_tier"), ("op", "in"), ("value", "champion"), ("value", "at_risk")],
            {
                "type": "computed_trait",
                "trait": "value_tier",
                "op": "in",
                "value": ["champion", "at_risk"],
            },
        ),
        (
            [("shown", "ltv"), ("trait", "ltv"), ("op", "gte"), ("value", "500")],
            {"type": "computed_trait", "trait": "ltv", "op": "gte", "value": 500},
        ),
        (
            [("trait", "churn_risk"), ("op", "gt"), ("value", " 0.7 ")],
            {"type": "computed_trait", "trait": "churn_risk", "op": "gt", "value": 0.7},
        ),
        (
            [("trait", "engagement_score"), ("op", "lte"), ("value", "7.7")],
            {"type": "computed_trait", "trait": "engagement_score", "op": "lte", "value": 7.7},
        ),
    ],
)
def test_the_form_reads_back_the_exact_definition(pairs, definition):
    draft = builder.draft_from_post(leaf_form(*pairs))
    assert builder.draft_to_definition(draft)[0] == definition
    # And the definition comes back as the same draft leaf.
    assert builder.draft_from_definition(definition)["rules"] == [definition]


def test_picking_another_trait_restarts_the_rule_from_that_trait():
    # The op and value inputs were drawn for the tier; they mean nothing for a number.
    switched = leaf_form(
        ("shown", "value_tier"), ("trait", "churn_risk"), ("op", "in"), ("value", "champion")
    )
    assert builder.draft_from_post(switched)["rules"] == [
        {"type": "computed_trait", "trait": "churn_risk", "op": "gte", "value": None}
    ]
    back = leaf_form(("shown", "ltv"), ("trait", "value_tier"), ("op", "lt"), ("value", "500"))
    assert builder.draft_from_post(back)["rules"] == [
        {"type": "computed_trait", "trait": "value_tier", "op": "eq", "value": "champion"}
    ]
    # Number to number keeps the comparison, not the threshold (500 is no churn risk).
    numbers = leaf_form(("shown", "ltv"), ("trait", "churn_risk"), ("op", "lt"), ("value", "500"))
    assert builder.draft_from_post(numbers)["rules"] == [
        {"type": "computed_trait", "trait": "churn_risk", "op": "lt", "value": None}
    ]
    # Switched from another kind of condition: its op and value are left behind.
    # (an attribute's trait and value, here).
    fresh = leaf_form(("op", "gte"), ("value", "2"))
    fresh["r-0-trait"] = "plan"
    assert builder.draft_from_post(fresh)["rules"] == [
        {"type": "computed_trait", "trait": "value_tier", "op": "eq", "value": "champion"}
    ]
    # is -> is one of keeps the chosen tier; is one of -> is keeps the first ticked.
    widened = leaf_form(
        ("shown", "value_tier"), ("trait", "value_tier"), ("op", "in"), ("value", "loyal")
    )
    assert builder.draft_from_post(widened)["rules"][0]["value"] == ["loyal"]
    narrowed = leaf_form(
        ("shown", "value_tier"),
        ("trait", "value_tier"),
        ("op", "eq"),
        ("value", "lost"),
        ("value", "loyal"),
    )
    assert builder.draft_from_post(narrowed)["rules"][0]["value"] == "lost"


def test_the_add_condition_menu_offers_customer_value():
    assert builder.LEAF_LABELS["computed_trait"] == "Customer value"
    draft = builder.blank_draft()
    builder.draft_apply(draft, "add:r:computed_trait")
    assert draft["rules"][1] == {
        "type": "computed_trait",
        "trait": "value_tier",
        "op": "eq",
        "value": "champion",
    }


# --------------------------------------------------------------------------- pages


def test_save_reopen_and_save_again_keeps_the_rule(workspace, make_member, valued):
    client = logged_in(make_member("marketer"))
    form = leaf_form(
        ("shown", "value_tier"),
        ("trait", "value_tier"),
        ("op", "in"),
        ("value", "champion"),
        ("value", "loyal"),
        name="Best customers",
    )
    # A second, numeric leaf in an "all" group: r-1.
    for key, value in (
        ("r-1-kind", "leaf"),
        ("r-1-type", "computed_trait"),
        ("r-1-shown", "ltv"),
        ("r-1-trait", "ltv"),
        ("r-1-op", "gte"),
        ("r-1-value", "1000"),
    ):
        form[key] = value
    response = client.post(url("segment_new"), posted(form))
    assert response.status_code == 302
    segment = Segment.objects.get(workspace=workspace, name="Best customers")
    expected = {
        "type": "and",
        "rules": [
            {
                "type": "computed_trait",
                "trait": "value_tier",
                "op": "in",
                "value": ["champion", "loyal"],
            },
            {"type": "computed_trait", "trait": "ltv", "op": "gte", "value": 1000},
        ],
    }
    assert segment.definition == expected

    page = client.get(url("segment_edit", segment_id=segment.pk))
    tier, ltv = page.context["tree"]["children"]
    assert {key: tier[key] for key in ("trait", "is_tier", "op", "tiers")} == {
        "trait": "value_tier",
        "is_tier": True,
        "op": "in",
        "tiers": ["champion", "loyal"],
    }
    assert {key: ltv[key] for key in ("trait", "is_tier", "op", "value", "hint")} == {
        "trait": "ltv",
        "is_tier": False,
        "op": "gte",
        "value": "1000",
        "hint": "in the unit of order revenue",
    }
    fields = rule_fields(page.content.decode())
    assert [field for field in fields if field[0].startswith("r-0-")] == [
        ("r-0-kind", "leaf"),
        ("r-0-type", "computed_trait"),
        ("r-0-shown", "value_tier"),
        ("r-0-trait", "value_tier"),
        ("r-0-op", "in"),
        ("r-0-value", "champion"),
        ("r-0-value", "loyal"),
    ]
    assert [field for field in fields if field[0].startswith("r-1-")] == [
        ("r-1-kind", "leaf"),
        ("r-1-type", "computed_trait"),
        ("r-1-shown", "ltv"),
        ("r-1-trait", "ltv"),
        ("r-1-op", "gte"),
        ("r-1-value", "1000"),
    ]
    # ben alone is loyal with an LTV of 1243.43 >= 1000 (ann, the champion, has 994.74).
    assert page.context["preview"].count == 1
    assert [profile.pk for profile in page.context["preview"].sample] == [valued["ben"]]

    # Posting the re-opened form as it stands changes nothing.
    again = QueryDict(mutable=True)
    for key, value in [("name", "Best customers"), ("interval", "300"), *fields]:
        again.appendlist(key, value)
    assert client.post(url("segment_edit", segment_id=segment.pk), posted(again)).status_code == 302
    segment.refresh_from_db()
    assert segment.definition == expected


def test_the_live_preview_counts_computed_values(workspace, make_member, valued):
    client = logged_in(make_member("marketer"))
    churn = leaf_form(
        ("shown", "churn_risk"), ("trait", "churn_risk"), ("op", "gte"), ("value", "0.7")
    )
    preview = client.post(
        url("segment_builder"), posted(churn), headers={"HX-Request": "true"}
    ).context["preview"]
    assert (preview.count, preview.total, preview.error) == (2, 5, "")
    assert {profile.pk for profile in preview.sample} == {valued["dan"], valued["eve"]}
    assert preview.summary == "People whose churn risk is at least 0.7"

    # The other workspace's "ann" is a champion too, and is not counted here.
    tiers = leaf_form(
        ("shown", "value_tier"), ("trait", "value_tier"), ("op", "in"), ("value", "champion"),
        ("value", "potential"),
    )  # fmt: skip
    preview = client.post(url("segment_builder"), posted(tiers)).context["preview"]
    assert preview.count == 2
    assert {profile.pk for profile in preview.sample} == {valued["ann"], valued["cat"]}
    assert preview.summary == "People whose value tier is one of champion, potential"


def test_switching_the_trait_redraws_the_inputs(workspace, make_member, valued):
    client = logged_in(make_member("marketer"))
    form = leaf_form(("shown", "value_tier"), ("trait", "ltv"), ("op", "eq"), ("value", "champion"))
    form["action"] = "reshape:r"
    response = client.post(url("segment_builder"), posted(form))
    html = response.content.decode()
    assert ("r-0-value", "") in rule_fields(html)
    assert 'type="number" step="any" name="r-0-value" value=""' in html
    assert '<option value="gte" selected>is at least</option>' in html
    assert 'aria-label="Value tier"' not in html
    # Until a number is typed, the estimate names what is missing on this rule.
    assert response.context["preview"].error == "root (computed_trait): ltv needs a number"
    assert response.context["preview"].error_path == "r-0"

    form = leaf_form(
        ("shown", "value_tier"), ("trait", "value_tier"), ("op", "in"), ("value", "at_risk")
    )
    form["action"] = "reshape:r"
    html = client.post(url("segment_builder"), posted(form)).content.decode()
    assert 'role="group" aria-label="Value tiers"' in html
    ticked = [value for name, value in rule_fields(html) if name == "r-0-value"]
    assert ticked == ["at_risk"]


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (
            [("trait", "ltv"), ("op", "gte"), ("value", "lots")],
            "root (computed_trait): ltv needs a number",
        ),
        (
            [("trait", "churn_risk"), ("op", "gte"), ("value", "")],
            "root (computed_trait): churn_risk needs a number",
        ),
        (
            [("trait", "value_tier"), ("op", "in")],
            "root (computed_trait): in needs a non-empty list of tiers",
        ),
        (
            [("trait", "value_tier"), ("op", "eq"), ("value", "gold")],
            "root (computed_trait): value must be one of champion, loyal, potential, at_risk, lost",
        ),
        (
            [("trait", "value_tier"), ("op", "gt"), ("value", "loyal")],
            "root (computed_trait): value_tier takes eq, ne or in",
        ),
        (
            [("trait", "engagement_score"), ("op", "in"), ("value", "60")],
            "root (computed_trait): engagement_score takes eq, ne, gt, gte, lt or lte",
        ),
        (
            [("trait", "age"), ("op", "eq"), ("value", "30")],
            "root (computed_trait): trait input should be 'ltv', 'engagement_score', "
            "'value_tier' or 'churn_risk'",
        ),
    ],
)
def test_a_bad_customer_value_rule_is_refused_and_nothing_is_saved(
    workspace, make_member, pairs, message
):
    client = logged_in(make_member("marketer"))
    form = leaf_form(*pairs)
    response = client.post(url("segment_new"), posted(form))
    assert response.status_code == 400
    assert response.context["errors"]["definition"] == [message]
    assert not Segment.objects.filter(workspace=workspace).exists()
    assert not AuditLog.objects.filter(workspace=workspace, action="segment.create").exists()
    preview = client.post(url("segment_builder"), posted(form)).context["preview"]
    assert (preview.error, preview.error_path) == (message, "r-0")


def test_an_error_in_a_nested_customer_value_rule_lands_on_it(workspace, make_member):
    client = logged_in(make_member("marketer"))
    form = leaf_form(("trait", "value_tier"), ("op", "eq"), ("value", "champion"))
    for key, value in (
        ("r-1-kind", "group"),
        ("r-1-match", "any"),
        ("r-1-0-kind", "leaf"),
        ("r-1-0-type", "attribute"),
        ("r-1-0-target", "email"),
        ("r-1-0-op", "exists"),
        ("r-1-1-kind", "leaf"),
        ("r-1-1-type", "computed_trait"),
        ("r-1-1-shown", "churn_risk"),
        ("r-1-1-trait", "churn_risk"),
        ("r-1-1-op", "lt"),
        ("r-1-1-value", "x"),
    ):
        form[key] = value
    preview = client.post(url("segment_builder"), posted(form)).context["preview"]
    assert preview.error == "rules[1].rules[1] (computed_trait): churn_risk needs a number"
    assert preview.error_path == "r-1-1"


# --------------------------------------------------------------------------- templates


def test_the_value_templates(workspace, make_member, valued):
    templates = builder.SEGMENT_TEMPLATES
    assert list(templates) == [
        "daily_streak",
        "repeat_buyer",
        "champions",
        "at_risk",
        "likely_to_churn",
        "lapsed",
    ]
    assert [templates[key]["name"] for key in ("champions", "at_risk", "likely_to_churn")] == [
        "Champions",
        "At risk customers",
        "Likely to churn",
    ]
    assert templates["champions"]["definition"] == {
        "type": "computed_trait", "trait": "value_tier", "op": "eq", "value": "champion",
    }  # fmt: skip
    assert templates["at_risk"]["definition"] == {
        "type": "computed_trait", "trait": "value_tier", "op": "eq", "value": "at_risk",
    }  # fmt: skip
    assert templates["likely_to_churn"]["definition"] == {
        "type": "computed_trait", "trait": "churn_risk", "op": "gte", "value": 0.7,
    }  # fmt: skip
    names = {pk: name for name, pk in valued.items()}

    def members(key: str) -> list[str]:
        rule = parse_definition(templates[key]["definition"])
        found = segment_evaluate_all(segment_or_definition=rule, workspace=workspace, now=NOW)
        return sorted(names[pk] for pk in found)

    assert members("champions") == ["ann"]
    assert members("at_risk") == ["dan"]
    assert members("likely_to_churn") == ["dan", "eve"]

    # Opened from the menu, the template fills the form with its leaf and counts it.
    client = logged_in(make_member("marketer"))
    page = client.get(url("segment_new") + "?template=likely_to_churn")
    assert page.context["values"]["name"] == "Likely to churn"
    assert rule_fields(page.content.decode()) == [
        ("r-kind", "group"),
        ("r-match", "all"),
        ("r-0-kind", "leaf"),
        ("r-0-type", "computed_trait"),
        ("r-0-shown", "churn_risk"),
        ("r-0-trait", "churn_risk"),
        ("r-0-op", "gte"),
        ("r-0-value", "0.7"),
    ]
    assert page.context["preview"].count == 2
    menu = client.get(url("segment_new")).content.decode()
    assert 'href="?template=champions"' in menu and "order frequency" not in menu
