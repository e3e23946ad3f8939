"""Tests of merging shard reports: a merged split equals the whole, and the refusals."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.plugin import shard_of
from harness.report.merge import EXIT_ERROR, EXIT_OK, merge_main, merge_reports
from harness.report.model import (
    Plan,
    Report,
    ReportError,
    SessionInfo,
    load_report,
    nodeids_digest,
)


def item(nodeid: str, verdict: str = "pass", **kw: Any) -> dict[str, Any]:
    return {"nodeid": nodeid, "scenario": kw.pop("scenario", "s1"), "verdict": verdict, **kw}


@st.composite
def items(draw: st.DrawFn) -> list[dict[str, Any]]:
    nodeids = draw(st.lists(st.text("abcxyz", min_size=1, max_size=5), max_size=10, unique=True))
    out = []
    for nodeid in nodeids:
        keys = draw(st.lists(st.sampled_from(["k1", "k2", "k3"]), max_size=2))
        out.append(
            item(
                nodeid,
                draw(st.sampled_from(["pass", "fail", "error"])),
                scenario=draw(st.sampled_from(["s1", "s2"])),
                faults_injected=[
                    {"key": k, "surface": "tool", "transient": draw(st.booleans())} for k in keys
                ],
                faults_fired=[{"key": k, "surface": "tool"} for k in keys if draw(st.booleans())],
                category=draw(st.sampled_from([None, "tool", "model"])),
                restarts=draw(st.integers(0, 2)),
                duplicate_effects=draw(st.integers(0, 1)),
            )
        )
    return out


@settings(max_examples=60, deadline=None)
@given(items(), st.data())
def test_merging_a_split_gives_the_whole(data: list[dict[str, Any]], draw: st.DataObject) -> None:
    shards = draw.draw(st.integers(1, 4))
    assignment = [draw.draw(st.integers(0, shards - 1)) for _ in data]
    parts = [
        (
            f"shard{s}",
            Report.build([d for d, a in zip(data, assignment, strict=True) if a == s], 5),
        )
        for s in range(shards)
    ]
    assert merge_reports(parts) == Report.build(data, seed=5)


def write(tmp_path: Path, name: str, report: Report) -> str:
    return str(report.write(tmp_path / name))


def test_merge_main_writes_the_merged_report(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", Report.build([item("t::2", "fail"), item("t::0")], seed=7))
    b = write(tmp_path, "b.json", Report.build([item("t::1", "error")], seed=7))
    out = io.StringIO()
    target = tmp_path / "out" / "merged.json"
    assert merge_main([a, b], str(target), stream=out) == EXIT_OK
    merged = load_report(target)
    assert [i.nodeid for i in merged.items] == ["t::0", "t::1", "t::2"]
    assert merged.summary.by_verdict.total == 3
    assert merged.summary.by_verdict.error == 1
    assert out.getvalue() == f"shakeout merge: wrote {target} (3 items from 2 reports)\n"


def test_merge_main_runs_with_the_cyclic_collector_paused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    from harness.report import merge

    seen: list[bool] = []
    real = merge.merge_reports

    def spy(reports: Any) -> Report:
        seen.append(gc.isenabled())
        return real(reports)

    monkeypatch.setattr(merge, "merge_reports", spy)
    a = write(tmp_path, "a.json", Report.build([item("t::0")], seed=7))
    out = io.StringIO()
    assert merge_main([a], str(tmp_path / "m.json"), stream=out) == EXIT_OK
    assert out.getvalue().endswith("(1 item from 1 report)\n"), out.getvalue()
    assert seen == [False], "the shards were merged with the collector on"
    assert gc.isenabled(), "the command left the collector paused"


def run_refused(tmp_path: Path, paths: list[str], target: Path | None = None) -> str:
    out, err = io.StringIO(), io.StringIO()
    target = target or tmp_path / "merged.json"
    assert merge_main(paths, str(target), stream=out, err=err) == EXIT_ERROR
    assert not target.is_file(), "a refused merge must not write its output"
    assert out.getvalue() == ""
    text = err.getvalue()
    assert text.startswith("shakeout merge: ERROR ")
    assert text.count("\n") == 1, text
    assert not list(tmp_path.rglob("*.tmp")), "a temporary file was left behind"
    return text


def test_merge_refuses_mismatched_seeds(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", Report.build([item("t::a")], seed=1))
    b = write(tmp_path, "b.json", Report.build([item("t::b")], seed=2))
    text = run_refused(tmp_path, [a, b])
    assert f"cannot merge {b} (seed 2) with {a} (seed 1)" in text
    assert "--chaos-seed=1" in text


def test_merge_refuses_a_shard_of_another_schema_version(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", Report.build([item("t::a")], seed=1))
    data = json.loads(Report.build([item("t::b")], seed=1).to_json())
    data["schema_version"] = "1"
    b = tmp_path / "b.json"
    b.write_text(json.dumps(data))
    text = run_refused(tmp_path, [a, str(b)])
    assert "has schema_version '1', this shakeout reads '2'" in text


def test_merge_reports_refuses_mismatched_schema_versions() -> None:
    a = Report.build([item("t::a")], seed=1)
    # A future shard that loaded under a newer model; model_construct skips the Literal check.
    b = Report.model_construct(schema_version="3", seed=1, summary=a.summary, items=[])  # type: ignore[arg-type]
    with pytest.raises(ReportError, match=r"cannot merge b \(schema_version '3'\) with a"):
        merge_reports([("a", a), ("b", b)])


def test_merge_refuses_a_duplicate_nodeid(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", Report.build([item("t::a"), item("t::same")], seed=1))
    b = write(tmp_path, "b.json", Report.build([item("t::same", "fail")], seed=1))
    text = run_refused(tmp_path, [a, b])
    assert f"t::same is in both {a} and {b}" in text


def test_merge_refuses_a_corrupt_shard(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", Report.build([item("t::a")], seed=1))
    (tmp_path / "b.json").write_text('{"schema_version": "2", "se')
    text = run_refused(tmp_path, [a, str(tmp_path / "b.json")])
    assert "b.json is truncated" in text


def test_merge_refuses_no_input(tmp_path: Path) -> None:
    assert "nothing to merge" in run_refused(tmp_path, [])


def shard(nodeids: list[str], k: int, n: int, selection: list[str], **kw: Any) -> Report:
    mine = [i for i in nodeids if shard_of(i, n) == k]
    plan = Plan.of(mine, shard=f"{k}/{n}", selection=(len(selection), nodeids_digest(selection)))
    return Report.build([item(i, **kw) for i in mine], seed=3, plan=plan)


NODEIDS = [f"s.yaml::t{i}" for i in range(12)]


def test_shards_of_one_session_merge_into_its_whole_plan(tmp_path: Path) -> None:
    paths = [write(tmp_path, f"{k}.json", shard(NODEIDS, k, 3, NODEIDS)) for k in (1, 2, 3)]
    out = io.StringIO()
    assert merge_main(paths, str(tmp_path / "all.json"), stream=out) == EXIT_OK
    merged = load_report(tmp_path / "all.json")
    assert merged.plan == Plan.of(NODEIDS)
    assert [i.nodeid for i in merged.items] == sorted(NODEIDS)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_shards_of_different_selections_or_missing_shards_are_refused(tmp_path: Path) -> None:
    other = NODEIDS[:-1]
    a = write(tmp_path, "a.json", shard(NODEIDS, 1, 2, NODEIDS))
    b = write(tmp_path, "b.json", shard(other, 2, 2, other))
    assert "shards of one session select the same items" in run_refused(tmp_path, [a, b])
    assert "shard(s) 2/2 missing; merge all 2 shards" in run_refused(tmp_path, [a])
    twice = write(tmp_path, "twice.json", shard(NODEIDS, 1, 2, NODEIDS))
    assert "is in both" in run_refused(tmp_path, [a, twice])
    plain = write(tmp_path, "plain.json", Report.build([item("x.yaml::z")], seed=3))
    assert "(no --chaos-shard) with" in run_refused(tmp_path, [plain, a])


def test_a_shard_of_an_interrupted_session_is_refused(tmp_path: Path) -> None:
    session = SessionInfo.new("s").model_copy(update={"interrupted": "Ctrl-C"})
    a = write(tmp_path, "a.json", Report.build([item("t::a")], seed=1, session=session))
    assert "its session did not finish (Ctrl-C); rerun that shard" in run_refused(tmp_path, [a])


def test_one_session_id_across_the_shards_survives_the_merge() -> None:
    a = Report.build([item("t::a")], seed=1, session=SessionInfo.new("ci-42"))
    b = Report.build([item("t::b")], seed=1, session=SessionInfo.new("ci-42"))
    assert merge_reports([("a", a), ("b", b)]).session.id == "ci-42"  # type: ignore[union-attr]
    c = Report.build([item("t::c")], seed=1, session=SessionInfo.new("other"))
    assert merge_reports([("a", a), ("c", c)]).session.id not in ("ci-42", "other")  # type: ignore[union-attr]


def test_merge_refuses_an_unwritable_output_in_one_line(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", Report.build([item("t::a")], seed=1))
    (tmp_path / "dir").mkdir()
    assert "cannot write" in run_refused(tmp_path, [a], tmp_path / "dir")
    assert "give -o a file path" in run_refused(tmp_path, [a], Path(a) / "under-a-file.json")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # pragma: no cover - running as root
            return
        assert "Permission denied" in run_refused(tmp_path, [a], locked / "m.json")
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize(
    ("path", "message"),
    [("/dev/zero", "is a character device"), (".", "is a directory")],
)
def test_merge_refuses_non_regular_inputs(tmp_path: Path, path: str, message: str) -> None:
    assert message in run_refused(tmp_path, [path])
