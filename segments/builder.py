"""The segment builder's model: a rule tree as the browser edits it.

The builder is a server-rendered form. Each node of the tree has a path ("r", "r-0",
"r-0-2": child indices from the root group) and its fields are named after it
("r-0-event", "r-0-f1-property"). Every request posts the whole form;
`draft_from_post` reads it back into a *draft*, `draft_apply` applies a structural
action (add / remove / move a rule, add / remove a filter), `draft_to_definition`
turns the draft into the rule language (segments.rules), and `draft_nodes` prepares
it for the templates. A draft is the definition with one difference: groups are
{"type": "group", "match": "all" | "any" | "none", "rules": [...]}, where "none" is
not(or(...)). The root is always a group.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from segments.rules import RULE_TYPES, VALUE_TIERS

LEAF_TYPES = (
    "event_count",
    "attribute",
    "sequence",
    "streak",
    "recency",
    "membership",
    "computed_trait",
)
LEAF_LABELS = {
    "event_count": "Did an event",
    "attribute": "Has a trait",
    "sequence": "Did one event, then another",
    "streak": "Did an event every day",
    "recency": "First / last time",
    "membership": "In another segment",
    "computed_trait": "Customer value",
}
MATCHES = {"all": "and", "any": "or"}
MAX_FILTERS_PER_STEP = 10
_PATH = re.compile(r"^r(-\d{1,3}){0,8}$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def blank_leaf(kind: str) -> dict[str, Any]:
    """A new rule of a kind, with sensible starting values."""
    if kind == "attribute":
        return {"type": "attribute", "trait": "", "op": "eq", "value": ""}
    if kind == "sequence":
        return {
            "type": "sequence",
            "first": {"event": "", "filters": []},
            "then": {"event": "", "filters": []},
            "within_hours": 24,
            "negate": False,
            "anchor": "any",
            "window": {"ever": True},
        }
    if kind == "streak":
        return {"type": "streak", "event": "", "filters": [], "days": 7}
    if kind == "recency":
        return {
            "type": "recency",
            "event": "",
            "filters": [],
            "which": "last",
            "op": "within_last_days",
            "value": 30,
        }
    if kind == "membership":
        return {"type": "membership", "segment_id": None, "in": True}
    if kind == "computed_trait":
        return blank_computed_trait("value_tier")
    return {
        "type": "event_count",
        "event": "",
        "filters": [],
        "op": "gte",
        "count": 1,
        "window": {"last_days": 30},
    }


def blank_computed_trait(trait: str) -> dict[str, Any]:
    """A customer value rule on a trait: "is champion" for the tier; a number is left
    for the marketer to type (thresholds differ too much between traits to guess)."""
    if trait == "value_tier":
        return {"type": "computed_trait", "trait": trait, "op": "eq", "value": "champion"}
    return {"type": "computed_trait", "trait": trait, "op": "gte", "value": None}


def blank_draft() -> dict[str, Any]:
    return {"type": "group", "match": "all", "rules": [blank_leaf("event_count")]}


# --------------------------------------------------------------------------- values


def parse_value(text: str, op: str) -> Any:
    """A typed value from a text box: numbers and true / false are typed, "quoted"
    text stays text, `in` takes a comma-separated list."""
    text = (text or "").strip()
    if op in ("exists", "not_exists"):
        return None
    if op == "in":
        return [parse_value(part, "eq") for part in text.split(",") if part.strip()]
    if op == "within_last_days":
        return int(text) if text.isdigit() else text
    if op in ("before", "after"):
        return text
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    if _NUMBER.match(text):
        return float(text) if "." in text else int(text)
    if text in ("true", "false"):
        return text == "true"
    return text


def format_value(value: Any) -> str:
    """The text box content for a value (the inverse of parse_value)."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(format_value(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if _NUMBER.match(value) or value in ("true", "false"):
            return f'"{value}"'
        return value[:10] if re.match(r"^\d{4}-\d{2}-\d{2}T00:00:00(\+00:00|Z)?$", value) else value
    if isinstance(value, float) and value.is_integer():
        return str(value)
    return str(value)


def _int(text: Any, default: Any = None) -> Any:
    text = str(text if text is not None else "").strip()
    if re.match(r"^-?\d+$", text):
        return int(text)
    return text if text else default


