"""The inspector's form: one node of the definition language (journeys.nodes) read
from the posted form, checked with messages a marketer understands, and prepared for
the templates.

Field names are flat and say what they hold ("event", "amount", "unit"); repeatable
rows are "<list>-<index>-<field>" ("filters-0-property", "variants-2-weight",
"chain-1-template_id"). A structural change (add / remove / move a row) comes as
`action` ("add_filter", "remove_filter:1", "step_up:2") and is applied while reading,
so the node that comes back is the node the form now shows.

Error keys name the node's JSON path without the union tags ("trigger.event",
"chain.1.template_id"); each message starts with the field's name in words
("Step 2 template: choose an SMS template").
"""

from __future__ import annotations

import contextlib
import re
import zoneinfo
from collections.abc import Mapping
from datetime import datetime, time
from functools import cache
from typing import Any

from django.http import QueryDict
from pydantic import TypeAdapter, ValidationError

from journeys import nodes as language
from segments.builder import format_value, parse_value
from segments.rules import PROFILE_COLUMNS, RuleError
from segments.rules import parse_definition as parse_rule

NODE_TYPES = ("trigger", "wait", "condition", "split", "action", "fallback", "goal", "exit")
NODE_TITLES = {
    "trigger": "Trigger",
    "wait": "Wait",
    "condition": "Condition",
    "split": "A/B split",
    "action": "Action",
    "fallback": "Fallback chain",
    "goal": "Goal",
    "exit": "Exit",
}
TRIGGER_KINDS = (
    ("event", "An event happens"),
    ("segment", "Someone enters or leaves a segment"),
    ("schedule", "On a schedule"),
    ("api", "An API call"),
)
WAIT_KINDS = (
    ("duration", "For a time"),
    ("until_time", "Until a time of day"),
    ("until_date", "Until a date"),
    ("event", "For an event"),
    ("segment", "For a segment change"),
)
CONDITION_KINDS = (
    ("rule", "The profile matches a rule"),
    ("event", "The trigger event's properties"),
    ("engagement", "Engagement with an earlier message"),
)
MESSAGE_CHANNELS = ("email", "sms", "push", "web_push", "whatsapp", "in_app")
FALLBACK_CHANNELS = MESSAGE_CHANNELS
CHANNEL_LABELS = {
    "email": "Email",
    "sms": "SMS",
    "push": "Mobile push",
    "web_push": "Web push",
    "whatsapp": "WhatsApp",
    "in_app": "In-app card",
    "webhook": "Webhook",
}
# "choose an email template", "choose an SMS template"
CHANNEL_NOUNS = {
    "email": "an email",
    "sms": "an SMS",
    "push": "a push",
    "web_push": "a web push",
    "whatsapp": "a WhatsApp",
    "in_app": "an in-app",
    "webhook": "a webhook",
}
UNITS = (("minutes", 60), ("hours", 3600), ("days", 86400), ("weeks", 604800))
UNIT_SECONDS = dict(UNITS)
OPERATORS = (
    ("eq", "is"),
    ("ne", "is not"),
    ("gt", "is more than"),
    ("gte", "is at least"),
    ("lt", "is less than"),
    ("lte", "is at most"),
    ("contains", "contains"),
    ("in", "is one of"),
    ("exists", "is set"),
    ("not_exists", "is not set"),
    ("before", "is before"),
    ("after", "is after"),
    ("within_last_days", "is within the last … days"),
)
OPERATOR_KEYS = tuple(key for key, _ in OPERATORS)
ENGAGEMENT_LABELS = (
    ("delivered", "was delivered"),
    ("opened", "was opened"),
    ("clicked", "was clicked"),
)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MAX_FILTERS = 20
MAX_RULE_ROWS = 20
MAX_VARIANT_TEMPLATES = 10
MAX_VARIANTS = 10
MIN_CHAIN, MAX_CHAIN = 2, 6
MAX_WAIT_DAYS = language.MAX_WAIT_SECONDS // 86400
_NUMBER = re.compile(r"^\s*\d+(\.\d+)?\s*$")
_node_adapter: TypeAdapter = TypeAdapter(language.Node)


@cache
def time_zones() -> tuple[str, ...]:
    return ("UTC", *sorted(zone for zone in zoneinfo.available_timezones() if zone != "UTC"))


# --------------------------------------------------------------------------- durations


