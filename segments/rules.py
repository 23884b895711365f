"""The segment rule language: a tree of and / or / not groups over leaf rules, stored as
JSON in Segment.definition and validated here with pydantic (a union tagged by "type").

`parse_definition(data)` is the only entry point for untrusted input: it enforces the
size limits, validates the tree, and raises RuleError with a message that names the
offending rule by its path ("rules[1].rules[0] (event_count): count must be ≥ 0").
segments.evaluation compiles a parsed Rule to SQL. docs/segments.md is the reference.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

MAX_DEPTH = 8
MAX_NODES = 200
MAX_FILTERS = 20
MAX_LIST_VALUES = 1000

# Profile columns an attribute rule may read instead of a trait.
TEXT_COLUMNS = ("email", "phone", "time_zone", "locale")
TIME_COLUMNS = ("first_seen", "last_seen")
PROFILE_COLUMNS = TEXT_COLUMNS + TIME_COLUMNS

ValueOperator = Literal[
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains",
    "in",
    "exists",
    "not_exists",
    "before",
    "after",
    "within_last_days",
]
TIME_OPERATORS = ("before", "after", "within_last_days")
PRESENCE_OPERATORS = ("exists", "not_exists")
ORDER_OPERATORS = ("gt", "gte", "lt", "lte")
Scalar = str | int | float | bool | None
# Numbers and flags as JSON sends them: pydantic's lax mode would read `true` as 1 (a
# count of one, segment 1) and "yes" as true.
Whole = Annotated[int, Strict()]
Number = Annotated[float, Strict()]
Flag = Annotated[bool, Strict()]


class RuleError(ValueError):
    """A definition that is not a valid rule tree; the message names the rule's path."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _aware(value: datetime | date) -> datetime:
    """Dates are midnight UTC; naive datetimes are UTC."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time(0), tzinfo=UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _check_value(op: str, value: Any) -> Any:
    """The value an operator needs: none for exists, a list for in, a positive number
    of days for within_last_days, a date or datetime for before / after."""
    if op in PRESENCE_OPERATORS:
        if value is not None:
            raise ValueError(f"{op} takes no value")
        return None
    if op == "in":
        if not isinstance(value, list) or not value:
            raise ValueError("in needs a non-empty list of values")
        if len(value) > MAX_LIST_VALUES:
            raise ValueError(f"in takes at most {MAX_LIST_VALUES} values")
        if any(isinstance(item, (list, dict)) or item is None for item in value):
            raise ValueError("in takes strings, numbers or booleans")
        if any(isinstance(item, float) and not math.isfinite(item) for item in value):
            raise ValueError("in takes finite numbers only (no NaN or infinity)")
        return value
    if op == "within_last_days":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError("within_last_days needs a whole number of days ≥ 1")
        return value
    if op in ("before", "after"):
        if not isinstance(value, str):
            # A number would be read as seconds since 1970.
            raise ValueError(f"{op} needs an ISO 8601 date or datetime")
        try:
            parsed = TypeAdapter(When).validate_python(value)
        except (ValidationError, ValueError):
            raise ValueError(f"{op} needs an ISO 8601 date or datetime") from None
        return _aware(parsed).isoformat()
    if value is None or isinstance(value, (list, dict)):
        raise ValueError(f"{op} needs a string, number or boolean value")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{op} needs a finite number (not NaN or infinity)")
    if op in ORDER_OPERATORS and isinstance(value, bool):
        raise ValueError(f"{op} needs a number or a string")
    if op == "contains" and isinstance(value, bool):
        raise ValueError("contains needs a string or a number")
    return value


class PropertyFilter(_Model):
    """A condition on an event's properties: {"property": "plan.tier", "op": "eq", ...}."""

    property: str = Field(min_length=1, max_length=255)
    op: ValueOperator
    value: Any = None

    @field_validator("property")
    @classmethod
    def _path(cls, value: str) -> str:
        if any(not part for part in value.split(".")):
            raise ValueError("must be a dotted path without empty parts")
        return value

    @model_validator(mode="after")
    def _value(self) -> PropertyFilter:
        object.__setattr__(self, "value", _check_value(self.op, self.value))
        return self


Filters = Annotated[list[PropertyFilter], Field(max_length=MAX_FILTERS)]


