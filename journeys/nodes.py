"""The journey definition language: nodes (a tagged union on `type`), edges, settings.

A definition is JSON:

    {"nodes": [{"id": "start", "type": "trigger", "trigger": {...}}, ...],
     "edges": [{"source": "start", "port": "next", "target": "wait-1"}, ...],
     "settings": {...}}

Edges are explicit and leave a node by a named output port: `next` for most nodes,
`yes` / `no` for a condition, one port per variant key (and `holdout`) for a split,
`on_event` / `on_timeout` for a wait on an event or a segment change. Goal and exit
nodes have no output. The pydantic models here check each node on its own; the graph
as a whole is checked by journeys.graph.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from segments.rules import PropertyFilter

MAX_NODES = 200
MAX_WAIT_SECONDS = 366 * 24 * 3600
NODE_ID = r"^[A-Za-z0-9_-]{1,64}$"
ENGAGEMENTS = ("delivered", "opened", "clicked")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Filters = Annotated[list[PropertyFilter], Field(max_length=20)]
# Numbers and flags as JSON sends them: pydantic's lax mode would read `true` as 1 (a
# one-second wait, template 1) and "yes" as true.
Whole = Annotated[int, Strict()]
Number = Annotated[float, Strict()]
Flag = Annotated[bool, Strict()]
NodeId = Annotated[str, Field(pattern=NODE_ID)]


# --------------------------------------------------------------------------- triggers


class EventTrigger(_Model):
    kind: Literal["event"] = "event"
    event: str = Field(min_length=1, max_length=200)
    filters: Filters = []


class SegmentTrigger(_Model):
    kind: Literal["segment"] = "segment"
    segment_id: Whole = Field(gt=0)
    on: Literal["entered", "exited"] = "entered"


class ScheduleTrigger(_Model):
    """Everyone in a segment enters at a date (once) or on a cron schedule."""

    kind: Literal["schedule"] = "schedule"
    segment_id: Whole = Field(gt=0)
    cron: str = ""
    at: datetime | None = None
    time_zone: str = "UTC"

    @model_validator(mode="after")
    def _one_schedule(self) -> ScheduleTrigger:
        if bool(self.cron) == (self.at is not None):
            raise ValueError("give either cron or at")
        if self.cron and len(self.cron.split()) != 5:
            raise ValueError("cron needs five fields: minute hour day month weekday")
        return self


class ApiTrigger(_Model):
    """Profiles enter when the API says so (POST /api/v1/journeys/{id}/enroll)."""

    kind: Literal["api"] = "api"


Trigger = Annotated[
    EventTrigger | SegmentTrigger | ScheduleTrigger | ApiTrigger, Field(discriminator="kind")
]


class TriggerNode(_Model):
    id: NodeId
    type: Literal["trigger"]
    trigger: Trigger


# --------------------------------------------------------------------------- waits


class WaitDuration(_Model):
    kind: Literal["duration"] = "duration"
    seconds: Whole = Field(ge=1, le=MAX_WAIT_SECONDS)


class WaitUntilDate(_Model):
    kind: Literal["until_date"] = "until_date"
    at: datetime


class WaitUntilTime(_Model):
    """The next time the clock shows `at` in the profile's time zone (or the fallback),
    optionally only on some weekdays (0 = Monday)."""

    kind: Literal["until_time"] = "until_time"
    at: time
    weekdays: list[Annotated[Whole, Field(ge=0, le=6)]] = []
    fallback_time_zone: str = "UTC"


class WaitForEvent(_Model):
    kind: Literal["event"] = "event"
    event: str = Field(min_length=1, max_length=200)
    filters: Filters = []
    timeout_seconds: Whole | None = Field(default=None, ge=1, le=MAX_WAIT_SECONDS)


class WaitForSegment(_Model):
    kind: Literal["segment"] = "segment"
    segment_id: Whole = Field(gt=0)
    on: Literal["entered", "exited"] = "entered"
    timeout_seconds: Whole | None = Field(default=None, ge=1, le=MAX_WAIT_SECONDS)


Wait = Annotated[
    WaitDuration | WaitUntilDate | WaitUntilTime | WaitForEvent | WaitForSegment,
    Field(discriminator="kind"),
]


class WaitNode(_Model):
    id: NodeId
    type: Literal["wait"]
    wait: Wait


# --------------------------------------------------------------------------- conditions


class RuleCondition(_Model):
    """A segment-language rule on the profile (journeys.graph parses it)."""

    kind: Literal["rule"] = "rule"
    rule: dict[str, Any]


class EventCondition(_Model):
    """On the trigger event's properties."""

    kind: Literal["event"] = "event"
    filters: Annotated[list[PropertyFilter], Field(min_length=1, max_length=20)]


