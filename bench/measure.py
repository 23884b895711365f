"""Small measuring helpers shared by the benchmarks (not a benchmark: the runner only
discovers modules named bench_<name>)."""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Iterable


def log(message: str) -> None:
    """A progress line, printed at once (runs take minutes)."""
    print(message, flush=True)


def spread(values: Iterable[float], digits: int = 1) -> dict[str, float]:
    """Median, min, max and the samples of several repetitions."""
    samples = list(values)
    return {
        "median": round(statistics.median(samples), digits),
        "min": round(min(samples), digits),
        "max": round(max(samples), digits),
        "samples": [round(value, digits) for value in samples],
    }


def percentile(values: Iterable[float], share: float) -> float:
    """Nearest-rank percentile (share in (0, 1])."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))]


def before_after(before: float, after: float, digits: int = 1) -> dict[str, float]:
    """A baseline measured before and after the system: both, and the median of the two
    (which, for two, is their mean)."""
    return {
        "median": round(statistics.median([before, after]), digits),
        "before": round(before, digits),
        "after": round(after, digits),
    }


def load_average() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages (other work shows here)."""
    return [round(value, 2) for value in os.getloadavg()]


def wait_for(condition, *, timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll `condition()` until it is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
