"""Demo journeys: three live journeys with three weeks of history and one draft, so the
journeys list, the builder and the analytics journey reports have something true to
show under `make run`.

The journeys are the catalog's templates (journeys.catalog) pointed at the demo
shop's snake_case events, created and published through journeys.services as the
demo's owner. Their history is written as the executor would have written it over
the last HISTORY_DAYS days, from the demo's own events: who signed up, who left a
checkout, who drifted into the lapsed-customer segment. Every step a person passed has
its StepLog row, every action node its Message (keyed "enrollment:node:visit", the
executor's key) with the events of its path, and every converted enrollment its
Conversion with the order's revenue and its first and last touch. People whose wait
has not ended yet are waiting at it, with `next_run_at` in the future, so the worker
and scheduler carry on from there and act on nothing twice.

The abandoned-cart journey tests two reminder emails against each other with a 10%
holdout; variant B (a 10% code) converts better than A, and both better than the
holdout. Orders that the reminders brought back are added to the shop's events as
`order_completed` (with the cart's value), so the revenue and the journey agree.

Deterministic for a seed over the same demo data (database ids aside: the split uses
the executor's hash of the journey id). Run again, it adds nothing.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from engagement_site.workspaces.models import Workspace
from engagement_site.workspaces.services import AuditContext
from journeys import catalog
from journeys.executor import GOAL_NODE, split_branch, version_definition
from journeys.models import Enrollment, Journey, JourneyVersion, StepLog
from journeys.nodes import SplitNode
from journeys.services import journey_create, journey_publish

HISTORY_DAYS = 21
SIGNUP_EVENT = "signed_up"
CHECKOUT_EVENT = "checkout_started"
ORDER_EVENT = "order_completed"
REVIEW_EVENT = "review_written"
WIN_BACK_SEGMENT = "Pro plan, no order in the last 30 days"
# The catalog speaks Segment's spec names; the demo shop tracks snake_case ones.
EVENT_NAMES = {
    "Signed Up": SIGNUP_EVENT,
    "Order Completed": ORDER_EVENT,
    "Review Submitted": REVIEW_EVENT,
}
WELCOME, CART, WIN_BACK, REVIEW = (
    "Welcome series",
    "Abandoned cart",
    "Win-back",
    "Post-purchase review request",
)
NAMES = (WELCOME, CART, WIN_BACK, REVIEW)
CART_MINIMUM_VALUE = 50  # the cart journey reminds of carts worth this much or more
HOLDOUT_PERCENT = 10
# Share of the people reaching the cart split who order within the goal's window.
CART_CONVERSION = {"a": 0.13, "b": 0.24, "holdout": 0.04}
WIN_BACK_CONVERSION = {"clicked": 0.5, "offer": 0.2}

HOUR = 3600
DAY = 24 * HOUR

# How a journey email's story ends (delivery.demo tells each one), and how often.
EMAIL_OUTCOMES = (
    ("sent", 0.05),
    ("delivered", 0.41),
    ("opened", 0.29),
    ("clicked", 0.16),
    ("bounced", 0.03),
    ("failed", 0.02),
    ("unsubscribed", 0.04),
)
IN_APP_OUTCOMES = (("sent", 0.45), ("opened", 0.35), ("clicked", 0.20))
ENGAGED = {"opened": ("opened", "clicked", "unsubscribed"), "clicked": ("clicked",)}

_EMAIL = (
    '<!doctype html>\n<html><body style="font-family: sans-serif; max-width: 560px; '
    'margin: auto">\n<h1>{heading}</h1>\n{body}\n<p><a href="https://shop.example.com/" '
    'style="background: #2f6fed; color: #fff; padding: 10px 18px; border-radius: 6px; '
    'text-decoration: none">{cta}</a></p>\n<p style="color: #777; font-size: 12px">'
    '<a href="{{{{ message.unsubscribe_url }}}}">Unsubscribe</a></p>\n</body></html>\n'
)


def _email(subject: str, heading: str, body: str, cta: str) -> dict:
    return {
        "default": {
            "subject": subject,
            "preheader": "",
            "from_name": "{{ workspace.name }}",
            "html": _EMAIL.format(heading=heading, body=body, cta=cta),
        }
    }


# The templates the journeys send beyond content.demo's, named as the catalog looks
# them up (the welcome nudge is an in-app card: the demo's people have no push device).
TEMPLATES = {
    ("Tips email", "email"): _email(
        'Three tips for your first week, {{ profile.first_name | default: "friend" }}',
        "Make the most of your {{ profile.plan | capitalize }} plan",
        "<p>Save a wish list, follow a category, and set your delivery address once.</p>",
        "Show me",
    ),
    ("Welcome nudge card", "in_app"): {
        "default": {
            "title": 'Welcome, {{ profile.first_name | default: "friend" }}!',
            "body": "Your first order ships free this week.",
            "cta_label": "Start shopping",
            "cta_url": "https://shop.example.com/new",
        }
    },
    ("Checkout reminder with code", "email"): _email(
        "10% off the cart you left",
        'Your cart is waiting, {{ profile.first_name | default: "friend" }}',
        "<p>Your cart worth <strong>{{ event.properties.value | money: "
        "event.properties.currency }}</strong> is saved. Use <strong>COMEBACK10</strong> "
        "for 10% off today.</p>",
        "Back to my cart",
    ),
    ("We miss you email", "email"): _email(
        'We miss you, {{ profile.first_name | default: "friend" }}',
        "It has been a while",
        "<p>Here is what is new in the shop since your last order.</p>",
        "See what is new",
    ),
    ("Win-back offer email", "email"): _email(
        "15% off your next order",
        'A welcome-back gift, {{ profile.first_name | default: "friend" }}',
        "<p>Use <strong>WELCOMEBACK15</strong> for 15% off, this week only.</p>",
        "Shop now",
    ),
}


# --------------------------------------------------------------------------- definitions


def _rename_events(definition: dict) -> dict:
    for node in definition["nodes"]:
        trigger = node.get("trigger") or {}
        if trigger.get("kind") == "event":
            trigger["event"] = EVENT_NAMES.get(trigger["event"], trigger["event"])
        if node["type"] == "goal":
            node["event"] = EVENT_NAMES.get(node["event"], node["event"])
    goal = definition["settings"].get("goal")
    if goal:
        goal["event"] = EVENT_NAMES.get(goal["event"], goal["event"])
    return definition


def _replace_node(definition: dict, layout: dict, old_id: str, node: dict) -> None:
    definition["nodes"] = [node if item["id"] == old_id else item for item in definition["nodes"]]
    for edge in definition["edges"]:
        for end in ("source", "target"):
            if edge[end] == old_id:
                edge[end] = node["id"]
    layout["nodes"][node["id"]] = layout["nodes"].pop(old_id)


def _welcome(ids) -> tuple[str, dict, dict]:
    _, description, definition, layout = catalog.welcome_series(ids)
    _replace_node(
        definition,
        layout,
        "nudge-push",
        {
            "id": "nudge-card",
            "type": "action",
            "action": {
                "kind": "message",
                "channel": "in_app",
                "template_id": ids[("in_app", "welcome nudge card")],
            },
        },
    )
    # Pro and enterprise sign-ups: free ones get the product's own onboarding.
    definition["nodes"][0]["trigger"]["filters"] = [
        {"property": "plan", "op": "in", "value": ["pro", "enterprise"]}
    ]
    description = (
        "Welcome new Pro and Enterprise sign-ups, then tips for those who opened it and an "
        "in-app nudge for those who did not; converts on their first order."
    )
    return description, _rename_events(definition), layout


def _cart(ids) -> tuple[str, dict, dict]:
    graph = catalog._Graph({})
    trigger = graph.add(
        {
            "id": "checkout-started",
            "type": "trigger",
            "trigger": {
                "kind": "event",
                "event": CHECKOUT_EVENT,
                "filters": [{"property": "value", "op": "gte", "value": CART_MINIMUM_VALUE}],
            },
        },
        column=0,
    )
    wait = graph.wait("wait-1-hour", HOUR, column=1)
    split = graph.add(
        {
            "id": "reminder-test",
            "type": "split",
            "variants": [
                {"key": "a", "name": "Plain reminder", "weight": 50},
                {"key": "b", "name": "Reminder with 10% code", "weight": 50},
            ],
            "holdout_percent": HOLDOUT_PERCENT,
        },
        column=2,
    )
    reminder_a = graph.add(
        _message_node("reminder-a", "email", ids[("email", "checkout reminder")]),
        column=3,
        row=-1,
    )
    reminder_b = graph.add(
        _message_node("reminder-b", "email", ids[("email", "checkout reminder with code")]),
        column=3,
        row=1,
    )
    settle = graph.wait("wait-3-days", 3 * DAY, column=4)
    goal = graph.goal("order-completed", ORDER_EVENT, 3 * DAY, column=5)
    graph.chain(trigger, wait, split)
    graph.link(split, reminder_a, "a")
    graph.link(split, reminder_b, "b")
    graph.link(split, settle, "holdout")
    graph.link(reminder_a, settle)
    graph.link(reminder_b, settle)
    graph.link(settle, goal)
    definition, layout = graph.result(
        {
            "reentry": {"mode": "after_days", "days": 1},
            "goal": {"event": ORDER_EVENT, "filters": [], "window_seconds": 3 * DAY},
        }
    )
    description = (
        f"An hour after a checkout of {CART_MINIMUM_VALUE} or more is left, a reminder "
        "email: plain (A) or with a 10% code (B), against a 10% holdout that gets "
        "nothing; converts on an order within 3 days."
    )
    return description, definition, layout


def _message_node(node_id: str, channel: str, template_id: int) -> dict:
    return {
        "id": node_id,
        "type": "action",
        "action": {"kind": "message", "channel": channel, "template_id": template_id},
    }


def _win_back(ids, segment_id: int) -> tuple[str, dict, dict]:
    _, description, definition, layout = catalog.win_back(ids)
    definition["nodes"][0]["trigger"]["segment_id"] = segment_id
    description = (
        f"Pro customers who entered '{WIN_BACK_SEGMENT}' get a we-miss-you email, and "
        "an offer if they did not click it; converts on an order within 14 days."
    )
    return description, _rename_events(definition), layout


def _review(ids) -> tuple[str, dict, dict]:
    _, description, definition, layout = catalog.post_purchase_review(ids)
    return description, _rename_events(definition), layout


# --------------------------------------------------------------------------- history


@dataclass
class _Message:
    node_id: str
    channel: str
    template_id: int
    at: datetime
    outcome: str
    variant: str = ""
    message: Any = None  # the delivery Message, once built


@dataclass
class _Path:
    """One enrollment's story, as the executor would have recorded it."""

    journey: Journey
    version: JourneyVersion
    profile_id: int
    entered: datetime
    event: dict
    trigger_event_id: int | None
    steps: list[tuple[str, str, str, dict, datetime, _Message | None]] = field(default_factory=list)
    messages: list[_Message] = field(default_factory=list)
    context: dict = field(default_factory=dict)
    state: str = Enrollment.State.ACTIVE
    current_node: str = ""
    next_run_at: datetime | None = None
    exited_at: datetime | None = None
    exit_reason: str = ""
    conversion: tuple[dict, int] | None = None  # (order event, attribution window)
    enrollment: Any = None  # the stored Enrollment

    def step(self, node_id, outcome, port, detail, at, message=None) -> None:
        self.steps.append((node_id, outcome, port, detail, at, message))
        self.context.setdefault("visits", {})[node_id] = 1
        self.current_node = node_id

    def send(self, node_id, channel, template_id, at, outcome, variant="") -> _Message:
        message = _Message(node_id, channel, template_id, at, outcome, variant)
        self.messages.append(message)
        self.step(node_id, StepLog.Outcome.SENT, "next", {}, at, message)
        return message

    def park(self, node_id: str, since: datetime, until: datetime) -> None:
        self.context["parked"] = {"node": node_id, "visit": 1, "at": since.isoformat()}
        self.state, self.current_node, self.next_run_at = Enrollment.State.WAITING, node_id, until

    def finish(self, *, converted: bool, at: datetime) -> None:
        self.state = Enrollment.State.COMPLETED if converted else Enrollment.State.EXITED
        self.exit_reason = "converted" if converted else "goal_not_reached"
        self.exited_at = at

    def goal_reached(self, order: dict, window: int) -> None:
        """The journey's conversion goal, done while enrolled (executor._convert)."""
        at = datetime.fromisoformat(order["timestamp"])
        self.steps.append(
            (
                GOAL_NODE,
                StepLog.Outcome.CONVERTED,
                "",
                {"reason": "converted", "event": order, "at_node": self.current_node},
                at,
                None,
            )
        )
        self.conversion = (order, window)
        self.context.pop("parked", None)
        self.finish(converted=True, at=at)