class EngagementCondition(_Model):
    """Whether the message sent by an earlier action node of this journey was
    delivered, opened or clicked."""

    kind: Literal["engagement"] = "engagement"
    node: NodeId
    engagement: Literal["delivered", "opened", "clicked"] = "opened"


Condition = Annotated[
    RuleCondition | EventCondition | EngagementCondition, Field(discriminator="kind")
]


class ConditionNode(_Model):
    id: NodeId
    type: Literal["condition"]
    condition: Condition


# --------------------------------------------------------------------------- splits


class Variant(_Model):
    key: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]
    name: str = Field(default="", max_length=100)
    weight: Whole = Field(ge=0, le=10_000)


class SplitNode(_Model):
    """Profiles are assigned by a deterministic hash of (journey, profile): the same
    person always takes the same branch. A holdout share gets no messages at all (it
    leaves the journey at once, and is measured against the others)."""

    id: NodeId
    type: Literal["split"]
    variants: Annotated[list[Variant], Field(min_length=1, max_length=10)]
    holdout_percent: Number = Field(default=0, ge=0, le=50)

    @model_validator(mode="after")
    def _variants(self) -> SplitNode:
        keys = [variant.key for variant in self.variants]
        if len(set(keys)) != len(keys):
            raise ValueError("variant keys must be different")
        if "holdout" in keys:
            raise ValueError("'holdout' is reserved for the holdout group")
        if sum(variant.weight for variant in self.variants) <= 0:
            raise ValueError("at least one variant needs a weight above 0")
        return self


# --------------------------------------------------------------------------- actions

CHANNELS = ("email", "sms", "push", "web_push", "whatsapp", "in_app", "webhook")


class SendMessage(_Model):
    kind: Literal["message"] = "message"
    channel: Literal["email", "sms", "push", "web_push", "whatsapp", "in_app", "webhook"]
    template_id: Whole = Field(gt=0)
    # Per split variant (the variant the profile was assigned upstream): other templates.
    variant_templates: dict[str, Annotated[Whole, Field(gt=0)]] = {}


