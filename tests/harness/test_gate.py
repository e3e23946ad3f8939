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
    # A passing item carries a check that held: the gate judges items by their checks.
    kw.setdefault("checks", [check("terminal_state", verdict == "pass")])
    return {"nodeid": nodeid, "scenario": kw.pop("scenario", "s1"), "verdict": verdict, **kw}


def transient(key: str = "tool_http_503") -> dict[str, Any]:
    return {
        "faults_injected": [{"key": key, "surface": "tool", "category": "tool", "transient": True}],
        "faults_fired": [{"key": key, "surface": "tool", "where": "get_order"}],
    }


def check(name: str, passed: bool | None) -> dict[str, Any]:
    return {"name": name, "passed": passed, "reason": "r"}


def run_gate(tmp_path: Path, report: Report | str, policy: str, **kw: Any) -> tuple[int, str]:
    """Run the gate; stdout, or the error line (asserted to be one line) on exit 2."""
    report_path = tmp_path / "report.json"
    if isinstance(report, Report):
        report.write(report_path)
    else:
        report_path.write_text(report)
    policy_path = tmp_path / "gate.toml"
    policy_path.write_text(policy)
    out, err = io.StringIO(), io.StringIO()
    code = gate_main(str(report_path), str(policy_path), out=out, err=err, **kw)
    if code == EXIT_ERROR:
        assert out.getvalue() == ""
        assert err.getvalue().count("\n") == 1, err.getvalue()
        return code, err.getvalue()
    assert err.getvalue() == ""
    return code, out.getvalue()


GOOD = Report.build(
    [
        item("t::a", **transient(), checks=[check("duplicate_effects", True)]),
        item("t::b", checks=[check("terminal_state", True), check("duplicate_effects", None)]),
    ],
    seed=1,
)
NONE_ALLOWED = "max_failures = 0\nmax_errors = 0\n"
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
            item("t::err", "error", checks=[{**check("harness_ran", False), "harness": True}]),
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
        "n/a min_transient_recovery: not applicable: no transient-only run fired a fault",
        "n/a min_coverage: not applicable: no item planned a fault, nothing to cover",
        f"shakeout gate: FAIL (4 of 4 rules failed, 2 not applicable, 3 items, "
        f"{tmp_path}/report.json)",
    ]


def test_gate_lists_at_most_ten_nodeids_per_rule(tmp_path: Path) -> None:
    report = Report.build([item(f"t::{i:02}", "fail") for i in range(13)], seed=1)
    code, out = run_gate(tmp_path, report, "max_failures = 12\nmax_errors = 0\n")
    lines = out.splitlines()
    assert code == EXIT_FAIL
    assert lines[0] == "FAILED max_failures: 13 > 12 allowed"
    assert lines[1:11] == [f"    t::{i:02}" for i in range(10)]
    assert lines[11] == "    ... and 3 more"


def test_transient_recovery_rule_names_the_unrecovered_runs(tmp_path: Path) -> None:
    report = Report.build(
        [item("t::a", **transient()), item("t::b", "fail", **transient())], seed=1
    )
    # max_failures = 0 fails too, on the same item; the transient rule is what is shown here.
    code, out = run_gate(tmp_path, report, f"{NONE_ALLOWED}min_transient_recovery = 0.99\n")
    assert code == EXIT_FAIL
    assert out.splitlines()[2:4] == [
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
    assert not result.rules[0].applicable


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
    code, out = run_gate(tmp_path, report, f"{NONE_ALLOWED}min_coverage = 0.75\n")
    assert code == EXIT_FAIL
    assert out.splitlines()[:2] == [
        "FAILED min_coverage: 0.5000 (1/2 pairs) < 0.75",
        "    s1 x k2",
    ]


def test_policy_from_pyproject_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    GOOD.write(tmp_path / "report.json")
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.shakeout.gate]\nmax_failures = 0\nmax_errors = 0\n'
        "[tool.shakeout.gate.checks]\nduplicate_effects = 0\n"
    )
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    assert gate_main("report.json", None, out=out) == EXIT_PASS
    assert out.getvalue() == "shakeout gate: PASS (3 rules, 2 items, report.json)\n"


