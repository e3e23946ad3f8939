"""P5: report + gate cost on synthetic 1k/10k/100k records (linear growth expected)."""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import refund
from benchmarks.figure import Figure, interleaved, median
from harness.plugin.session import report_item
from harness.report.gate import evaluate_gate
from harness.report.gate_policy import GatePolicy
from harness.report.model import Report, load_report

POLICY = GatePolicy(max_failures=0, max_errors=0, min_transient_recovery=0.99, min_coverage=0.5)
ITEMS_PER_SCENARIO = 200


def templates() -> list[dict[str, Any]]:
    """Report items of two real runs (refund_happy's base and a recovered 503 cell)."""
    from benchmarks.fault_cost import CELL, matrix_cells

    cell = next(v for v in matrix_cells() if v.label == CELL)
    out = []
    for variant in (refund.base(), cell):
        result = refund.run_and_judge(variant)
        item = report_item(f"scenarios/refund_happy.yaml::{variant.label}", result)
        out.append(item.model_dump(mode="json"))
    return out


def synthetic(n: int, bases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``n`` items shaped like the templates, spread over scenarios of 200 items each."""
    items = []
    for i in range(n):
        item = copy.deepcopy(bases[i % len(bases)])
        scenario = f"s{i // ITEMS_PER_SCENARIO:05d}"
        item["scenario"] = scenario
        item["variant"] = f"v{i}"
        item["nodeid"] = f"scenarios/{scenario}.yaml::{scenario}[v{i}]"
        items.append(item)
    return items


def report_and_gate(items: list[dict[str, Any]], where: Path) -> None:
    """Build the report, write it, read it back (validated, summary re-checked), apply the gate."""
    path = Report.build(items, refund.SEED).write(where / "report.json")
    result = evaluate_gate(load_report(path), POLICY)
    if not result.passed:
        raise RuntimeError(f"synthetic report failed its gate: {result}")


def measure(*, sizes: tuple[int, ...], reps: int, reps_over_10k: int = 1) -> Figure:
    """P5: per-record cost at the largest size / per-record cost at the smallest.

    Args:
        sizes: record counts, smallest first.
        reps: repetitions per size up to 10,000 records.
        reps_over_10k: repetitions per larger size (100,000 records take minutes each).
    """
    bases = templates()
    per_record: dict[int, float] = {}
    totals: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="shakeout-bench-") as tmp:
        for n in sizes:
            items = synthetic(n, bases)
            runs = []
            for _ in range(reps if n <= 10_000 else reps_over_10k):
                started = time.perf_counter()
                report_and_gate(items, Path(tmp))
                runs.append(time.perf_counter() - started)
            totals[n] = median(runs)
            per_record[n] = totals[n] / n
            del items
    small, large = min(sizes), max(sizes)
    return Figure(
        id="P5",
        title="report + gate: per-record cost growth",
        ratio=per_record[large] / per_record[small],
        target=1.5,
        op="<=",
        baseline=f"the per-record cost at {small:,} records",
        medians={f"total_{n}_s": totals[n] for n in sizes}
        | {f"per_record_{n}_s": per_record[n] for n in sizes},
        reps=reps,
        note=(
            f"{reps} repetitions up to 10,000 records, {reps_over_10k} above; "
            f"ratio = per-record cost at {large:,} / at {small:,} records (1.0 is linear; the "
            "target 1.5 allows the n log n sort); report built from items shaped like real "
            "refund_happy items (8 requests), written, re-read and validated, gate applied; "
            f"{large:,} records took {totals[large]:.2f} s"
        ),
        extra={"sizes": list(sizes)},
    )


def measure_floor(*, size: int, reps: int) -> Figure:
    """P5f: report + gate over ``size`` items / ``json.loads`` + ``json.dumps`` of that file.

    The floor is what any tool pays to read and write the same bytes; both arms run in this
    process, alternating, and the figure is the median of the per-repetition ratios.
    """
    import json

    items = synthetic(size, templates())
    with tempfile.TemporaryDirectory(prefix="shakeout-bench-p5f-") as tmp:
        where = Path(tmp)
        report_and_gate(items, where)
        path = where / "report.json"
        megabytes = path.stat().st_size / 1e6

        def floor() -> None:
            json.dumps(json.loads(path.read_bytes()))

        times = interleaved(
            {"report_gate": lambda: report_and_gate(items, where), "json_floor": floor},
            reps=reps,
            batch=1,
        )
    return Figure(
        id="P5f",
        title=f"report + gate over {size:,} items vs json.loads + json.dumps of the file",
        ratio=times.ratio("report_gate", "json_floor"),
        target=3.0,
        op="<=",
        baseline=f"json.loads + json.dumps of the same {megabytes:.0f} MB report file",
        medians={
            "report_gate_s": times.median("report_gate"),
            "json_floor_s": times.median("json_floor"),
        },
        reps=reps,
        note=(
            "report + gate = Report.build (items validated), write, load_report (validated in "
            "one pass over the bytes, summary re-checked), evaluate_gate; floor = read the file, "
            "json.loads, json.dumps; CPU ratio in extra"
        ),
        extra={
            "items": size,
            "file_mb": round(megabytes, 1),
            "cpu_ratio": round(times.ratio("report_gate", "json_floor", cpu=True), 4),
        },
    )
