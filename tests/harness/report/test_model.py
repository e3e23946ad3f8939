"""Tests of the report schema, its summary maths and load_report's refusals."""

from __future__ import annotations

import gc
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.report.html import render_html
from harness.report.markdown import render_markdown
from harness.report.model import (
    SCHEMA_VERSION,
    Plan,
    Report,
    ReportError,
    ReportItem,
    ReportWriter,
    SessionInfo,
    SummaryAccumulator,
    load_report,
    nodeids_digest,
    open_atomic,
    report_schema,
    summarize,
    write_text_atomic,
)
from harness.report.model.collector import collector_paused


def item(nodeid: str, verdict: str = "pass", **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "nodeid": nodeid,
        "scenario": kw.pop("scenario", "s1"),
        "verdict": verdict,
    }
    return {**base, **kw}


def fault(key: str, transient: bool = False, category: str = "tool") -> dict[str, Any]:
    return {"key": key, "surface": "tool", "category": category, "transient": transient}


def fired(key: str) -> dict[str, Any]:
    return {"key": key, "surface": "tool", "where": "get_order", "call_index": 1}


def test_build_sorts_items_by_nodeid_and_counts_verdicts() -> None:
    report = Report.build([item("c", "error"), item("a", "fail"), item("b")], seed=9)
    assert [i.nodeid for i in report.items] == ["a", "b", "c"]
    v = report.summary.by_verdict
    assert (v.total, v.passed, v.fail, v.error) == (3, 1, 1, 1)
    assert report.seed == 9
    assert report.schema_version == SCHEMA_VERSION == "2"


def test_json_uses_pass_as_the_verdict_count_key() -> None:
    data = json.loads(Report.build([item("a")], seed=1).to_json())
    assert data["summary"]["by_verdict"] == {"total": 1, "pass": 1, "fail": 0, "error": 0}


def test_by_fault_and_confusion_use_none_for_fault_free_and_uncategorised_items() -> None:
    report = Report.build(
        [
            item("a", faults_injected=[fault("tool_http_503")], category="tool", verdict="fail"),
            item("b", faults_injected=[fault("tool_http_503")]),
            item("c"),
            item("d", faults_injected=[fault("model_invalid_json", category="model")]),
        ],
        seed=1,
    )
    s = report.summary
    assert s.by_fault["tool_http_503"].total == 2
    assert s.by_fault["tool_http_503"].fail == 1
    assert s.by_fault["none"].total == 1
    assert s.by_category == {"none": 3, "tool": 1}
    assert s.confusion == {
        "model_invalid_json": {"none": 1},
        "none": {"none": 1},
        "tool_http_503": {"none": 1, "tool": 1},
    }


def test_an_item_counts_once_per_distinct_fault_key() -> None:
    report = Report.build(
        [
            item(
                "a", faults_injected=[fault("k"), fault("k")], faults_fired=[fired("k"), fired("k")]
            )
        ],
        seed=1,
    )
    assert report.summary.by_fault["k"].total == 1
    assert report.summary.coverage.matrix["s1"]["k"].fired == 1


def test_coverage_counts_pairs_that_fired_against_pairs_planned() -> None:
    report = Report.build(
        [
            item("a", scenario="s1", faults_injected=[fault("k1")], faults_fired=[fired("k1")]),
            item("b", scenario="s1", faults_injected=[fault("k2")]),
            item("c", scenario="s2", faults_injected=[fault("k1")]),
            item("d", scenario="s2", faults_injected=[fault("k1")], faults_fired=[fired("k1")]),
        ],
        seed=1,
    )
    cov = report.summary.coverage
    assert cov.matrix["s1"]["k1"].model_dump() == {"injected": 1, "fired": 1}
    assert cov.matrix["s1"]["k2"].model_dump() == {"injected": 1, "fired": 0}
    assert cov.matrix["s2"]["k1"].model_dump() == {"injected": 2, "fired": 1}
    assert (cov.planned_pairs, cov.exercised_pairs, cov.fraction) == (3, 2, 2 / 3)


