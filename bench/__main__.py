"""Run the benchmarks: `python -m bench [--only NAME] [--quick]` (`make bench`).

A benchmark is a module `bench/bench_<name>.py` with a function
`run(*, quick: bool) -> dict` returning at least {"headline": str, "sizes": {...},
"baseline": {...}, "system": {...}, "ratio": float}: it generates its data
deterministically in a database of its own, measures its baseline before and after
the system (reporting the median of the two), and repeats the system measurement
(median and spread). The runner adds the machine (CPU, memory, load average), the
commit, the mode and the time taken, writes bench/results/<name>.json, and prints a
Markdown summary of every result present, also written to bench/results/summary.md.
A benchmark that fails is reported (with its error) and the others still run; the
exit status is then 1. `--quick` runs reduced sizes: all of them in under two minutes.
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
import traceback
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
REQUIRED = ("headline", "sizes", "baseline", "system", "ratio")


def _read(path: str, prefix: str) -> str:
    try:
        with open(path) as lines:
            for line in lines:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _machine() -> dict[str, object]:
    memory = _read("/proc/meminfo", "MemTotal")
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu_model": _read("/proc/cpuinfo", "model name") or platform.processor(),
        "memory_gb": round(int(memory.split()[0]) / 2**20, 1) if memory else None,
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def _database_server() -> str:
    """The PostgreSQL server the benchmarks ran on (once Django is set up)."""
    try:
        from django.db import connections

        with connections["default"].cursor() as cursor:
            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0]}"
    except Exception:  # Django not set up or no server: nothing to record
        return ""


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=7"],
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


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary(names: list[str], ran: dict[str, dict]) -> str:
    """A Markdown table of every benchmark's latest result (this run's first)."""
    rows = []
    for name in names:
        result = ran.get(name)
        if result is None:
            path = RESULTS / f"{name}.json"
            if not path.exists():
                continue
            try:
                result = json.loads(path.read_text())
            except ValueError:
                continue
        if result.get("error"):
            cells = ["FAILED: " + result["error"].strip().splitlines()[-1], "", ""]
        else:
            cells = [result.get("headline", ""), result.get("ratio", ""), ""]
        load = result.get("machine", {}).get("load_average") or ["?"]
        cells[2] = "quick" if result.get("quick") else "full"
        rows.append(
            f"| {name}{'' if name in ran else ' (earlier run)'} | {_cell(cells[0])} "
            f"| {_cell(cells[1])} | {cells[2]} | {result.get('seconds', '')} s "
            f"| {load[0]} | {result.get('commit', '')} {str(result.get('finished', ''))[:16]} |"
        )
    header = [
        "| benchmark | result (median of the repetitions; baseline in the same run) "
        "| system / baseline | mode | time | load | commit, date (UTC) |",
        "|---|---|---|---|---|---|---|",
    ]
    return "\n".join(header + rows) + "\n"


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
        selected = [args.only]
    else:
        selected = names
    RESULTS.mkdir(exist_ok=True)
    ran: dict[str, dict] = {}
    run_started = time.monotonic()
    commit = _commit()
    for name in selected:
        machine = _machine()
        started = time.monotonic()
        print(f"== {name}{' (quick)' if args.quick else ''}", flush=True)
        try:
            module = importlib.import_module(f"bench.bench_{name}")
            result = module.run(quick=args.quick)
            missing = [key for key in REQUIRED if key not in result]
            if missing:
                raise RuntimeError(f"bench_{name}.run() returned no {', '.join(missing)}")
        except Exception:
            result = {"error": traceback.format_exc()}
            print(result["error"], file=sys.stderr, flush=True)
        load_after = [round(value, 2) for value in os.getloadavg()]
        result.update(
            {
                "name": name,
                "machine": {
                    **machine,
                    "load_average_after": load_after,
                    "database": _database_server(),
                },
                "commit": commit,
                "quick": args.quick,
                "seconds": round(time.monotonic() - started, 1),
                "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        ran[name] = result
        print(f"== {name}: {result['seconds']} s", flush=True)
    total = round(time.monotonic() - run_started, 1)
    text = summary(names, ran)
    (RESULTS / "summary.md").write_text(text)
    print()
    print(text)
    failed = [name for name, result in ran.items() if result.get("error")]
    print(
        f"{len(ran)} benchmark(s){' (quick)' if args.quick else ''} in {total} s"
        + (f"; FAILED: {', '.join(failed)}" if failed else ""),
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
