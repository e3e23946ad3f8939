"""P7: the whole default scenario suite on ``-n 2``: items/s, and suite time over item time."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import bare_items, refund
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


# What every worker of the suite imports to run the reference agent's items: the agent (and
# with it the openai SDK) and, for the Anthropic scenarios, the anthropic SDK.
AGENT_IMPORTS = "reference_agent,anthropic"


def run_bare(root: Path, items: int) -> float:
    """P7's floor: a ``-n 2`` session of ``items`` bare pytest items (no shakeout plugin) whose
    workers import the agent and its SDKs; returns its wall seconds, start to exit."""
    (root / "bare.yaml").write_text("bare: true\n", encoding="utf-8")
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(root),
        "-p",
        "no:cacheprovider",
        *bare_items.PYTEST_ARGS,
        # As the suite's own configuration (pyproject addopts) does: langsmith's pytest plugin
        # (from the langgraph extra) costs every pytest process about 1.5 s of imports.
        "-p",
        "no:langsmith_plugin",
        "-n",
        str(WORKERS),
        "-q",
    ]
    env = {**_env(), "BARE_PER_FILE": str(items), "BARE_IMPORTS": AGENT_IMPORTS}
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or f"{items} passed" not in done.stdout:
        tail = "\n".join(done.stdout.splitlines()[-15:])
        raise RuntimeError(f"the bare session exited {done.returncode}:\n{tail}")
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
    bares: list[float] = []
    item_sums: list[float] = []
    items = 0
    with tempfile.TemporaryDirectory(prefix="shakeout-bench-p7-") as tmp:
        (Path(tmp) / "bare").mkdir()
        for rep in range(reps):
            report = Path(tmp) / f"suite-{rep}.json"
            walls.append(run_suite(report, *(["-k", select] if select else []), paths=paths))
            data: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
            items = len(data["items"])
            if not items:
                raise RuntimeError(f"the suite over {' '.join(paths)} ran no item")
            item_sums.append(sum(float(i.get("duration_s", 0.0)) for i in data["items"]))
            bares.append(run_bare(Path(tmp) / "bare", items))
    per_worker = [w / (s / WORKERS) for w, s in zip(walls, item_sums, strict=True)]
    literal = [w / s for w, s in zip(walls, item_sums, strict=True)]
    # The suite's wall less the bare session's, over the item time per worker: 1.0 when
    # shakeout adds nothing to what pytest -n 2, the agent's imports and that many items cost.
    over_floor = [(w - b) / (s / WORKERS) for w, b, s in zip(walls, bares, item_sums, strict=True)]
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
            "bare_pytest_s": median(bares),
        },
        reps=reps,
        note=(
            "`pytest scenarios -n 2` (scripts/suite.sh's session, report on) as a subprocess, "
            "wall time from start to exit: interpreter and worker start-up, collection with its "
            "probe runs, reporting; ratio = suite wall / (sum of item duration_s / 2 workers), "
            "1.0 when the workers did nothing but run items; bare_pytest_s: the floor, a -n 2 "
            "session of as many bare pytest items (no shakeout) whose workers import the agent "
            "and its SDKs; extra.ratio_over_bare_floor = (suite wall - bare wall) / (item time / 2)"
            + (f"; items selected with -k {select!r}" if select else "")
        ),
        extra={
            "items": items,
            "workers": WORKERS,
            "suite_over_item_sum": round(median(literal), 4),
            "ratio_over_bare_floor": round(median(over_floor), 4),
        },
    )