def _number(text: Any) -> Any:
    text = str(text if text is not None else "").strip()
    if _NUMBER.match(text):
        return float(text) if "." in text else int(text)
    return text or None


# --------------------------------------------------------------------------- form -> draft


def _filters_from_post(post: Mapping[str, str], prefix: str) -> list[dict[str, Any]]:
    filters = []
    for index in range(MAX_FILTERS_PER_STEP):
        key = f"{prefix}{index}-property"
        if key not in post:
            continue
        op = post.get(f"{prefix}{index}-op", "eq")
        item: dict[str, Any] = {"property": post.get(key, "").strip(), "op": op}
        if op not in ("exists", "not_exists"):
            item["value"] = parse_value(post.get(f"{prefix}{index}-value", ""), op)
        filters.append(item)
    return filters


def _window_from_post(post: Mapping[str, str], path: str) -> dict[str, Any]:
    kind = post.get(f"{path}-window", "ever")
    if kind == "last_days":
        return {"last_days": _int(post.get(f"{path}-window_days"), 30)}
    if kind == "between":
        return {"between": [post.get(f"{path}-from", ""), post.get(f"{path}-to", "")]}
    return {"ever": True}


def _posted_list(post: Mapping[str, Any], key: str) -> list[str]:
    """Every value posted under a key (checkboxes, multi-selects): a QueryDict's
    getlist, or a plain mapping's list or single value."""
    if hasattr(post, "getlist"):
        return [str(item) for item in post.getlist(key)]
    value = post.get(key)
    if value is None:
        return []
    return [str(item) for item in value] if isinstance(value, list | tuple) else [str(value)]


def _computed_trait_from_post(post: Mapping[str, Any], path: str) -> dict[str, Any]:
    """A customer value rule. `<path>-shown` (a hidden input) is the trait the op and
    value inputs were drawn for: when the marketer picks another trait, those inputs
    belong to the old one (a tier where a number goes), so the rule restarts from the
    new trait's blank.
    A value tier's value comes from a select (is / is not) or checkboxes (is one of),
    both named `<path>-value`, so switching between them keeps what was chosen."""
    shown = post.get(f"{path}-shown")
    if shown is None:
        # Just switched from another kind of condition: its fields (an attribute's
        # trait, an event count's op) are not ours.
        return blank_computed_trait("value_tier")
    trait = post.get(f"{path}-trait", "").strip()
    op = post.get(f"{path}-op", "eq" if trait == "value_tier" else "gte")
    if shown != trait:
        leaf = blank_computed_trait(trait)
        if trait != "value_tier" and shown != "value_tier" and op in dict(NUMBER_OPS):
            leaf["op"] = op
        return leaf
    values = [item.strip() for item in _posted_list(post, f"{path}-value") if item.strip()]
    if trait == "value_tier":
        value: Any = values if op == "in" else (values[0] if values else "")
    else:
        value = _number(values[0] if values else "")
    return {"type": "computed_trait", "trait": trait, "op": op, "value": value}


