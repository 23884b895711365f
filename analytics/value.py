"""Customer value: per profile LTV, engagement score, value tier and churn risk,
computed in bulk by one SQL statement per workspace (docs/analytics.md, "Customer
value", has every formula), and the value report built from them.

Writes: `value_settings_update`, `customer_value_compute` (the statement),
`customer_value_recompute` (the statement, then the segments that read computed
traits). Reads: `value_settings_get`, `value_report`, `profile_value_get`. The
scheduler duty queues one job per workspace a day."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.utils import timezone

from analytics.models import CustomerValue, CustomerValueSettings, ValueTier
from engagement_site.workspaces.models import Workspace
from engagement_site.workspaces.services import AuditContext, audit_record

logger = logging.getLogger(__name__)

TOUCHPOINTS = ("email", "web", "mobile", "social", "support", "purchase", "review")
TIER_ORDER = (
    ValueTier.CHAMPION,
    ValueTier.LOYAL,
    ValueTier.POTENTIAL,
    ValueTier.AT_RISK,
    ValueTier.LOST,
)
COMPUTED_TRAITS = ("ltv", "engagement_score", "value_tier", "churn_risk")
# LTV histogram: a bucket is [low, high); 0 on its own ("no revenue"), the last open.
LTV_BUCKET_EDGES = (0, 100, 250, 500, 1000, 2500, 5000)
TOP_CUSTOMERS = 10
# A channel's click rate for a tier is shown below this many sent messages, but not
# recommended.
MIN_CHANNEL_SAMPLE = 30
RECOMPUTE_EVERY = timedelta(days=1)
# Each tier's play: the catalog journey template (journeys/catalog.py) and why.
TIER_PLAYS = {
    ValueTier.CHAMPION: (
        "post_purchase_review",
        "Your best customers: ask for reviews after each order and keep them close.",
    ),
    ValueTier.LOYAL: (
        "abandoned_cart",
        "They buy or engage often: recover the carts they leave to grow their value.",
    ),
    ValueTier.POTENTIAL: (
        "welcome_series",
        "Recently engaged but not yet valuable: onboard them towards a (next) order.",
    ),
    ValueTier.AT_RISK: (
        "at_risk_reengagement",
        "Quiet for a while: check in before they are lost.",
    ),
    ValueTier.LOST: (
        "win_back",
        "Gone for a long time: a win-back offer is the last call.",
    ),
}


# --------------------------------------------------------------------------- settings


def value_settings_get(*, workspace: Workspace) -> CustomerValueSettings:
    """The workspace's settings, created with the defaults on first use."""
    found, _ = CustomerValueSettings.objects.get_or_create(workspace=workspace)
    return found


SETTINGS_FIELDS = (
    "discount_rate",
    "lifespan_years",
    "revenue_events",
    "revenue_properties",
    "touchpoint_events",
    "touchpoint_weights",
    "engagement_window_days",
    "high_ltv",
    "medium_ltv",
    "high_engagement",
    "at_risk_days",
    "lost_days",
)


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def value_settings_update(
    *, workspace: Workspace, values: dict[str, Any], context: AuditContext
) -> CustomerValueSettings:
    """Store validated settings (analytics.forms.ValueSettingsForm's cleaned data: every
    field of SETTINGS_FIELDS) and audit the change with before / after. The values take
    effect at the next recompute."""
    with transaction.atomic():
        current = value_settings_get(workspace=workspace)
        current = CustomerValueSettings.objects.select_for_update().get(pk=current.pk)
        before = {name: _plain(getattr(current, name)) for name in SETTINGS_FIELDS}
        for name in SETTINGS_FIELDS:
            setattr(current, name, values[name])
        current.save(update_fields=[*SETTINGS_FIELDS, "updated_at"])
        current.refresh_from_db()
        after = {name: _plain(getattr(current, name)) for name in SETTINGS_FIELDS}
        changes = {
            name: {"before": before[name], "after": after[name]}
            for name in SETTINGS_FIELDS
            if before[name] != after[name]
        }
        audit_record(
            context=context,
            action="value.settings",
            workspace=workspace,
            target=current,
            changes=changes,
        )
    return current


