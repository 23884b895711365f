"""The statistics of experiments and holdouts: rates with confidence intervals, the
two-proportion test between two variants, the Bayesian probability that each variant
is best, and the lift of a treated group over its holdout.

Frequentist parts follow the textbook: Wilson score intervals for one rate (sound
for small counts and rates near 0 or 1, where the normal approximation is not), the
pooled two-proportion z-test for "is there a difference", and the unpooled (Wald)
interval for the size of the difference. The Bayesian part gives each variant a
Beta(1 + successes, 1 + failures) posterior (a uniform prior) and samples it with a
fixed seed, so the same numbers always give the same answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

# Below this many people in a variant, results are shown with a warning: a few
# conversions either way swing the numbers.
MIN_SAMPLE = 100
DRAWS = 200_000
SEED = 20261204


@dataclass(frozen=True)
class Rate:
    successes: int
    trials: int
    rate: float
    low: float
    high: float
    small_sample: bool


@dataclass(frozen=True)
class Comparison:
    difference: float  # b - a
    low: float
    high: float
    z: float
    p_value: float
    significant: bool


def ratio(part, whole) -> float | None:
    """part / whole, None when there is no whole (a rate of nothing)."""
    return float(part) / float(whole) if whole else None


def _check(successes: int, trials: int) -> None:
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"{successes} successes out of {trials} trials is not a proportion")


def rate(successes: int, trials: int, *, confidence: float = 0.95) -> Rate:
    """The rate with its Wilson score interval."""
    _check(successes, trials)
    if trials == 0:
        return Rate(successes, trials, 0.0, 0.0, 1.0, True)
    z = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    p = successes / trials
    denominator = 1 + z * z / trials
    center = (p + z * z / (2 * trials)) / denominator
    margin = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return Rate(
        successes, trials, p, max(0.0, center - margin), min(1.0, center + margin),
        trials < MIN_SAMPLE,
    )  # fmt: skip


def compare(a: tuple[int, int], b: tuple[int, int], *, confidence: float = 0.95) -> Comparison:
    """Variant b against variant a ((successes, trials) each): the difference of the
    rates with its interval, and the two-sided pooled z-test."""
    (sa, na), (sb, nb) = a, b
    _check(sa, na)
    _check(sb, nb)
    if na == 0 or nb == 0:
        return Comparison(0.0, -1.0, 1.0, 0.0, 1.0, False)
    pa, pb = sa / na, sb / nb
    pooled = (sa + sb) / (na + nb)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    z = (pb - pa) / se_pooled if se_pooled else 0.0
    p_value = float(2 * stats.norm.sf(abs(z)))
    critical = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    se = math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
    difference = pb - pa
    return Comparison(
        difference, difference - critical * se, difference + critical * se, z, p_value,
        p_value < 1 - confidence,
    )  # fmt: skip


def probability_best(
    variants: dict[str, tuple[int, int]], *, draws: int = DRAWS
) -> dict[str, float]:
    """For each variant ((successes, trials)), the probability that its true rate is
    the highest, from Beta posteriors sampled with a fixed seed."""
    if not variants:
        return {}
    for successes, trials in variants.values():
        _check(successes, trials)
    rng = np.random.default_rng(SEED)
    keys = list(variants)
    samples = np.column_stack(
        [rng.beta(1 + s, 1 + n - s, size=draws) for s, n in (variants[key] for key in keys)]
    )
    wins = np.bincount(samples.argmax(axis=1), minlength=len(keys))
    return {key: float(wins[index] / draws) for index, key in enumerate(keys)}


def lift(treated: tuple[int, int], holdout: tuple[int, int], *, confidence: float = 0.95) -> dict:
    """What the journey caused: the treated group's conversion rate against its
    holdout's, as an absolute difference with its interval and test, and relative."""
    comparison = compare(holdout, treated, confidence=confidence)
    base = holdout[0] / holdout[1] if holdout[1] else 0.0
    return {
        "absolute": comparison.difference,
        "low": comparison.low,
        "high": comparison.high,
        "relative": comparison.difference / base if base else None,
        "p_value": comparison.p_value,
        "significant": comparison.significant,
    }