def _leaf_from_post(post: Mapping[str, str], path: str) -> dict[str, Any]:
    kind = post.get(f"{path}-type", "event_count")
    if kind not in LEAF_TYPES:
        kind = "event_count"
    get = lambda name, default="": post.get(f"{path}-{name}", default)  # noqa: E731
    if kind == "attribute":
        target, op = get("target", "trait"), get("op", "eq")
        leaf: dict[str, Any] = {"type": kind, "op": op}
        if target == "trait":
            leaf["trait"] = get("trait").strip()
        else:
            leaf["column"] = target
        if op not in ("exists", "not_exists"):
            leaf["value"] = parse_value(get("value"), op)
        return leaf
    if kind == "event_count":
        return {
            "type": kind,
            "event": get("event").strip(),
            "filters": _filters_from_post(post, f"{path}-f"),
            "op": get("op", "gte"),
            "count": _int(get("count"), 1),
            "window": _window_from_post(post, path),
        }
    if kind == "sequence":
        amount = _number(get("within"))
        hours = amount * 24 if isinstance(amount, int | float) and get("unit") == "days" else amount
        return {
            "type": kind,
            "first": {
                "event": get("event").strip(),
                "filters": _filters_from_post(post, f"{path}-f"),
            },
            "then": {
                "event": get("then").strip(),
                "filters": _filters_from_post(post, f"{path}-g"),
            },
            "within_hours": hours,
            "negate": get("negate") == "did_not",
            "anchor": "first" if get("anchor") == "first" else "any",
            "window": _window_from_post(post, path),
        }
    if kind == "streak":
        return {
            "type": kind,
            "event": get("event").strip(),
            "filters": _filters_from_post(post, f"{path}-f"),
            "days": _int(get("days"), 7),
            "since_signup": get("since_signup") == "on",
            "ongoing": get("ongoing") == "on",
        }
    if kind == "recency":
        op = get("op", "within_last_days")
        raw = get("days") if op.endswith("within_last_days") else get("date")
        return {
            "type": kind,
            "event": get("event").strip(),
            "filters": _filters_from_post(post, f"{path}-f"),
            "which": "first" if get("which") == "first" else "last",
            "op": op,
            "value": _int(raw) if op.endswith("within_last_days") else raw,
        }
    if kind == "computed_trait":
        return _computed_trait_from_post(post, path)
    return {
        "type": "membership",
        "segment_id": _int(get("segment")),
        "in": get("in", "in") != "not_in",
    }


def _node_from_post(post: Mapping[str, str], path: str, depth: int) -> dict[str, Any]:
    if post.get(f"{path}-kind") == "group" and depth < 8:
        children = []
        index = 0
        while f"{path}-{index}-kind" in post and index < 200:
            children.append(_node_from_post(post, f"{path}-{index}", depth + 1))
            index += 1
        match = post.get(f"{path}-match", "all")
        return {
            "type": "group",
            "match": match if match in ("all", "any", "none") else "all",
            "rules": children,
        }
    return _leaf_from_post(post, path)


def draft_from_post(post: Mapping[str, str]) -> dict[str, Any]:
    """The draft the builder form describes (not validated: see draft_to_definition)."""
    if post.get("r-kind") != "group":
        return blank_draft()
    return _node_from_post(post, "r", 1)


# --------------------------------------------------------------------------- actions


def _find(draft: dict[str, Any], path: str) -> tuple[dict | None, dict | None, int]:
    """(node, parent, index in parent) for a path; (None, None, -1) if it is not there."""
    if not _PATH.match(path or ""):
        return None, None, -1
    node, parent, index = draft, None, -1
    for part in path.split("-")[1:]:
        index = int(part)
        rules = node.get("rules") if node.get("type") == "group" else None
        if rules is None or index >= len(rules):
            return None, None, -1
        parent, node = node, rules[index]
    return node, parent, index


def draft_apply(draft: dict[str, Any], action: str) -> dict[str, Any]:
    """Apply one structural action, "<verb>:<path>[:<argument>]":
    add:<group>:<leaf type>, add_group:<group>, remove:<node>, up:<node>, down:<node>,
    add_filter:<leaf>[:then], remove_filter:<leaf>:<f|g><index>. Unknown or stale
    actions change nothing."""
    verb, _, rest = (action or "").partition(":")
    path, _, argument = rest.partition(":")
    node, parent, index = _find(draft, path)
    if node is None:
        return draft
    if verb == "add" and node.get("type") == "group" and argument in LEAF_TYPES:
        node["rules"].append(blank_leaf(argument))
    elif verb == "add_group" and node.get("type") == "group":
        node["rules"].append(
            {"type": "group", "match": "any", "rules": [blank_leaf("event_count")]}
        )
    elif verb == "remove" and parent is not None:
        del parent["rules"][index]
    elif verb == "up" and parent is not None and index > 0:
        rules = parent["rules"]
        rules[index - 1], rules[index] = rules[index], rules[index - 1]
    elif verb == "down" and parent is not None and index < len(parent["rules"]) - 1:
        rules = parent["rules"]
        rules[index + 1], rules[index] = rules[index], rules[index + 1]
    elif verb == "add_filter":
        step = node["then"] if argument == "then" and "then" in node else node.get("first", node)
        filters = step.setdefault("filters", [])
        if len(filters) < MAX_FILTERS_PER_STEP:
            filters.append({"property": "", "op": "eq", "value": ""})
    elif verb == "remove_filter" and argument[:1] in ("f", "g") and argument[1:].isdigit():
        step = node["then"] if argument[0] == "g" and "then" in node else node.get("first", node)
        position = int(argument[1:])
        if position < len(step.get("filters", [])):
            del step["filters"][position]
    return draft