# --------------------------------------------------------------------------- compute


def annuity_factor(*, discount_rate: float, lifespan_years: float) -> float:
    """Present value of 1 a year for `lifespan_years` years at `discount_rate`, paid at
    each year's end: (1 - (1 + d)^-L) / d, or L when d is 0."""
    if discount_rate == 0:
        return lifespan_years
    return (1 - (1 + discount_rate) ** -lifespan_years) / discount_rate


# An amount is a number, or a string that reads as one, below a billion: a larger one
# (a typo, a test, a hostile client) is ignored rather than overflowing the sums.
_NUMBER = (
    "(SELECT CASE WHEN abs(amount) < 1e9 THEN amount END FROM (SELECT "
    "CASE jsonb_typeof({value}) WHEN 'number' THEN ({value} #>> '{{}}')::numeric "
    "WHEN 'string' THEN CASE WHEN btrim({value} #>> '{{}}') ~ '^-?[0-9]{{1,30}}(\\.[0-9]{{1,30}})?$' "
    "THEN btrim({value} #>> '{{}}')::numeric END END AS amount) AS parsed)"
)
# The stored columns hold up to 12 digits before the point.
_MONEY_CAP = "999999999999.99"

_COMPUTE = """
WITH revenue AS (
    SELECT e.profile_id, count(*) AS orders, COALESCE(sum({amount}), 0) AS revenue,
           min(e.timestamp) AS first_order_at
      FROM segments_event e
     WHERE e.workspace_id = %(workspace)s AND e.type = 'track'
       AND e.name = ANY(%(revenue_events)s::text[]) AND e.timestamp <= %(now)s
     GROUP BY e.profile_id
), touches AS (
    SELECT e.profile_id, {touchpoint} AS touchpoint, e.timestamp AS at
      FROM segments_event e
     WHERE e.workspace_id = %(workspace)s AND e.timestamp <= %(now)s
       AND (e.type IN ('page', 'screen')
            OR (e.type = 'track' AND e.name = ANY(%(touch_names)s::text[])))
    UNION ALL
    SELECT m.profile_id, 'email', me.at
      FROM delivery_messageevent me JOIN delivery_message m ON m.id = me.message_id
     WHERE me.workspace_id = %(workspace)s AND me.kind IN ('opened', 'clicked')
       AND m.channel = 'email' AND me.at <= %(now)s
), activity AS (
    SELECT profile_id, max(at) AS last_at, min(at) AS first_at,
           count(DISTINCT (at AT TIME ZONE 'UTC')::date) AS active_days
      FROM touches GROUP BY profile_id
), counts AS (
    SELECT profile_id, touchpoint, count(*) AS n
      FROM touches WHERE at > %(window_start)s GROUP BY profile_id, touchpoint
), caps AS (
    SELECT touchpoint, percentile_disc(0.95) WITHIN GROUP (ORDER BY n) AS cap
      FROM counts GROUP BY touchpoint
), weights AS (
    SELECT * FROM unnest(%(touchpoints)s::text[], %(weights)s::float8[]) AS w(touchpoint, weight)
), total AS (
    SELECT sum(w.weight) AS weight FROM caps JOIN weights w USING (touchpoint) WHERE w.weight > 0
), engagement AS (
    SELECT c.profile_id,
           sum(w.weight * least(1.0, ln(1 + c.n) / ln(1 + caps.cap))) AS weighted
      FROM counts c JOIN caps USING (touchpoint) JOIN weights w USING (touchpoint)
     WHERE w.weight > 0
     GROUP BY c.profile_id
), computed AS (
    SELECT p.id AS profile_id,
           COALESCE(r.revenue, 0) AS revenue,
           COALESCE(r.orders, 0) AS orders,
           CASE WHEN r.orders > 0 THEN r.revenue / r.orders ELSE 0 END AS aov,
           CASE WHEN r.orders > 0 THEN r.orders * 365.0 / greatest(
               extract(epoch FROM %(now)s::timestamptz - r.first_order_at) / 86400, 365)
           ELSE 0 END AS frequency,
           round(COALESCE(100 * eg.weighted / NULLIF(t.weight, 0), 0)::numeric, 1) AS score,
           a.last_at,
           extract(epoch FROM %(now)s::timestamptz - a.last_at) / 86400 AS silent_days,
           CASE WHEN a.active_days >= 2 THEN greatest(
               ((a.last_at AT TIME ZONE 'UTC')::date - (a.first_at AT TIME ZONE 'UTC')::date)
               / (a.active_days - 1.0), 1)
           ELSE %(at_risk_days)s END AS usual_gap
      FROM segments_profile p
      LEFT JOIN revenue r ON r.profile_id = p.id
      LEFT JOIN engagement eg ON eg.profile_id = p.id
      LEFT JOIN activity a ON a.profile_id = p.id
     CROSS JOIN total t
     WHERE p.workspace_id = %(workspace)s
), valued AS (
    SELECT *, least(round(aov * frequency * %(annuity)s::numeric, 2), {cap}) AS ltv
      FROM computed
)
INSERT INTO analytics_customervalue
    (profile_id, workspace_id, revenue, orders, average_order_value, purchase_frequency,
     ltv, engagement_score, value_tier, churn_risk, last_engaged_at, computed_at)
SELECT profile_id, %(workspace)s, least(round(revenue, 2), {cap}), orders,
       least(round(aov, 2), {cap}),
       round(frequency, 4), ltv, score,
       CASE WHEN last_at IS NULL OR silent_days >= %(lost_days)s THEN 'lost'
            WHEN silent_days >= %(at_risk_days)s THEN 'at_risk'
            WHEN ltv >= %(high_ltv)s AND score >= %(high_engagement)s THEN 'champion'
            WHEN ltv >= %(high_ltv)s
              OR (score >= %(high_engagement)s AND ltv >= %(medium_ltv)s) THEN 'loyal'
            ELSE 'potential' END,
       CASE WHEN last_at IS NULL THEN 1
            ELSE round((1 - exp(-greatest(silent_days, 0) / usual_gap))::numeric, 4) END,
       last_at, %(now)s
  FROM valued
ON CONFLICT (profile_id) DO UPDATE SET
    revenue = EXCLUDED.revenue, orders = EXCLUDED.orders,
    average_order_value = EXCLUDED.average_order_value,
    purchase_frequency = EXCLUDED.purchase_frequency, ltv = EXCLUDED.ltv,
    engagement_score = EXCLUDED.engagement_score, value_tier = EXCLUDED.value_tier,
    churn_risk = EXCLUDED.churn_risk, last_engaged_at = EXCLUDED.last_engaged_at,
    computed_at = EXCLUDED.computed_at
"""