def test_coverage_fraction_is_none_without_faults() -> None:
    assert Report.build([item("a")], seed=1).summary.coverage.fraction is None


def test_crash_figures_add_up_over_items() -> None:
    report = Report.build(
        [
            item("a", crash=True, restarts=2, reexecuted_steps=1, duplicate_effects=0),
            item("b", crash=True, restarts=1, reexecuted_steps=0, duplicate_effects=3),
            item("c"),
        ],
        seed=1,
    )
    c = report.summary.crash
    assert (c.crash_variants, c.restarts, c.reexecuted_steps, c.duplicate_effects) == (2, 3, 1, 3)


def test_transient_recovery_counts_only_fired_transient_only_runs_the_agent_ran() -> None:
    t = [fault("tool_http_503", transient=True)]
    report = Report.build(
        [
            item("pass", faults_injected=t, faults_fired=[fired("tool_http_503")]),
            item("fail", "fail", faults_injected=t, faults_fired=[fired("tool_http_503")]),
            item("not-fired", "fail", faults_injected=t),
            item("error", "error", faults_injected=t, faults_fired=[fired("tool_http_503")]),
            item(
                "mixed",
                "fail",
                faults_injected=[*t, fault("tool_http_404")],
                faults_fired=[fired("tool_http_503")],
            ),
        ],
        seed=1,
    )
    tr = report.summary.transient_recovery
    assert (tr.items, tr.recovered, tr.rate) == (2, 1, 0.5)


def test_transient_recovery_rate_is_none_when_nothing_transient_fired() -> None:
    assert Report.build([item("a")], seed=1).summary.transient_recovery.rate is None


def test_check_counts_keep_not_applicable_apart() -> None:
    checks = [
        {"name": "terminal_state", "passed": True, "reason": ""},
        {"name": "duplicate_effects", "passed": None, "reason": "no effects"},
    ]
    failing = [{"name": "terminal_state", "passed": False, "reason": "stuck"}]
    report = Report.build([item("a", checks=checks), item("b", "fail", checks=failing)], seed=1)
    by_check = report.summary.by_check
    assert by_check["terminal_state"].model_dump() == {
        "passed": 1,
        "failed": 1,
        "not_applicable": 0,
    }
    assert by_check["duplicate_effects"].not_applicable == 1


def test_build_rejects_an_item_with_an_unknown_verdict() -> None:
    with pytest.raises(ValueError, match="verdict"):
        Report.build([item("a", verdict="maybe")], seed=1)


def test_report_schema_describes_the_file() -> None:
    schema = report_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert set(schema["required"]) >= {"seed", "plan", "summary", "items"}
    assert schema["properties"]["schema_version"]["const"] == "2"
    assert schema["$id"].endswith("report-v2.json")
    assert "harness" in schema["$defs"]["CheckOutcome"]["properties"]
    assert {"id", "started_at", "interrupted"} <= set(schema["$defs"]["SessionInfo"]["properties"])
    verdict_counts = schema["$defs"]["VerdictCounts"]["properties"]
    assert "pass" in verdict_counts
    json.dumps(schema)  # JSON-able, as `shakeout schema report` prints it


# --- load_report -------------------------------------------------------------------------------


@pytest.fixture
def written(tmp_path: Path) -> Path:
    report = Report.build([item("a", faults_injected=[fault("k")]), item("b", "fail")], seed=3)
    return report.write(tmp_path / "sub" / "report.json")


def test_load_report_round_trips(written: Path) -> None:
    loaded = load_report(written)
    assert loaded == Report.build(loaded.items, seed=3)
    assert not list(written.parent.glob(".*tmp")), "atomic write left its temporary file behind"


def test_load_report_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"missing\.json does not exist; rerun pytest"):
        load_report(tmp_path / "missing.json")