def split_duration(seconds: Any) -> tuple[str, str]:
    """(amount, unit) for a number of seconds: the largest unit that divides it, else
    minutes with decimals (90 s -> "1.5" minutes)."""
    if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds <= 0:
        return "", "hours"
    for unit, size in reversed(UNITS):
        if seconds % size == 0:
            return str(seconds // size), unit
    return f"{seconds / 60:g}", "minutes"


def duration_seconds(amount: str, unit: str) -> int | None:
    """Seconds from the amount box and the unit select; None when the box is empty or
    not a number."""
    if not _NUMBER.match(amount or ""):
        return None
    return round(float(amount) * UNIT_SECONDS.get(unit, 3600))


def _duration_text(seconds: int) -> str:
    from journeys.editor import duration_text

    return duration_text(seconds)


# --------------------------------------------------------------------------- reading


def _int(text: Any) -> int:
    text = str(text if text is not None else "").strip()
    return int(text) if text.isdigit() else 0


def _number(text: str) -> int | float | None:
    if not _NUMBER.match(text or ""):
        return None
    value = float(text)
    return int(value) if value.is_integer() else value


def _action(action: str, verb: str) -> int | None:
    """The row index of "<verb>:<index>", None when the action is another."""
    name, _, argument = (action or "").partition(":")
    return int(argument) if name == verb and argument.isdigit() else None


def _rows(post: Mapping[str, str], prefix: str, first: str, limit: int) -> list[int]:
    """The indices of the posted rows of a list (in order, gaps allowed)."""
    return [index for index in range(limit * 2) if f"{prefix}-{index}-{first}" in post][:limit]


def _move(rows: list, action: str) -> list:
    for verb, step in (("up", -1), ("down", 1)):
        index = _action(action, verb)
        if index is not None and 0 <= index < len(rows) and 0 <= index + step < len(rows):
            rows[index], rows[index + step] = rows[index + step], rows[index]
    index = _action(action, "remove")
    if index is not None and index < len(rows):
        del rows[index]
    return rows


def read_filters(post: Mapping[str, str], action: str) -> list[dict[str, Any]]:
    filters = []
    for index in _rows(post, "filters", "property", MAX_FILTERS):
        op = post.get(f"filters-{index}-op", "eq")
        op = op if op in OPERATOR_KEYS else "eq"
        row: dict[str, Any] = {"property": post.get(f"filters-{index}-property", "").strip()}
        row["op"] = op
        row["value"] = parse_value(post.get(f"filters-{index}-value", ""), op)
        filters.append(row)
    remove = _action(action, "remove_filter")
    if remove is not None and remove < len(filters):
        del filters[remove]
    if action == "add_filter" and len(filters) < MAX_FILTERS:
        filters.append({"property": "", "op": "eq", "value": ""})
    return filters


def _read_datetime(text: str, zone_name: str) -> str | None:
    """An aware ISO 8601 datetime from a datetime-local box read in `zone_name`."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return text
    if value.tzinfo is None:
        try:
            value = value.replace(tzinfo=zoneinfo.ZoneInfo(zone_name or "UTC"))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            value = value.replace(tzinfo=zoneinfo.ZoneInfo("UTC"))
    return value.isoformat()


def local_datetime(value: Any, zone_name: str) -> str:
    """The datetime-local box's text for a stored datetime, shown in `zone_name`."""
    if not value:
        return ""
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return ""
    if parsed.tzinfo is not None:
        with contextlib.suppress(zoneinfo.ZoneInfoNotFoundError, ValueError):
            parsed = parsed.astimezone(zoneinfo.ZoneInfo(zone_name or "UTC"))
    return parsed.strftime("%Y-%m-%dT%H:%M")


def _read_trigger(post: Mapping[str, str], action: str) -> dict[str, Any]:
    kind = post.get("trigger_kind", "event")
    if kind == "segment":
        return {
            "kind": "segment",
            "segment_id": _int(post.get("segment_id")),
            "on": "exited" if post.get("on") == "exited" else "entered",
        }
    if kind == "schedule":
        zone = post.get("time_zone", "UTC").strip() or "UTC"
        trigger: dict[str, Any] = {"kind": "schedule", "segment_id": _int(post.get("segment_id"))}
        if post.get("schedule_mode") == "once":
            trigger["cron"] = ""
            trigger["at"] = _read_datetime(post.get("at", ""), zone)
        else:
            trigger["cron"] = " ".join(post.get("cron", "0 9 * * 1").split())
        trigger["time_zone"] = zone
        return trigger
    if kind == "api":
        return {"kind": "api"}
    return {
        "kind": "event",
        "event": post.get("event", "").strip(),
        "filters": read_filters(post, action),
    }


def _read_timeout(post: Mapping[str, str]) -> int | None:
    if "timeout_amount" not in post:  # the kind was just chosen: a day, as the palette
        return 86400
    return duration_seconds(post.get("timeout_amount", ""), post.get("timeout_unit", "hours"))


def _read_wait(post: Mapping[str, str], action: str) -> dict[str, Any]:
    kind = post.get("wait_kind", "duration")
    if kind == "until_time":
        at = (post.get("at", "09:00") or "").strip()
        if re.fullmatch(r"\d{2}:\d{2}", at):
            at += ":00"
        return {
            "kind": "until_time",
            "at": at or None,
            "weekdays": sorted(
                {int(day) for day in post.getlist("weekdays") if day in tuple("0123456")}
            ),
            "fallback_time_zone": post.get("fallback_time_zone", "UTC").strip() or "UTC",
        }
    if kind == "until_date":
        return {
            "kind": "until_date",
            "at": _read_datetime(post.get("at", ""), post.get("at_time_zone", "UTC")),
        }
    if kind == "event":
        return {
            "kind": "event",
            "event": post.get("event", "").strip(),
            "filters": read_filters(post, action),
            "timeout_seconds": _read_timeout(post),
        }
    if kind == "segment":
        return {
            "kind": "segment",
            "segment_id": _int(post.get("segment_id")),
            "on": "exited" if post.get("on") == "exited" else "entered",
            "timeout_seconds": _read_timeout(post),
        }
    if "amount" not in post:
        return {"kind": "duration", "seconds": 3600}
    return {
        "kind": "duration",
        "seconds": duration_seconds(post.get("amount", ""), post.get("unit", "hours")),
    }


# ---- condition rules: attribute comparisons combined with all / any


def rule_rows(rule: Any) -> tuple[str, list[dict[str, Any]]] | None:
    """(match, comparisons) of a rule the simple editor can show: one attribute rule,
    or an and / or of attribute rules. None for anything else (edited as JSON)."""
    if rule == {}:
        return "all", []
    if not isinstance(rule, dict):
        return None
    if rule.get("type") == "attribute":
        leaves, match = [rule], "all"
    elif rule.get("type") in ("and", "or") and isinstance(rule.get("rules"), list):
        leaves, match = rule["rules"], "all" if rule["type"] == "and" else "any"
    else:
        return None
    rows = []
    for leaf in leaves:
        if not isinstance(leaf, dict) or leaf.get("type") != "attribute":
            return None
        if set(leaf) - {"type", "trait", "column", "op", "value"}:
            return None
        rows.append(
            {
                "target": leaf.get("column") or "trait",
                "trait": leaf.get("trait") or "",
                "op": leaf.get("op", "eq"),
                "value": format_value(leaf.get("value")),
            }
        )
    return match, rows


def _rule_from_rows(match: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    leaves = []
    for row in rows:
        leaf: dict[str, Any] = {"type": "attribute"}
        if row["target"] == "trait":
            leaf["trait"] = row["trait"]
        else:
            leaf["column"] = row["target"]
        leaf["op"] = row["op"]
        if row["op"] not in ("exists", "not_exists"):
            leaf["value"] = parse_value(row["value"], row["op"])
        leaves.append(leaf)
    if not leaves:
        return {}
    if len(leaves) == 1:
        return leaves[0]
    return {"type": "and" if match == "all" else "or", "rules": leaves}


def _read_condition(post: Mapping[str, str], action: str) -> dict[str, Any]:
    kind = post.get("condition_kind", "rule")
    if kind == "event":
        return {"kind": "event", "filters": read_filters(post, action)}
    if kind == "engagement":
        engagement = post.get("engagement", "opened")
        return {
            "kind": "engagement",
            "node": post.get("message_node", "").strip(),
            "engagement": engagement if engagement in language.ENGAGEMENTS else "opened",
        }
    if "rule_json" in post:
        import orjson

        try:
            rule = orjson.loads(post.get("rule_json") or "{}")
        except orjson.JSONDecodeError:
            rule = {"invalid_json": post.get("rule_json", "")}
        if action == "simple_rule":
            rule = {}
        return {"kind": "rule", "rule": rule}
    rows = []
    for index in _rows(post, "rules", "target", MAX_RULE_ROWS):
        target = post.get(f"rules-{index}-target", "trait")
        op = post.get(f"rules-{index}-op", "eq")
        rows.append(
            {
                "target": target if target in PROFILE_COLUMNS else "trait",
                "trait": post.get(f"rules-{index}-trait", "").strip(),
                "op": op if op in OPERATOR_KEYS else "eq",
                "value": post.get(f"rules-{index}-value", ""),
            }
        )
    remove = _action(action, "remove_rule")
    if remove is not None and remove < len(rows):
        del rows[remove]
    if action == "add_rule" and len(rows) < MAX_RULE_ROWS:
        rows.append({"target": "trait", "trait": "", "op": "eq", "value": ""})
    match = "any" if post.get("match") == "any" else "all"
    return {"kind": "rule", "rule": _rule_from_rows(match, rows)}


def _even_weights(count: int) -> list[int]:
    base, extra = divmod(100, count)
    return [base + (1 if index < extra else 0) for index in range(count)]


def _read_split(post: Mapping[str, str], action: str) -> dict[str, Any]:
    variants = []
    for index in _rows(post, "variants", "key", MAX_VARIANTS):
        weight = _number(post.get(f"variants-{index}-weight", ""))
        variants.append(
            {
                "key": post.get(f"variants-{index}-key", "").strip(),
                "name": post.get(f"variants-{index}-name", "").strip(),
                "weight": int(weight) if weight is not None else None,
            }
        )
    remove = _action(action, "remove_variant")
    if remove is not None and remove < len(variants) and len(variants) > 1:
        del variants[remove]
    if action == "add_variant" and len(variants) < MAX_VARIANTS:
        used = {variant["key"] for variant in variants}
        key = next(letter for letter in "abcdefghijklmnopqrstuvwxyz" if letter not in used)
        variants.append({"key": key, "name": key.upper(), "weight": 0})
        action = "even_weights"
    if action == "even_weights" and variants:
        for variant, weight in zip(variants, _even_weights(len(variants)), strict=True):
            variant["weight"] = weight
    holdout = _number(post.get("holdout_percent", "0") or "0")
    return {"variants": variants, "holdout_percent": holdout if holdout is not None else None}


def _read_template_id(post: Mapping[str, str], name: str) -> int:
    return _int(post.get(name))


def _read_action(post: Mapping[str, str], action: str) -> dict[str, Any]:
    kind = post.get("action_kind", "message")
    if kind == "webhook":
        return {"kind": "webhook", "template_id": _read_template_id(post, "template_id")}
    if kind == "update_attribute":
        text = post.get("value", "")
        value = None if text.strip() == "null" else parse_value(text, "eq")
        return {"kind": "update_attribute", "trait": post.get("trait", "").strip(), "value": value}
    if kind == "segment":
        return {
            "kind": "segment",
            "segment_id": _int(post.get("segment_id")),
            "op": "remove" if post.get("op") == "remove" else "add",
        }
    channel = post.get("channel", "email")
    rows = [
        (
            post.get(f"variant_templates-{index}-key", "").strip(),
            _read_template_id(post, f"variant_templates-{index}-template_id"),
        )
        for index in _rows(post, "variant_templates", "key", MAX_VARIANT_TEMPLATES)
    ]
    remove = _action(action, "remove_variant_template")
    if remove is not None and remove < len(rows):
        del rows[remove]
    if action == "add_variant_template" and len(rows) < MAX_VARIANT_TEMPLATES:
        used = {key for key, _ in rows}
        rows.append((next(k for k in "abcdefghijklmnopqrstuvwxyz_" if k not in used), 0))
    message: dict[str, Any] = {
        "kind": "message",
        "channel": channel if channel in CHANNEL_LABELS else "email",
        "template_id": _read_template_id(post, "template_id"),
    }
    if rows:
        message["variant_templates"] = dict(rows)
    return message


def _read_fallback(post: Mapping[str, str], action: str) -> dict[str, Any]:
    chain = []
    for index in _rows(post, "chain", "channel", MAX_CHAIN):
        channel = post.get(f"chain-{index}-channel", "email")
        chain.append(
            {
                "channel": channel if channel in FALLBACK_CHANNELS else "email",
                "template_id": _read_template_id(post, f"chain-{index}-template_id"),
            }
        )
    for verb, move in (("step_up", "up"), ("step_down", "down"), ("remove_step", "remove")):
        index = _action(action, verb)
        if index is not None and (move != "remove" or len(chain) > MIN_CHAIN):
            chain = _move(chain, f"{move}:{index}")
    if action == "add_step" and len(chain) < MAX_CHAIN:
        used = {step["channel"] for step in chain}
        channel = next((c for c in FALLBACK_CHANNELS if c not in used), "email")
        chain.append({"channel": channel, "template_id": 0})
    not_engaged = post.get("not_engaged", "")
    not_engaged = not_engaged if not_engaged in ("opened", "clicked") else ""
    within = None
    if not_engaged:
        within = (
            duration_seconds(post.get("within_amount", ""), post.get("within_unit", "hours"))
            if "within_amount" in post
            else 7200  # just switched on: push, not opened in 2 hours, then the next
        )
    return {"chain": chain, "not_engaged": not_engaged, "within_seconds": within}


def _read_goal(post: Mapping[str, str], action: str) -> dict[str, Any]:
    return {
        "event": post.get("event", "").strip(),
        "filters": read_filters(post, action),
        "window_seconds": duration_seconds(
            post.get("window_amount", ""), post.get("window_unit", "days")
        ),
    }


def node_from_post(post: QueryDict, *, node_type: str, node_id: str) -> dict[str, Any]:
    """The node the posted form describes, after its `action` (not validated)."""
    action = post.get("action", "")
    node: dict[str, Any] = {"id": node_id, "type": node_type}
    if node_type == "trigger":
        node["trigger"] = _read_trigger(post, action)
    elif node_type == "wait":
        node["wait"] = _read_wait(post, action)
    elif node_type == "condition":
        node["condition"] = _read_condition(post, action)
    elif node_type == "split":
        node.update(_read_split(post, action))
    elif node_type == "action":
        node["action"] = _read_action(post, action)
    elif node_type == "fallback":
        node.update(_read_fallback(post, action))
    elif node_type == "goal":
        node.update(_read_goal(post, action))
    return node


# --------------------------------------------------------------------------- checking


class References:
    """The workspace's templates and segments a node may name, read once per request:
    `templates` {id: Template} (archived included, to say so), `segments` {id: Segment}."""

    def __init__(self, *, templates: dict[int, Any], segments: dict[int, Any]):
        self.templates = templates
        self.segments = segments


def _sub(node: dict, key: str) -> dict:
    value = node.get(key)
    return value if isinstance(value, dict) else {}


def _check_event(errors: list, key: str, value: Any) -> None:
    if not (isinstance(value, str) and value.strip()):
        errors.append((key, "Event: choose or type an event name"))


def _check_filters(errors: list, prefix: str, filters: Any) -> None:
    from segments.rules import PropertyFilter

    for index, row in enumerate(filters if isinstance(filters, list) else []):
        label = f"Filter {index + 1}"
        key = f"{prefix}filters.{index}"
        if not isinstance(row, dict) or not str(row.get("property", "")).strip():
            errors.append((f"{key}.property", f"{label}: choose a property"))
            continue
        try:
            PropertyFilter.model_validate(row)
        except ValidationError as error:
            detail = error.errors()[0]
            message = detail["msg"].removeprefix("Value error, ")
            errors.append((f"{key}.value", f"{label}: {message}"))


def _check_duration(errors: list, key: str, label: str, seconds: Any, *, low: int = 60) -> None:
    if seconds is None:
        errors.append((key, f"{label}: enter a number"))
    elif seconds < low:
        errors.append((key, f"{label}: at least {_duration_text(low)}"))
    elif seconds > language.MAX_WAIT_SECONDS:
        errors.append((key, f"{label}: at most {MAX_WAIT_DAYS} days"))


def _check_zone(errors: list, key: str, zone: Any) -> None:
    if zone not in time_zones():
        errors.append((key, "Time zone: choose a time zone from the list"))


def _check_segment(
    errors: list, key: str, segment_id: Any, refs: References, *, label="Segment", static=False
) -> None:
    if not segment_id:
        noun = "a static segment" if static else "a segment"
        errors.append((key, f"{label}: choose {noun}"))
        return
    segment = refs.segments.get(segment_id)
    if segment is None:
        errors.append((key, f"{label}: this segment is not in this workspace"))
    elif static and segment.kind != "static":
        errors.append(
            (key, f"{label}: “{segment.name}” is dynamic; only a static segment takes members")
        )


def _check_template(
    errors: list, key: str, template_id: Any, channel: str, refs: References, label="Template"
) -> None:
    noun = CHANNEL_NOUNS.get(channel, "a")
    if not template_id:
        errors.append((key, f"{label}: choose {noun} template"))
        return
    template = refs.templates.get(template_id)
    if template is None:
        errors.append((key, f"{label}: this template is not in this workspace"))
    elif template.channel != channel:
        errors.append(
            (
                key,
                f"{label}: “{template.name}” is {CHANNEL_NOUNS.get(template.channel, 'a')} "
                f"template; choose {noun} template",
            )
        )
    elif template.archived_at is not None:
        errors.append((key, f"{label}: “{template.name}” is archived; choose another"))


def _check_trigger(node: dict, errors: list, refs: References) -> None:
    trigger = _sub(node, "trigger")
    kind = trigger.get("kind")
    if kind == "event":
        _check_event(errors, "trigger.event", trigger.get("event"))
        _check_filters(errors, "trigger.", trigger.get("filters", []))
    elif kind == "segment":
        _check_segment(errors, "trigger.segment_id", trigger.get("segment_id"), refs)
    elif kind == "schedule":
        _check_segment(
            errors, "trigger.segment_id", trigger.get("segment_id"), refs, label="Audience"
        )
        if trigger.get("at") is not None or not trigger.get("cron"):
            if not trigger.get("at"):
                errors.append(("trigger.at", "Date and time: pick when they enter"))
        else:
            from cronsim import CronSim, CronSimError

            cron = str(trigger.get("cron"))
            if len(cron.split()) != 5:
                errors.append(
                    ("trigger.cron", "Schedule: five fields: minute hour day month weekday")
                )
            else:
                try:
                    CronSim(cron, datetime(2000, 1, 1))
                except CronSimError as error:
                    errors.append(("trigger.cron", f"Schedule: {error}"))
        _check_zone(errors, "trigger.time_zone", trigger.get("time_zone", "UTC"))


def _check_wait(node: dict, errors: list, refs: References) -> None:
    wait = _sub(node, "wait")
    kind = wait.get("kind")
    if kind == "duration":
        _check_duration(errors, "wait.seconds", "Wait", wait.get("seconds"))
    elif kind == "until_time":
        if not wait.get("at"):
            errors.append(("wait.at", "Time: pick a time of day"))
        _check_zone(errors, "wait.fallback_time_zone", wait.get("fallback_time_zone", "UTC"))
    elif kind == "until_date":
        if not wait.get("at"):
            errors.append(("wait.at", "Date: pick a date and time"))
    elif kind in ("event", "segment"):
        if kind == "event":
            _check_event(errors, "wait.event", wait.get("event"))
            _check_filters(errors, "wait.", wait.get("filters", []))
        else:
            _check_segment(errors, "wait.segment_id", wait.get("segment_id"), refs)
        if wait.get("timeout_seconds") is not None:
            _check_duration(errors, "wait.timeout_seconds", "Timeout", wait["timeout_seconds"])


def _check_condition(node: dict, errors: list, refs: References, others: list[dict]) -> None:
    condition = _sub(node, "condition")
    kind = condition.get("kind")
    if kind == "rule":
        rule = condition.get("rule")
        shown = rule_rows(rule)
        if rule == {} or rule is None:
            errors.append(("condition.rule", "Rule: add at least one comparison"))
            return
        if shown is not None:
            for index, row in enumerate(shown[1]):
                if row["target"] == "trait" and not row["trait"]:
                    errors.append(
                        (
                            f"condition.rule.{index}.trait",
                            f"Comparison {index + 1}: name the attribute",
                        )
                    )
            if errors:
                return
        try:
            parsed = parse_rule(rule)
        except RuleError as error:
            errors.append(("condition.rule", f"Rule: {error}"))
            return
        from segments.rules import Membership, iter_leaves

        for leaf in iter_leaves(parsed):
            if isinstance(leaf, Membership) and leaf.segment_id not in refs.segments:
                errors.append(
                    ("condition.rule", f"Rule: segment {leaf.segment_id} is not in this workspace")
                )
    elif kind == "event":
        filters = condition.get("filters")
        if not filters:
            errors.append(("condition.filters", "Filters: add at least one property filter"))
        _check_filters(errors, "condition.", filters or [])
    elif kind == "engagement":
        choices = {other["id"] for other in message_nodes(others)}
        if condition.get("node") not in choices:
            errors.append(("condition.node", "Message step: choose an earlier message step"))


def _check_split(node: dict, errors: list) -> None:
    variants = node.get("variants") if isinstance(node.get("variants"), list) else []
    if not variants:
        errors.append(("variants", "Variants: add at least one variant"))
    seen: set[str] = set()
    for index, variant in enumerate(variants):
        label = f"Variant {index + 1}"
        key = variant.get("key") if isinstance(variant, dict) else None
        if not isinstance(key, str) or not re.fullmatch(r"[a-z0-9_]{1,32}", key):
            errors.append(
                (
                    f"variants.{index}.key",
                    f"{label} key: lowercase letters, digits and _ (up to 32)",
                )
            )
        elif key == "holdout":
            errors.append((f"variants.{index}.key", f"{label} key: “holdout” is reserved"))
        elif key in seen:
            errors.append((f"variants.{index}.key", f"{label} key: another variant has it"))
        else:
            seen.add(key)
        weight = variant.get("weight") if isinstance(variant, dict) else None
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 10_000:
            errors.append(
                (f"variants.{index}.weight", f"{label} weight: a whole number from 0 to 10000")
            )
    weights = [v.get("weight") for v in variants if isinstance(v, dict)]
    if weights and all(isinstance(w, int) for w in weights) and sum(weights) <= 0:
        errors.append(("variants", "Variants: at least one variant needs a weight above 0"))
    holdout = node.get("holdout_percent")
    if not isinstance(holdout, int | float) or isinstance(holdout, bool) or not 0 <= holdout <= 50:
        errors.append(("holdout_percent", "Holdout: a percentage from 0 to 50"))


def _check_action(node: dict, errors: list, refs: References) -> None:
    action = _sub(node, "action")
    kind = action.get("kind")
    if kind == "message":
        channel = action.get("channel", "")
        _check_template(errors, "action.template_id", action.get("template_id"), channel, refs)
        variant_templates = action.get("variant_templates") or {}
        for index, (key, template_id) in enumerate(
            variant_templates.items() if isinstance(variant_templates, dict) else []
        ):
            if not re.fullmatch(r"[a-z0-9_]{1,32}", key):
                errors.append(
                    (
                        f"action.variant_templates.{key}.key",
                        f"Variant {index + 1}: the key of a split's variant (a, b, …)",
                    )
                )
            _check_template(
                errors,
                f"action.variant_templates.{key}",
                template_id,
                channel,
                refs,
                label=f"Template for variant {key or index + 1}",
            )
    elif kind == "webhook":
        _check_template(errors, "action.template_id", action.get("template_id"), "webhook", refs)
    elif kind == "update_attribute":
        trait = action.get("trait")
        if not trait:
            errors.append(("action.trait", "Attribute: name the attribute to set"))
        elif not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", str(trait)):
            errors.append(
                ("action.trait", "Attribute: letters, digits, _ . - (starting with a letter or _)")
            )
    elif kind == "segment":
        _check_segment(errors, "action.segment_id", action.get("segment_id"), refs, static=True)


def _check_fallback(node: dict, errors: list, refs: References) -> None:
    chain = node.get("chain") if isinstance(node.get("chain"), list) else []
    if len(chain) < MIN_CHAIN:
        errors.append(("chain", f"Chain: at least {MIN_CHAIN} steps"))
    for index, step in enumerate(chain):
        step = step if isinstance(step, dict) else {}
        _check_template(
            errors,
            f"chain.{index}.template_id",
            step.get("template_id"),
            step.get("channel", ""),
            refs,
            label=f"Step {index + 1} template",
        )
    if node.get("not_engaged"):
        _check_duration(
            errors, "within_seconds", "Move on after", node.get("within_seconds"), low=60
        )
        if (node.get("within_seconds") or 0) > 30 * 86400:
            errors[-1:] = [("within_seconds", "Move on after: at most 30 days")]


def _check_goal(node: dict, errors: list) -> None:
    _check_event(errors, "event", node.get("event"))
    _check_filters(errors, "", node.get("filters", []))
    _check_duration(errors, "window_seconds", "Window", node.get("window_seconds"))


def _key_of(location: tuple) -> str:
    """The error key of a pydantic location over nodes.Node (union tags dropped)."""
    parts = [str(part) for part in location[1:]]  # the node-type tag comes first
    if parts and parts[0] in ("trigger", "wait", "condition", "action") and len(parts) > 1:
        parts = [parts[0], *parts[2:]]
    return ".".join(parts)


FIELD_LABELS = {
    "id": "Node id",
    "type": "Node type",
    "trigger": "Trigger",
    "wait": "Wait",
    "condition": "Condition",
    "action": "Action",
    "variants": "Variants",
    "chain": "Chain",
    "not_engaged": "Move on",
    "within_seconds": "Move on after",
    "window_seconds": "Window",
    "": "Settings",
}


def _pydantic_errors(node: dict) -> list[tuple[str, str]]:
    try:
        _node_adapter.validate_python(node)
    except ValidationError as error:
        found = []
        for item in error.errors():
            key = _key_of(tuple(item["loc"]))
            head = key.split(".")[0] if key else ""
            label = FIELD_LABELS.get(key) or FIELD_LABELS.get(
                head, head.replace("_", " ").capitalize()
            )
            if key == "id":
                message = "letters, digits, - and _ (up to 64)"
            else:
                message = item["msg"].removeprefix("Value error, ")
                message = message[:1].lower() + message[1:]
            found.append((key, f"{label}: {message}"))
        return found
    return []


def check_node(node: dict, *, refs: References, others: list[dict]) -> list[tuple[str, str]]:
    """(key, "Field: message") for everything wrong with the node: the checks below say
    it in the marketer's words; whatever the language refuses besides (journeys.nodes)
    follows, so `not errors` means the node validates and its references exist."""
    errors: list[tuple[str, str]] = []
    kind = node.get("type")
    if kind == "trigger":
        _check_trigger(node, errors, refs)
    elif kind == "wait":
        _check_wait(node, errors, refs)
    elif kind == "condition":
        _check_condition(node, errors, refs, others)
    elif kind == "split":
        _check_split(node, errors)
    elif kind == "action":
        _check_action(node, errors, refs)
    elif kind == "fallback":
        _check_fallback(node, errors, refs)
    elif kind == "goal":
        _check_goal(node, errors)
    covered = {key for key, _ in errors}

    def is_covered(key: str) -> bool:
        return any(
            key == done or key.startswith(done + ".") or done.startswith(key + ".")
            for done in covered
        )

    for key, message in _pydantic_errors(node):
        if not is_covered(key):
            errors.append((key, message))
            covered.add(key)
    return errors


def message_nodes(others: list[dict]) -> list[dict]:
    """The other nodes an engagement condition may ask about (they send messages)."""
    return [other for other in others if other.get("type") in ("action", "fallback")]


# --------------------------------------------------------------------------- showing


def field_errors(errors: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Messages by key, dots made underscores for the templates ("chain_1_template_id")."""
    shown: dict[str, list[str]] = {}
    for key, message in errors:
        shown.setdefault(key.replace(".", "_"), []).append(message.split(": ", 1)[-1])
    return shown


def filter_rows(filters: Any, errors: dict[str, list[str]], prefix: str) -> list[dict]:
    rows = []
    for index, row in enumerate(filters if isinstance(filters, list) else []):
        row = row if isinstance(row, dict) else {}
        base = f"{prefix}filters_{index}"
        rows.append(
            {
                "index": index,
                "property": row.get("property", ""),
                "op": row.get("op", "eq"),
                "value": format_value(row.get("value")),
                "takes_value": row.get("op") not in ("exists", "not_exists"),
                "errors": errors.get(f"{base}_property", []) + errors.get(f"{base}_value", []),
            }
        )
    return rows


def cron_hint(cron: str) -> str:
    """ "0 9 * * 1" -> "At 09:00 on Monday" (cronsim's own words), "" when invalid."""
    from cronsim import CronSim, CronSimError

    if not cron or len(cron.split()) != 5:
        return ""
    try:
        return CronSim(cron, datetime(2000, 1, 1)).explain()
    except (CronSimError, Exception):  # explain() can refuse rare expressions
        return ""


def variant_rows(node: dict, errors: dict[str, list[str]]) -> list[dict]:
    variants = [v for v in node.get("variants") or [] if isinstance(v, dict)]
    weights = [v.get("weight") if isinstance(v.get("weight"), int) else 0 for v in variants]
    total = sum(weights)
    holdout = node.get("holdout_percent")
    holdout = holdout if isinstance(holdout, int | float) and 0 <= holdout <= 50 else 0
    rows = []
    for index, (variant, weight) in enumerate(zip(variants, weights, strict=True)):
        share = weight / total * (100 - holdout) if total > 0 else 0
        rows.append(
            {
                "index": index,
                "key": variant.get("key", ""),
                "name": variant.get("name", ""),
                "weight": "" if variant.get("weight") is None else variant.get("weight"),
                "share": f"{share:.1f}".removesuffix(".0"),
                "errors": errors.get(f"variants_{index}_key", [])
                + errors.get(f"variants_{index}_weight", []),
            }
        )
    return rows


def wait_until_time_fields(wait: dict) -> dict[str, Any]:
    at = wait.get("at")
    text = ""
    if isinstance(at, str):
        try:
            text = time.fromisoformat(at).strftime("%H:%M")
        except ValueError:
            text = ""
    days = wait.get("weekdays") if isinstance(wait.get("weekdays"), list) else []
    return {
        "at": text,
        "weekdays": [
            {"value": index, "label": label, "checked": index in days}
            for index, label in enumerate(WEEKDAYS)
        ],
    }