def _names(values: Any) -> list[str]:
    return [value for value in values or [] if isinstance(value, str) and value]


def _statement(settings: CustomerValueSettings, *, now: datetime) -> tuple[str, dict]:
    params: dict[str, Any] = {
        "workspace": settings.workspace_id,
        "now": now,
        "window_start": now - timedelta(days=settings.engagement_window_days),
        "revenue_events": _names(settings.revenue_events),
        "annuity": annuity_factor(
            discount_rate=float(settings.discount_rate),
            lifespan_years=float(settings.lifespan_years),
        ),
        "lost_days": settings.lost_days,
        "at_risk_days": settings.at_risk_days,
        "high_ltv": settings.high_ltv,
        "medium_ltv": settings.medium_ltv,
        "high_engagement": settings.high_engagement,
    }
    amounts = []
    for index, name in enumerate(_names(settings.revenue_properties)):
        params[f"property_{index}"] = name
        amounts.append(_NUMBER.format(value=f"(e.properties -> %(property_{index})s)"))
    amount = f"COALESCE({', '.join(amounts)}, 0)" if amounts else "0"
    # page -> web, screen -> mobile; a track call takes the first touchpoint (in
    # TOUCHPOINTS order) that lists its name.
    cases = ["WHEN e.type = 'page' THEN 'web'", "WHEN e.type = 'screen' THEN 'mobile'"]
    touch_names: list[str] = []
    events = settings.touchpoint_events or {}
    for touchpoint in TOUCHPOINTS:
        names = _names(events.get(touchpoint))
        params[f"names_{touchpoint}"] = names
        touch_names += names
        cases.append(f"WHEN e.name = ANY(%(names_{touchpoint})s::text[]) THEN '{touchpoint}'")
    params["touch_names"] = sorted(set(touch_names))
    weights = settings.touchpoint_weights or {}
    params["touchpoints"] = list(TOUCHPOINTS)
    params["weights"] = [float(weights.get(touchpoint, 0) or 0) for touchpoint in TOUCHPOINTS]
    sql = _COMPUTE.format(amount=amount, touchpoint=f"CASE {' '.join(cases)} END", cap=_MONEY_CAP)
    return sql, params


