"""Experiment reports for a journey's split nodes: per variant, how many entered,
what its messages did (from the message counters), how many converted, each rate
with its interval, the comparison of every variant with the first (the control),
the probability to be best, and the lift over the holdout.

A person's branch is the port their split step took (journeys.StepLog, port = the
variant key or "holdout"); a conversion is the journey's goal reached by someone who
took that branch (the enrollment's exit reason)."""

from __future__ import annotations

from django.db.models import Count

from analytics import stats
from analytics.selectors import counter_totals


def split_reports(*, workspace, journey) -> list[dict]:
    """One report per split node of the journey's live version (none without one)."""
    from journeys.executor import version_definition
    from journeys.nodes import SplitNode

    if journey.workspace_id != workspace.pk or journey.live_version_id is None:
        return []
    definition = version_definition(journey.live_version)
    return [
        _report(workspace=workspace, journey=journey, node=node)
        for node in definition.nodes
        if isinstance(node, SplitNode)
    ]


def _report(*, workspace, journey, node) -> dict:
    from journeys.models import StepLog

    steps = StepLog.objects.filter(
        enrollment__journey_id=journey.pk,
        enrollment__workspace_id=workspace.pk,
        node_id=node.id,
        outcome=StepLog.Outcome.BRANCHED,
    )
    entered = dict(
        steps.values("port")
        .annotate(n=Count("enrollment_id", distinct=True))
        .values_list("port", "n")
    )
    converted = dict(
        steps.filter(enrollment__exit_reason="converted")
        .values("port")
        .annotate(n=Count("enrollment_id", distinct=True))
        .values_list("port", "n")
    )
    keys = [variant.key for variant in node.variants]
    rows = []
    for variant in node.variants:
        messages = counter_totals(workspace=workspace, journey_id=journey.pk, variant=variant.key)
        people = entered.get(variant.key, 0)
        sent = messages.get("sent", 0)
        rows.append(
            {
                "key": variant.key,
                "name": variant.name or variant.key.upper(),
                "weight": variant.weight,
                "entered": people,
                "sent": sent,
                "opened": messages.get("opened", 0),
                "clicked": messages.get("clicked", 0),
                "converted": converted.get(variant.key, 0),
                "open_rate": _rate(messages.get("opened", 0), sent),
                "click_rate": _rate(messages.get("clicked", 0), sent),
                "conversion_rate": _rate(converted.get(variant.key, 0), people),
            }
        )
    control = rows[0] if rows else None
    for row in rows[1:]:
        comparison = stats.compare(
            (control["converted"], control["entered"]), (row["converted"], row["entered"])
        )
        row["against_control"] = {
            "difference": comparison.difference,
            "low": comparison.low,
            "high": comparison.high,
            "p_value": comparison.p_value,
            "significant": comparison.significant,
        }
    best = stats.probability_best({row["key"]: (row["converted"], row["entered"]) for row in rows})
    for row in rows:
        row["probability_best"] = best.get(row["key"], 0.0)
    treated = (sum(row["converted"] for row in rows), sum(row["entered"] for row in rows))
    holdout = (converted.get("holdout", 0), entered.get("holdout", 0))
    return {
        "node": node.id,
        "variants": rows,
        "control": keys[0] if keys else None,
        "small_sample": any(row["entered"] < stats.MIN_SAMPLE for row in rows),
        "holdout": {
            "entered": holdout[1],
            "converted": holdout[0],
            "conversion_rate": _rate(*holdout),
            "lift": stats.lift(treated, holdout) if holdout[1] and treated[1] else None,
        },
    }


def _rate(successes: int, trials: int) -> dict:
    result = stats.rate(successes, trials)
    return {"rate": result.rate, "low": result.low, "high": result.high}
