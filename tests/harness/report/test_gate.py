"""Tests of the gate: every exit code, every rule, and the policy's refusals."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.report.gate import (
    EXIT_ERROR,
    EXIT_FAIL,
    EXIT_PASS,
    evaluate_gate,
    gate_main,
    judge_item,
    rejudge,
)
from harness.report.gate_policy import GatePolicy, load_policy
from harness.report.model import Plan, Report, ReportItem, SessionInfo, load_report, reading


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


def test_the_gate_command_runs_with_the_cyclic_collector_paused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    from harness.report import gate

    seen: list[bool] = []
    real = gate.evaluate_gate

    def spy(report: Report, policy: GatePolicy) -> Any:
        seen.append(gc.isenabled())
        return real(report, policy)

    monkeypatch.setattr(gate, "evaluate_gate", spy)
    assert run_gate(tmp_path, GOOD, STRICT)[0] == EXIT_PASS
    assert seen == [False], "the loaded report was judged with the collector on"
    assert gc.isenabled(), "the command left the collector paused"


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


# --------------------------------------------------------------------------- judging from checks


def harness_check(name: str = "harness_ran") -> dict[str, Any]:
    return {**check(name, False), "harness": True}


@pytest.mark.parametrize(
    ("recorded", "checks", "error", "judged"),
    [
        ("pass", [check("terminal_state", True)], None, "pass"),
        ("pass", [check("terminal_state", False)], None, "fail"),
        ("pass", [harness_check()], None, "error"),
        ("pass", [harness_check(), check("category", False)], None, "fail"),
        ("error", [harness_check(), check("category", False)], None, "fail"),
        ("pass", [], None, "error"),
        ("pass", [check("terminal_state", None)], None, "error"),
        ("pass", [check("terminal_state", True)], "worker crashed", "error"),
        ("fail", [check("terminal_state", True)], "assertion after the run", "fail"),
        ("error", [], "collection failed", "error"),
    ],
)
def test_an_item_is_judged_from_its_checks_never_milder_than_recorded(
    recorded: str, checks: list[dict[str, Any]], error: str | None, judged: str
) -> None:
    model = ReportItem.model_validate(item("t::a", recorded, checks=checks, error=error))
    assert judge_item(model) == judged


def test_the_gate_counts_what_the_checks_say_and_names_the_rejudged_items(tmp_path: Path) -> None:
    report = Report.build(
        [
            item("t::ok"),
            item("t::lies", checks=[check("terminal_state", False)]),
            item("t::harness", checks=[harness_check()]),
        ],
        seed=1,
    )
    assert report.summary.by_verdict.passed == 3, "the recorded verdicts all say pass"
    code, out = run_gate(tmp_path, report, NONE_ALLOWED)
    assert code == EXIT_FAIL
    assert out.splitlines() == [
        "shakeout gate: note: 2 item(s) record a milder verdict than their checks show; judged "
        "by the checks: t::harness (pass -> error), t::lies (pass -> fail)",
        "FAILED max_failures: 1 > 0 allowed",
        "    t::lies",
        "FAILED max_errors: 1 > 0 allowed",
        "    t::harness",
        f"shakeout gate: FAIL (2 of 2 rules failed, 3 items, {tmp_path}/report.json)",
    ]


def test_transient_recovery_counts_judged_verdicts(tmp_path: Path) -> None:
    lying = item("t::b", **transient(), checks=[check("transient_recovered", False)])
    report = Report.build([item("t::a", **transient()), lying], seed=1)
    result = evaluate_gate(rejudge(report)[0], GatePolicy(min_transient_recovery=0.99))
    assert not result.passed
    assert result.rules[0].nodeids == ("t::b",)


# --------------------------------------------------------------------------- refusals


def test_a_report_without_items_never_passes(tmp_path: Path) -> None:
    for policy in ("", "allow_partial = true\nmax_failures = 5\n"):
        code, out = run_gate(tmp_path, Report.build([], seed=1), policy)
        assert code == EXIT_ERROR
        assert "holds no items (0 planned): nothing was tested" in out
    planned = Report.build([], seed=1, plan=Plan.of(["s.yaml::a", "s.yaml::b"]))
    code, out = run_gate(tmp_path, planned, "allow_partial = true\n")
    assert code == EXIT_ERROR
    assert "holds no items (2 planned)" in out


def test_a_partial_report_is_refused_unless_the_policy_allows_it(tmp_path: Path) -> None:
    plan = Plan.of(["s.yaml::a", "s.yaml::b", "s.yaml::c"])
    report = Report.build([item("s.yaml::a")], seed=1, plan=plan)
    code, out = run_gate(tmp_path, report, NONE_ALLOWED)
    assert code == EXIT_ERROR
    assert out == (
        f"shakeout gate: ERROR report {tmp_path}/report.json holds 1 of the 3 items its session "
        "planned (2 missing, e.g. s.yaml::b): the run did not finish; rerun the suite, or set "
        "allow_partial = true in the gate policy to judge what ran\n"
    )
    code, out = run_gate(tmp_path, report, NONE_ALLOWED + "allow_partial = true\n")
    assert code == EXIT_PASS
    assert out.splitlines()[0].endswith("judging what ran, as allow_partial = true")


def test_an_interrupted_session_s_report_is_refused(tmp_path: Path) -> None:
    session = SessionInfo.new("s1").model_copy(update={"interrupted": "stopped early: -x"})
    report = Report.build([item("s.yaml::a")], seed=1, session=session)
    code, out = run_gate(tmp_path, report, "allow_partial = true\n")
    assert code == EXIT_ERROR
    assert "is from a session that did not finish (stopped early: -x); rerun" in out


def test_a_stale_report_is_refused_when_the_session_is_given(tmp_path: Path) -> None:
    report = Report.build([item("s.yaml::a")], seed=1, session=SessionInfo.new("old-run"))
    code, out = run_gate(tmp_path, report, NONE_ALLOWED, expect_session="new-run")
    assert code == EXIT_ERROR
    assert "was written by session 'old-run', not by the session just run ('new-run')" in out
    assert run_gate(tmp_path, report, NONE_ALLOWED, expect_session="old-run")[0] == EXIT_PASS
    anonymous = Report.build([item("s.yaml::a")], seed=1)
    code, out = run_gate(tmp_path, anonymous, NONE_ALLOWED, expect_session="new-run")
    assert code == EXIT_ERROR
    assert "was written by no session id" in out


def test_min_coverage_with_nothing_planned_is_not_applicable() -> None:
    result = evaluate_gate(Report.build([item("t::a")], seed=1), GatePolicy(min_coverage=1.0))
    assert result.passed
    assert [(r.rule, r.applicable) for r in result.rules] == [("min_coverage", False)]
    counted = evaluate_gate(Report.build([item("t::a")], seed=1), GatePolicy(min_coverage=3))
    assert not counted.rules[0].applicable


def test_a_check_rule_no_item_ran_is_not_applicable() -> None:
    policy = GatePolicy.from_mapping({"checks": {"no_reexecution": 0}}, "p")
    result = evaluate_gate(Report.build([item("t::a")], seed=1), policy)
    assert [(r.rule, r.applicable) for r in result.rules][-1] == ("checks.no_reexecution", False)


# --------------------------------------------------------------------------- hostile input


def test_non_regular_files_are_refused_before_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    (tmp_path / "gate.toml").write_text(NONE_ALLOWED)
    cases = {
        str(fifo): "is a named pipe (FIFO), not a regular file",
        "/dev/zero": "is a character device, not a regular file",
        str(tmp_path): "is a directory, not a regular file",
    }
    for path, message in cases.items():
        for report, policy in ((path, str(tmp_path / "gate.toml")), (str(GOOD_PATH), path)):
            out, err = io.StringIO(), io.StringIO()
            # A FIFO without a writer would block a plain open() forever.
            assert gate_main(report, policy, out=out, err=err) == EXIT_ERROR
            assert message in err.getvalue()
            assert err.getvalue().count("\n") == 1


GOOD_PATH = Path(__file__).parent / "_unused"


@pytest.fixture(autouse=True)
def _good_report_on_disk(tmp_path_factory: pytest.TempPathFactory) -> None:
    global GOOD_PATH
    GOOD_PATH = GOOD.write(tmp_path_factory.mktemp("good") / "good.json")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(seed=int("9" * 4000) * 10**1000), "number out of range"),
        (lambda d: d.update(items=[[[]]]) or d.update(items=_deep(100_000)), "recursion limit"),
        (lambda d: d["items"][0].update(verdict=["pass"]), "items.0.verdict"),
        (lambda d: d["plan"].update(items=7), "plan.items is 7 but plan.nodeids holds 2"),
        (lambda d: d.update(seed=1.5), "seed: Input should be a valid integer"),
    ],
    ids=["5000-digit-seed", "deep-array", "wrong-type", "plan-count", "float-seed"],
)
def test_hostile_reports_are_one_line_errors(tmp_path: Path, mutate: Any, message: str) -> None:
    data = json.loads(GOOD.to_json())
    text = mutate(data)
    text = _dumps(data)
    code, out = run_gate(tmp_path, text, NONE_ALLOWED)
    assert code == EXIT_ERROR
    assert message in out


class _Deep:
    def __init__(self, depth: int) -> None:
        self.depth = depth


def _deep(depth: int) -> _Deep:
    return _Deep(depth)


def _dumps(value: Any) -> str:
    # json.dumps cannot write a 100k-deep array or a 5000-digit int (its own limits); the
    # hostile parts are spliced in as text.
    if isinstance(value, _Deep):
        return "[" * value.depth + "]" * value.depth
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**4000:
        return "9" * 5000
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_dumps(v) for v in value) + "]"
    return json.dumps(value)


def test_a_report_larger_than_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The limit is read where the report is read.
    monkeypatch.setattr(reading, "MAX_REPORT_BYTES", 100)
    code, out = run_gate(tmp_path, GOOD, NONE_ALLOWED)
    assert code == EXIT_ERROR
    assert "bytes, more than the 100 bytes read" in out


# A Hypothesis search over broken and hostile reports and policies: the gate never passes a
# report it should not, and never shows a traceback (exit 2 with one line, or 1 for a real
# failure).

_CHECK_NAMES = ("terminal_state", "category", "harness_ran", "duplicate_effects")


@st.composite
def hostile_items(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(0, 4))
    out: list[dict[str, Any]] = []
    for k in range(n):
        checks = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "name": st.sampled_from(_CHECK_NAMES),
                        "passed": st.sampled_from([True, False, None]),
                        "reason": st.just("r"),
                        "harness": st.booleans(),
                    }
                ),
                max_size=3,
            )
        )
        out.append(
            item(
                f"s.yaml::t{k}",
                draw(st.sampled_from(["pass", "pass", "fail", "error"])),
                checks=checks,
                error=draw(st.sampled_from([None, None, "boom"])),
            )
        )
    return out


JUNK = st.one_of(
    st.integers(-(2**70), 2**70),
    st.text(max_size=5),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.floats(allow_nan=False, allow_infinity=False),
)


@st.composite
def hostile_report(draw: st.DrawFn) -> str:
    """A report's text: whole, truncated, retyped, cut down, deeply nested or with a huge int."""
    items_ = draw(hostile_items())
    extra = draw(st.integers(0, 2))
    plan = Plan.of([i["nodeid"] for i in items_] + [f"s.yaml::gone{k}" for k in range(extra)])
    session = SessionInfo.new("s").model_copy(
        update={"interrupted": draw(st.sampled_from([None, None, "Ctrl-C"]))}
    )
    text = Report.build(items_, seed=1, plan=plan, session=session).to_json()
    how = draw(st.sampled_from(["whole", "truncate", "retype", "deep", "bigint", "drop"]))
    if how == "whole":
        return text
    if how == "truncate":
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    if how == "deep":
        return text[:-2] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}\n"
    if how == "bigint":
        return text.replace('"seed": 1', '"seed": ' + "7" * 5000, 1)
    doc = json.loads(text)
    if how == "retype":
        where = draw(st.sampled_from(["seed", "plan", "summary", "items", "session"]))
        doc[where] = draw(JUNK)
    else:
        doc.pop(draw(st.sampled_from(sorted(doc))))
    return json.dumps(doc)