def customer_value_compute(*, workspace: Workspace, now: datetime | None = None) -> int:
    """Recompute every profile's CustomerValue row of the workspace in one statement
    (set-based: seconds for 100,000 profiles) and note when. Returns the rows written."""
    now = now or timezone.now()
    settings = value_settings_get(workspace=workspace)
    sql, params = _statement(settings, now=now)
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        written = cursor.rowcount
        CustomerValueSettings.objects.filter(pk=settings.pk).update(
            last_computed_at=now, last_duration_ms=int((time.monotonic() - started) * 1000)
        )
    return written


def _reads_computed_traits(definition: Any) -> bool:
    from segments.rules import ComputedTrait, RuleError, iter_leaves, parse_definition

    try:
        return any(
            isinstance(leaf, ComputedTrait) for leaf in iter_leaves(parse_definition(definition))
        )
    except RuleError:
        return False


def customer_value_recompute(*, workspace: Workspace, now: datetime | None = None) -> int:
    """The daily (and "Recompute now") run: the values, then a full refresh of each
    dynamic segment whose rules read computed traits, so segment-triggered journeys
    see the new tiers. Safe to run twice. Returns the profiles computed."""
    from segments.membership import segment_membership_refresh, segment_record_error
    from segments.models import Segment
    from segments.rules import RuleError

    now = now or timezone.now()
    written = customer_value_compute(workspace=workspace, now=now)
    segments = Segment.objects.filter(workspace=workspace, kind=Segment.Kind.DYNAMIC)
    for segment in segments.order_by("pk"):
        if not _reads_computed_traits(segment.definition):
            continue
        try:
            segment_membership_refresh(segment=segment, now=now)
        except RuleError as error:
            segment_record_error(segment=segment, error=error, now=now)
    return written


def customer_value_enqueue(*, workspace: Workspace, retry_failed: bool = False) -> bool:
    """Queue the workspace's recompute (after commit) unless one already waits or
    runs (a fixed job id), or failed within the last hour (unless `retry_failed`: a
    person asked). Returns whether a job was queued."""
    import django_rq

    from engagement_site.jobs import enqueue_unless_pending

    # django-rq's queue enqueues after the surrounding transaction commits.
    return enqueue_unless_pending(
        django_rq.get_queue("default"),
        "analytics.tasks.customer_value_recompute",
        workspace.pk,
        job_id=f"customer-value-{workspace.pk}",
        # A failed run waits out its failure_ttl (an hour) before the scheduler tries
        # again, instead of failing again on every tick.
        also_skip=() if retry_failed else ("failed",),
        result_ttl=60,
        failure_ttl=3600,
        job_timeout=3600,
    )


