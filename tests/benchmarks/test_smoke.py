"""Smoke test of ``python -m benchmarks --quick --json``: it runs and writes every figure's shape.

No timing is asserted: benchmarks measure, tests check behaviour.
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


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    out = tmp_path_factory.mktemp("bench") / "figures.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)],
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


def test_every_figure_is_written(figures: dict[str, dict[str, object]]) -> None:
    assert sorted(figures) == sorted(FIGURES)


@pytest.mark.parametrize("fid", FIGURES)
def test_a_figure_has_its_ratio_target_baseline_and_medians(
    figures: dict[str, dict[str, object]], fid: str
) -> None:
    figure = figures[fid]
    ratio = figure["ratio"]
    assert isinstance(ratio, float)
    assert ratio > 0
    assert isinstance(figure["target"], str)
    assert figure["target"][:2] in ("<=", ">=")
    assert isinstance(figure["baseline"], str)
    assert figure["baseline"]
    assert isinstance(figure["met"], bool)
    op, value = figure["target_op"], figure["target_value"]
    assert isinstance(value, float)
    assert figure["met"] == (ratio <= value if op == "<=" else ratio >= value)
    medians = figure["medians"]
    assert isinstance(medians, dict)
    assert medians
    assert all(isinstance(v, float) and v >= 0 for v in medians.values())
    assert isinstance(figure["reps"], int)
    assert figure["reps"] >= 1


def test_the_matrix_session_reports_are_identical_under_xdist(
    figures: dict[str, dict[str, object]],
) -> None:
    extra = figures["P2"]["extra"]
    assert isinstance(extra, dict)
    assert extra["reports_identical"] is True