class LastDays(_Model):
    last_days: Whole = Field(ge=1, le=36600)


def _when(value: Any) -> Any:
    """ "2026-11-20" is a date (a whole day), anything longer a datetime. Parsed here:
    left to the union, pydantic reads a datetime at midnight ("2026-11-20T00:00:00+05:30")
    as the date, dropping its offset and widening a window's end to the whole day."""
    if isinstance(value, str):
        try:
            if len(value) == 10:
                return date.fromisoformat(value)
            return _datetime_adapter.validate_python(value)
        except (ValueError, ValidationError):
            raise ValueError("needs an ISO 8601 date or datetime") from None
    if not isinstance(value, date):
        # pydantic would read a number as seconds since 1970.
        raise ValueError("needs an ISO 8601 date or datetime")
    return value


_datetime_adapter: TypeAdapter = TypeAdapter(datetime)


When = Annotated[date | datetime, BeforeValidator(_when)]


class Between(_Model):
    """Dates are whole UTC days, both ends included; datetimes are instants, both ends
    included."""

    between: tuple[When, When]

    @model_validator(mode="after")
    def _order(self) -> Between:
        if self.start > self.end:
            raise ValueError("needs a start before its end")
        return self

    @property
    def start(self) -> datetime:
        return _aware(self.between[0])

    @property
    def end(self) -> datetime:
        """The inclusive end instant (a date ends at its last microsecond)."""
        end = self.between[1]
        if not isinstance(end, datetime):
            return datetime.combine(end, time.max, tzinfo=UTC)
        return _aware(end)


def _exactly_true(value: Any) -> Any:
    if value is not True:
        raise ValueError("must be true")
    return value


class Ever(_Model):
    ever: Annotated[Literal[True], BeforeValidator(_exactly_true)]


def _window_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return next((key for key in ("last_days", "between", "ever") if key in value), None)
    return next((key for key, model in WINDOW_MODELS.items() if isinstance(value, model)), None)


WINDOW_MODELS = {"last_days": LastDays, "between": Between, "ever": Ever}
Window = Annotated[
    Annotated[LastDays, Tag("last_days")]
    | Annotated[Between, Tag("between")]
    | Annotated[Ever, Tag("ever")],
    Discriminator(
        _window_kind,
        custom_error_type="window_kind",
        custom_error_message='needs one of {"last_days": N}, {"between": [start, end]}, '
        '{"ever": true}',
    ),
]


class EventStep(_Model):
    event: str = Field(min_length=1, max_length=200)
    filters: Filters = []


class And(_Model):
    type: Literal["and", "or"]
    rules: list[Rule] = Field(min_length=1)


class Not(_Model):
    type: Literal["not"]
    rule: Rule


class Attribute(_Model):
    """A trait (dotted path into Profile.traits) or a profile column compared to a value.

    Missing traits: only ne and not_exists match them."""

    type: Literal["attribute"]
    trait: str | None = Field(default=None, min_length=1, max_length=255)
    column: Literal["email", "phone", "time_zone", "locale", "first_seen", "last_seen"] | None = (
        None
    )
    op: ValueOperator
    value: Any = None

    @model_validator(mode="after")
    def _target(self) -> Attribute:
        if (self.trait is None) == (self.column is None):
            raise ValueError("needs exactly one of trait or column")
        if self.trait is not None and any(not part for part in self.trait.split(".")):
            raise ValueError("trait must be a dotted path without empty parts")
        if self.column in TIME_COLUMNS and self.op not in TIME_OPERATORS + PRESENCE_OPERATORS:
            raise ValueError(f"column {self.column} takes before, after or within_last_days")
        if self.column in TEXT_COLUMNS and self.op in TIME_OPERATORS:
            raise ValueError(f"column {self.column} is text, {self.op} needs a date")
        object.__setattr__(self, "value", _check_value(self.op, self.value))
        return self

    @property
    def path(self) -> list[str]:
        return (self.trait or "").split(".")