def customer_value_recompute_request(*, workspace: Workspace, context: AuditContext) -> bool:
    """Someone asked for a recompute now: queue it (also after a failed run) and audit
    the request. Returns whether a job was queued (False: one waits or runs)."""
    queued = customer_value_enqueue(workspace=workspace, retry_failed=True)
    audit_record(
        context=context,
        action="value.recompute",
        workspace=workspace,
        object_type="analytics.CustomerValue",
        object_repr="Customer values",
        changes={"queued": queued},
    )
    return queued


def workspaces_due_for_value(*, now: datetime | None = None) -> list[Workspace]:
    """Workspaces never computed or computed more than a day ago (one query)."""
    now = now or timezone.now()
    return list(
        Workspace.objects.filter(
            Q(customer_value_settings__isnull=True)
            | Q(customer_value_settings__last_computed_at__isnull=True)
            | Q(customer_value_settings__last_computed_at__lte=now - RECOMPUTE_EVERY)
        ).order_by("pk")
    )


def scheduler_duty() -> None:
    """Queue the daily recompute of each due workspace. Cheap when nothing is due (one
    query); a waiting job is never queued twice (customer_value_enqueue)."""
    for workspace in workspaces_due_for_value():
        customer_value_enqueue(workspace=workspace)


# --------------------------------------------------------------------------- reads


def profile_value_get(*, workspace: Workspace, profile_id: int) -> CustomerValue:
    """A profile's computed value; 404 for another workspace's profile or one never
    computed."""
    return get_object_or_404(
        CustomerValue.objects.select_related("profile"), workspace=workspace, profile_id=profile_id
    )


def _money(value: Any) -> float:
    return float(Decimal(value or 0).quantize(Decimal("0.01")))


def _bucket_label(index: int) -> str:
    if index == 0:
        return "0"
    if index >= len(LTV_BUCKET_EDGES):
        return f"{LTV_BUCKET_EDGES[-1]:,}+"
    return f"{LTV_BUCKET_EDGES[index - 1]:,}-{LTV_BUCKET_EDGES[index]:,}"


_TIERS_SQL = """
SELECT value_tier, count(*), COALESCE(sum(revenue), 0), COALESCE(sum(ltv), 0),
       COALESCE(avg(engagement_score), 0), COALESCE(avg(churn_risk), 0),
       count(*) FILTER (WHERE orders > 0)
  FROM analytics_customervalue WHERE workspace_id = %s GROUP BY value_tier
"""

# Bucket 0: LTV 0; bucket i (1..6): [edge[i-1], edge[i]), bucket 1 without its 0;
# bucket 7: the last edge and above (width_bucket over edges[1:], plus one).
_BUCKETS_SQL = """
SELECT CASE WHEN ltv <= 0 THEN 0 ELSE width_bucket(ltv, %s::numeric[]) + 1 END AS bucket,
       count(*)
  FROM analytics_customervalue WHERE workspace_id = %s GROUP BY 1 ORDER BY 1
"""

_CHANNELS_SQL = """
SELECT v.value_tier, m.channel, count(*) AS sent, count(m.clicked_at) AS clicked
  FROM delivery_message m JOIN analytics_customervalue v ON v.profile_id = m.profile_id
 WHERE m.workspace_id = %s AND v.workspace_id = %s AND m.sent_at IS NOT NULL
   AND NOT m.is_shadow
 GROUP BY 1, 2
"""