class UpdateAttribute(_Model):
    kind: Literal["update_attribute"] = "update_attribute"
    trait: str = Field(min_length=1, max_length=255)
    value: Any = None

    @field_validator("trait")
    @classmethod
    def _trait(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", value):
            raise ValueError("a trait name: letters, digits, _ . -")
        return value


class CallWebhook(_Model):
    """A webhook template (its URL, headers and body) rendered for the profile."""

    kind: Literal["webhook"] = "webhook"
    template_id: Whole = Field(gt=0)


class StaticSegmentChange(_Model):
    kind: Literal["segment"] = "segment"
    segment_id: Whole = Field(gt=0)
    op: Literal["add", "remove"] = "add"


Action = Annotated[
    SendMessage | UpdateAttribute | CallWebhook | StaticSegmentChange,
    Field(discriminator="kind"),
]


class ActionNode(_Model):
    id: NodeId
    type: Literal["action"]
    action: Action


class FallbackStep(_Model):
    channel: Literal["email", "sms", "push", "web_push", "whatsapp", "in_app"]
    template_id: Whole = Field(gt=0)


class FallbackNode(_Model):
    """Try channels in order: move to the next when the message cannot be delivered,
    the profile has no consent or address for the channel, or (when set) it was not
    opened / clicked within the time."""

    id: NodeId
    type: Literal["fallback"]
    chain: Annotated[list[FallbackStep], Field(min_length=2, max_length=6)]
    not_engaged: Literal["", "opened", "clicked"] = ""
    within_seconds: Whole | None = Field(default=None, ge=60, le=30 * 24 * 3600)

    @model_validator(mode="after")
    def _engagement(self) -> FallbackNode:
        if bool(self.not_engaged) != (self.within_seconds is not None):
            raise ValueError("not_engaged and within_seconds go together")
        return self


# --------------------------------------------------------------------------- goals, exits


class GoalNode(_Model):
    """Reaching it counts a conversion when the event happened within the window."""

    id: NodeId
    type: Literal["goal"]
    event: str = Field(min_length=1, max_length=200)
    filters: Filters = []
    window_seconds: Whole = Field(default=7 * 24 * 3600, ge=60, le=MAX_WAIT_SECONDS)


class ExitNode(_Model):
    id: NodeId
    type: Literal["exit"]


Node = Annotated[
    TriggerNode
    | WaitNode
    | ConditionNode
    | SplitNode
    | ActionNode
    | FallbackNode
    | GoalNode
    | ExitNode,
    Field(discriminator="type"),
]


class Edge(_Model):
    source: NodeId
    port: str = Field(default="next", min_length=1, max_length=40)
    target: NodeId


# --------------------------------------------------------------------------- settings


class Reentry(_Model):
    mode: Literal["never", "after_days", "always"] = "never"
    days: Whole | None = Field(default=None, ge=1, le=3650)

    @model_validator(mode="after")
    def _days(self) -> Reentry:
        if (self.mode == "after_days") != (self.days is not None):
            raise ValueError("days goes with mode after_days, and only with it")
        return self


class ConversionGoal(_Model):
    """Doing this event (while enrolled, or within the window after entry) exits the
    profile and records a conversion."""

    event: str = Field(min_length=1, max_length=200)
    filters: Filters = []
    window_seconds: Whole = Field(default=7 * 24 * 3600, ge=60, le=MAX_WAIT_SECONDS)


class FrequencyCap(_Model):
    messages: Whole = Field(ge=1, le=1000)
    per_seconds: Whole = Field(ge=60, le=90 * 24 * 3600)


class QuietHours(_Model):
    """No messages between start and end in the profile's time zone (held until end)."""

    start: time
    end: time
    fallback_time_zone: str = "UTC"


class JourneySettings(_Model):
    reentry: Reentry = Reentry()
    entry_limit: Whole | None = Field(default=None, ge=1)
    goal: ConversionGoal | None = None
    frequency_cap: FrequencyCap | None = None
    quiet_hours: QuietHours | None = None
    send_rate_per_minute: Whole | None = Field(default=None, ge=1, le=1_000_000)
    shadow_mode: Flag = False
    # The subscription topic its messages go under (a delivery Topic key; "" none).
    topic: str = Field(default="", max_length=64, pattern=r"^[-a-z0-9_]*$")
    # Receipts, password resets: exempt from frequency caps and quiet hours (never from
    # unsubscribes or the suppression list).
    transactional: Flag = False


class Definition(_Model):
    nodes: Annotated[list[Node], Field(min_length=1, max_length=MAX_NODES)]
    edges: Annotated[list[Edge], Field(max_length=MAX_NODES * 10)] = []
    settings: JourneySettings = JourneySettings()


def output_ports(node) -> tuple[str, ...]:
    """The named outputs a node must connect."""
    if isinstance(node, GoalNode | ExitNode):
        return ()
    if isinstance(node, ConditionNode):
        return ("yes", "no")
    if isinstance(node, SplitNode):
        ports = tuple(variant.key for variant in node.variants)
        return (*ports, "holdout") if node.holdout_percent else ports
    if isinstance(node, WaitNode) and isinstance(node.wait, WaitForEvent | WaitForSegment):
        return ("on_event", "on_timeout") if node.wait.timeout_seconds else ("on_event",)
    return ("next",)
