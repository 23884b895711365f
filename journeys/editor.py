"""What the visual builder knows about nodes: the palette (what can be dragged, in
which group, with which starting settings), each node's output ports, and the
one-line summary a node shows on the canvas ("Wait 1 hour", "Email: Cart reminder").

A node on the canvas carries exactly the JSON of journeys.nodes (the definition
language); the palette's `node` is that JSON for a new node, before its id is given.
Starting settings may be incomplete (a message action without a template): the draft
stores them as they are and journeys.graph says what is missing.
"""

from __future__ import annotations

from typing import Any

from journeys import nodes as language

# (group key, title)
GROUPS = (
    ("triggers", "Triggers"),
    ("flow", "Flow"),
    ("actions", "Actions"),
    ("goals", "Goals"),
)

# key -> (group, title, icon, the new node's JSON without its id)
PALETTE: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "trigger_event": ("triggers", "Event happens", "bolt",
                      {"type": "trigger", "trigger": {"kind": "event", "event": ""}}),
    "trigger_segment": ("triggers", "Enters a segment", "segments",
                        {"type": "trigger", "trigger": {"kind": "segment", "segment_id": 0, "on": "entered"}}),
    "trigger_schedule": ("triggers", "On a schedule", "calendar",
                         {"type": "trigger", "trigger": {"kind": "schedule", "segment_id": 0, "cron": "0 9 * * 1", "time_zone": "UTC"}}),
    "trigger_api": ("triggers", "API call", "code", {"type": "trigger", "trigger": {"kind": "api"}}),
    "wait_duration": ("flow", "Wait", "clock", {"type": "wait", "wait": {"kind": "duration", "seconds": 3600}}),
    "wait_time": ("flow", "Wait until a time", "clock",
                  {"type": "wait", "wait": {"kind": "until_time", "at": "09:00:00", "weekdays": [], "fallback_time_zone": "UTC"}}),
    "wait_event": ("flow", "Wait for an event", "hourglass",
                   {"type": "wait", "wait": {"kind": "event", "event": "", "timeout_seconds": 86400}}),
    "condition": ("flow", "Condition", "branch",
                  {"type": "condition", "condition": {"kind": "rule", "rule": {}}}),
    "split": ("flow", "A/B split", "split",
              {"type": "split", "variants": [{"key": "a", "name": "A", "weight": 50}, {"key": "b", "name": "B", "weight": 50}], "holdout_percent": 0}),
    "email": ("actions", "Email", "mail", {"type": "action", "action": {"kind": "message", "channel": "email", "template_id": 0}}),
    "sms": ("actions", "SMS", "message", {"type": "action", "action": {"kind": "message", "channel": "sms", "template_id": 0}}),
    "push": ("actions", "Push", "bell", {"type": "action", "action": {"kind": "message", "channel": "push", "template_id": 0}}),
    "web_push": ("actions", "Web push", "bell", {"type": "action", "action": {"kind": "message", "channel": "web_push", "template_id": 0}}),
    "whatsapp": ("actions", "WhatsApp", "message", {"type": "action", "action": {"kind": "message", "channel": "whatsapp", "template_id": 0}}),
    "in_app": ("actions", "In-app card", "layout", {"type": "action", "action": {"kind": "message", "channel": "in_app", "template_id": 0}}),
    "webhook": ("actions", "Webhook", "code", {"type": "action", "action": {"kind": "webhook", "template_id": 0}}),
    "fallback": ("actions", "Fallback chain", "fallback",
                 {"type": "fallback", "chain": [{"channel": "push", "template_id": 0}, {"channel": "sms", "template_id": 0}], "not_engaged": "", "within_seconds": None}),
    "update_attribute": ("actions", "Update attribute", "edit",
                         {"type": "action", "action": {"kind": "update_attribute", "trait": "", "value": ""}}),
    "segment_change": ("actions", "Add to segment", "segments",
                       {"type": "action", "action": {"kind": "segment", "segment_id": 0, "op": "add"}}),
    "goal": ("goals", "Goal", "flag", {"type": "goal", "event": "", "filters": [], "window_seconds": 604800}),
    "exit": ("goals", "Exit", "exit", {"type": "exit"}),
}  # fmt: skip

CHANNEL_TITLES = {
    "email": "Email",
    "sms": "SMS",
    "push": "Push",
    "web_push": "Web push",
    "whatsapp": "WhatsApp",
    "in_app": "In-app",
    "webhook": "Webhook",
}


def palette() -> list[dict[str, Any]]:
    """The palette as the page's JSON: groups of {key, title, icon, node, summary,
    ports} (a new node's JSON, its summary and ports before the inspector sets it up)."""
    return [
        {
            "key": group,
            "title": title,
            "items": [
                {
                    "key": key,
                    "title": item_title,
                    "icon": icon,
                    "node": node,
                    "summary": node_summary(node),
                    "ports": ports(node),
                }
                for key, (item_group, item_title, icon, node) in PALETTE.items()
                if item_group == group
            ],
        }
        for group, title in GROUPS
    ]