def value_report(*, workspace: Workspace) -> dict[str, Any]:
    """The value report as plain data (the page, the API, `manage.py value_report`):
    settings, tiers, LTV histogram, top customers and a strategy per tier."""
    from journeys.catalog import CATALOG

    settings = value_settings_get(workspace=workspace)
    with connection.cursor() as cursor:
        cursor.execute(_TIERS_SQL, [workspace.pk])
        by_tier = {row[0]: row[1:] for row in cursor.fetchall()}
        cursor.execute(_BUCKETS_SQL, [list(LTV_BUCKET_EDGES[1:]), workspace.pk])
        buckets = dict(cursor.fetchall())
        cursor.execute(_CHANNELS_SQL, [workspace.pk, workspace.pk])
        channel_rows = cursor.fetchall()
    people = sum(row[0] for row in by_tier.values())
    revenue = sum(Decimal(row[1]) for row in by_tier.values())
    tiers = []
    for tier in TIER_ORDER:
        count, tier_revenue, tier_ltv, score, risk, buyers = by_tier.get(tier, (0, 0, 0, 0, 0, 0))
        tiers.append(
            {
                "tier": str(tier),
                "label": tier.label,
                "people": count,
                "share": round(count / people, 4) if people else 0.0,
                "revenue": _money(tier_revenue),
                "revenue_share": round(float(Decimal(tier_revenue) / revenue), 4)
                if revenue
                else 0.0,
                "average_ltv": _money(Decimal(tier_ltv) / count) if count else 0.0,
                "average_engagement": round(float(score), 1),
                "average_churn_risk": round(float(risk), 4),
                "buyers": buyers,
            }
        )
    histogram = [
        {"bucket": _bucket_label(index), "people": buckets.get(index, 0)}
        for index in range(len(LTV_BUCKET_EDGES) + 1)
    ]
    top = [
        {
            "profile_id": value.profile_id,
            "name": value.profile.display_name,
            "email": value.profile.email,
            "ltv": _money(value.ltv),
            "revenue": _money(value.revenue),
            "orders": value.orders,
            "engagement_score": value.engagement_score,
            "churn_risk": value.churn_risk,
            "value_tier": value.value_tier,
        }
        for value in CustomerValue.objects.filter(workspace=workspace)
        .select_related("profile")
        .order_by("-ltv", "profile_id")[:TOP_CUSTOMERS]
    ]
    channels: dict[str, list[dict]] = {}
    for tier, channel, sent, clicked in sorted(channel_rows):
        channels.setdefault(tier, []).append(
            {
                "channel": channel,
                "sent": sent,
                "clicked": clicked,
                "click_rate": round(clicked / sent, 4) if sent else 0.0,
            }
        )
    strategies = []
    for row in tiers:
        template_key, why = TIER_PLAYS[ValueTier(row["tier"])]
        rates = sorted(
            channels.get(row["tier"], []), key=lambda item: (-item["click_rate"], item["channel"])
        )
        sampled = [item for item in rates if item["sent"] >= MIN_CHANNEL_SAMPLE]
        strategies.append(
            {
                "tier": row["tier"],
                "label": row["label"],
                "people": row["people"],
                "journey_template": template_key,
                "journey_template_name": CATALOG[template_key](None)[0],
                "why": why,
                "channel": sampled[0]["channel"] if sampled else None,
                "channel_note": (
                    f"{sampled[0]['channel']}: {sampled[0]['click_rate']:.1%} of "
                    f"{sampled[0]['sent']} messages clicked"
                    if sampled
                    else f"not enough data (no channel with {MIN_CHANNEL_SAMPLE} messages sent)"
                ),
                "channels": rates,
            }
        )
    return {
        "workspace": workspace.slug,
        "computed_at": settings.last_computed_at.isoformat() if settings.last_computed_at else None,
        "settings": {
            "discount_rate": float(settings.discount_rate),
            "lifespan_years": float(settings.lifespan_years),
            "high_ltv": _money(settings.high_ltv),
            "medium_ltv": _money(settings.medium_ltv),
            "high_engagement": float(settings.high_engagement),
            "at_risk_days": settings.at_risk_days,
            "lost_days": settings.lost_days,
            "engagement_window_days": settings.engagement_window_days,
        },
        "people": people,
        "revenue": _money(revenue),
        "tiers": tiers,
        "ltv_histogram": histogram,
        "top_customers": top,
        "strategies": strategies,
    }


