"""P4: what a fault-matrix variant costs over its fault-free run."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks import refund
from benchmarks.figure import Figure, interleaved
from harness.run.runner import probe
from harness.scenario.matrix import expand
from harness.scenario.variant import Variant

CELL = "tool_http_503@get_order#1"
"""A transient tool fault on the first call: the agent retries, so the run does all its work
plus one request and one (fake-clock) backoff: the costlier kind of matrix cell."""


def matrix_cells() -> list[Variant]:
    """refund_happy's fault cells, aimed by a fault-free probe run as collection does."""
    found = probe(refund.scenario(), refund.adapter(), seed=refund.SEED, wall_s=refund.WALL_S)
    return [v for v in expand(refund.scenario(), found) if v.kind == "fault"]


def measure(*, reps: int, batch: int, sweep: bool) -> Figure:
    """P4: the ``tool_http_503@get_order#1`` cell / refund_happy's base run.

    Args:
        reps: repetitions per arm.
        batch: runs per repetition.
        sweep: also time every other fault cell once against the base run (the spread).
    """
    cells = matrix_cells()
    by_label = {v.label: v for v in cells}
    cell, base = by_label[CELL], refund.base()
    arms = {"fault_cell": _runner(cell), "fault_free": _runner(base)}
    for fn in arms.values():
        fn()
    times = interleaved(arms, reps=reps, batch=batch)
    extra: dict[str, object] = {"cell": CELL}
    if sweep:
        swept = interleaved(
            {v.label: _runner(v) for v in [base, *cells]}, reps=1, batch=max(batch // 2, 1)
        )
        ratios = sorted(swept.wall[v.label][0] / swept.wall["base"][0] for v in cells)
        extra["all_cells"] = {
            "cells": len(ratios),
            "median_ratio": round(ratios[len(ratios) // 2], 3),
            "max_ratio": round(ratios[-1], 3),
            "min_ratio": round(ratios[0], 3),
        }
    return Figure(
        id="P4",
        title="fault-matrix variant vs its fault-free run",
        ratio=times.ratio("fault_cell", "fault_free"),
        target=1.3,
        op="<=",
        baseline="refund_happy's fault-free base run (same harness, same agent)",
        medians={
            "fault_cell_s_per_run": times.median("fault_cell"),
            "fault_free_s_per_run": times.median("fault_free"),
        },
        reps=reps,
        note=(
            f"{CELL}: the agent retries, so the cell does one more request than the base run; "
            f"median of {reps} paired ratios of {batch} runs per arm"
        ),
        extra=extra,
    )


def _runner(variant: Variant) -> Callable[[], None]:
    def run() -> None:
        refund.run_and_judge(variant)

    return run
