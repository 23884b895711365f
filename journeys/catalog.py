"""Journey templates: ready-made journeys a marketer starts from in the journeys list.

Each template is a function returning (name, description, definition, layout): the
definition in the language of journeys.nodes, the layout as the builder reads it
({"nodes": {node_id: {"x": .., "y": ..}}}, left to right). A template cannot know the
workspace's segments, so segment triggers carry segment_id 0; message nodes carry
template_id 0 unless the workspace's content library has a template of that channel
with one of the names the node looks for (the demo's "Welcome email", "Checkout
reminder", ...). Both zeros are left for the builder: journeys.graph names each node
that still needs a template or a segment, and the draft cannot be published before.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

from engagement_site.workspaces.models import Workspace

# (channel, name in lower case) -> template id, from the workspace's content library.
TemplateIds = Mapping[tuple[str, str], int]
JourneyTemplate = tuple[str, str, dict[str, Any], dict[str, Any]]

COLUMN_WIDTH = 344  # px between columns, left to right (the builder's nodes are 248 wide)
BRANCH_HEIGHT = 150  # px between the branches of a condition
ORIGIN_X = 80
ORIGIN_Y = 220  # room above for a "yes" branch

HOUR = 3600
DAY = 24 * HOUR


class _Graph:
    """Nodes, edges and their places, built in reading order."""

    def __init__(self, templates: TemplateIds):
        self.templates = templates
        self.nodes: list[dict[str, Any]] = []
        self.edges: list[dict[str, str]] = []
        self.places: dict[str, dict[str, int]] = {}

    def add(self, node: dict[str, Any], *, column: int, row: int = 0) -> str:
        self.nodes.append(node)
        self.places[node["id"]] = {
            "x": ORIGIN_X + column * COLUMN_WIDTH,
            "y": ORIGIN_Y + row * BRANCH_HEIGHT,
        }
        return node["id"]

    def link(self, source: str, target: str, port: str = "next") -> None:
        self.edges.append({"source": source, "port": port, "target": target})

    def chain(self, *node_ids: str) -> None:
        for source, target in itertools.pairwise(node_ids):
            self.link(source, target)

    def template(self, channel: str, *names: str) -> int:
        """The library's template of this channel with one of the names, or 0."""
        for name in names:
            template_id = self.templates.get((channel, name.lower()))
            if template_id:
                return template_id
        return 0

    def message(self, node_id: str, channel: str, *names: str, column: int, row: int = 0) -> str:
        return self.add(
            {
                "id": node_id,
                "type": "action",
                "action": {
                    "kind": "message",
                    "channel": channel,
                    "template_id": self.template(channel, *names),
                },
            },
            column=column,
            row=row,
        )

    def wait(self, node_id: str, seconds: int, *, column: int, row: int = 0) -> str:
        return self.add(
            {"id": node_id, "type": "wait", "wait": {"kind": "duration", "seconds": seconds}},
            column=column,
            row=row,
        )

    def opened(self, node_id: str, message_node: str, engagement: str, *, column: int) -> str:
        return self.add(
            {
                "id": node_id,
                "type": "condition",
                "condition": {"kind": "engagement", "node": message_node, "engagement": engagement},
            },
            column=column,
        )

    def goal(self, node_id: str, event: str, window_seconds: int, *, column: int) -> str:
        return self.add(
            {
                "id": node_id,
                "type": "goal",
                "event": event,
                "filters": [],
                "window_seconds": window_seconds,
            },
            column=column,
        )

    def result(self, settings: dict[str, Any] | None = None) -> tuple[dict, dict]:
        definition = {"nodes": self.nodes, "edges": self.edges, "settings": settings or {}}
        return definition, {"nodes": self.places}


def _event_trigger(node_id: str, event: str) -> dict[str, Any]:
    return {"id": node_id, "type": "trigger", "trigger": {"kind": "event", "event": event}}


def _segment_trigger(node_id: str) -> dict[str, Any]:
    # 0: the builder asks which segment (a template cannot know the workspace's).
    return {
        "id": node_id,
        "type": "trigger",
        "trigger": {"kind": "segment", "segment_id": 0, "on": "entered"},
    }


# --------------------------------------------------------------------------- templates


def welcome_series(templates: TemplateIds | None = None) -> JourneyTemplate:
    graph = _Graph(templates or {})
    trigger = graph.add(_event_trigger("signed-up", "Signed Up"), column=0)
    welcome = graph.message("welcome-email", "email", "Welcome email", "Welcome", column=1)
    wait = graph.wait("wait-2-days", 2 * DAY, column=2)
    opened = graph.opened("opened-welcome", welcome, "opened", column=3)
    tips = graph.message(
        "tips-email", "email", "Tips email", "Getting started tips", column=4, row=-1
    )
    nudge = graph.message(
        "nudge-push", "push", "Welcome nudge push", "Welcome push", column=4, row=1
    )
    settle = graph.wait("wait-3-days", 3 * DAY, column=5)
    goal = graph.goal("first-order", "Order Completed", 7 * DAY, column=6)
    graph.chain(trigger, welcome, wait, opened)
    graph.link(opened, tips, "yes")
    graph.link(opened, nudge, "no")
    graph.link(tips, settle)
    graph.link(nudge, settle)
    graph.link(settle, goal)
    definition, layout = graph.result()
    return (
        "Welcome series",
        "Welcome new sign-ups, then tips for those who opened it and a push nudge for "
        "those who did not; converts on their first order.",
        definition,
        layout,
    )


