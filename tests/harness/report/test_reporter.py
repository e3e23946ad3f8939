"""Tests of the reporting plugin via pytester: files, terminal summary, JUnit, xdist, crashes."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.report.gate import evaluate_gate, format_gate, gate_main
from harness.report.gate_policy import load_policy
from harness.report.html import render_html
from harness.report.model import Report, load_report
from harness.report.reporter import ReportPlugin

REPO = Path(__file__).resolve().parents[3]

# Stands in for harness.plugin.collect and the runner: each .yaml file holds a JSON list of specs,
# one item per spec, whose call phase appends the ("shakeout", entry) property as the runner does.
CONFTEST = """
import json, os, time
import pytest
from harness.report.reporter import ReportPlugin


class ScenarioFailed(Exception):
    pass


class ScenarioFile(pytest.File):
    def collect(self):
        for spec in json.loads(self.path.read_text()):
            if spec.get("only_on", os.environ.get("PYTEST_XDIST_WORKER")) != os.environ.get(
                "PYTEST_XDIST_WORKER"
            ):
                continue
            yield ScenarioItem.from_parent(self, name=spec["name"], spec=spec)


class ScenarioItem(pytest.Item):
    def __init__(self, *, spec, **kw):
        super().__init__(**kw)
        self.spec = spec

    def runtest(self):
        started = time.perf_counter()
        action = self.spec.get("action")
        if action == "exit":
            os._exit(3)
        if action == "raise":
            raise RuntimeError("harness exploded")
        if action == "interrupt":
            raise KeyboardInterrupt
        name, _, variant = self.name.partition("[")
        entry = {{"nodeid": self.nodeid, "scenario": name,
                 "variant": variant.rstrip("]") or "base", "seed": 7,
                 "reproduce": f"pytest '{{self.nodeid}}'", **self.spec.get("entry", {{}})}}
        entry["duration_s"] = time.perf_counter() - started
        self.user_properties.append(("shakeout", entry))
        if entry.get("verdict") != "pass":
            raise ScenarioFailed(f"verdict {{entry.get('verdict')}}")

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, ScenarioFailed):
            return f"scenario failed: {{excinfo.value}}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, self.name


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".yaml":
        return ScenarioFile.from_parent(parent, path=file_path)


def pytest_configure(config):
    config.addinivalue_line("markers", "chaos: a shakeout test")
    config.pluginmanager.register(
        ReportPlugin(config, seed=7, json_path={json!r}, markdown_path={md!r},
                     html_path={html!r}, policy_path={policy!r}),
        "shakeout-report",
    )