# --------------------------------------------------------------------------- draft <-> definition


def _simplify(node: dict[str, Any]) -> dict[str, Any]:
    if node.get("type") != "group":
        return node
    children = [_simplify(child) for child in node["rules"]]
    match = node.get("match", "all")
    if match == "none":
        inner = children[0] if len(children) == 1 else {"type": "or", "rules": children}
        return {"type": "not", "rule": inner}
    if len(children) == 1:
        return children[0]
    return {"type": MATCHES.get(match, "and"), "rules": children}


def draft_to_definition(draft: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The rule-language definition of a draft, and a map from each definition path
    ("root", "rules[1].rule") to the draft path ("r", "r-1") it came from. Empty
    groups stay empty, so validation names them."""
    paths: dict[str, str] = {}

    def convert(node: dict[str, Any], draft_path: str, def_path: str) -> dict[str, Any]:
        paths[def_path] = draft_path
        if node.get("type") != "group":
            return node
        children = node["rules"]
        match = node.get("match", "all")

        def child_path(base: str, index: int) -> str:
            return f"rules[{index}]" if base == "root" else f"{base}.rules[{index}]"

        if match == "none":
            inner_base = "rule" if def_path == "root" else f"{def_path}.rule"
            if len(children) == 1:
                return {"type": "not", "rule": convert(children[0], f"{draft_path}-0", inner_base)}
            paths[inner_base] = draft_path
            return {
                "type": "not",
                "rule": {
                    "type": "or",
                    "rules": [
                        convert(child, f"{draft_path}-{i}", child_path(inner_base, i))
                        for i, child in enumerate(children)
                    ],
                },
            }
        if len(children) == 1:
            return convert(children[0], f"{draft_path}-0", def_path)
        return {
            "type": MATCHES.get(match, "and"),
            "rules": [
                convert(child, f"{draft_path}-{i}", child_path(def_path, i))
                for i, child in enumerate(children)
            ],
        }

    definition = convert(draft, "r", "root")
    return definition, paths


def draft_from_definition(definition: Any) -> dict[str, Any]:
    """The draft of a stored definition (the root becomes a group)."""

    def convert(node: Any) -> dict[str, Any]:
        if not isinstance(node, dict):
            return blank_leaf("event_count")
        kind = node.get("type")
        if kind in ("and", "or"):
            return {
                "type": "group",
                "match": "all" if kind == "and" else "any",
                "rules": [convert(child) for child in node.get("rules") or []],
            }
        if kind == "not":
            inner = node.get("rule")
            if isinstance(inner, dict) and inner.get("type") == "or":
                children = [convert(child) for child in inner.get("rules") or []]
            else:
                children = [convert(inner)]
            return {"type": "group", "match": "none", "rules": children}
        if kind not in RULE_TYPES:
            return blank_leaf("event_count")
        return dict(node)

    draft = convert(definition) if definition else blank_draft()
    if draft.get("type") != "group":
        draft = {"type": "group", "match": "all", "rules": [draft]}
    return draft


def error_draft_path(message: str, paths: dict[str, str]) -> str:
    """The draft path a RuleError message is about (its longest known prefix)."""
    where = message.split(" ", 1)[0].rstrip(":")
    while where:
        if where in paths:
            return paths[where]
        where = where.rpartition(".")[0] if "." in where else ("root" if where != "root" else "")
    return "r"


# --------------------------------------------------------------------------- templates


SEGMENT_TEMPLATES: dict[str, dict[str, Any]] = {
    "daily_streak": {
        "name": "Logged in every day since signup for 10 days",
        "description": "Logged in on each of their first 10 local days, starting on signup day.",
        "definition": {"type": "streak", "event": "logged_in", "days": 10, "since_signup": True},
    },
    "repeat_buyer": {
        "name": "Bought again within a week of their first purchase",
        "description": "A second order_completed within 7 days after the first one.",
        "definition": {
            "type": "sequence",
            "first": {"event": "order_completed"},
            "then": {"event": "order_completed"},
            "within_hours": 168,
            "anchor": "first",
        },
    },
    "champions": {
        "name": "Champions",
        "description": "Value tier champion: a high lifetime value and highly engaged.",
        "definition": {
            "type": "computed_trait",
            "trait": "value_tier",
            "op": "eq",
            "value": "champion",
        },
    },
    "at_risk": {
        "name": "At risk customers",
        "description": "Value tier at risk: no touch for the at-risk days, not yet lost.",
        "definition": {
            "type": "computed_trait",
            "trait": "value_tier",
            "op": "eq",
            "value": "at_risk",
        },
    },
    "likely_to_churn": {
        "name": "Likely to churn",
        "description": "Churn risk 0.7 or more: silent for about 1.2 of their usual gaps or longer.",
        "definition": {"type": "computed_trait", "trait": "churn_risk", "op": "gte", "value": 0.7},
    },
    "lapsed": {
        "name": "Lapsed buyers",
        "description": "Ordered before, but not in the last 30 days.",
        "definition": {
            "type": "recency",
            "event": "order_completed",
            "which": "last",
            "op": "not_within_last_days",
            "value": 30,
        },
    },
}


# --------------------------------------------------------------------------- choices

COUNT_OPS = (
    ("gte", "at least"),
    ("gt", "more than"),
    ("eq", "exactly"),
    ("lte", "at most"),
    ("lt", "fewer than"),
)
FILTER_OPS = (
    ("eq", "is"),
    ("ne", "is not"),
    ("gt", ">"),
    ("gte", "≥"),
    ("lt", "<"),
    ("lte", "≤"),
    ("contains", "contains"),
    ("in", "is one of"),
    ("exists", "is set"),
    ("not_exists", "is not set"),
    ("before", "is before"),
    ("after", "is after"),
    ("within_last_days", "is within the last"),
)
TIME_OPS = (
    ("within_last_days", "within the last"),
    ("before", "before"),
    ("after", "after"),
    ("exists", "is set"),
    ("not_exists", "is not set"),
)
RECENCY_OPS = (
    ("within_last_days", "in the last"),
    ("not_within_last_days", "more than"),
    ("before", "before"),
    ("after", "after"),
)
COMPUTED_TRAITS = (
    ("value_tier", "Value tier"),
    ("ltv", "Lifetime value"),
    ("engagement_score", "Engagement score"),
    ("churn_risk", "Churn risk"),
)
NUMBER_OPS = (
    ("gte", "is at least"),
    ("gt", "is above"),
    ("lte", "is at most"),
    ("lt", "is below"),
    ("eq", "is exactly"),
    ("ne", "is not"),
)
TIER_OPS = (
    ("eq", "is"),
    ("ne", "is not"),
    ("in", "is one of"),
)
TIER_LABELS = {
    "champion": "Champion",
    "loyal": "Loyal",
    "potential": "Potential",
    "at_risk": "At risk",
    "lost": "Lost",
}
VALUE_TIER_CHOICES = tuple((tier, TIER_LABELS[tier]) for tier in VALUE_TIERS)
# What each number means, shown beside its input (docs/analytics.md, "Customer value").
COMPUTED_TRAIT_HINTS = {
    "ltv": "in the unit of order revenue",
    "engagement_score": "from 0 to 100",
    "churn_risk": "from 0 to 1",
}
ATTRIBUTE_TARGETS = (
    ("trait", "trait"),
    ("email", "email"),
    ("phone", "phone"),
    ("time_zone", "time zone"),
    ("locale", "locale"),
    ("first_seen", "first seen"),
    ("last_seen", "last seen"),
)
CHOICES = {
    "count_ops": COUNT_OPS,
    "filter_ops": FILTER_OPS,
    "time_ops": TIME_OPS,
    "recency_ops": RECENCY_OPS,
    "attribute_targets": ATTRIBUTE_TARGETS,
    "computed_traits": COMPUTED_TRAITS,
    "number_ops": NUMBER_OPS,
    "tier_ops": TIER_OPS,
    "value_tiers": VALUE_TIER_CHOICES,
}
