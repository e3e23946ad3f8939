"""The Performance tables are the committed run's JSON, rendered by ``benchmarks.tables``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import tables

FIGURE = {
    "title": "resume cost",
    "ratio": 1.05,
    "target": "<= 1.2",
    "target_value": 1.2,
    "target_op": "<=",
    "met": True,
    "baseline": "step 5",
    "medians": {"resume_at_50_s": 0.002},
    "unit": "s",
    "reps": 3,
    "note": "",
    "run": {"mode": "full", "command": "python -m benchmarks", "python": "3.11.7"},
}


def test_the_committed_tables_match_the_committed_results() -> None:
    assert tables.stale() == [], "run: python -m benchmarks.tables benchmarks/results.json"


def test_every_committed_figure_is_in_both_tables() -> None:
    doc = json.loads(tables.RESULTS.read_text(encoding="utf-8"))
    for page in tables.TARGETS:
        region = page.read_text(encoding="utf-8").split(tables.START)[1].split(tables.END)[0]
        for fid, figure in doc.items():
            assert f"| {fid} {figure['title']} |" in region, (page, fid)


@pytest.fixture
def copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The two pages and a results file in a scratch tree the module writes instead."""
    (tmp_path / "benchmarks").mkdir()
    for page in tables.TARGETS:
        shutil.copy(page, tmp_path / page.relative_to(tables.REPO))
    monkeypatch.setattr(
        tables,
        "TARGETS",
        {tmp_path / p.relative_to(tables.REPO): s for p, s in tables.TARGETS.items()},
    )
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"P3": FIGURE}), encoding="utf-8")
    return results


def test_writing_then_checking_agrees_and_a_hand_edit_is_caught(copy: Path) -> None:
    assert tables.main([str(copy)]) == 0
    assert tables.main([str(copy), "--check"]) == 0
    readme = next(p for p, s in tables.TARGETS.items() if s == "short")
    text = readme.read_text(encoding="utf-8")
    assert "| P3 resume cost | 1.05 | <= 1.2 | yes |" in text
    readme.write_text(text.replace("| 1.05 |", "| 1.01 |"), encoding="utf-8")
    assert tables.main([str(copy), "--check"]) == 1
    assert tables.stale(copy) == [readme]


def test_a_new_figure_in_the_json_makes_the_tables_stale(copy: Path) -> None:
    tables.main([str(copy)])
    copy.write_text(json.dumps({"P3": FIGURE, "P7": {**FIGURE, "title": "suite"}}), "utf-8")
    assert len(tables.stale(copy)) == 2


def test_a_page_without_markers_is_refused_with_the_fix(copy: Path) -> None:
    page = next(iter(tables.TARGETS))
    page.write_text("# no markers\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="add the two marker lines"):
        tables.main([str(copy)])


def test_the_provenance_line_names_the_missed_targets() -> None:
    missed = {**FIGURE, "ratio": 1.3, "met": False}
    line = tables.render({"P3": FIGURE, "P7": missed, "P1": missed}, "short").splitlines()[0]
    assert line.endswith("; 2 of the 3 targets missed (P7, P1).")
    line = tables.render({"P3": FIGURE}, "short").splitlines()[0]
    assert line.endswith("; all 1 targets met.")