class _History:
    def __init__(self, *, workspace: Workspace, seed: int, now: datetime):
        from delivery.models import Consent
        from segments.models import Event

        self.workspace, self.now = workspace, now
        self.rng = random.Random(seed)
        self.start = now - timedelta(days=HISTORY_DAYS)
        self.paths: list[_Path] = []
        self.new_orders: list[tuple[int, str, dict]] = []  # (profile, message id, event)
        self.order_number = 0
        self.seed = seed
        self.orders: dict[int, list[dict]] = defaultdict(list)
        # name -> [(profile id, event as the executor stores it)]; the same dicts are
        # shared by steps, contexts and conversions (new orders get their ids late).
        self.events: dict[str, list[tuple[int, dict]]] = defaultdict(list)
        rows = (
            Event.objects.filter(
                workspace=workspace,
                name__in=[SIGNUP_EVENT, CHECKOUT_EVENT, ORDER_EVENT],
                timestamp__gte=self.start,
                timestamp__lte=now,
            )
            .order_by("timestamp", "id")
            .values_list("id", "profile_id", "name", "timestamp", "properties")
        )
        for event_id, profile_id, name, stamp, properties in rows:
            data = {
                "id": event_id,
                "name": name,
                "timestamp": stamp.isoformat(),
                "properties": properties if isinstance(properties, dict) else {},
            }
            self.events[name].append((profile_id, data))
            if name == ORDER_EVENT:
                self.orders[profile_id].append(data)
        # Who had opted out of email before the journeys ran (delivery.demo's history).
        self.unsubscribed = dict(
            Consent.objects.filter(
                workspace=workspace, channel="email", topic="", status="unsubscribed"
            ).values_list("profile_id", "updated_at")
        )

    # ---------------------------------------------------------------- helpers

    def outcome(self, channel: str, profile_id: int, at: datetime, *, force: str = "") -> str:
        if channel == "email" and self.unsubscribed.get(profile_id, self.now) <= at:
            return "suppressed"  # delivery holds it back at send time
        if self.now - at < timedelta(minutes=2):
            return "sent"
        if self.now - at < timedelta(hours=12):
            return "delivered" if channel == "email" else "sent"
        if force:
            return force
        weighted = EMAIL_OUTCOMES if channel == "email" else IN_APP_OUTCOMES
        roll, total = self.rng.random(), 0.0
        for value, weight in weighted:
            total += weight
            if roll < total:
                return value
        return weighted[-1][0]

    def order_between(self, profile_id: int, low: datetime, high: datetime) -> dict | None:
        for order in self.orders.get(profile_id, ()):
            if low <= datetime.fromisoformat(order["timestamp"]) <= high:
                return order
        return None

    def order_add(self, profile_id: int, at: datetime, value: float) -> dict:
        """A new order the journey brought about (stored with the demo's events)."""
        self.order_number += 1
        order = {
            "id": None,
            "name": ORDER_EVENT,
            "timestamp": at.isoformat(),
            "properties": {
                "order_id": f"ORD-J{self.seed % 1000:03d}{self.order_number:05d}",
                "revenue": round(value, 2),
                "currency": "EUR",
            },
        }
        message_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self.new_orders.append((profile_id, message_id, order))
        self.orders[profile_id].append(order)
        self.orders[profile_id].sort(key=lambda item: item["timestamp"])
        return order

    # ---------------------------------------------------------------- journeys

    def welcome(self, journey: Journey, version: JourneyVersion, ids) -> None:
        self.rng = random.Random(f"{self.seed}:{journey.name}")  # one story per journey
        tips, nudge = ids[("email", "tips email")], ids[("in_app", "welcome nudge card")]
        welcome = ids[("email", "welcome email")]
        for profile_id, event in self.events[SIGNUP_EVENT]:
            if event["properties"].get("plan") not in ("pro", "enterprise"):
                continue
            entered = datetime.fromisoformat(event["timestamp"])
            path = self._path(journey, version, profile_id, event, entered)
            path.step(
                "signed-up", StepLog.Outcome.ENTERED, "next", {"event": SIGNUP_EVENT}, entered
            )
            first = path.send(
                "welcome-email", "email", welcome, entered,
                self.outcome("email", path.profile_id, entered),
            )  # fmt: skip
            woke = entered + timedelta(days=2)
            if woke > self.now:
                path.park("wait-2-days", entered, woke)
                continue
            path.step("wait-2-days", StepLog.Outcome.CONTINUED, "next", {"waited": 2 * DAY}, woke)
            opened = first.outcome in ENGAGED["opened"]
            path.step(
                "opened-welcome", StepLog.Outcome.BRANCHED, "yes" if opened else "no", {}, woke
            )
            if opened:
                path.send(
                    "tips-email", "email", tips, woke, self.outcome("email", path.profile_id, woke)
                )
            else:
                path.send(
                    "nudge-card",
                    "in_app",
                    nudge,
                    woke,
                    self.outcome("in_app", path.profile_id, woke),
                )
            settled = woke + timedelta(days=3)
            if settled > self.now:
                path.park("wait-3-days", woke, settled)
                continue
            path.step(
                "wait-3-days", StepLog.Outcome.CONTINUED, "next", {"waited": 3 * DAY}, settled
            )
            self._goal_node(path, "first-order", 7 * DAY, settled)

    def _goal_node(self, path: _Path, node_id: str, window: int, at: datetime) -> None:
        order = self.order_between(
            path.profile_id, path.entered, min(at, path.entered + timedelta(seconds=window))
        )
        if order is None:
            path.step(node_id, StepLog.Outcome.EXITED, "", {"reason": "goal_not_reached"}, at)
            path.finish(converted=False, at=at)
            return
        detail = {"reason": "converted", "event": order}
        path.step(node_id, StepLog.Outcome.CONVERTED, "", detail, at)
        path.conversion = (order, window)
        path.finish(converted=True, at=at)

    def cart(self, journey: Journey, version: JourneyVersion, ids) -> None:
        self.rng = random.Random(f"{self.seed}:{journey.name}")
        split = next(
            node for node in version_definition(version).nodes if isinstance(node, SplitNode)
        )
        templates = {
            "a": ids[("email", "checkout reminder")],
            "b": ids[("email", "checkout reminder with code")],
        }
        window = timedelta(days=3)
        busy_until: dict[int, datetime] = {}
        last_entry: dict[int, datetime] = {}
        reached: dict[str, list[_Path]] = defaultdict(list)
        for profile_id, event in self.events[CHECKOUT_EVENT]:
            value = event["properties"].get("value")
            if not isinstance(value, int | float) or value < CART_MINIMUM_VALUE:
                continue
            entered = datetime.fromisoformat(event["timestamp"])
            if busy_until.get(profile_id, entered) > entered:
                continue  # still in the journey
            if profile_id in last_entry and entered < last_entry[profile_id] + timedelta(days=1):
                continue  # re-entry after a day
            last_entry[profile_id] = entered
            path = self._path(journey, version, profile_id, event, entered)
            path.step(
                "checkout-started",
                StepLog.Outcome.ENTERED,
                "next",
                {"event": CHECKOUT_EVENT},
                entered,
            )
            woke = entered + timedelta(hours=1)
            bought = self.order_between(profile_id, entered, entered + window)
            if bought is not None and datetime.fromisoformat(bought["timestamp"]) <= woke:
                path.current_node = "wait-1-hour"
                path.goal_reached(bought, 3 * DAY)
                busy_until[profile_id] = path.exited_at
                continue
            if woke > self.now:
                path.park("wait-1-hour", entered, woke)
                busy_until[profile_id] = self.now + window
                continue
            path.step("wait-1-hour", StepLog.Outcome.CONTINUED, "next", {"waited": HOUR}, woke)
            port = split_branch(split, journey_id=journey.pk, profile_id=profile_id)
            path.step("reminder-test", StepLog.Outcome.BRANCHED, port, {"variant": port}, woke)
            if port == "holdout":
                path.context["holdout"] = True
            else:
                path.context["variant"] = port
            reached[port].append(path)
            busy_until[profile_id] = entered + window + timedelta(hours=1)
        # Who orders within the window: the natural orders, topped up in each branch to
        # the branch's conversion rate (the orders the reminders brought back).
        for port in ("a", "b", "holdout"):
            group = reached[port]
            natural = {
                id(path): self.order_between(path.profile_id, path.entered, path.entered + window)
                for path in group
            }
            wanted = round(CART_CONVERSION[port] * len(group))
            extra = max(0, wanted - sum(order is not None for order in natural.values()))
            candidates = [
                path for path in group
                if natural[id(path)] is None and path.entered + timedelta(days=2) < self.now
            ]  # fmt: skip
            chosen = {id(path) for path in self.rng.sample(candidates, min(extra, len(candidates)))}
            for path in group:
                woke = path.entered + timedelta(hours=1)
                converts = id(path) in chosen
                if port != "holdout":
                    outcome = self.outcome(
                        "email", path.profile_id, woke, force="clicked" if converts else ""
                    )
                    if outcome in ("suppressed", "bounced", "failed"):
                        converts = False
                    path.send(f"reminder-{port}", "email", templates[port], woke, outcome, port)
                order = natural[id(path)]
                if converts:
                    value = float(path.event["properties"].get("value") or 60)
                    delay = timedelta(hours=11, seconds=self.rng.randrange(36 * HOUR))
                    order = self.order_add(path.profile_id, woke + delay, value)
                settled = woke + window
                if order is not None:
                    path.current_node = "wait-3-days"
                    path.goal_reached(order, 3 * DAY)
                elif settled > self.now:
                    path.park("wait-3-days", woke, settled)
                else:
                    path.step(
                        "wait-3-days",
                        StepLog.Outcome.CONTINUED,
                        "next",
                        {"waited": 3 * DAY},
                        settled,
                    )
                    path.step(
                        "order-completed", StepLog.Outcome.EXITED, "",
                        {"reason": "goal_not_reached"}, settled,
                    )  # fmt: skip
                    path.finish(converted=False, at=settled)

    def win_back(self, journey: Journey, version: JourneyVersion, ids, segment) -> None:
        self.rng = random.Random(f"{self.seed}:{journey.name}")
        from django.db.models import Max

        from segments.models import Event, SegmentMembership

        miss_you = ids[("email", "we miss you email")]
        offer = ids[("email", "win-back offer email")]
        members = list(
            SegmentMembership.objects.filter(
                workspace=self.workspace, segment=segment, exited_at__isnull=True
            )
            .order_by("profile_id")
            .values_list("profile_id", flat=True)
        )
        last_orders = dict(
            Event.objects.filter(workspace=self.workspace, name=ORDER_EVENT, profile_id__in=members)
            .values("profile_id")
            .annotate(last=Max("timestamp"))
            .values_list("profile_id", "last")
        )
        latest = self.now - timedelta(hours=2)
        for profile_id in members:
            drifted = last_orders.get(profile_id)
            entered = drifted + timedelta(days=30) if drifted else None
            if entered is None or not self.start < entered < latest:
                entered = self.start + timedelta(
                    seconds=self.rng.randrange(int((latest - self.start).total_seconds()))
                )
            event = {
                "id": None,
                "name": "segment entered",
                "properties": {"segment_id": segment.pk},
            }
            path = self._path(journey, version, profile_id, event, entered)
            path.step(
                "lapsed-customer",
                StepLog.Outcome.ENTERED,
                "next",
                {"event": "segment entered"},
                entered,
            )
            first = path.send(
                "we-miss-you-email", "email", miss_you, entered,
                self.outcome("email", profile_id, entered),
            )  # fmt: skip
            woke = entered + timedelta(days=4)
            if first.outcome == "clicked" and self.rng.random() < WIN_BACK_CONVERSION["clicked"]:
                order_at = entered + timedelta(hours=11, seconds=self.rng.randrange(60 * HOUR))
                if order_at < self.now:
                    self.order_add(profile_id, order_at, self.rng.randrange(40, 220))
            if woke > self.now:
                path.park("wait-4-days", entered, woke)
                continue
            path.step("wait-4-days", StepLog.Outcome.CONTINUED, "next", {"waited": 4 * DAY}, woke)
            clicked = first.outcome == "clicked"
            path.step(
                "clicked-we-miss-you",
                StepLog.Outcome.BRANCHED,
                "yes" if clicked else "no",
                {},
                woke,
            )
            if clicked:
                self._goal_node(path, "came-back", 14 * DAY, woke)
                continue
            second = path.send(
                "offer-email", "email", offer, woke, self.outcome("email", profile_id, woke)
            )
            if (
                second.outcome in ("opened", "clicked")
                and self.rng.random() < WIN_BACK_CONVERSION["offer"]
            ):
                order_at = woke + timedelta(hours=11, seconds=self.rng.randrange(48 * HOUR))
                if order_at < self.now:
                    self.order_add(profile_id, order_at, self.rng.randrange(40, 220))
            settled = woke + timedelta(days=3)
            if settled > self.now:
                path.park("wait-3-days", woke, settled)
                continue
            path.step(
                "wait-3-days", StepLog.Outcome.CONTINUED, "next", {"waited": 3 * DAY}, settled
            )
            self._goal_node(path, "came-back", 14 * DAY, settled)

    def _path(self, journey, version, profile_id: int, event: dict, entered: datetime) -> _Path:
        path = _Path(
            journey=journey,
            version=version,
            profile_id=profile_id,
            entered=entered,
            event=event,
            trigger_event_id=event["id"],
            context={"visits": {}, "event": event},
        )
        self.paths.append(path)
        return path


