"""The numbers of the analytics dashboards (overview, journey report, channel report),
read from the message counters (analytics.MessageCounter, one row per day / journey /
node / variant / channel / kind) and the conversions, never from the message table:
a page costs a few grouped queries over at most a few thousand counter rows, whatever
the number of messages.

Rates are per message sent (opened / sent, clicked / sent, ...): every channel records
"sent", while delivery receipts and opens exist only where the channel reports them.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate

from analytics.charts import Chart, Series
from analytics.filters import DateRange
from analytics.models import MessageCounter
from analytics.selectors import workspace_conversions
from analytics.stats import ratio
from engagement_site.workspaces.models import Workspace

# The kinds the dashboards show, in funnel order.
KINDS = (
    "sent",
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "failed",
    "suppressed",
    "unsubscribed",
    "complained",
)


def _counters(
    *,
    workspace: Workspace,
    date_range: DateRange,
    channel: str | None = None,
    journey_id: int | None = None,
):
    rows = MessageCounter.objects.filter(
        workspace=workspace, day__gte=date_range.start, day__lte=date_range.end, kind__in=KINDS
    )
    if channel:
        rows = rows.filter(channel=channel)
    if journey_id:
        rows = rows.filter(journey_id=journey_id)
    return rows


def _conversions(*, workspace: Workspace, date_range: DateRange, journey_id: int | None = None):
    return workspace_conversions(
        workspace=workspace,
        starts_at=date_range.starts_at,
        ends_before=date_range.ends_before,
        journey_id=journey_id,
    )


def rates(totals: dict, *, delivery_sent: int | None = None) -> dict:
    """Rates of a {kind: count} dict (plus "conversions" when present), per sent. The
    delivery rate is over `delivery_sent`, the messages sent through channels that
    reported a delivery in the range (in-app, push and webhooks report none), and
    None when no channel did."""
    sent = totals.get("sent", 0)
    if delivery_sent is None:
        delivery_sent = sent if totals.get("delivered") else 0
    return {
        "delivery_rate": ratio(totals.get("delivered", 0), delivery_sent),
        "open_rate": ratio(totals.get("opened", 0), sent),
        "click_rate": ratio(totals.get("clicked", 0), sent),
        "bounce_rate": ratio(totals.get("bounced", 0), sent),
        "unsubscribe_rate": ratio(totals.get("unsubscribed", 0), sent),
        "conversion_rate": ratio(totals.get("conversions", 0), sent),
    }


def _delivery_sent(by_channel_kind: dict[tuple[str, str], int]) -> int:
    """The messages sent through the channels that reported a delivery, of counts by
    (channel, kind)."""
    channels = {channel for channel, _ in by_channel_kind}
    return sum(
        by_channel_kind.get((channel, "sent"), 0)
        for channel in channels
        if by_channel_kind.get((channel, "delivered"))
    )


def _label(day) -> str:
    return day.isoformat()


def overview(
    *,
    workspace: Workspace,
    date_range: DateRange,
    channel: str | None = None,
    journey_id: int | None = None,
) -> dict:
    """Totals, rates, and per-day charts for the workspace (optionally one channel or
    one journey): messages by channel, engagement, conversions and revenue."""
    counters = _counters(
        workspace=workspace, date_range=date_range, channel=channel, journey_id=journey_id
    )
    by_day_channel_kind = counters.values_list("day", "channel", "kind").annotate(n=Sum("count"))
    totals: dict[str, int] = defaultdict(int)
    sent_by_day: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    kinds_by_day: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    by_channel_kind: dict[tuple[str, str], int] = defaultdict(int)
    for day, row_channel, kind, count in by_day_channel_kind:
        totals[kind] += count
        by_channel_kind[row_channel, kind] += count
        kinds_by_day[kind][day] += count
        if kind == "sent":
            sent_by_day[row_channel][day] += count
    conversions = _conversions(workspace=workspace, date_range=date_range, journey_id=journey_id)
    if channel:
        conversions = conversions.filter(last_touch__channel=channel)
    per_day = dict(
        (row["day"], row)
        for row in conversions.annotate(day=TruncDate("at", tzinfo=date_range.zone))
        .values("day")
        .annotate(conversions=Count("id"), revenue=Sum("revenue"))
    )
    totals["conversions"] = sum(row["conversions"] for row in per_day.values())
    revenue = sum((row["revenue"] for row in per_day.values()), Decimal(0))
    days = date_range.days
    labels = [_label(day) for day in days]
    channels = sorted(sent_by_day)
    charts = [
        Chart(
            key="messages",
            title="Messages sent by channel",
            kind="stacked",
            labels=labels,
            x_label="Day",
            series=[
                Series(name, [sent_by_day[name].get(day, 0) for day in days]) for name in channels
            ]
            or [Series("sent", [0] * len(days))],
        ),
        Chart(
            key="engagement",
            title="Engagement",
            description="Messages sent, opened and clicked each day.",
            kind="line",
            labels=labels,
            x_label="Day",
            series=[
                Series(kind, [kinds_by_day[kind].get(day, 0) for day in days])
                for kind in ("sent", "opened", "clicked", "unsubscribed")
            ],
        ),
        Chart(
            key="conversions",
            title="Conversions and revenue",
            description="Journey goals reached each day, with the revenue their events carried.",
            kind="bar",
            labels=labels,
            x_label="Day",
            series=[
                Series("conversions", [per_day.get(day, {}).get("conversions", 0) for day in days]),
                Series(
                    "revenue",
                    [per_day.get(day, {}).get("revenue") or Decimal(0) for day in days],
                    axis="right",
                ),
            ],
        ),
    ]
    return {
        "totals": {
            **{kind: totals.get(kind, 0) for kind in KINDS},
            "conversions": totals["conversions"],
        },
        "revenue": revenue,
        "rates": rates(totals, delivery_sent=_delivery_sent(by_channel_kind)),
        "charts": charts,
    }


def by_channel(*, workspace: Workspace, date_range: DateRange, journey_id: int | None = None):
    """[{channel, <kind>: count, conversions, revenue, rates}] for the range, busiest
    channel first. Conversions are credited to the last touch's channel."""
    counts: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    for row_channel, kind, count in (
        _counters(workspace=workspace, date_range=date_range, journey_id=journey_id)
        .values_list("channel", "kind")
        .annotate(n=Sum("count"))
    ):
        counts[row_channel][kind] += count
    credited = {
        row["last_touch__channel"]: row
        for row in _conversions(workspace=workspace, date_range=date_range, journey_id=journey_id)
        .filter(last_touch__isnull=False)
        .values("last_touch__channel")
        .annotate(conversions=Count("id"), revenue=Sum("revenue"))
    }
    rows = []
    for name in sorted(set(counts) | set(credited)):
        totals = {kind: counts[name].get(kind, 0) for kind in KINDS}
        totals["conversions"] = credited.get(name, {}).get("conversions", 0)
        rows.append(
            {
                "channel": name,
                **totals,
                "revenue": credited.get(name, {}).get("revenue") or Decimal(0),
                "rates": rates(totals),
            }
        )
    rows.sort(key=lambda row: (-row["sent"], row["channel"]))
    return rows


