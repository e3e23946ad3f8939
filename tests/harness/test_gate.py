"""Tests of the gate: every exit code, every rule, and the policy's refusals."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from harness.gate import (
    EXIT_ERROR,
    EXIT_FAIL,
    EXIT_PASS,
    GatePolicy,
    evaluate_gate,
    gate_main,
    load_policy,
)
from harness.report_model import Report


def item(nodeid: str, verdict: str = "pass", **kw: Any) -> dict[str, Any]:
    return {"nodeid": nodeid, "scenario": kw.pop("scenario", "s1"), "verdict": verdict, **kw}


def transient(key: str = "tool_http_503") -> dict[str, Any]:
    return {
        "faults_injected": [{"key": key, "surface": "tool", "category": "tool", "transient": True}],
        "faults_fired": [{"key": key, "surface": "tool", "where": "get_order"}],
    }


def check(name: str, passed: bool | None) -> dict[str, Any]:
    return {"name": name, "passed": passed, "reason": "r"}


def run_gate(tmp_path: Path, report: Report | str, policy: str, **kw: Any) -> tuple[int, str]:
    report_path = tmp_path / "report.json"
    if isinstance(report, Report):
        report.write(report_path)
    else:
        report_path.write_text(report)
    policy_path = tmp_path / "gate.toml"
    policy_path.write_text(policy)
    out = io.StringIO()
    code = gate_main(str(report_path), str(policy_path), out=out, **kw)
    return code, out.getvalue()


GOOD = Report.build(
    [
        item("t::a", **transient(), checks=[check("duplicate_effects", True)]),
        item("t::b", checks=[check("duplicate_effects", None)]),
    ],
    seed=1,
)
STRICT = """
max_failures = 0
max_errors = 0
min_transient_recovery = 0.99
min_coverage = 1.0
category.logic = 0
checks.duplicate_effects = 0
"""


def test_gate_passes_when_every_rule_holds(tmp_path: Path) -> None:
    code, out = run_gate(tmp_path, GOOD, STRICT)
    assert code == EXIT_PASS
    assert out.splitlines()[-1] == f"shakeout gate: PASS (6 rules, 2 items, {tmp_path}/report.json)"


def test_gate_fails_and_names_each_rule_and_its_nodeids(tmp_path: Path) -> None:
    report = Report.build(
        [
            item("t::fail", "fail", category="logic", checks=[check("duplicate_effects", False)]),
            item("t::err", "error"),
            item("t::ok", checks=[check("duplicate_effects", True)]),
        ],
        seed=1,
    )
    code, out = run_gate(tmp_path, report, STRICT)
    assert code == EXIT_FAIL
    assert out.splitlines() == [
        "FAILED max_failures: 1 > 0 allowed",
        "    t::fail",
        "FAILED max_errors: 1 > 0 allowed",
        "    t::err",
        "FAILED category.logic: 1 > 0 allowed",
        "    t::fail",
        "FAILED checks.duplicate_effects: 1 > 0 allowed",
        "    t::fail",
        "FAILED min_coverage: 0.0000 (0/0 pairs) < 1.0",
        f"shakeout gate: FAIL (5 of 6 rules failed, 3 items, {tmp_path}/report.json)",
    ]


def test_gate_lists_at_most_ten_nodeids_per_rule(tmp_path: Path) -> None:
    report = Report.build([item(f"t::{i:02}", "fail") for i in range(13)], seed=1)
    code, out = run_gate(tmp_path, report, "max_failures = 12\n")
    lines = out.splitlines()
    assert code == EXIT_FAIL
    assert lines[0] == "FAILED max_failures: 13 > 12 allowed"
    assert lines[1:11] == [f"    t::{i:02}" for i in range(10)]
    assert lines[11] == "    ... and 3 more"


def test_transient_recovery_rule_names_the_unrecovered_runs(tmp_path: Path) -> None:
    report = Report.build(
        [item("t::a", **transient()), item("t::b", "fail", **transient())], seed=1
    )
    code, out = run_gate(tmp_path, report, "min_transient_recovery = 0.99\n")
    assert code == EXIT_FAIL
    assert out.splitlines()[:2] == [
        "FAILED min_transient_recovery: 0.5000 (1/2) < 0.99 required",
        "    t::b",
    ]


def test_transient_recovery_rule_holds_when_nothing_transient_fired() -> None:
    result = evaluate_gate(
        Report.build([item("t::a")], seed=1),
        GatePolicy(min_transient_recovery=1.0),
    )
    assert result.passed
    assert "not applicable" in result.rules[0].detail


def test_min_coverage_as_count_and_as_fraction(tmp_path: Path) -> None:
    report = Report.build(
        [
            item("t::a", **transient("k1")),
            item("t::b", faults_injected=[{"key": "k2", "surface": "tool"}]),
        ],
        seed=1,
    )
    assert evaluate_gate(report, GatePolicy(min_coverage=1)).passed
    assert not evaluate_gate(report, GatePolicy(min_coverage=2)).passed
    assert evaluate_gate(report, GatePolicy(min_coverage=0.5)).passed
    code, out = run_gate(tmp_path, report, "min_coverage = 0.75\n")
    assert code == EXIT_FAIL
    assert out.splitlines()[:2] == [
        "FAILED min_coverage: 0.5000 (1/2 pairs) < 0.75",
        "    s1 x k2",
    ]


def test_policy_from_pyproject_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    GOOD.write(tmp_path / "report.json")
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.shakeout.gate]\nmax_failures = 0\n'
        "[tool.shakeout.gate.checks]\nduplicate_effects = 0\n"
    )
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    assert gate_main("report.json", None, out=out) == EXIT_PASS
    assert out.getvalue() == "shakeout gate: PASS (2 rules, 2 items, report.json)\n"


def test_policy_file_shaped_like_pyproject(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text("[tool.shakeout.gate]\nmax_errors = 3\n")
    policy = load_policy(tmp_path / "p.toml")
    assert policy.max_errors == 3
    assert policy.source.endswith("p.toml [tool.shakeout.gate]")


@pytest.mark.parametrize(
    ("report_text", "message"),
    [
        (None, "does not exist"),
        ('{"schema_version": "1", "seed": 1, "summ', "is truncated"),
        ("garbage", "is not valid JSON"),
        ('{"schema_version": "2", "seed": 1}', "has schema_version '2'"),
    ],
    ids=["missing", "truncated", "corrupt", "other-version"],
)
def test_gate_errors_on_an_unusable_report(
    tmp_path: Path, report_text: str | None, message: str
) -> None:
    policy = tmp_path / "gate.toml"
    policy.write_text("max_failures = 0\n")
    report = tmp_path / "report.json"
    if report_text is not None:
        report.write_text(report_text)
    out = io.StringIO()
    assert gate_main(str(report), str(policy), out=out) == EXIT_ERROR
    assert out.getvalue().startswith("shakeout gate: ERROR report ")
    assert message in out.getvalue()


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            "max_failure = 0\n",
            "unknown gate policy key 'max_failure'; allowed keys: max_failures, max_errors, "
            "category, checks, min_transient_recovery, min_coverage",
        ),
        ("category.logc = 0\n", "unknown gate policy key 'category.logc'; allowed categories: "),
        ("max_errors = -1\n", "max_errors must be an integer >= 0, got -1"),
        ("max_errors = true\n", "max_errors must be an integer >= 0, got True"),
        ("max_errors = 0.5\n", "max_errors must be an integer >= 0, got 0.5"),
        ("checks = 3\n", "checks must be a table of name = max count"),
        ("min_transient_recovery = 2\n", "min_transient_recovery must be a number from 0 to 1"),
        ("min_coverage = 1.5\n", "min_coverage must be a count"),
        ("min_coverage = -2\n", "min_coverage must be a count"),
        ("checks.dupliate_effects = 0\n", "checks.dupliate_effects is not a shakeout check"),
        ("max_errors = \n", "is not valid TOML"),
        ("[tool.other]\nx = 1\n", "has no [tool.shakeout.gate] table"),
    ],
)
def test_gate_errors_on_a_bad_policy(tmp_path: Path, policy: str, message: str) -> None:
    code, out = run_gate(tmp_path, GOOD, policy)
    assert code == EXIT_ERROR
    assert out.startswith("shakeout gate: ERROR ")
    assert message in out


def test_gate_errors_without_any_policy(tmp_path: Path) -> None:
    GOOD.write(tmp_path / "r.json")
    out = io.StringIO()
    assert gate_main(str(tmp_path / "r.json"), None, out=out, cwd=str(tmp_path)) == EXIT_ERROR
    assert "no gate policy" in out.getvalue()
    assert "add a [tool.shakeout.gate] table" in out.getvalue()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    out = io.StringIO()
    assert gate_main(str(tmp_path / "r.json"), None, out=out, cwd=str(tmp_path)) == EXIT_ERROR
    assert "has no [tool.shakeout.gate] table" in out.getvalue()


def test_gate_errors_on_a_missing_policy_file(tmp_path: Path) -> None:
    GOOD.write(tmp_path / "r.json")
    out = io.StringIO()
    code = gate_main(str(tmp_path / "r.json"), str(tmp_path / "nope.toml"), out=out)
    assert code == EXIT_ERROR
    assert "nope.toml does not exist" in out.getvalue()


def test_check_names_are_not_validated_against_an_empty_report() -> None:
    policy = GatePolicy.from_mapping({"checks": {"anything": 0}}, "p")
    assert evaluate_gate(Report.build([], seed=1), policy).passed


def test_empty_policy_passes_with_zero_rules(tmp_path: Path) -> None:
    code, out = run_gate(tmp_path, GOOD, "")
    assert code == EXIT_PASS
    assert "PASS (0 rules" in out


def test_report_json_is_not_changed_by_the_gate(tmp_path: Path) -> None:
    run_gate(tmp_path, GOOD, STRICT)
    assert json.loads((tmp_path / "report.json").read_text()) == json.loads(GOOD.to_json())
