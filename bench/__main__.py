"""Run the benchmarks: `python -m bench [--only NAME] [--quick]`.

A benchmark is a module `bench/bench_<name>.py` with a function
`run(*, quick: bool) -> dict` returning at least {"sizes": {...}, "baseline": {...},
"system": {...}, "ratio": float}. Each result is written to bench/results/<name>.json
with the machine and commit, and a Markdown summary to bench/results/summary.md.
The benchmarks themselves arrive with the issues that build what they measure.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _machine() -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=HERE,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def discover() -> list[str]:
    return sorted(
        info.name.removeprefix("bench_")
        for info in pkgutil.iter_modules([str(HERE)])
        if info.name.startswith("bench_")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--only", help="Run one benchmark by name")
    parser.add_argument(
        "--quick", action="store_true", help="Reduced sizes (under two minutes in all)"
    )
    args = parser.parse_args(argv)
    names = discover()
    if args.only:
        if args.only not in names:
            print(
                f"No benchmark named {args.only!r}; available: {', '.join(names) or 'none yet'}",
                file=sys.stderr,
            )
            return 2
        names = [args.only]
    RESULTS.mkdir(exist_ok=True)
    rows = []
    for name in names:
        module = importlib.import_module(f"bench.bench_{name}")
        started = time.monotonic()
        result = module.run(quick=args.quick)
        result.update(
            {
                "name": name,
                "machine": _machine(),
                "commit": _commit(),
                "quick": args.quick,
                "seconds": round(time.monotonic() - started, 1),
            }
        )
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
        rows.append(f"| {name} | {result.get('headline', '')} | {result.get('ratio', '')} |")
    summary = ["| benchmark | result | system / baseline |", "|---|---|---|", *rows]
    text = "\n".join(summary) + "\n"
    (RESULTS / "summary.md").write_text(text)
    print(
        text
        if rows
        else "No benchmarks yet: they arrive with the features they measure (see docs/performance.md)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