"""


def t503(verdict: str, *, transient: bool = True, fired: bool = True) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "verdict": verdict,
        "category": None if verdict == "pass" else "tool",
        "faults_injected": [
            {"key": "tool_http_503", "surface": "tool", "category": "tool", "transient": transient}
        ],
        "checks": [{"name": "transient_recovered", "passed": verdict == "pass", "reason": "r"}],
    }
    if fired:
        entry["faults_fired"] = [
            {"key": "tool_http_503", "surface": "tool", "where": "get_order", "call_index": 1}
        ]
    return entry


SPECS: list[dict[str, Any]] = [
    {
        "name": "refund[base]",
        "entry": {
            "verdict": "pass",
            "terminal_state": "completed",
            "checks": [{"name": "terminal_state", "passed": True, "reason": ""}],
        },
    },
    {"name": "refund[tool_http_503@get_order#1]", "entry": t503("pass")},
    {"name": "refund[tool_http_503@get_order#2]", "entry": t503("fail")},
    {"name": "lookup[tool_http_503@get_order#1]", "entry": t503("pass", fired=False)},
]


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    setup(pytester)
    return pytester


def setup(
    pytester: pytest.Pytester,
    specs: list[dict[str, Any]] | None = None,
    *,
    policy: str | None = None,
    outputs: bool = True,
) -> None:
    out = pytester.path / "out"
    pytester.makeconftest(
        CONFTEST.format(
            json=str(out / "report.json") if outputs else None,
            md=str(out / "report.md") if outputs else None,
            html=str(out / "report.html") if outputs else None,
            policy=policy,
        )
    )
    (pytester.path / "scenarios").mkdir(exist_ok=True)
    (pytester.path / "scenarios" / "refund.yaml").write_text(json.dumps(specs or SPECS))


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:shakeout", "-p", "no:cacheprovider", *args)


# Plugins installed in the venv that these sessions do not need; each xdist worker would load them.
QUIET_PLUGINS = ("-p", "no:respx", "-p", "no:httpx2", "-p", "no:anyio", "-p", "no:cov")


def report_of(pytester: pytest.Pytester) -> Report:
    return load_report(pytester.path / "out" / "report.json")


def without_timings(report: Report) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(report.to_json())
    data.pop("session")  # which run wrote it: differs between any two sessions
    for item in data["items"]:
        item.pop("duration_s")
    return data


def test_entries_become_the_report_files(project: pytest.Pytester) -> None:
    result = run(project)
    result.assert_outcomes(passed=3, failed=1)
    report = report_of(project)
    assert report.seed == 7
    assert [(i.scenario, i.variant, i.verdict) for i in report.items] == [
        ("lookup", "tool_http_503@get_order#1", "pass"),
        ("refund", "base", "pass"),
        ("refund", "tool_http_503@get_order#1", "pass"),
        ("refund", "tool_http_503@get_order#2", "fail"),
    ]
    s = report.summary
    assert (s.by_verdict.passed, s.by_verdict.fail, s.by_verdict.error) == (3, 1, 0)
    assert s.coverage.exercised_pairs == 1
    assert s.coverage.planned_pairs == 2
    assert s.transient_recovery.rate == 0.5
    out = project.path / "out"
    assert "**4** items: **3** pass, **1** fail, **0** error" in (out / "report.md").read_text()
    assert 'id="count-fail" data-count="1"' in (out / "report.html").read_text()


def test_terminal_summary_counts_per_fault_class_and_category(project: pytest.Pytester) -> None:
    result = run(project)
    result.stdout.fnmatch_lines(
        [
            "*= shakeout =*",
            "4 items: 3 pass, 1 fail, 0 error (seed 7)",
            "by fault class:",
            "  none              1 items  1 pass, 0 fail, 0 error",
            "  tool_http_503     3 items  2 pass, 1 fail, 0 error",
            "by category: none 3, tool 1",
            "transient recovery: 50.0% (1/2)",
            "coverage: 1/2 scenario x fault pairs exercised",
            f"written: {project.path}/out/report.json",
            f"written: {project.path}/out/report.md",
            f"written: {project.path}/out/report.html",
        ]
    )
    assert "shakeout gate" not in result.stdout.str()


def test_terminal_summary_shows_the_gate_verdict(project: pytest.Pytester) -> None:
    policy = project.path / "gate.toml"
    policy.write_text("max_failures = 0\nmin_transient_recovery = 0.5\n")
    setup(project, policy=str(policy))
    result = run(project)
    result.stdout.fnmatch_lines(
        [
            "FAILED max_failures: 1 > 0 allowed",
            "    scenarios/refund.yaml::refund[[]tool_http_503@get_order#2[]]",
            f"shakeout gate: FAIL (1 of 3 rules failed, 4 items, {project.path}/out/report.json)",
        ]
    )


def test_terminal_summary_reads_the_gate_from_pyproject(project: pytest.Pytester) -> None:
    project.makepyprojecttoml("[tool.shakeout.gate]\nmax_failures = 1\n")
    result = run(project)
    result.stdout.fnmatch_lines(
        [
            "shakeout gate: note: *does not set max_errors; applying max_errors = 0",
            "shakeout gate: PASS (2 rules, 4 items, *report.json)",
        ]
    )


def test_terminal_summary_shows_a_bad_policy_as_error(project: pytest.Pytester) -> None:
    project.makepyprojecttoml("[tool.shakeout.gate]\nmax_failure = 1\n")
    result = run(project)
    result.stdout.fnmatch_lines(["shakeout gate: ERROR *unknown gate policy key 'max_failure'*"])


def test_sessions_without_scenarios_print_and_write_nothing(project: pytest.Pytester) -> None:
    setup(project, outputs=False)
    (project.path / "scenarios" / "refund.yaml").unlink()
    project.makepyfile(test_plain="def test_plain():\n    assert False\n")
    result = run(project)
    result.assert_outcomes(failed=1)
    assert "= shakeout =" not in result.stdout.str()


def test_step_summary_is_appended(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = project.path / "step-summary.md"
    summary.write_text("# earlier\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    run(project)
    text = summary.read_text()
    assert text.startswith("# earlier\n## ❌ shakeout fault-injection report\n")


def test_items_without_an_entry_are_errors(project: pytest.Pytester) -> None:
    specs: list[dict[str, Any]] = [
        {"name": "ok[base]", "entry": {"verdict": "pass"}},
        {"name": "boom[base]", "action": "raise"},
        {"name": "bad[base]", "entry": {"verdict": "maybe"}},
    ]
    setup(project, specs)
    (project.path / "scenarios" / "broken.yaml").write_text("[{not json")
    project.makepyfile(
        test_plain="""
        import pytest

        @pytest.fixture
        def broken():
            raise LookupError("fixture missing")

        def test_plain_failure():
            assert False

        @pytest.mark.chaos
        def test_chaos_setup(broken):
            pass
        """
    )
    result = run(project, "--continue-on-collection-errors")
    result.assert_outcomes(passed=1, failed=3, errors=2)
    by_id = {i.nodeid: i for i in report_of(project).items}
    assert set(by_id) == {
        "scenarios/broken.yaml",
        "scenarios/refund.yaml::ok[base]",
        "scenarios/refund.yaml::boom[base]",
        "scenarios/refund.yaml::bad[base]",
        "test_plain.py::test_chaos_setup",
    }, "a plain (non-scenario) test must stay out of the report"
    broken = by_id["scenarios/broken.yaml"]
    assert (broken.verdict, broken.scenario) == ("error", "broken")
    assert broken.error is not None
    assert broken.error.startswith("collection failed: ")
    boom = by_id["scenarios/refund.yaml::boom[base]"]
    assert (boom.verdict, boom.scenario, boom.variant) == ("error", "boom", "base")
    assert boom.error == (
        "failed in call without a shakeout result: RuntimeError: harness exploded"
    )
    bad = by_id["scenarios/refund.yaml::bad[base]"]
    assert bad.verdict == "error"
    assert bad.error is not None
    assert "does not match the report schema (a shakeout bug" in bad.error
    assert "('verdict',)" in bad.error
    setup_error = by_id["test_plain.py::test_chaos_setup"]
    assert setup_error.verdict == "error"
    assert setup_error.error == "error in setup: LookupError: fixture missing"


def test_junit_gets_the_entry_as_json_and_its_key_fields(project: pytest.Pytester) -> None:
    run(project, "--junitxml=junit.xml")
    root = ET.parse(project.path / "junit.xml").getroot()
    case = next(
        c for c in root.iter("testcase") if c.get("name") == "refund[tool_http_503@get_order#2]"
    )
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    entry = json.loads(props["shakeout"] or "")
    assert entry["verdict"] == "fail"
    assert entry["faults_fired"][0]["key"] == "tool_http_503"
    assert props["shakeout.verdict"] == "fail"
    assert props["shakeout.variant"] == "tool_http_503@get_order#2"
    assert props["shakeout.category"] == "tool"
    assert props["shakeout.faults_fired"] == "tool_http_503"
    assert (
        props["shakeout.reproduce"]
        == "pytest 'scenarios/refund.yaml::refund[tool_http_503@get_order#2]'"
    )


def test_xdist_gives_the_same_report_and_a_crashed_worker_s_item_is_an_error(
    project: pytest.Pytester,
) -> None:
    run(project).assert_outcomes(passed=3, failed=1)
    single = without_timings(report_of(project))
    # One -n 2 session checks both, as xdist start-up dominates this file's run time. The workers
    # are real processes (so os._exit kills one), only the controller runs in this process.
    setup(project, [*SPECS, {"name": "refund[crash_in_harness]", "action": "exit"}])
    result = run(project, "-n", "2", *QUIET_PLUGINS)
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(["*worker 'gw*' crashed while running*"])
    report = report_of(project)
    crashed = next(i for i in report.items if i.variant == "crash_in_harness")
    assert crashed.verdict == "error"
    assert crashed.error is not None
    assert crashed.error.startswith("crashed: worker 'gw")
    assert (
        "crashed while running 'scenarios/refund.yaml::refund[crash_in_harness]'" in crashed.error
    )
    assert report.summary.by_verdict.error == 1
    others = Report.build([i for i in report.items if i is not crashed], seed=report.seed)
    assert without_timings(others) == single


def crash_report(nodeid: str) -> pytest.TestReport:
    # The report xdist's DSession.handle_crashitem fabricates for a dead worker's item.
    return pytest.TestReport(
        nodeid=nodeid,
        location=(nodeid.split("::")[0], None, nodeid.split("::")[0]),
        keywords={},
        outcome="failed",
        longrepr=f"worker 'gw0' crashed while running {nodeid!r}",
        when="???",  # type: ignore[arg-type]
    )


def passed_report(nodeid: str, entry: dict[str, Any] | None = None) -> pytest.TestReport:
    props: list[tuple[str, object]] = [("shakeout", entry)] if entry else []
    return pytest.TestReport(
        nodeid=nodeid,
        location=(nodeid.split("::")[0], None, nodeid),
        keywords={},
        outcome="passed",
        longrepr=None,
        when="call",
        user_properties=props,
    )


def test_items_a_dead_worker_never_ran_are_errors(pytester: pytest.Pytester) -> None:
    plugin = ReportPlugin(pytester.parseconfig(), 3, None, None, None, None)
    ids = ["s.yaml::a", "s.yaml::b", "s.yaml::c", "test_plain.py::test_x"]
    plugin.pytest_xdist_node_collection_finished(node=None, ids=ids)
    entry = {"nodeid": "s.yaml::a", "scenario": "a", "verdict": "pass"}
    plugin.pytest_runtest_logreport(passed_report("s.yaml::a", entry))
    plugin.pytest_runtest_logreport(passed_report("test_plain.py::test_x"))
    assert [i.nodeid for i in plugin.items()] == ["s.yaml::a"], "no crash: nothing is missing"
    plugin.pytest_runtest_logreport(crash_report("s.yaml::b"))
    items = {i.nodeid: i for i in plugin.items()}
    assert list(items) == ["s.yaml::a", "s.yaml::b", "s.yaml::c"]
    assert items["s.yaml::b"].error == "crashed: worker 'gw0' crashed while running 's.yaml::b'"
    assert items["s.yaml::c"].verdict == "error"
    assert items["s.yaml::c"].error == (
        "not run: its xdist worker crashed and no worker was left to run it"
    )
    assert items["s.yaml::c"].seed == 3


def test_only_the_controller_writes(pytester: pytest.Pytester, tmp_path: Path) -> None:
    config = pytester.parseconfig()
    target = tmp_path / "r.json"
    plugin = ReportPlugin(config, 1, str(target), None, None, None)
    assert plugin.is_writer
    config.workerinput = {"workerid": "gw0"}  # type: ignore[attr-defined]
    assert not plugin.is_writer
    plugin.pytest_sessionfinish(session=None, exitstatus=0)
    assert not target.exists()


def realistic_entry(k: int) -> dict[str, Any]:
    # Shaped like the runner's report_item: faults, checks, effects, and a request timeline
    # (the runner keeps timelines for non-passing items only).
    verdict = ["pass", "pass", "pass", "fail", "error"][k % 5]
    key = ["tool_http_503", "tool_timeout", "model_invalid_json"][k % 3]
    name = f"refund[{key}@get_order#{k}]"
    return {
        "nodeid": f"scenarios/refund.yaml::{name}",
        "scenario": "refund",
        "variant": f"{key}@get_order#{k}",
        "verdict": verdict,
        "category": "tool" if k % 2 else None,
        "terminal_state": "failed" if k % 2 else "completed",
        "faults_injected": [
            {"key": key, "surface": "tool", "category": "tool", "transient": k % 4 == 0}
        ],
        "faults_fired": [{"key": key, "surface": "tool", "where": "get_order", "call_index": k}],
        "checks": [
            {"name": "terminal_state", "passed": True, "reason": "reached «failed»"},
            {"name": "category", "passed": verdict == "pass", "reason": "want tool\ngot none"},
        ],
        "effects": [{"tool": "refund", "idempotency_key": f"o{k}", "replays": k % 2}],
        "restarts": k % 3,
        "duration_s": 0.0123 * k,
        "seed": 7,
        "reproduce": f"pytest 'scenarios/refund.yaml::{name}' --chaos-seed=7",
        "requests": []
        if verdict == "pass"
        else [{"seq": 1, "surface": "tool", "method": "GET", "url": "http://t/o", "faults": [key]}],
    }


def phase_report(entry: dict[str, Any], when: str) -> pytest.TestReport:
    failed = when == "call" and entry["verdict"] != "pass"
    return pytest.TestReport(
        nodeid=entry["nodeid"],
        location=("scenarios/refund.yaml", None, entry["nodeid"]),
        keywords={},
        outcome="failed" if failed else "passed",
        longrepr="scenario failed" if failed else None,
        when=when,  # type: ignore[arg-type]
        user_properties=[("shakeout", entry)],
    )


def test_the_streamed_report_is_byte_identical_to_the_built_one(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    entries = [realistic_entry(k) for k in range(40)]
    md = str(tmp_path / "r.md")
    plugin = ReportPlugin(pytester.parseconfig(), 7, str(tmp_path / "r.json"), md, None, None)
    collected = [SimpleNamespace(nodeid=e["nodeid"]) for e in entries]
    plugin.pytest_collection_finish(SimpleNamespace(items=collected))  # type: ignore[arg-type]
    for entry in reversed(entries):
        # Setup and call both carry the entry, as harness.plugin.collect attaches it in setup.
        plugin.pytest_runtest_logreport(phase_report(entry, "setup"))
        plugin.pytest_runtest_logreport(phase_report(entry, "call"))
    plugin.pytest_sessionfinish(session=None, exitstatus=1)  # type: ignore[arg-type]
    expected = Report.build(entries, seed=7, session=plugin.session)
    assert (tmp_path / "r.json").read_text(encoding="utf-8") == expected.to_json()
    assert plugin.build_report() == expected
    view = plugin.session_report
    assert view is not None
    assert view.summary == expected.summary
    assert [i.nodeid for i in view.items] == [
        i.nodeid for n, i in enumerate(expected.items) if n == 0 or i.verdict != "pass"
    ], "the session keeps the first item and the non-passing ones only"
    assert all(not i.requests for i in view.items), "Markdown reads no request timelines"
    plugin.pytest_unconfigure(plugin.config)


@pytest.mark.parametrize("html", [False, True])
def test_the_session_keeps_items_only_for_the_files_that_read_them(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, html: bool
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    page = str(tmp_path / "r.html") if html else None
    plugin = ReportPlugin(pytester.parseconfig(), 7, None, None, page, None)
    entries = [realistic_entry(k) for k in range(10)]
    for entry in entries:
        plugin.pytest_runtest_logreport(phase_report(entry, "call"))
    plugin.pytest_sessionfinish(session=None, exitstatus=1)  # type: ignore[arg-type]
    view = plugin.session_report
    assert view is not None
    assert view.summary == Report.build(entries, seed=7).summary
    if html:
        bad = [i for i in Report.build(entries, seed=7).items if i.verdict != "pass"]
        assert [i for i in view.items if i.verdict != "pass"] == bad, "HTML shows whole items"
    else:
        assert len(view.items) == 1, "no Markdown, HTML or gate: only the first item is kept"
    plugin.pytest_unconfigure(plugin.config)


def test_the_html_page_of_a_session_counts_and_lists_every_item(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The session keeps only the non-passing items whole; the page's heatmap and item list
    # still count the passing ones, through the index rows the session adds item by item.
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    page = tmp_path / "r.html"
    plugin = ReportPlugin(pytester.parseconfig(), 7, None, None, str(page), None)
    entries = [realistic_entry(k) for k in range(10)]
    for entry in entries:
        plugin.pytest_runtest_logreport(phase_report(entry, "call"))
    plugin.pytest_sessionfinish(session=None, exitstatus=1)  # type: ignore[arg-type]
    full = Report.build(entries, seed=7)
    assert page.read_text() == render_html(full)
    text = page.read_text()
    assert text.count('class="item pass"') == 6
    cells = re.findall(r'data-pass="(\d+)" data-fail="(\d+)" data-error="(\d+)"', text)
    assert sum(int(p) + int(f) + int(e) for p, f, e in cells) == 10
    plugin.pytest_unconfigure(plugin.config)


def test_the_session_keeps_the_passing_items_a_gate_rule_names(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    policy = tmp_path / "gate.toml"
    policy.write_text("max_failures = 100\n[category]\ntool = 0\n[checks]\ncategory = 0\n")
    entries = [realistic_entry(k) for k in range(12)]
    config = pytester.parseconfig()
    plugin = ReportPlugin(config, 7, None, None, None, str(policy))
    for entry in entries:
        plugin.pytest_runtest_logreport(phase_report(entry, "call"))
    plugin.pytest_sessionfinish(session=None, exitstatus=1)  # type: ignore[arg-type]
    full = Report.build(entries, seed=7)
    view = plugin.session_report
    assert view is not None
    assert len(view.items) < len(full.items)
    rules = load_policy(str(policy), cwd=config.rootpath)
    assert format_gate(evaluate_gate(view, rules), "r", view.summary.total) == format_gate(
        evaluate_gate(full, rules), "r", len(full.items)
    )
    plugin.pytest_unconfigure(config)


# --------------------------------------------------------------------------- plan and session


def test_the_report_records_the_plan_and_the_session(project: pytest.Pytester) -> None:
    run(project).assert_outcomes(passed=3, failed=1)
    report = report_of(project)
    assert report.plan.items == 4
    assert report.plan.nodeids == sorted(i.nodeid for i in report.items)
    assert report.session is not None
    assert len(report.session.id) == 32
    assert report.session.interrupted is None


def test_a_session_stopped_early_says_so_and_the_gate_refuses_it(
    project: pytest.Pytester,
) -> None:
    run(project, "-x").assert_outcomes(passed=2, failed=1)
    report = report_of(project)
    assert report.plan.items == 4
    assert len(report.items) == 3
    assert report.session is not None
    assert report.session.interrupted == "stopped early: stopping after 1 failures"
    policy = project.path / "gate.toml"
    policy.write_text("max_failures = 5\nmax_errors = 0\nallow_partial = true\n")
    setup(project, policy=str(policy))
    result = run(project, "-x")
    result.stdout.fnmatch_lines(
        ["shakeout gate: ERROR report *report.json is from a session that did not finish*"]
    )
    assert "PASS" not in result.stdout.str()


def test_an_interrupted_session_says_so(project: pytest.Pytester) -> None:
    setup(project, [SPECS[0], {"name": "refund[stop]", "action": "interrupt"}, *SPECS[1:]])
    # In a subprocess: in-process, the KeyboardInterrupt would stop this test session too.
    result = project.runpytest_subprocess("-p", "no:shakeout", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    report = report_of(project)
    assert report.session is not None
    assert report.session.interrupted is not None
    assert report.session.interrupted.startswith("interrupted (pytest exit status 2")


def test_xdist_workers_that_collect_differently_give_a_refused_report(
    project: pytest.Pytester,
) -> None:
    setup(project, [*SPECS, {"name": "refund[only_gw1]", "only_on": "gw1", "entry": {}}])
    result = run(project, "-n", "2", *QUIET_PLUGINS)
    result.stdout.fnmatch_lines(["*Different tests were collected between gw* and gw*"])
    report = report_of(project)
    assert report.session is not None
    assert report.session.interrupted is not None
    assert (
        "xdist workers collected different items (4 on the first, 5 on gw1)"
        in (report.session.interrupted)
        or "(5 on the first, 4 on gw0)" in report.session.interrupted
    )
    out, err = io.StringIO(), io.StringIO()
    path = str(project.path / "out" / "report.json")
    assert gate_main(path, None, out=out, err=err, cwd=str(project.path)) == 2
    assert "did not finish (xdist workers collected different items" in err.getvalue()