# --------------------------------------------------------------------------- exports


def value_report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += [
        "| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows
    ]
    return lines


def value_report_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables (the same numbers as the JSON)."""
    settings = report["settings"]
    lines = [
        f"# Customer value: {report['workspace']}",
        "",
        f"Computed at: {report['computed_at'] or 'never'}. "
        f"{report['people']} people, revenue {report['revenue']:.2f}.",
        f"Settings: discount rate {settings['discount_rate']:g}, lifespan "
        f"{settings['lifespan_years']:g} years, high LTV {settings['high_ltv']:.2f}, medium LTV "
        f"{settings['medium_ltv']:.2f}, high engagement {settings['high_engagement']:g}, at risk "
        f"after {settings['at_risk_days']} days, lost after {settings['lost_days']} days.",
        "",
        "## Tiers",
        "",
    ]
    lines += _table(
        ["Tier", "People", "Share", "Revenue", "Revenue share", "Average LTV"],
        [
            [
                row["label"],
                row["people"],
                f"{row['share']:.1%}",
                f"{row['revenue']:.2f}",
                f"{row['revenue_share']:.1%}",
                f"{row['average_ltv']:.2f}",
            ]
            for row in report["tiers"]
        ],
    )
    lines += ["", "## LTV distribution", ""]
    lines += _table(
        ["LTV", "People"], [[row["bucket"], row["people"]] for row in report["ltv_histogram"]]
    )
    lines += ["", "## Top customers", ""]
    lines += _table(
        ["Profile", "Name", "LTV", "Revenue", "Orders", "Engagement", "Churn risk", "Tier"],
        [
            [
                row["profile_id"],
                row["name"],
                f"{row['ltv']:.2f}",
                f"{row['revenue']:.2f}",
                row["orders"],
                f"{row['engagement_score']:g}",
                f"{row['churn_risk']:.2f}",
                row["value_tier"],
            ]
            for row in report["top_customers"]
        ],
    )
    lines += ["", "## Strategies", ""]
    lines += _table(
        ["Tier", "People", "Journey template", "Channel", "Why"],
        [
            [
                row["tier"],
                row["people"],
                row["journey_template_name"],
                row["channel_note"],
                row["why"],
            ]
            for row in report["strategies"]
        ],
    )
    return "\n".join(lines) + "\n"


def value_report_export_record(
    *, workspace: Workspace, export_format: str, context: AuditContext
) -> None:
    """Audit a download of the value report (it names customers and their value)."""
    audit_record(
        context=context,
        action="value.export",
        workspace=workspace,
        object_type="analytics.ValueReport",
        object_repr=f"Customer value report ({export_format})",
        changes={"format": export_format},
    )


# --------------------------------------------------------------------------- demo


def value_demo_configure(*, workspace: Workspace) -> int:
    """The demo shop (segments/demo.py) names its events in snake_case and spans 60
    days: point the settings at its events, with thresholds that fit two months of
    orders, and compute the values now. Returns the profiles computed."""
    settings = value_settings_get(workspace=workspace)
    settings.revenue_events = ["order_completed"]
    settings.revenue_properties = ["revenue", "total"]
    settings.touchpoint_events = {
        "email": ["email_opened", "email_clicked"],
        "web": [],
        "mobile": ["push_opened", "logged_in"],
        "social": ["shared"],
        "support": ["support_ticket"],
        "purchase": ["order_completed"],
        "review": ["review_written"],
    }
    settings.engagement_window_days = 60
    settings.high_ltv, settings.medium_ltv = Decimal("250"), Decimal("50")
    settings.high_engagement = Decimal("50")
    settings.at_risk_days, settings.lost_days = 14, 45
    settings.save()
    return customer_value_compute(workspace=workspace)