def by_journey(*, workspace: Workspace, date_range: DateRange, channel: str | None = None):
    """{journey id: {<kind>: count, conversions, revenue, rates}} for the range (0:
    messages outside journeys); with a channel, its messages and the conversions whose
    last touch it was."""
    return {
        row["journey"]: row
        for row in metric_rows(
            workspace=workspace, date_range=date_range, group_by=["journey"], channel=channel
        )
    }


def channel_report(*, workspace: Workspace, date_range: DateRange, costs: dict) -> dict:
    """Delivery per channel: the table rows (with cost per message and in all when the
    workspace configured a cost), and per-day delivery and bounce rates."""
    rows = by_channel(workspace=workspace, date_range=date_range)
    for row in rows:
        cost = costs.get(row["channel"])
        row["cost_per_message"] = cost.normalize() if cost is not None else None
        row["cost"] = cost * row["sent"] if cost is not None else None
        row["cost_per_conversion"] = (
            row["cost"] / row["conversions"] if cost is not None and row["conversions"] else None
        )
    daily: dict[str, dict] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    for day, row_channel, kind, count in (
        _counters(workspace=workspace, date_range=date_range)
        .filter(kind__in=("sent", "delivered", "bounced", "failed"))
        .values_list("day", "channel", "kind")
        .annotate(n=Sum("count"))
    ):
        daily[row_channel][kind][day] += count
    days = date_range.days
    labels = [_label(day) for day in days]
    names = [row["channel"] for row in rows if row["sent"]]

    def per_day(kind: str, channels: list[str]) -> list[Series]:
        return [
            Series(
                name,
                [
                    ratio(daily[name][kind].get(day, 0), daily[name]["sent"].get(day, 0))
                    for day in days
                ],
            )
            for name in channels
        ] or [Series(kind, [None] * len(days))]

    reporting = [name for name in names if daily[name]["delivered"]]
    failing = [
        (name, kind) for name in names for kind in ("bounced", "failed") if daily[name][kind]
    ]

    charts = [
        Chart(
            key="delivery-rate",
            title="Delivery rate by channel",
            description="Delivered / sent each day (channels that report delivery).",
            kind="line",
            unit="%",
            labels=labels,
            x_label="Day",
            series=per_day("delivered", reporting),
        ),
        Chart(
            key="bounce-rate",
            title="Bounce rate by channel",
            description="Bounced / sent each day.",
            kind="line",
            unit="%",
            labels=labels,
            x_label="Day",
            series=per_day("bounced", names),
        ),
        Chart(
            key="failures",
            title="Bounces and failures",
            kind="stacked",
            labels=labels,
            x_label="Day",
            series=[
                Series(f"{name} {kind}", [daily[name][kind].get(day, 0) for day in days])
                for name, kind in failing
            ]
            or [Series("bounced", [0] * len(days))],
        ),
    ]
    return {"rows": rows, "charts": charts}


