"""Smoke test of ``python -m benchmarks --smoke --json``: it runs and writes every figure's shape.

No timing is asserted: benchmarks measure, tests check behaviour. The run is one test, so that
xdist never runs it on both workers (a module-scoped fixture is set up once per worker).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIGURES = ("P1", "P2", "P3", "P3b", "P4", "P5", "P5f", "P5b", "P6", "P7")


def run_smoke(out: Path) -> dict[str, dict[str, object]]:
    """Every figure at its smallest sizes, as the JSON the command writes."""
    # The smoke run checks the figures' shape, so its sessions run without coverage: what they
    # execute is covered by the tests of each module, and coverage's tracing would triple them.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")
    }
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--json", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data: dict[str, dict[str, object]] = json.loads(out.read_text(encoding="utf-8"))
    return data


def check_figure(fid: str, figure: dict[str, object]) -> None:
    """A figure has its ratio, a target it is judged against, a baseline and its medians."""
    ratio = figure["ratio"]
    assert isinstance(ratio, float), fid
    assert ratio > 0, fid
    assert isinstance(figure["target"], str), fid
    assert figure["target"][:2] in ("<=", ">="), fid
    assert isinstance(figure["baseline"], str), fid
    assert figure["baseline"], fid
    assert isinstance(figure["met"], bool), fid
    op, value = figure["target_op"], figure["target_value"]
    assert isinstance(value, float), fid
    assert figure["met"] == (ratio <= value if op == "<=" else ratio >= value), fid
    medians = figure["medians"]
    assert isinstance(medians, dict), fid
    assert medians, fid
    assert all(isinstance(v, float) and v >= 0 for v in medians.values()), fid
    assert isinstance(figure["reps"], int), fid
    assert figure["reps"] >= 1, fid
    run = figure["run"]
    assert isinstance(run, dict), fid
    assert run["mode"] == "smoke", fid
    assert run["command"] == "python -m benchmarks --smoke", fid


def test_every_figure_is_written_with_its_shape(tmp_path: Path) -> None:
    figures = run_smoke(tmp_path / "figures.json")
    assert sorted(figures) == sorted(FIGURES)
    for fid in FIGURES:
        check_figure(fid, figures[fid])
    # the matrix session's reports are identical under xdist
    extra = figures["P2"]["extra"]
    assert isinstance(extra, dict)
    assert extra["reports_identical"] is True


@pytest.mark.parametrize(
    ("field", "value"),
    [("ratio", -1.0), ("met", "yes"), ("target", "== 1"), ("medians", {}), ("reps", 0)],
)
def test_a_figure_of_the_wrong_shape_is_refused(field: str, value: object) -> None:
    good: dict[str, object] = {
        "ratio": 1.0,
        "target": "<= 1.1",
        "target_op": "<=",
        "target_value": 1.1,
        "met": True,
        "baseline": "the same run without the harness",
        "medians": {"a_s": 0.1},
        "reps": 1,
        "run": {"mode": "smoke", "command": "python -m benchmarks --smoke"},
    }
    check_figure("P1", good)
    with pytest.raises(AssertionError):
        check_figure("P1", {**good, field: value})
