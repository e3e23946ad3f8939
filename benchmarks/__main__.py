"""``python -m benchmarks``: measure every figure, print a table, optionally write JSON."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.figure import Figure

FIGURES = ("P1", "P2", "P3", "P3b", "P4", "P5", "P5f", "P5b", "P6", "P7")


def plan(mode: str) -> dict[str, Callable[[], Figure]]:
    """Each figure's measurement with its sizes for a smoke, quick or full run."""
    from benchmarks import (
        fault_cost,
        overhead,
        report_cost,
        resume,
        scaling,
        session_memory,
        suite_cost,
        throughput,
    )

    if mode == "smoke":
        # the smallest sizes that still run every code path once: the test suite's shape check
        # (tests/benchmarks/test_smoke.py), not a measurement
        return {
            "P1": lambda: overhead.measure(reps=1, batch=1),
            "P2": lambda: scaling.measure(
                variants=1, reps=1, faults=("tool_http_503", "tool_http_404")
            ),
            "P3": lambda: resume.measure_resume(reps=1, batch=1),
            "P3b": lambda: resume.measure_checkpoints(reps=1, batch=1),
            "P4": lambda: fault_cost.measure(reps=1, batch=1, sweep=False),
            "P5": lambda: report_cost.measure(sizes=(20, 200), reps=1),
            "P5f": lambda: report_cost.measure_floor(size=200, reps=1),
            "P5b": lambda: session_memory.measure(small=20, large=100, reps=1),
            "P6": lambda: throughput.measure(reps=1, batch=1),
            "P7": lambda: suite_cost.measure(
                reps=1, paths=("scenarios/already_refunded_declined.yaml",)
            ),
        }
    if mode == "quick":
        return {
            "P1": lambda: overhead.measure(reps=5, batch=3),
            "P2": lambda: scaling.measure(variants=150, reps=1),
            "P3": lambda: resume.measure_resume(reps=5, batch=1),
            "P3b": lambda: resume.measure_checkpoints(reps=5, batch=1),
            "P4": lambda: fault_cost.measure(reps=5, batch=2, sweep=False),
            "P5": lambda: report_cost.measure(sizes=(200, 2_000), reps=5),
            "P5f": lambda: report_cost.measure_floor(size=2_000, reps=3),
            "P5b": lambda: session_memory.measure(small=100, large=1_000, reps=1),
            "P6": lambda: throughput.measure(reps=5, batch=3),
            "P7": lambda: suite_cost.measure(
                reps=1, select="already_refunded or approval_denied or invalid_input or order_not"
            ),
        }
    return {
        "P1": lambda: overhead.measure(reps=9, batch=10),
        "P2": lambda: scaling.measure(variants=1_000, reps=5),
        "P3": lambda: resume.measure_resume(reps=9, batch=2),
        "P3b": lambda: resume.measure_checkpoints(reps=9, batch=3),
        "P4": lambda: fault_cost.measure(reps=9, batch=6, sweep=True),
        "P5": lambda: report_cost.measure(sizes=(1_000, 10_000, 100_000), reps=5),
        "P5f": lambda: report_cost.measure_floor(size=100_000, reps=3),
        "P5b": lambda: session_memory.measure(small=1_000, large=10_000, reps=1),
        "P6": lambda: throughput.measure(reps=9, batch=10),
        "P7": lambda: suite_cost.measure(reps=3),
    }


def table(figures: list[Figure]) -> str:
    """The figures as a Markdown table."""
    lines = [
        "| figure | ratio | target | met | absolute medians | measured against |",
        "|---|---|---|---|---|---|",
    ]
    for f in figures:
        medians = ", ".join(f"{k} {v:.4g}" for k, v in f.medians.items())
        lines.append(
            f"| {f.id} {f.title} | {f.ratio:.3f} | {f.op} {f.target:g} | "
            f"{'yes' if f.met else 'NO'} | {medians} ({f.unit}) | {f.baseline} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the selected figures; exit 0 even when a target is missed (benchmarks are not tests)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="small sizes (~5 min, rough figures)")
    sizes.add_argument(
        "--smoke",
        action="store_true",
        help="the smallest sizes, one repetition: checks that every figure runs, measures nothing",
    )
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON here")
    parser.add_argument(
        "--only", metavar="IDS", help=f"comma-separated figure ids ({', '.join(FIGURES)})"
    )
    args = parser.parse_args(argv)
    chosen = list(FIGURES)
    if args.only:
        chosen = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [c for c in chosen if c not in FIGURES]
        if unknown:
            parser.error(f"unknown figure id(s) {unknown}; choose from {', '.join(FIGURES)}")
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    measurements = plan(mode)
    figures: list[Figure] = []
    started = time.perf_counter()
    for fid in chosen:
        t0 = time.perf_counter()
        figure = measurements[fid]()
        figures.append(figure)
        status = "met" if figure.met else "MISSED"
        print(
            f"{fid:4s} {figure.ratio:7.3f}  target {figure.op} {figure.target:g}  {status:6s}  "
            f"({time.perf_counter() - t0:.1f} s) {figure.title}",
            flush=True,
        )
    total = time.perf_counter() - started
    print()
    print(table(figures))
    print(f"\n{mode} run, {total:.0f} s")
    if args.json:
        command = "python -m benchmarks" + ("" if mode == "full" else f" --{mode}")
        run = {
            "mode": mode,
            "command": command + (f" --only {','.join(chosen)}" if args.only else ""),
            "python": platform.python_version(),
            "seconds": round(total, 1),
        }
        doc: dict[str, Any] = {f.id: {**f.to_json(), "run": run} for f in figures}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"written: {args.json} (tables: python -m benchmarks.tables {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
