"""Experiment statistics against numbers worked out by hand and from the closed form:
Wilson intervals, the pooled two-proportion z-test, the Wald interval of the
difference, the probability to be best, and holdout lift."""

from __future__ import annotations

import math

import pytest
from scipy.special import betaln

from analytics import stats


def test_wilson_interval_matches_the_formula():
    # 45 of 100 at 95%: z = 1.959964; center = (0.45 + z²/200) / (1 + z²/100) ...
    result = stats.rate(45, 100)
    z = 1.959963984540054
    center = (0.45 + z * z / 200) / (1 + z * z / 100)
    margin = z * math.sqrt(0.45 * 0.55 / 100 + z * z / 40000) / (1 + z * z / 100)
    assert result.rate == 0.45
    assert result.low == pytest.approx(center - margin, abs=1e-12)
    assert result.high == pytest.approx(center + margin, abs=1e-12)
    assert (round(result.low, 4), round(result.high, 4)) == (0.3561, 0.5476)
    assert result.small_sample is False
    assert stats.rate(0, 20).low == 0.0 and stats.rate(0, 20).small_sample is True
    assert stats.rate(0, 0).high == 1.0


def test_two_proportion_test_against_hand_computed_values():
    # 30/100 against 45/100: pooled p = 0.375, se = sqrt(0.375 * 0.625 * 0.02)
    result = stats.compare((30, 100), (45, 100))
    se_pooled = math.sqrt(0.375 * 0.625 * 0.02)
    assert result.z == pytest.approx(0.15 / se_pooled, abs=1e-12)
    assert round(result.z, 4) == 2.1909
    assert round(result.p_value, 4) == 0.0285
    assert result.significant is True
    se = math.sqrt(0.3 * 0.7 / 100 + 0.45 * 0.55 / 100)
    assert result.difference == pytest.approx(0.15)
    assert result.low == pytest.approx(0.15 - 1.959963984540054 * se, abs=1e-12)
    assert result.high == pytest.approx(0.15 + 1.959963984540054 * se, abs=1e-12)
    # The same rates on 20 people each: not significant.
    small = stats.compare((6, 20), (9, 20))
    assert small.significant is False and round(small.p_value, 3) == 0.327


def _closed_form_b_beats_a(a: tuple[int, int], b: tuple[int, int]) -> float:
    """P(p_b > p_a) for Beta(1+s, 1+f) posteriors, summed exactly (Evan Miller)."""
    alpha_a, beta_a = 1 + a[0], 1 + a[1] - a[0]
    alpha_b, beta_b = 1 + b[0], 1 + b[1] - b[0]
    total = 0.0
    for i in range(alpha_b):
        total += math.exp(
            betaln(alpha_a + i, beta_a + beta_b)
            - math.log(beta_b + i)
            - betaln(1 + i, beta_b)
            - betaln(alpha_a, beta_a)
        )
    return total


def test_probability_to_be_best_agrees_with_the_closed_form():
    variants = {"a": (30, 100), "b": (45, 100)}
    result = stats.probability_best(variants)
    exact = _closed_form_b_beats_a(variants["a"], variants["b"])
    assert round(exact, 4) == 0.9855
    assert result["b"] == pytest.approx(exact, abs=0.003)
    assert result["a"] == pytest.approx(1 - exact, abs=0.003)
    assert sum(result.values()) == pytest.approx(1.0)
    assert stats.probability_best(variants) == result  # the seed makes it repeatable
    three = stats.probability_best({"a": (10, 100), "b": (10, 100), "c": (30, 100)})
    assert three["c"] > 0.99 and three["a"] == pytest.approx(three["b"], abs=0.01)


def test_holdout_lift_and_bad_input():
    # Treated 120/1000 converted, holdout 80/1000.
    result = stats.lift((120, 1000), (80, 1000))
    assert result["absolute"] == pytest.approx(0.04)
    assert result["relative"] == pytest.approx(0.5)
    assert result["significant"] is True
    assert result["low"] > 0
    with pytest.raises(ValueError, match="11 successes out of 10 trials"):
        stats.rate(11, 10)
    with pytest.raises(ValueError, match="is not a proportion"):
        stats.compare((1, 10), (-1, 10))