def journey_nodes_in_order(definition) -> list:
    """The version's nodes from the trigger outwards (breadth first, ports in their
    order), then any the walk did not reach."""
    from journeys.nodes import TriggerNode

    by_id = {node.id: node for node in definition.nodes}
    targets: dict[str, list[str]] = defaultdict(list)
    for edge in definition.edges:
        targets[edge.source].append(edge.target)
    queue = [node.id for node in definition.nodes if isinstance(node, TriggerNode)]
    seen: list[str] = []
    while queue:
        node_id = queue.pop(0)
        if node_id in seen or node_id not in by_id:
            continue
        seen.append(node_id)
        queue.extend(targets[node_id])
    seen += [node.id for node in definition.nodes if node.id not in seen]
    return [by_id[node_id] for node_id in seen]


def journey_report(*, workspace: Workspace, journey, date_range: DateRange) -> dict:
    """The journey's funnel by node (all time, the live version's nodes, the same
    numbers the builder shows live), its experiments, conversions credited by first
    and last touch, and per-day messages and conversions over the range."""
    from analytics.experiments import split_reports
    from analytics.selectors import conversion_attribution
    from journeys import editor
    from journeys.editor_views import summary_names
    from journeys.executor import GOAL_NODE, version_definition
    from journeys.inspector_forms import NODE_TITLES
    from journeys.live import journey_metrics

    live = journey_metrics(journey=journey)
    funnel = []
    if journey.live_version_id is not None:
        definition = version_definition(journey.live_version)
        names = summary_names(workspace=workspace)
        raw = {node.get("id"): node for node in journey.live_version.definition.get("nodes", [])}
        ordered = journey_nodes_in_order(definition)
        first = None
        for node in ordered:
            numbers = live["nodes"].get(node.id, {})
            entered = numbers.get("entered", 0)
            if first is None:
                first = entered
            funnel.append(
                {
                    "id": node.id,
                    "type": node.type,
                    "title": NODE_TITLES.get(node.type, node.type),
                    "summary": editor.node_summary(raw.get(node.id, {}), names=names),
                    "share": ratio(entered, first),
                    **{key: numbers.get(key, 0) for key in (
                        "entered", "waiting", "sent", "delivered", "opened", "clicked",
                        "failed", "converted",
                    )},
                }
            )  # fmt: skip
        goal = definition.settings.goal
        if goal is not None:  # the journey's own goal, reached from any step
            numbers = live["nodes"].get(GOAL_NODE, {})
            funnel.append(
                {
                    **dict.fromkeys(
                        ("waiting", "sent", "delivered", "opened", "clicked", "failed"), 0
                    ),
                    "id": GOAL_NODE,
                    "type": "goal",
                    "title": "Journey goal",
                    "summary": f"{goal.event} within {editor.duration_text(goal.window_seconds)}"
                    " of entry, from any step",
                    "entered": numbers.get("converted", 0),
                    "converted": numbers.get("converted", 0),
                    "share": ratio(numbers.get("converted", 0), first),
                }
            )
    totals = overview(workspace=workspace, date_range=date_range, journey_id=journey.pk)
    attribution = conversion_attribution(workspace=workspace, journey_id=journey.pk)
    titles = {row["id"]: row["summary"] for row in funnel}
    credit = []
    for key in sorted(set(attribution["first_touch"]) | set(attribution["last_touch"])):
        node_id, channel = key
        first_touch = attribution["first_touch"].get(key, {})
        last_touch = attribution["last_touch"].get(key, {})
        credit.append(
            {
                "node": node_id,
                "label": titles.get(node_id, node_id) if node_id else "No message in the window",
                "channel": channel,
                "first_conversions": first_touch.get("conversions", 0),
                "first_revenue": first_touch.get("revenue") or Decimal(0),
                "last_conversions": last_touch.get("conversions", 0),
                "last_revenue": last_touch.get("revenue") or Decimal(0),
            }
        )
    funnel_chart = Chart(
        key="funnel",
        title="Funnel by step",
        description="People who reached each step since the journey started.",
        kind="hbar",
        labels=[row["summary"] for row in funnel],
        x_label="Step",
        series=[Series("entered", [row["entered"] for row in funnel])],
    )
    charts = [c for c in totals["charts"] if c.key != "messages"]
    experiments = split_reports(workspace=workspace, journey=journey)
    winners = journey.split_winners or {}
    for experiment in experiments:
        for variant in experiment["variants"]:
            variant["winner"] = winners.get(experiment["node"]) == variant["key"]
    return {
        "live": live,
        "funnel": funnel,
        "funnel_chart": funnel_chart,
        "experiments": experiments,
        "attribution": {
            "conversions": attribution["conversions"],
            "revenue": attribution["revenue"],
            "rows": credit,
        },
        "range": totals,
        "charts": charts,
    }