class EventCount(_Model):
    """The number of `event` events (matching the filters, inside the window) compared
    to `count`."""

    type: Literal["event_count"]
    event: str = Field(min_length=1, max_length=200)
    filters: Filters = []
    op: Literal["gte", "lte", "eq", "gt", "lt"] = "gte"
    count: Whole
    window: Window = Ever(ever=True)

    @field_validator("count")
    @classmethod
    def _count(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be ≥ 0")
        return value


class Sequence(_Model):
    """A `first` event, then a `then` event strictly later and at most `within_hours`
    after it. With negate: a `first` event with no `then` event in those hours, once
    the hours have passed. anchor "first" uses only the earliest `first` event (in the
    window), as in "bought again within a week after their first purchase"."""

    type: Literal["sequence"]
    first: EventStep
    then: EventStep
    within_hours: Number = Field(gt=0, le=24 * 3660)
    negate: Flag = False
    anchor: Literal["any", "first"] = "any"
    window: Window = Ever(ever=True)


class Streak(_Model):
    """`event` on each of `days` consecutive local days (the profile's time zone, else
    the workspace's, else UTC). since_signup: the run starts on the local day of the
    profile's first_seen. ongoing: the run reaches today or yesterday (local)."""

    type: Literal["streak"]
    event: str = Field(min_length=1, max_length=200)
    filters: Filters = []
    days: Whole = Field(ge=1, le=3660)
    since_signup: Flag = False
    ongoing: Flag = False


class Recency(_Model):
    """The first or last time `event` happened, compared to a date (before / after) or
    to now (within_last_days / not_within_last_days). A profile that never did the
    event matches none of them."""

    type: Literal["recency"]
    event: str = Field(min_length=1, max_length=200)
    filters: Filters = []
    which: Literal["first", "last"] = "last"
    op: Literal["before", "after", "within_last_days", "not_within_last_days"]
    value: Any

    @model_validator(mode="after")
    def _value(self) -> Recency:
        op = "within_last_days" if self.op == "not_within_last_days" else self.op
        object.__setattr__(self, "value", _check_value(op, self.value))
        return self


class Membership(_Model):
    """In (or not in) another segment of the workspace: its open membership rows."""

    type: Literal["membership"]
    segment_id: Whole = Field(ge=1)
    is_member: Flag = Field(default=True, alias="in")


class _NotAvailable(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    needs: str = ""

    @model_validator(mode="after")
    def _unavailable(self) -> _NotAvailable:
        raise ValueError(f"not available yet: needs {self.needs}")


class MessageEngagement(_NotAvailable):
    """Received / opened / clicked a template or journey node: needs delivery."""

    type: Literal["message_engagement"]
    needs: str = "delivery"


VALUE_TIERS = ("champion", "loyal", "potential", "at_risk", "lost")
NUMERIC_COMPUTED_TRAITS = ("ltv", "engagement_score", "churn_risk")


class ComputedTrait(_Model):
    """A value analytics computes per profile (analytics/value.py): ltv, engagement
    score (0-100) or churn risk (0-1) compared to a number, or the value tier (eq, ne,
    in). A profile not computed yet has no value: only ne matches it."""

    type: Literal["computed_trait"]
    trait: Literal["ltv", "engagement_score", "value_tier", "churn_risk"]
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in"]
    value: Any = None

    @model_validator(mode="after")
    def _value(self) -> ComputedTrait:
        if self.trait == "value_tier":
            if self.op not in ("eq", "ne", "in"):
                raise ValueError("value_tier takes eq, ne or in")
            values = self.value if self.op == "in" else [self.value]
            if self.op == "in" and (not isinstance(self.value, list) or not self.value):
                raise ValueError("in needs a non-empty list of tiers")
            for item in values:
                if item not in VALUE_TIERS:
                    raise ValueError(f"value must be one of {', '.join(VALUE_TIERS)}")
            return self
        if self.op == "in":
            raise ValueError(f"{self.trait} takes eq, ne, gt, gte, lt or lte")
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise ValueError(f"{self.trait} needs a number")
        if not math.isfinite(self.value):
            raise ValueError(f"{self.trait} needs a finite number")
        return self


Rule = Annotated[
    And
    | Not
    | Attribute
    | EventCount
    | Sequence
    | Streak
    | Recency
    | Membership
    | MessageEngagement
    | ComputedTrait,
    Field(discriminator="type"),
]
RULE_TYPES = (
    "and",
    "or",
    "not",
    "attribute",
    "event_count",
    "sequence",
    "streak",
    "recency",
    "membership",
    "message_engagement",
    "computed_trait",
)
And.model_rebuild()
Not.model_rebuild()
_rule_adapter: TypeAdapter = TypeAdapter(Rule)


def _check_shape(data: Any) -> None:
    """Depth and size limits, checked on the raw JSON before pydantic sees it."""
    nodes = 0
    stack: list[tuple[Any, str, int]] = [(data, "root", 1)]
    while stack:
        node, path, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise RuleError(f"the definition has more than {MAX_NODES} rules")
        if depth > MAX_DEPTH:
            raise RuleError(f"{path}: rules nest deeper than {MAX_DEPTH} levels")
        if not isinstance(node, dict):
            continue
        children = node.get("rules")
        if isinstance(children, list):
            for index, child in enumerate(children):
                stack.append((child, _join(path, f"rules[{index}]"), depth + 1))
        child = node.get("rule")
        if child is not None:
            stack.append((child, _join(path, "rule"), depth + 1))


def _join(path: str, part: str) -> str:
    return part if path == "root" else f"{path}.{part}"


def _describe(error: dict) -> str:
    """Turn one pydantic error into "<rule path> (<type>): <field> <message>"."""
    loc = list(error["loc"])
    path, rule_type = "root", None
    if loc and loc[0] in RULE_TYPES:
        rule_type = loc.pop(0)
    while loc:
        if len(loc) >= 3 and loc[0] == "rules" and isinstance(loc[1], int) and loc[2] in RULE_TYPES:
            path, rule_type, loc = _join(path, f"rules[{loc[1]}]"), loc[2], loc[3:]
        elif len(loc) >= 2 and loc[0] == "rule" and loc[1] in RULE_TYPES:
            path, rule_type, loc = _join(path, "rule"), loc[1], loc[2:]
        elif len(loc) == 2 and loc[0] == "rules" and isinstance(loc[1], int):
            # The child itself is broken (no or unknown "type").
            path, rule_type, loc = _join(path, f"rules[{loc[1]}]"), None, []
        elif len(loc) == 1 and loc[0] == "rule" and error["type"].startswith("union_tag"):
            path, rule_type, loc = _join(path, "rule"), None, []
        else:
            break
    # A window's tag repeats its key: ("window", "last_days", "last_days").
    loc = [part for index, part in enumerate(loc) if index == 0 or loc[index - 1] != part]
    field = ".".join(f"[{part}]" if isinstance(part, int) else str(part) for part in loc)
    field = field.replace(".[", "[")
    message = _message(error)
    where = f"{path} ({rule_type})" if rule_type else path
    return f"{where}: {field} {message}" if field else f"{where}: {message}"


def _message(error: dict) -> str:
    kind, context = error["type"], error.get("ctx") or {}
    if kind == "value_error":
        return str(context.get("error", error["msg"]))
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "greater_than_equal":
        return f"must be ≥ {context['ge']}"
    if kind == "greater_than":
        return f"must be > {context['gt']}"
    if kind == "less_than_equal":
        return f"must be ≤ {context['le']}"
    if kind == "too_short":
        return f"needs at least {context['min_length']} item(s)"
    if kind == "too_long":
        return f"takes at most {context['max_length']} item(s)"
    if kind == "union_tag_invalid":
        return f"unknown rule type {context.get('tag')!r}; expected one of {', '.join(RULE_TYPES)}"
    if kind == "union_tag_not_found":
        return 'needs a rule type in its "type" field'
    return error["msg"][:1].lower() + error["msg"][1:]


def parse_definition(data: Any) -> Rule:
    """Validate a rule tree (parsed JSON) and return it as Rule models.

    Raises RuleError naming the first offending rule by its path from the root."""
    if not isinstance(data, dict):
        raise RuleError("root: a rule must be a JSON object")
    _check_shape(data)
    try:
        return _rule_adapter.validate_python(data)
    except ValidationError as error:
        raise RuleError(_describe(error.errors()[0])) from None


def iter_leaves(rule: Rule):
    """Every leaf of the tree, depth first."""
    if isinstance(rule, And):
        for child in rule.rules:
            yield from iter_leaves(child)
    elif isinstance(rule, Not):
        yield from iter_leaves(rule.rule)
    else:
        yield rule