def test_policy_file_shaped_like_pyproject(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text("[tool.shakeout.gate]\nmax_errors = 3\n")
    policy = load_policy(tmp_path / "p.toml")
    assert policy.max_errors == 3
    assert policy.source.endswith("p.toml [tool.shakeout.gate]")


@pytest.mark.parametrize(
    ("report_text", "message"),
    [
        (None, "does not exist"),
        ('{"schema_version": "2", "seed": 1, "summ', "is truncated"),
        ("garbage", "is not valid JSON"),
        ('{"schema_version": "1", "seed": 1}', "has schema_version '1'"),
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
    out, err = io.StringIO(), io.StringIO()
    assert gate_main(str(report), str(policy), out=out, err=err) == EXIT_ERROR
    assert out.getvalue() == ""
    assert err.getvalue().startswith("shakeout gate: ERROR report ")
    assert message in err.getvalue()
    assert err.getvalue().count("\n") == 1


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
        ("allow_partial = 1\n", "allow_partial must be true or false, got 1"),
        ("tool = 1\n", "tool must be a table, got 1"),
        ("[tool]\nshakeout.gate = [1]\n", "tool.shakeout.gate must be a table, got [1]"),
        ("max_errors = " + "9" * 5000 + "\n", "holds a value TOML cannot read"),
        ("x = " + "[" * 100_000 + "]" * 100_000 + "\n", "nests arrays or tables too deeply"),
        ("max_errors = 1e999\n", "max_errors must be an integer >= 0, got inf"),
        ("min_transient_recovery = nan\n", "min_transient_recovery must be a number"),
    ],
)
def test_gate_errors_on_a_bad_policy(tmp_path: Path, policy: str, message: str) -> None:
    code, out = run_gate(tmp_path, GOOD, policy)
    assert code == EXIT_ERROR
    assert out.startswith("shakeout gate: ERROR ")
    assert message in out


DEFAULT_NOTE = "applying the default rules max_failures = 0, max_errors = 0"


def test_without_any_policy_the_default_rules_apply_and_say_so(tmp_path: Path) -> None:
    failing = Report.build([item("t::a"), item("t::b", "fail")], seed=1)
    failing.write(tmp_path / "r.json")
    for pyproject in (None, '[project]\nname = "x"\n', "[tool.shakeout]\n"):
        if pyproject is not None:
            (tmp_path / "pyproject.toml").write_text(pyproject)
        out = io.StringIO()
        code = gate_main(str(tmp_path / "r.json"), None, out=out, cwd=str(tmp_path))
        assert code == EXIT_FAIL, out.getvalue()
        first = out.getvalue().splitlines()[0]
        assert first.startswith("shakeout gate: note: no gate policy: ")
        assert first.endswith(DEFAULT_NOTE)
        assert "FAILED max_failures: 1 > 0 allowed" in out.getvalue()


@pytest.mark.parametrize("policy", ["", "\n# nothing here\n", "[tool.shakeout.gate]\n"])
def test_a_policy_without_rules_applies_the_default_rules_and_says_so(
    tmp_path: Path, policy: str
) -> None:
    code, out = run_gate(tmp_path, Report.build([item("t::a", "error", checks=[])], seed=1), policy)
    assert code == EXIT_FAIL
    assert out.splitlines()[0].endswith(f"has no rules; {DEFAULT_NOTE}")
    assert "FAILED max_errors: 1 > 0 allowed" in out
    code, out = run_gate(tmp_path, GOOD, policy)
    assert code == EXIT_PASS
    assert out.splitlines()[-1].startswith("shakeout gate: PASS (2 rules, 2 items")


def test_a_policy_with_only_min_coverage_still_allows_no_failure(tmp_path: Path) -> None:
    report = Report.build([item("t::a", "fail", **transient())], seed=1)
    code, out = run_gate(tmp_path, report, "min_coverage = 1.0\n")
    assert code == EXIT_FAIL
    assert "does not set max_failures or max_errors; applying max_failures = 0" in out
    assert "FAILED max_failures: 1 > 0 allowed" in out


def test_gate_errors_on_a_missing_policy_file(tmp_path: Path) -> None:
    GOOD.write(tmp_path / "r.json")
    out, err = io.StringIO(), io.StringIO()
    code = gate_main(str(tmp_path / "r.json"), str(tmp_path / "nope.toml"), out=out, err=err)
    assert code == EXIT_ERROR
    assert "nope.toml does not exist" in err.getvalue()


def test_check_names_are_not_validated_against_an_empty_report() -> None:
    policy = GatePolicy.from_mapping({"checks": {"anything": 0}}, "p")
    assert evaluate_gate(Report.build([], seed=1), policy).passed


def test_report_json_is_not_changed_by_the_gate(tmp_path: Path) -> None:
    run_gate(tmp_path, GOOD, STRICT)
    assert json.loads((tmp_path / "report.json").read_text()) == json.loads(GOOD.to_json())