def palette_key(node: dict) -> str:
    """Which palette item a node is (its look on the canvas)."""
    kind = node.get("type")
    if kind == "trigger":
        return f"trigger_{(node.get('trigger') or {}).get('kind', 'event')}"
    if kind == "wait":
        sub = (node.get("wait") or {}).get("kind", "duration")
        return {
            "duration": "wait_duration",
            "until_date": "wait_time",
            "until_time": "wait_time",
        }.get(sub, "wait_event")
    if kind == "action":
        action = node.get("action") or {}
        if action.get("kind") == "message":
            return action.get("channel", "email")
        return {"webhook": "webhook", "update_attribute": "update_attribute"}.get(
            action.get("kind"), "segment_change"
        )
    return kind if kind in PALETTE else "exit"


def ports(node: dict) -> list[str]:
    """The node's output ports, from its settings (a condition's yes / no, a split's
    variants and holdout, a wait-for-event's on_event / on_timeout)."""
    kind = node.get("type")
    if kind in ("goal", "exit"):
        return []
    if kind == "condition":
        return ["yes", "no"]
    if kind == "split":
        keys = [str(variant.get("key", "")) for variant in node.get("variants") or []]
        return [*keys, "holdout"] if node.get("holdout_percent") else keys
    if kind == "wait":
        wait = node.get("wait") or {}
        if wait.get("kind") in ("event", "segment"):
            return ["on_event", "on_timeout"] if wait.get("timeout_seconds") else ["on_event"]
    return ["next"]


def duration_text(seconds: int | None) -> str:
    """3600 -> "1 hour", 5400 -> "90 minutes", 172800 -> "2 days"."""
    if not seconds:
        return "no time"
    for size, unit in ((604800, "week"), (86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"


def node_summary(node: dict, *, names: dict[str, dict[int, str]] | None = None) -> str:
    """The node's settings in one line. `names` maps "templates" / "segments" to
    {id: name}, so the summary says which (journeys.editor_views reads them once)."""
    names = names or {}
    templates, segments = names.get("templates", {}), names.get("segments", {})
    kind = node.get("type")
    if kind == "trigger":
        trigger = node.get("trigger") or {}
        sub = trigger.get("kind")
        if sub == "event":
            return f"When {trigger.get('event') or '…'} happens"
        if sub == "segment":
            verb = "enters" if trigger.get("on", "entered") == "entered" else "leaves"
            return f"Someone {verb} {segments.get(trigger.get('segment_id'), 'a segment')}"
        if sub == "schedule":
            when = trigger.get("cron") or trigger.get("at") or "…"
            return f"{segments.get(trigger.get('segment_id'), 'A segment')} on {when}"
        return "Entered through the API"
    if kind == "wait":
        wait = node.get("wait") or {}
        sub = wait.get("kind")
        if sub == "duration":
            return f"Wait {duration_text(wait.get('seconds'))}"
        if sub == "until_time":
            return f"Wait until {str(wait.get('at', ''))[:5]}"
        if sub == "until_date":
            return f"Wait until {str(wait.get('at') or '…')[:16].replace('T', ' ')}"
        timeout = wait.get("timeout_seconds")
        target = (
            wait.get("event")
            if sub == "event"
            else segments.get(wait.get("segment_id"), "a segment")
        )
        tail = f", at most {duration_text(timeout)}" if timeout else ""
        return f"Wait for {target or '…'}{tail}"
    if kind == "condition":
        condition = node.get("condition") or {}
        if condition.get("kind") == "engagement":
            verb = {"delivered": "get", "opened": "open", "clicked": "click"}.get(
                condition.get("engagement", "opened"), "open"
            )
            return f"Did they {verb} {condition.get('node') or '…'}?"
        if condition.get("kind") == "event":
            return "Trigger event matches"
        return "Profile matches a rule" if condition.get("rule") else "Set a rule"
    if kind == "split":
        variants = node.get("variants") or []
        shares = " / ".join(str(v.get("weight", 0)) for v in variants)
        holdout = node.get("holdout_percent") or 0
        return f"{len(variants)} variants ({shares})" + (
            f", {holdout:g}% holdout" if holdout else ""
        )
    if kind == "action":
        action = node.get("action") or {}
        sub = action.get("kind")
        if sub == "message":
            title = CHANNEL_TITLES.get(action.get("channel"), "Message")
            return f"{title}: {templates.get(action.get('template_id'), 'choose a template')}"
        if sub == "webhook":
            return f"Webhook: {templates.get(action.get('template_id'), 'choose a template')}"
        if sub == "update_attribute":
            return f"Set {action.get('trait') or '…'}"
        verb = "Add to" if action.get("op", "add") == "add" else "Remove from"
        return f"{verb} {segments.get(action.get('segment_id'), 'a segment')}"
    if kind == "fallback":
        chain = node.get("chain") or []
        steps = " → ".join(CHANNEL_TITLES.get(step.get("channel"), "?") for step in chain)
        engaged = node.get("not_engaged")
        tail = (
            f", next if not {engaged} in {duration_text(node.get('within_seconds'))}"
            if engaged
            else ""
        )
        return f"{steps}{tail}"
    if kind == "goal":
        return (
            f"Goal: {node.get('event') or '…'} within {duration_text(node.get('window_seconds'))}"
        )
    return "Leave the journey"


def language_ports(node: dict) -> list[str] | None:
    """The ports journeys.nodes gives a node that validates (None when it does not):
    the builder's ports must agree with the engine's."""
    from pydantic import TypeAdapter, ValidationError

    try:
        parsed = TypeAdapter(language.Node).validate_python(node)
    except ValidationError:
        return None
    return list(language.output_ports(parsed))