GROUPINGS = ("day", "journey", "version", "node", "variant", "channel")
_COUNTER_FIELDS = {
    "day": "day",
    "journey": "journey_id",
    "version": "journey_version_id",
    "node": "node_id",
    "variant": "variant",
    "channel": "channel",
}
# A conversion is credited to its last touch (none: the journey itself).
_CONVERSION_FIELDS = {
    "journey": "journey_id",
    "version": "journey_version_id",
    "node": "last_touch__node_id",
    "variant": "last_touch__variant",
    "channel": "last_touch__channel",
}


def metric_rows(
    *,
    workspace: Workspace,
    date_range: DateRange,
    group_by: list[str],
    channel: str | None = None,
    journey_id: int | None = None,
) -> list[dict]:
    """Counts of every kind plus conversions and revenue (credited to the last touch),
    grouped by the given dimensions (GROUPINGS), in dimension order."""
    counter_fields = [_COUNTER_FIELDS[name] for name in group_by]
    rows: dict[tuple, dict] = {}
    # Per row, counts by (channel, kind): the delivery rate is over the channels that
    # reported deliveries.
    by_channel_kind: dict[tuple, dict] = defaultdict(lambda: defaultdict(int))

    def row(key: tuple) -> dict:
        if key not in rows:
            rows[key] = {
                **dict(zip(group_by, key, strict=True)),
                **dict.fromkeys((*KINDS, "conversions"), 0),
                "revenue": Decimal(0),
            }
        return rows[key]

    counters = _counters(
        workspace=workspace, date_range=date_range, channel=channel, journey_id=journey_id
    )
    for values in counters.values_list(*counter_fields, "channel", "kind").annotate(n=Sum("count")):
        *key, row_channel, kind, count = values
        row(tuple(key))[kind] += count
        by_channel_kind[tuple(key)][row_channel, kind] += count
    conversions = _conversions(workspace=workspace, date_range=date_range, journey_id=journey_id)
    if channel:
        conversions = conversions.filter(last_touch__channel=channel)
    conversion_fields = []
    for name in group_by:
        if name == "day":
            conversions = conversions.annotate(day=TruncDate("at", tzinfo=date_range.zone))
            conversion_fields.append("day")
        else:
            conversion_fields.append(_CONVERSION_FIELDS[name])
    for values in conversions.values_list(*conversion_fields).annotate(
        n=Count("id"), revenue=Sum("revenue")
    ):
        *key, count, revenue = values
        key = tuple("" if value is None and name in ("node", "variant", "channel") else value
                    for name, value in zip(group_by, key, strict=True))  # fmt: skip
        target = row(key)
        target["conversions"] += count
        target["revenue"] += revenue or 0
    for key, item in rows.items():
        item["rates"] = rates(item, delivery_sent=_delivery_sent(by_channel_kind[key]))
    return sorted(rows.values(), key=lambda item: tuple(str(item[name]) for name in group_by))