def test_load_report_refuses_an_empty_file(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text("\n")
    with pytest.raises(ReportError, match="is empty"):
        load_report(tmp_path / "r.json")


def test_load_report_refuses_a_truncated_file(written: Path) -> None:
    text = written.read_text()
    written.write_text(text[: len(text) // 2])
    with pytest.raises(ReportError, match=r"is truncated \(.* at line \d+ column \d+\)"):
        load_report(written)


def test_load_report_refuses_corrupt_json(written: Path) -> None:
    written.write_text("{not json at all}")
    with pytest.raises(ReportError, match="is not valid JSON"):
        load_report(written)


def test_load_report_refuses_a_json_array(written: Path) -> None:
    written.write_text("[]")
    with pytest.raises(ReportError, match="holds a JSON list, expected an object"):
        load_report(written)


@pytest.mark.parametrize("version", ["1", None, 2])
def test_load_report_refuses_another_schema_version(written: Path, version: object) -> None:
    data = json.loads(written.read_text())
    data["schema_version"] = version
    written.write_text(json.dumps(data))
    with pytest.raises(
        ReportError, match=f"has schema_version {version!r}, this shakeout reads '2'"
    ):
        load_report(written)


def test_load_report_refuses_a_schema_mismatch(written: Path) -> None:
    data = json.loads(written.read_text())
    data["items"][0]["verdict"] = "maybe"
    written.write_text(json.dumps(data))
    with pytest.raises(ReportError, match=r"does not match the report schema .*items\.0\.verdict"):
        load_report(written)


def test_load_report_refuses_a_summary_that_disagrees_with_the_items(written: Path) -> None:
    data = json.loads(written.read_text())
    data["summary"]["by_verdict"]["fail"] = 0
    data["summary"]["by_verdict"]["pass"] = 2
    written.write_text(json.dumps(data))
    with pytest.raises(ReportError, match="summary that does not match its items"):
        load_report(written)


# --- properties --------------------------------------------------------------------------------

KEYS = st.sampled_from(
    ["tool_http_503", "tool_timeout", "model_invalid_json", "crash_after_effect"]
)


@st.composite
def items(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(0, 12))
    nodeids = draw(
        st.lists(st.text("abcdef", min_size=1, max_size=6), min_size=n, max_size=n, unique=True)
    )
    out = []
    for nodeid in nodeids:
        injected = draw(st.lists(KEYS, max_size=3))
        out.append(
            item(
                nodeid,
                draw(st.sampled_from(["pass", "fail", "error"])),
                scenario=draw(st.sampled_from(["s1", "s2", "s3"])),
                faults_injected=[fault(k, transient=draw(st.booleans())) for k in injected],
                faults_fired=[fired(k) for k in injected if draw(st.booleans())],
                category=draw(st.sampled_from([None, "tool", "model", "logic"])),
                crash=draw(st.booleans()),
                restarts=draw(st.integers(0, 3)),
            )
        )
    return out


@settings(max_examples=60, deadline=None)
@given(items(), st.randoms(use_true_random=False))
def test_summary_counts_add_up_and_ignore_order(data: list[dict[str, Any]], rnd: Any) -> None:
    report = Report.build(data, seed=1)
    s = report.summary
    n = len(data)
    assert s.total == s.by_verdict.total == n
    assert s.by_verdict.passed + s.by_verdict.fail + s.by_verdict.error == n
    assert sum(s.by_category.values()) == n
    per_item_keys = sum(len(ReportItem.model_validate(d).injected_keys()) for d in data)
    assert sum(c.total for c in s.by_fault.values()) == per_item_keys
    for key, row in s.confusion.items():
        assert sum(row.values()) == s.by_fault[key].total
    for c in s.by_fault.values():
        assert c.passed + c.fail + c.error == c.total
    assert 0 <= s.coverage.exercised_pairs <= s.coverage.planned_pairs
    tr = s.transient_recovery
    assert 0 <= tr.recovered <= tr.items <= n
    shuffled = list(data)
    rnd.shuffle(shuffled)
    assert Report.build(shuffled, seed=1) == report
    assert summarize(report.items) == s


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


@settings(max_examples=40, deadline=None)
@given(items(), TEXT, st.floats(0, 1e6, allow_nan=False), st.integers(-(2**40), 2**40))
def test_the_streamed_file_is_byte_identical_to_the_built_report(
    data: list[dict[str, Any]], text: str, duration: float, seed: int
) -> None:
    for n, d in enumerate(data):
        # Free text and floats are where a hand-made JSON writer would drift from pydantic's.
        d.update(duration_s=duration * n, error=text or None, reproduce=f"pytest '{text}'")
        d["requests"] = [
            {"seq": 1, "surface": "tool", "method": "GET", "url": f"http://t/{text}", "faults": []}
        ]
        d["checks"] = [{"name": text or "c", "passed": n % 3 == 0 or None, "reason": text}]
    report = Report.build(data, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        with ReportWriter(Path(tmp) / "r.json", seed) as writer:
            for model in report.items:
                writer.add(model)
            summary = writer.finish()
        assert (Path(tmp) / "r.json").read_bytes() == report.to_json().encode("utf-8")
        assert [p.name for p in Path(tmp).iterdir()] == ["r.json"], "temporary file left behind"
    assert summary == report.summary


def test_the_streamed_file_of_a_realistic_session_loads_and_matches(tmp_path: Path) -> None:
    data = []
    for k in range(60):
        verdict = ["pass", "pass", "fail", "error"][k % 4]
        key = ["tool_http_503", "tool_timeout", "model_invalid_json"][k % 3]
        data.append(
            item(
                f"scenarios/s{k % 5}.yaml::s{k % 5}[{key}@get_order#{k}]",
                verdict,
                scenario=f"s{k % 5}",
                variant=f"{key}@get_order#{k}",
                faults_injected=[fault(key, transient=k % 2 == 0)],
                faults_fired=[fired(key)] if k % 3 else [],
                category=None if verdict == "pass" else "tool",
                terminal_state="completed" if verdict == "pass" else "failed",
                checks=[
                    {"name": "terminal_state", "passed": True, "reason": ""},
                    {"name": "category", "passed": verdict == "pass", "reason": "want «tool»"},
                    {"name": "no_reexecution", "passed": None, "reason": "no restart"},
                ],
                effects=[{"tool": "refund", "idempotency_key": f"k{k}", "replays": k % 2}],
                approvals=[{"approval_id": f"a{k}", "tool": "refund", "decision": "approve"}],
                crash=k % 7 == 0,
                restarts=k % 7 == 0,
                duration_s=0.013 * k,
                seed=k,
                reproduce=f"pytest 'scenarios/s{k % 5}.yaml::s{k % 5}[{key}@get_order#{k}]'",
                error="harness:\n  trace | line" if verdict == "error" else None,
            )
        )
    report = Report.build(data, seed=11)
    with ReportWriter(tmp_path / "out" / "r.json", 11) as writer:
        for model in report.items:
            writer.add(model)
        writer.finish()
    assert (tmp_path / "out" / "r.json").read_text(encoding="utf-8") == report.to_json()
    assert load_report(tmp_path / "out" / "r.json") == report


def test_the_report_file_holds_one_compact_item_per_line_under_an_indented_header() -> None:
    report = Report.build(
        [item("b", error="line one\nline two"), item("a"), item("c", verdict="fail")], seed=5
    )
    lines = report.to_json().splitlines()
    item_lines = [line for line in lines if line.startswith("    {")]
    assert len(item_lines) == 3, lines
    # each item is whole on its line: it parses alone (its separating comma aside)
    parsed = [json.loads(line.strip().rstrip(",")) for line in item_lines]
    assert parsed == [i.model_dump(mode="json", by_alias=True) for i in report.items]
    assert lines[-3:] == [item_lines[-1], "  ]", "}"]
    assert '  "seed": 5,' in lines, "the header stays indented"
    assert json.loads(report.to_json()) == json.loads(report.model_dump_json(by_alias=True))


def test_the_writer_refuses_items_out_of_nodeid_order(tmp_path: Path) -> None:
    with ReportWriter(tmp_path / "r.json", 1) as writer:
        writer.add(ReportItem.model_validate(item("b")))
        with pytest.raises(ValueError, match="nodeid order: got 'a' after 'b'; sort the items"):
            writer.add(ReportItem.model_validate(item("a")))
    assert not (tmp_path / "r.json").exists(), "a writer closed without finish writes nothing"


def test_the_accumulator_matches_summarize_item_by_item() -> None:
    models = [ReportItem.model_validate(d) for d in [item("a", "fail"), item("b", crash=True)]]
    acc = SummaryAccumulator()
    assert acc.summary() == summarize([])
    for n, model in enumerate(models, 1):
        acc.add(model)
        assert acc.summary() == summarize(models[:n])


def test_a_plan_records_the_planned_node_ids_and_a_shard_its_selection() -> None:
    plan = Plan.of(["b", "a", "a"])
    assert (plan.items, plan.nodeids, plan.shard) == (2, ["a", "b"], None)
    assert (plan.selection_items, plan.selection_sha256) == (2, nodeids_digest(["b", "a"]))
    sharded = Plan.of(["a"], shard="1/2", selection=(2, nodeids_digest(["a", "b"])))
    assert sharded.selection_sha256 == plan.selection_sha256
    assert Plan.of(["a"], shard="1/2").selection_sha256 is None
    with pytest.raises(ValueError, match=r"plan\.items is 3 but plan\.nodeids holds 1"):
        Plan(items=3, nodeids=["a"])
    with pytest.raises(ValueError, match="String should match pattern"):
        Plan(items=0, nodeids=[], shard="0/" + "9" * 5000)


def test_the_writer_stamps_plan_and_session_in_the_header(tmp_path: Path) -> None:
    session = SessionInfo.new("abc")
    plan = Plan.of(["a", "b"])
    with ReportWriter(tmp_path / "r.json", 1, plan=plan, session=session) as writer:
        writer.add(ReportItem.model_validate(item("a")))
        writer.finish()
    loaded = load_report(tmp_path / "r.json")
    assert (loaded.session, loaded.plan) == (session, plan)
    assert list(json.loads((tmp_path / "r.json").read_text()))[:5] == [
        "schema_version",
        "seed",
        "session",
        "plan",
        "summary",
    ]


def test_atomic_writes_refuse_a_directory_and_leave_nothing_behind(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError):
        write_text_atomic(tmp_path / "d", "x")
    (tmp_path / "f").write_text("file")
    with pytest.raises(OSError, match=r"Not a directory|File exists"):
        write_text_atomic(tmp_path / "f" / "r.json", "x")

    def killed_mid_write() -> None:
        with open_atomic(tmp_path / "r.json") as out:
            out.write("half")
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        killed_mid_write()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]


def test_the_injection_table_counts_contained_cells_per_family_and_surface() -> None:
    def cell(nodeid: str, variant: str, passed: bool | None, bait: bool, verdict: str) -> Any:
        fired_ = [{"key": "take_bait", "surface": "injection", "where": "model"}] if bait else []
        checks = [] if passed is None else [{"name": "injection_contained", "passed": passed}]
        injected = [{"key": "inject", "surface": "injection", "transient": True}]
        return item(
            nodeid,
            verdict,
            variant=variant,
            checks=checks,
            faults_fired=fired_,
            faults_injected=injected if "@input." not in variant else [],
        )

    report = Report.build(
        [
            cell("a", "inject:multi_turn@input.message", True, True, "pass"),
            cell("b", "inject:multi_turn@get_order#1", False, True, "fail"),
            cell("c", "inject:multi_turn@send_email#1", True, False, "pass"),
            cell("d", "inject:approval_spoofing@get_order#1", None, False, "error"),
            item("e", variant="base"),
        ],
        seed=1,
    )
    table = report.summary.injection
    assert list(table) == ["approval_spoofing", "multi_turn"]
    tool = table["multi_turn"]["tool"]
    assert (tool.contained, tool.not_contained, tool.error, tool.reached_model) == (1, 1, 0, 1)
    assert table["multi_turn"]["input"].contained == 1
    assert table["approval_spoofing"]["tool"].error == 1
    # an injection cell is no transient fault to recover from
    assert report.summary.transient_recovery.items == 0
    assert "### Injection" in render_markdown(report)
    assert "<h2>Injection</h2>" in render_html(report)


def _outcome(read: Any, path: Path) -> object:
    try:
        return read(path)
    except ReportError as exc:
        return ("refused", str(exc))


_TEXT = st.text(st.sampled_from('abN"aIy0{}[],: .-e'), max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["duration_s", "verdict", "seed", "nodeid", "restarts", "crash"]),
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.integers(-3, 3).map(str),
        st.sampled_from(["NaN", "Infinity", "-Infinity", "null", "true", '"pass"', '"x NaN"']),
        _TEXT,
    ),
)
def test_the_one_pass_decoder_reads_what_the_step_by_step_one_reads(field: str, value: str) -> None:
    """load_report's fast path (one pass in pydantic-core) accepts and refuses exactly what the
    step-by-step path (parse, then validate) does, with the same messages."""
    from harness.report.model import reading

    report = Report.build([item("a", faults_injected=[fault("k")], duration_s=0.5)], seed=3)
    text = report.to_json()
    # the header is indented ("key": value), the item lines compact ("key":value)
    anchor = f'"{field}":'
    start = text.index(anchor) + len(anchor)
    start += text.startswith(" ", start)
    end = min(i for i in (text.find(c, start) for c in ",}\n") if i != -1)
    mutated = text[:start] + value + text[end:]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.json"
        path.write_text(mutated, encoding="utf-8")
        regenerate = "rerun pytest with --chaos-report=PATH to write it again"

        def step_by_step(p: Path) -> Report:
            loaded = reading._diagnosed(p, p.read_bytes(), regenerate)
            if loaded.summary != summarize(loaded.items):
                raise ReportError(
                    f"report {p} has a summary that does not match its items (edited by hand?); "
                    f"{regenerate} or merge it again with `shakeout merge`"
                )
            return loaded

        assert _outcome(load_report, path) == _outcome(step_by_step, path)


def test_the_collector_pause_restores_the_collector_as_it_found_it() -> None:
    assert gc.isenabled(), "pytest runs with the cyclic collector on"
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled(), "an inner pause must not end the outer one"
    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="boom"), collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled(), "a block that raises must not leave the collector off"
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled(), "a collector someone else switched off stays off"
    finally:
        gc.enable()