def abandoned_cart(templates: TemplateIds | None = None) -> JourneyTemplate:
    graph = _Graph(templates or {})
    trigger = graph.add(_event_trigger("cart-abandoned", "Cart Abandoned"), column=0)
    wait = graph.wait("wait-1-hour", HOUR, column=1)
    reminder = graph.add(
        {
            "id": "cart-reminder",
            "type": "fallback",
            "chain": [
                {
                    "channel": "email",
                    "template_id": graph.template(
                        "email", "Checkout reminder", "Cart reminder", "Cart reminder email"
                    ),
                },
                {
                    "channel": "sms",
                    "template_id": graph.template(
                        "sms", "Cart reminder SMS", "Checkout reminder SMS"
                    ),
                },
            ],
            "not_engaged": "opened",
            "within_seconds": 4 * HOUR,
        },
        column=2,
    )
    goal = graph.goal("order-completed", "Order Completed", 3 * DAY, column=3)
    graph.chain(trigger, wait, reminder, goal)
    # Ordering while in the journey ends it: nobody is reminded of a cart they bought.
    definition, layout = graph.result(
        {
            "reentry": {"mode": "after_days", "days": 1},
            "goal": {"event": "Order Completed", "filters": [], "window_seconds": 3 * DAY},
        }
    )
    return (
        "Abandoned cart",
        "An hour after a cart is left, an email, then an SMS if the email was not opened "
        "within 4 hours; converts on an order within 3 days.",
        definition,
        layout,
    )


def win_back(templates: TemplateIds | None = None) -> JourneyTemplate:
    graph = _Graph(templates or {})
    trigger = graph.add(_segment_trigger("lapsed-customer"), column=0)
    miss_you = graph.message(
        "we-miss-you-email", "email", "We miss you email", "Win-back email", column=1
    )
    wait = graph.wait("wait-4-days", 4 * DAY, column=2)
    clicked = graph.opened("clicked-we-miss-you", miss_you, "clicked", column=3)
    offer = graph.message(
        "offer-email", "email", "Win-back offer email", "Comeback offer", column=4, row=1
    )
    offer_wait = graph.wait("wait-3-days", 3 * DAY, column=5, row=1)
    goal = graph.goal("came-back", "Order Completed", 14 * DAY, column=6)
    graph.chain(trigger, miss_you, wait, clicked)
    graph.link(clicked, goal, "yes")
    graph.link(clicked, offer, "no")
    graph.chain(offer, offer_wait, goal)
    definition, layout = graph.result()
    return (
        "Win-back",
        "Customers who entered a segment of lapsed buyers get a we-miss-you email, and an "
        "offer if they did not click it; converts on an order within 14 days.",
        definition,
        layout,
    )


def at_risk_reengagement(templates: TemplateIds | None = None) -> JourneyTemplate:
    graph = _Graph(templates or {})
    trigger = graph.add(_segment_trigger("became-at-risk"), column=0)
    push = graph.message("check-in-push", "push", "Check-in push", "We miss you push", column=1)
    wait = graph.wait("wait-2-days", 2 * DAY, column=2)
    opened = graph.opened("opened-check-in", push, "opened", column=3)
    email = graph.message(
        "reengage-email", "email", "Re-engagement email", "What you missed email", column=4, row=1
    )
    email_wait = graph.wait("wait-5-days", 5 * DAY, column=5, row=1)
    goal = graph.goal("back-in-app", "Application Opened", 7 * DAY, column=6)
    graph.chain(trigger, push, wait, opened)
    graph.link(opened, goal, "yes")
    graph.link(opened, email, "no")
    graph.chain(email, email_wait, goal)
    definition, layout = graph.result()
    return (
        "Re-engagement of at-risk users",
        "Users who entered an at-risk segment get a check-in push, and an email if they "
        "did not open it; converts when they open the app again.",
        definition,
        layout,
    )


def post_purchase_review(templates: TemplateIds | None = None) -> JourneyTemplate:
    graph = _Graph(templates or {})
    trigger = graph.add(_event_trigger("order-completed", "Order Completed"), column=0)
    wait = graph.wait("wait-7-days", 7 * DAY, column=1)
    ask = graph.message(
        "review-request-email", "email", "Review request email", "Review request", column=2
    )
    goal = graph.goal("review-submitted", "Review Submitted", 14 * DAY, column=3)
    graph.chain(trigger, wait, ask, goal)
    # Every order asks once, so a repeat customer may be asked again.
    definition, layout = graph.result({"reentry": {"mode": "always"}})
    return (
        "Post-purchase review request",
        "A week after an order, an email asking for a review; converts when a review is "
        "submitted within 14 days.",
        definition,
        layout,
    )


CATALOG: dict[str, Callable[[TemplateIds | None], JourneyTemplate]] = {
    "welcome_series": welcome_series,
    "abandoned_cart": abandoned_cart,
    "win_back": win_back,
    "at_risk_reengagement": at_risk_reengagement,
    "post_purchase_review": post_purchase_review,
}


def catalog_entries() -> list[dict[str, str]]:
    """What the "New journey" dialog offers: key, name and description of each."""
    entries = []
    for key, build in CATALOG.items():
        name, description, _, _ = build(None)
        entries.append({"key": key, "name": name, "description": description})
    return entries


def library_template_ids(*, workspace: Workspace) -> dict[tuple[str, str], int]:
    """The workspace's templates (not archived) by (channel, lower-case name); the most
    recently changed wins where two share a name."""
    from content.selectors import workspace_templates

    found: dict[tuple[str, str], int] = {}
    for template_id, name, channel in workspace_templates(workspace=workspace).values_list(
        "pk", "name", "channel"
    ):
        found.setdefault((channel, name.lower()), template_id)
    return found


def journey_template(*, key: str, workspace: Workspace) -> JourneyTemplate:
    """The template `key` with the workspace's matching content templates filled in.
    Raises KeyError for a key the catalog does not have."""
    return CATALOG[key](library_template_ids(workspace=workspace))