# --------------------------------------------------------------------------- writing


def _orders_insert(*, workspace: Workspace, orders: list[tuple[int, str, dict]]) -> None:
    """Store the journeys' new orders as track events and give each its id."""
    from segments.partitions import event_partitions_ensure

    if not orders:
        return
    stamps = [datetime.fromisoformat(order["timestamp"]) for _, _, order in orders]
    event_partitions_ensure(start=min(stamps), end=max(stamps))
    import orjson

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO segments_event (workspace_id, profile_id, type, name, properties,
                context, message_id, timestamp, original_timestamp, received_at, violations)
            SELECT %s, profile_id, 'track', %s, properties::jsonb,
                   '{"library": {"name": "demo-generator", "version": "1.0"}}'::jsonb,
                   message_id, stamp, stamp, stamp, '[]'::jsonb
              FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::timestamptz[])
                   AS t(profile_id, properties, message_id, stamp)
            RETURNING id, message_id
            """,
            [
                workspace.pk,
                ORDER_EVENT,
                [profile_id for profile_id, _, _ in orders],
                [orjson.dumps(order["properties"]).decode() for _, _, order in orders],
                [message_id for _, message_id, _ in orders],
                stamps,
            ],
        )
        ids = dict((message_id, event_id) for event_id, message_id in cursor.fetchall())
    for _, message_id, order in orders:
        order["id"] = ids[message_id]


def _messages_write(*, workspace: Workspace, history: _History, paths: list[_Path]) -> int:
    """The journeys' messages through delivery.demo, in time order per person: an
    unsubscribe or a bounce ends a person's emails, so only their last email may end
    that way (the others are told as opened or delivered)."""
    from content.models import TemplateVersion
    from delivery.demo import demo_messages_write, demo_story
    from delivery.models import Message
    from segments.models import Profile

    planned = [(path, message) for path in paths for message in path.messages]
    by_person: dict[int, list[_Message]] = defaultdict(list)
    for path, message in planned:
        if message.channel == "email":
            by_person[path.profile_id].append(message)
    for messages in by_person.values():
        messages.sort(key=lambda message: message.at)
        for message in messages[:-1]:
            if message.outcome == "unsubscribed":
                message.outcome = "opened"
            elif message.outcome == "bounced":
                message.outcome = "delivered"
    profiles = Profile.objects.in_bulk({path.profile_id for path, _ in planned})
    pins = {
        (path.version.pk, message.template_id): path.version.template_versions[
            str(message.template_id)
        ]
        for path, message in planned
    }
    versions = TemplateVersion.objects.select_related("template").in_bulk(set(pins.values()))
    rows, stories, events = [], [], []
    rngs: dict[int, random.Random] = {}
    for path, planned_message in planned:
        rng = rngs.setdefault(
            path.journey.pk, random.Random(f"{history.seed}:{path.journey.name}:messages")
        )
        row = Message(
            workspace=workspace,
            idempotency_key=f"{path.enrollment.pk}:{planned_message.node_id}:1",
            profile=profiles[path.profile_id],
            journey=path.journey,
            journey_version=path.version,
            enrollment=path.enrollment,
            node_id=planned_message.node_id,
            variant=planned_message.variant,
            channel=planned_message.channel,
            template_version=versions[pins[(path.version.pk, planned_message.template_id)]],
            created_at=planned_message.at,
            updated_at=planned_message.at,
        )
        story = demo_story(rng, row, planned_message.outcome, planned_message.at)
        planned_message.message = row
        rows.append(row)
        stories.append((planned_message.outcome, story))
        events.append(path.event)
    demo_messages_write(workspace=workspace, messages=rows, stories=stories, trigger_events=events)
    return len(rows)


def _conversions_write(*, workspace: Workspace, paths: list[_Path]) -> int:
    """analytics.services.conversion_record's rows, in bulk: revenue from the order,
    first and last touch among the journey's sent messages to the person within the
    window before it."""
    from decimal import InvalidOperation

    from analytics.models import Conversion

    sent: dict[tuple[int, int], list] = defaultdict(list)
    for path in paths:
        for planned in path.messages:
            if planned.message.sent_at is not None:
                sent[(path.journey.pk, path.profile_id)].append(planned.message)
    rows = []
    for path in paths:
        if path.conversion is None:
            continue
        order, window = path.conversion
        at = datetime.fromisoformat(order["timestamp"])
        touches = sorted(
            (
                message
                for message in sent[(path.journey.pk, path.profile_id)]
                if at - timedelta(seconds=window) <= message.sent_at <= at
            ),
            key=lambda message: (message.sent_at, message.pk),
        )
        try:
            revenue = Decimal(str(order["properties"].get("revenue", 0))).quantize(Decimal("0.01"))
        except InvalidOperation:
            revenue = Decimal(0)
        rows.append(
            Conversion(
                workspace=workspace,
                journey=path.journey,
                journey_version=path.version,
                enrollment=path.enrollment,
                profile_id=path.profile_id,
                event_name=ORDER_EVENT,
                event_id=order["id"],
                revenue=revenue,
                at=at,
                first_touch=touches[0] if touches else None,
                last_touch=touches[-1] if touches else None,
            )
        )
    Conversion.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


def _step_detail(detail: dict, message: _Message | None) -> dict:
    if message is None:
        return detail
    row = message.message
    return {
        "message": row.pk,
        "channel": row.channel,
        "reason": "",
        "template_version": row.template_version_id,
    }


# --------------------------------------------------------------------------- entry point


def demo_journeys_create(*, workspace: Workspace, seed: int, now: datetime | None = None) -> dict:
    """Create the demo journeys with their history (once: nothing when they exist).
    Returns counts: journeys, enrollments, waiting, steps, messages, conversions,
    orders (the new order events)."""
    from content.services import template_create
    from segments.models import Segment

    if Journey.objects.filter(workspace=workspace, name__in=NAMES).exists():
        return {}
    now = now or timezone.now()
    owner = (
        get_user_model()
        .objects.filter(memberships__workspace=workspace, memberships__role="owner")
        .order_by("pk")
        .first()
    )
    context = AuditContext(actor=owner, actor_label=owner.get_username() if owner else "demo data")
    history = _History(workspace=workspace, seed=seed, now=now)
    with transaction.atomic():
        existing = catalog.library_template_ids(workspace=workspace)
        for (name, channel), content in TEMPLATES.items():
            if (channel, name.lower()) not in existing:
                template_create(
                    workspace=workspace,
                    name=name,
                    channel=channel,
                    content=content,
                    context=context,
                )
        ids = catalog.library_template_ids(workspace=workspace)
        segment = Segment.objects.filter(workspace=workspace, name=WIN_BACK_SEGMENT).first()
        built = [(WELCOME, _welcome(ids)), (CART, _cart(ids))]
        if segment is not None:
            built.append((WIN_BACK, _win_back(ids, segment.pk)))
        journeys: dict[str, tuple[Journey, JourneyVersion]] = {}
        for name, (description, definition, layout) in built:
            journey = journey_create(
                workspace=workspace, name=name, context=context,
                description=description, definition=definition, layout=layout,
            )  # fmt: skip
            version = journey_publish(journey=journey, context=context, note="Launched")
            journeys[name] = (journey, version)
        description, definition, layout = _review(ids)
        journey_create(
            workspace=workspace, name=REVIEW, context=context,
            description=description, definition=definition, layout=layout,
        )  # fmt: skip
        # Launched before the history began.
        launched = now - timedelta(days=HISTORY_DAYS, hours=2)
        JourneyVersion.objects.filter(journey__workspace=workspace, journey__name__in=NAMES).update(
            published_at=launched
        )
        Journey.objects.filter(workspace=workspace, name__in=NAMES).update(
            created_at=launched - timedelta(days=1)
        )
        history.welcome(*journeys[WELCOME], ids)
        history.cart(*journeys[CART], ids)
        if segment is not None:
            history.win_back(*journeys[WIN_BACK], ids, segment)
        _orders_insert(workspace=workspace, orders=history.new_orders)
        paths = history.paths
        enrollments = [
            Enrollment(
                workspace=workspace,
                journey=path.journey,
                version=path.version,
                profile_id=path.profile_id,
                state=path.state,
                current_node=path.current_node,
                next_run_at=path.next_run_at,
                context=path.context,
                trigger_event_id=path.trigger_event_id,
                entered_at=path.entered,
                exited_at=path.exited_at,
                exit_reason=path.exit_reason,
                updated_at=path.exited_at or path.entered,
            )
            for path in paths
        ]
        Enrollment.objects.bulk_create(enrollments, batch_size=1000)
        for path, enrollment in zip(paths, enrollments, strict=True):
            path.enrollment = enrollment
        messages = _messages_write(workspace=workspace, history=history, paths=paths)
        steps = [
            StepLog(
                enrollment=path.enrollment,
                node_id=node_id,
                visit=1,
                outcome=outcome,
                port=port,
                detail=_step_detail(detail, message),
                created_at=at,
            )
            for path in paths
            for node_id, outcome, port, detail, at, message in path.steps
        ]
        StepLog.objects.bulk_create(steps, batch_size=2000)
        conversions = _conversions_write(workspace=workspace, paths=paths)
    return {
        "journeys": len(journeys) + 1,
        "enrollments": len(paths),
        "waiting": sum(path.state == Enrollment.State.WAITING for path in paths),
        "steps": len(steps),
        "messages": messages,
        "conversions": conversions,
        "orders": len(history.new_orders),
    }