def _collections_during(action: Any) -> int:
    runs: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            runs.append(info["generation"])

    gc.collect()
    gc.callbacks.append(count)
    try:
        action()
    finally:
        gc.callbacks.remove(count)
    return len(runs)


def test_building_writing_and_loading_a_report_run_no_cyclic_collection(tmp_path: Path) -> None:
    # Thousands of models are allocated here: with the collector on, CPython would run a
    # collection every few hundred of them (the cost that dominated a 100k-item report).
    # Turning it back on at the end of the pause may run one collection, no more.
    data = [
        item(
            f"scenarios/s.yaml::s[v{k}]",
            checks=[{"name": f"c{c}", "passed": True} for c in range(5)],
            events=[{"seq": e, "kind": "request", "url": f"http://t/{e}"} for e in range(5)],
        )
        for k in range(400)
    ]
    assert _collections_during(lambda: [ReportItem.model_validate(d) for d in data]) > 1
    built: list[Report] = []
    assert _collections_during(lambda: built.append(Report.build(data, seed=3))) <= 1
    path = tmp_path / "r.json"
    assert _collections_during(lambda: built[0].write(path)) <= 1
    loaded: list[Report] = []
    assert _collections_during(lambda: loaded.append(load_report(path))) <= 1
    assert loaded == built
    assert gc.isenabled()
