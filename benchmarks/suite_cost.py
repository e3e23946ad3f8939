"""P7: the whole default scenario suite on ``-n 2``: items/s, and suite time over item time."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import refund
from benchmarks.figure import Figure, median
from benchmarks.scaling import _env

WORKERS = 2


def run_suite(report: Path, *extra: str, paths: tuple[str, ...] = ("scenarios",)) -> float:
    """Run ``scripts/suite.sh``'s pytest session (every item of ``scenarios/``) on ``-n 2``.

    Returns:
        Its wall seconds from process start to exit.
    """
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *paths,
        "-p",
        "no:cacheprovider",
        "-n",
        str(WORKERS),
        "-q",
        f"--chaos-seed={refund.SEED}",
        f"--chaos-report={report}",
        *extra,
    ]
    started = time.perf_counter()
    done = subprocess.run(
        cmd, cwd=refund.REPO, env=_env(), capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1) or not report.exists():
        tail = "\n".join(done.stdout.splitlines()[-15:])
        raise RuntimeError(f"the scenario suite exited {done.returncode}:\n{tail}")
    return elapsed


def measure(
    *, reps: int, select: str | None = None, paths: tuple[str, ...] = ("scenarios",)
) -> Figure:
    """P7: suite wall time / (sum of the items' own run times / workers), and items per second.

    Args:
        reps: how many times the suite runs.
        select: a ``-k`` expression (the quick run takes a part of the suite), None for all.
        paths: what pytest collects (the smoke run collects one scenario file).
    """
    walls: list[float] = []
    item_sums: list[float] = []
    items = 0
    with tempfile.TemporaryDirectory(prefix="shakeout-bench-p7-") as tmp:
        for rep in range(reps):
            report = Path(tmp) / f"suite-{rep}.json"
            walls.append(run_suite(report, *(["-k", select] if select else []), paths=paths))
            data: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
            items = len(data["items"])
            if not items:
                raise RuntimeError(f"the suite over {' '.join(paths)} ran no item")
            item_sums.append(sum(float(i.get("duration_s", 0.0)) for i in data["items"]))
    per_worker = [w / (s / WORKERS) for w, s in zip(walls, item_sums, strict=True)]
    literal = [w / s for w, s in zip(walls, item_sums, strict=True)]
    return Figure(
        id="P7",
        title=(
            f"{'the default scenario suite' if paths == ('scenarios',) else ' '.join(paths)}"
            f" ({items} items) on -n {WORKERS}"
        ),
        ratio=median(per_worker),
        target=1.25,
        op="<=",
        baseline=(
            f"the sum of the items' own run times (report duration_s) spread over the "
            f"{WORKERS} workers"
        ),
        medians={
            "suite_s": median(walls),
            "items_run_time_sum_s": median(item_sums),
            "items_per_s": items / median(walls),
        },
        reps=reps,
        note=(
            "`pytest scenarios -n 2` (scripts/suite.sh's session, report on) as a subprocess, "
            "wall time from start to exit: interpreter and worker start-up, collection with its "
            "probe runs, reporting; ratio = suite wall / (sum of item duration_s / 2 workers), "
            "1.0 when the workers did nothing but run items"
            + (f"; items selected with -k {select!r}" if select else "")
        ),
        extra={
            "items": items,
            "workers": WORKERS,
            "suite_over_item_sum": round(median(literal), 4),
        },
    )