HOSTILE_POLICIES = st.sampled_from(
    [
        "",
        "max_failures = 0\nmax_errors = 0\n",
        "min_coverage = 1.0\n",
        "allow_partial = true\n",
        "max_failures = 10\nmax_errors = 10\nallow_partial = true\n",
        "max_errors = " + "9" * 5000 + "\n",
        "max_failures = [",
        "max_failures = 'x'\n",
        "[tool.shakeout]\ngate = 3\n",
        "x = " + "[" * 3000 + "]" * 3000 + "\n",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_report(), HOSTILE_POLICIES)
def test_hostile_reports_and_policies_never_pass_wrongly_nor_traceback(
    text: str, policy: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        report_path, policy_path = Path(tmp) / "r.json", Path(tmp) / "p.toml"
        report_path.write_text(text)
        policy_path.write_text(policy)
        out, err = io.StringIO(), io.StringIO()
        code = gate_main(str(report_path), str(policy_path), out=out, err=err)
        if code == EXIT_ERROR:
            assert out.getvalue() == ""
            assert err.getvalue().startswith("shakeout gate: ERROR ")
            assert err.getvalue().count("\n") == 1
            return
        assert code in (EXIT_PASS, EXIT_FAIL)
        assert err.getvalue() == ""
        # Whatever reached a verdict is an intact report of a finished session with items.
        report = load_report(report_path)
    assert report.items, "a report without items was judged"
    assert report.session is None or report.session.interrupted is None
    missing = set(report.plan.nodeids) - {i.nodeid for i in report.items}
    assert not missing or "allow_partial = true" in policy, "a partial report was judged"
    if code == EXIT_PASS:
        allowed = 10 if "max_failures = 10" in policy else 0
        judged = [judge_item(i) for i in report.items]
        assert judged.count("fail") <= allowed
        assert judged.count("error") <= allowed
        if not allowed:
            for i in report.items:
                assert not any(c.passed is False for c in i.checks), f"passed with {i}"
                assert any(c.passed is True for c in i.checks), f"passed without evidence: {i}"
