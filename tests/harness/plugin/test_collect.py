"""Scenario files as pytest items: ids, ERROR for invalid files, FAIL/ERROR separation, output."""

from __future__ import annotations

import json
import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
HAPPY = yaml.safe_load((ROOT / "scenarios" / "refund_happy.yaml").read_text())

INI = """
[pytest]
chaos_agent = reference_agent:build_adapter
chaos_seed = 11
filterwarnings = error
"""


def scenario(**changes: object) -> dict[str, object]:
    """refund_happy without its fault, input and crash matrices, with ``changes`` applied."""
    matrices = ("matrix", "input_matrix", "crash_matrix")
    data = {k: v for k, v in HAPPY.items() if k not in matrices}
    data.update(changes)
    return data


def write(pytester: pytest.Pytester, name: str, data: dict[str, object] | str) -> Path:
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    path = pytester.path / "scenarios" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text("# yaml-language-server: $schema=schema.json\n" + text)
    return path


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    return pytester


def test_scenario_file_becomes_one_item_per_variant(project: pytest.Pytester) -> None:
    data = scenario(matrix={"faults": ["tool_http_503", "model_refusal"], "targets": ["get_order"]})
    write(project, "happy", data)
    result = project.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    lines = [ln for ln in result.outlines if "::" in ln]
    assert lines == [
        "scenarios/happy.yaml::refund_happy",
        "scenarios/happy.yaml::refund_happy[tool_http_503@get_order#1]",
        "scenarios/happy.yaml::refund_happy[tool_http_503@get_order#1x3]",
        "scenarios/happy.yaml::refund_happy[model_refusal#1]",
    ]


def test_happy_scenario_passes_and_header_names_the_seed(project: pytest.Pytester) -> None:
    write(project, "happy", scenario())
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["shakeout: seed 11 (rerun with --chaos-seed=11), agent *"])


def test_invalid_field_is_an_error_item_with_file_line_field_and_fix(
    project: pytest.Pytester,
) -> None:
    text = yaml.safe_dump(scenario(), sort_keys=False).replace("status: 201", "status: abc")
    path = write(project, "broken", text)
    line = next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if "status: abc" in ln)
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "invalid scenario file:",
            f"scenarios/broken.yaml:{line}: field 'tools.services.issue_refund.ledger.status': "
            "Input should be a valid integer, got 'abc'. Fix: *",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_unknown_field_names_allowed_fields(project: pytest.Pytester) -> None:
    write(project, "typo", scenario(expectt={"state": "completed"}))
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert "scenarios/typo.yaml:" in out
    assert "'expectt'" in out
    assert "expect" in out.split("'expectt'", 1)[1]


def test_yaml_syntax_error_names_line_and_column(project: pytest.Pytester) -> None:
    write(project, "syntax", "name: x\ndescription: [unclosed\n")
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert re.search(r"scenarios/syntax\.yaml:\d+", result.stdout.str())


def test_a_file_the_loader_refuses_is_an_error_item_and_the_others_still_run(
    project: pytest.Pytester,
) -> None:
    write(project, "happy", scenario())
    write(project, "laughs", "name: x\nbig: " + "[" * 2000 + "]" * 2000 + "\n")
    write(project, "nul", "name: x\x00\n")
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        ["scenarios/laughs.yaml:3: values nest more than 64 levels deep*", "*U+0000 (NUL)*"]
    )
    assert "Interrupted" not in result.stdout.str()


def test_a_scenario_that_cannot_be_expanded_is_an_error_item(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.plugin.collect

    def broken(*args: object) -> None:
        raise RuntimeError("expansion broke")

    monkeypatch.setattr(harness.plugin.collect, "expand", broken)
    write(project, "happy", scenario())
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*scenarios/happy.yaml: the scenario cannot be expanded into variants: RuntimeError: "
            "expansion broke"
        ]
    )


def test_missing_agent_is_an_error_not_a_failure(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    write(pytester, "happy", scenario())
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no agent to run this scenario: set the chaos_agent ini key*"])


def test_wrong_expectation_fails_with_check_seed_and_reproduce_command(
    project: pytest.Pytester,
) -> None:
    expect = dict(HAPPY["expect"])
    expect["state"] = "escalated"
    write(project, "wrong", scenario(expect=expect))
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "FAIL: scenario 'refund_happy', variant 'base'",
            "  check expected_state: expected state 'escalated' (the scenario's expect), "
            "got 'completed'",
            "*  seed: 11",
            "  reproduce: python -m pytest scenarios/wrong.yaml::refund_happy --chaos-seed=11 *",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_fault_that_never_fires_is_an_error_not_a_pass(project: pytest.Pytester) -> None:
    # send_email is called once; a fault on its third call can never fire.
    faults = [{"tool_http_503": {"target": "send_email", "at": {"nth": 3}}}]
    write(project, "unfired", scenario(faults=faults))
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*check faults_fired: declared fault(s) never fired: *"])


def test_unrouted_request_is_refused_and_reported(project: pytest.Pytester) -> None:
    data = scenario()
    services = dict(data["tools"]["services"])  # type: ignore[index]
    del services["get_customer"]
    data["tools"] = {"services": services}
    expect = dict(HAPPY["expect"])
    expect["calls_made"] = [t for t in expect["calls_made"] if t != "get_customer"]
    data["expect"] = expect
    write(project, "unrouted", data)
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*check requests_routed: *matched no scenario route and were refused (never sent)*"]
    )


def test_tags_select_items_with_k(project: pytest.Pytester) -> None:
    write(project, "happy", scenario(tags=["approval"]))
    write(project, "other", scenario(name="refund_other", tags=["other"]))
    result = project.runpytest("-k", "approval", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, deselected=1)


def test_input_family_that_must_be_rejected_but_is_accepted_fails(
    project: pytest.Pytester,
) -> None:
    matrix = {"families": ["prompt_injection"], "must_reject": ["prompt_injection"], "examples": 3}
    write(project, "inputs", scenario(input_matrix=matrix))
    result = project.runpytest("-k", "prompt_injection", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines(
        ["*check input_handled: a prompt_injection input must be rejected at intake*"]
    )


def test_input_family_rejected_at_intake_passes(project: pytest.Pytester) -> None:
    matrix = {
        "families": ["control_characters"],
        "must_reject": ["control_characters"],
        "examples": 5,
    }
    write(project, "inputs", scenario(input_matrix=matrix))
    result = project.runpytest("-k", "control_characters", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, deselected=1)


# ---------------------------------------------------------------- which files, which items


def test_a_yaml_file_named_on_the_command_line_is_collected_wherever_it_lives(
    project: pytest.Pytester,
) -> None:
    path = project.path / "my_checks" / "happy.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(scenario(), sort_keys=False))
    result = project.runpytest("my_checks/happy.yaml", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_yaml_file_found_outside_the_globs_is_named_in_a_note(
    project: pytest.Pytester,
) -> None:
    path = project.path / "my_checks" / "happy.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(scenario(), sort_keys=False))
    result = project.runpytest("my_checks", "-p", "no:cacheprovider")
    result.assert_outcomes()
    result.stdout.fnmatch_lines(
        [
            "shakeout: 1 YAML file(s) were not collected as scenarios (my_checks/happy.yaml): a "
            "file found in a directory is a scenario only when its path from the rootdir "
            "matches a chaos_scenarios glob (scenarios/*.yaml, scenarios/**/*.yaml); name the "
            "file on the command line, or add a glob to the chaos_scenarios ini key"
        ]
    )
    project.makeini(INI + "chaos_scenarios = my_checks/*.yaml\n")
    project.runpytest("my_checks", "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_named_yaml_file_that_is_no_scenario_says_so(project: pytest.Pytester) -> None:
    (project.path / "workflow.yaml").write_text("on: push\njobs: {test: {runs-on: x}}\n")
    result = project.runpytest("workflow.yaml", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["workflow.yaml is not a shakeout scenario file: it has no name and input key; *"]
    )


def test_every_reproduce_command_selects_exactly_its_item(project: pytest.Pytester) -> None:
    data = scenario(
        matrix={"faults": ["tool_http_503"], "surfaces": ["injection"], "targets": ["get_order"]},
        crash_matrix={"points": ["after_checkpoint"]},
        input_matrix={"families": ["control_characters"], "examples": 2},
    )
    write(project, "happy", data)
    report = project.path / "r.json"
    project.runpytest("-p", "no:cacheprovider", f"--chaos-report={report}")
    items = json.loads(report.read_text())["items"]
    kinds = {
        "base": lambda v: v == "base",
        "fault": lambda v: v.startswith("tool_http_503@"),
        "crash": lambda v: v.startswith("crash_after_checkpoint@"),
        "input": lambda v: v.startswith("input:"),
        "injection": lambda v: v.startswith("inject:"),
    }
    for kind, match in kinds.items():
        item = next(i for i in items if match(i["variant"]))
        command = shlex.split(item["reproduce"])
        assert command[:3] == ["python", "-m", "pytest"], kind
        result = project.runpytest(*command[3:], "-p", "no:cacheprovider")
        outcomes = result.parseoutcomes()
        ran = sum(outcomes.get(k, 0) for k in ("passed", "failed", "error", "errors"))
        assert ran == 1, (kind, item["reproduce"], outcomes)
        assert item["nodeid"] in result.stdout.str() or outcomes.get("passed") == 1


def test_a_base_item_selected_with_its_variants_keeps_both(project: pytest.Pytester) -> None:
    data = scenario(matrix={"faults": ["tool_http_503"], "targets": ["get_order"]})
    write(project, "happy", data)
    base = "scenarios/happy.yaml::refund_happy"
    result = project.runpytest(
        base, f"{base}[tool_http_503@get_order#1]", "--collect-only", "-q", "-p", "no:cacheprovider"
    )
    assert [ln for ln in result.outlines if "::" in ln] == [
        base,
        f"{base}[tool_http_503@get_order#1]",
    ]
    whole = project.runpytest("scenarios/happy.yaml", "--collect-only", "-q")
    assert len([ln for ln in whole.outlines if "::" in ln]) == 3


# ---------------------------------------------------------------- accepted outcomes, end to end

FREE_FORM = "toy_agents.mini:build_adapter"
NO_TOOL_USE = "model_no_tool_use#1"
WIDEN = {
    "accept": ["recover", "complete"],
    "reason": "a free-form loop takes a text answer as its final answer",
}


def free_form(**matrix: object) -> dict[str, object]:
    """refund_happy for the mini agent as a free-form loop, model_no_tool_use on call 1."""
    return scenario(
        agent=FREE_FORM,
        agent_config={"defects": ["text_is_final"]},
        matrix={"faults": ["model_no_tool_use"], **matrix},
    )


def cell_item(project: pytest.Pytester, report: Path) -> dict[str, object]:
    items = json.loads(report.read_text())["items"]
    return next(i for i in items if i["variant"] == NO_TOOL_USE)


def test_a_text_answer_taken_as_final_fails_the_strict_default(project: pytest.Pytester) -> None:
    write(project, "free", free_form())
    report = project.path / "r.json"
    result = project.runpytest("-p", "no:cacheprovider", f"--chaos-report={report}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["  accepted outcomes: recover (the fault's own)"])
    item = cell_item(project, report)
    assert item["outcomes"] == {
        "accept": ["recover"],
        "declared": ["recover"],
        "held": None,
        "reason": None,
        "source": "fault",
    }


def test_a_scenario_widens_a_fault_with_a_reason_the_report_shows(
    project: pytest.Pytester,
) -> None:
    write(project, "free", free_form(outcomes={"model_no_tool_use": WIDEN}))
    report, markdown = project.path / "r.json", project.path / "r.md"
    result = project.runpytest(
        "-p", "no:cacheprovider", f"--chaos-report={report}", f"--chaos-markdown={markdown}"
    )
    result.assert_outcomes(passed=2)
    item = cell_item(project, report)
    assert item["outcomes"] == {
        "accept": ["recover", "complete"],
        "declared": ["recover"],
        "held": "complete",
        "reason": WIDEN["reason"],
        "source": "scenario",
    }
    (tuned,) = json.loads(report.read_text())["summary"]["tuned_outcomes"]
    assert (tuned["fault"], tuned["passed"], tuned["held"]) == (
        "model_no_tool_use",
        1,
        {"complete": 1},
    )
    text = markdown.read_text()
    assert "### Changed expectations" in text
    assert (
        "| `refund_happy` | `model_no_tool_use` | recover \\| complete | recover | scenario | a "
        "free-form loop takes a text answer as its final answer | 1/1 | complete 1 |"
    ) in text


def test_pyproject_widens_a_fault_for_every_scenario(project: pytest.Pytester) -> None:
    write(project, "free", free_form())
    project.makepyprojecttoml(
        "[tool.shakeout.outcomes.model_no_tool_use]\n"
        'accept = ["recover", "complete"]\n'
        f'reason = "{WIDEN["reason"]}"\n'
    )
    report = project.path / "r.json"
    project.runpytest("-p", "no:cacheprovider", f"--chaos-report={report}").assert_outcomes(
        passed=2
    )
    outcomes = cell_item(project, report)["outcomes"]
    assert isinstance(outcomes, dict)
    assert (outcomes["held"], outcomes["source"]) == ("complete", "pyproject.toml")


def test_the_reference_agent_still_recovers_under_the_widened_rule(
    project: pytest.Pytester,
) -> None:
    data = scenario(
        matrix={"faults": ["model_no_tool_use"], "outcomes": {"model_no_tool_use": WIDEN}}
    )
    write(project, "ref", data)
    report = project.path / "r.json"
    project.runpytest("-p", "no:cacheprovider", f"--chaos-report={report}").assert_outcomes(
        passed=2
    )
    outcomes = cell_item(project, report)["outcomes"]
    assert isinstance(outcomes, dict)
    assert outcomes["held"] == "recover"


def test_narrowing_a_fault_to_another_outcome_fails_an_agent_that_ends_otherwise(
    project: pytest.Pytester,
) -> None:
    narrow = {"tool_http_404": {"accept": ["escalate"], "reason": "a human takes missing orders"}}
    data = scenario(
        matrix={"faults": ["tool_http_404"], "targets": ["get_order"], "outcomes": narrow}
    )
    write(project, "narrow", data)
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "  check expected_state: expected state 'escalated' (tool_http_404 escalate: ends "
            "'escalated' (accepted by the scenario: a human takes missing orders)), got 'failed'*",
            "  accepted outcomes: escalate (the fault's own: fail; changed in the scenario: a "
            "human takes missing orders)",
        ]
    )


def test_a_malformed_pyproject_rule_stops_the_session_with_one_line(
    project: pytest.Pytester,
) -> None:
    project.makepyprojecttoml('[tool.shakeout.outcomes.model_no_tool_use]\naccept = ["complete"]\n')
    write(project, "free", free_form())
    result = project.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*pyproject.toml: [[]tool.shakeout.outcomes[]].model_no_tool_use: reason: Field required*"]
    )


def test_an_input_item_reports_the_run_time_of_every_payload_it_ran(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.plugin.collect
    from harness.record import RunRecord

    real = harness.plugin.collect.run_variant
    durations: list[float] = []

    def counted(*args: Any, **kwargs: Any) -> RunRecord:
        record = real(*args, **kwargs)
        durations.append(record.duration_s)
        return record

    monkeypatch.setattr(harness.plugin.collect, "run_variant", counted)
    matrix = {"families": ["control_characters"], "examples": 4}
    write(project, "inputs", scenario(input_matrix=matrix))
    report = project.path / "report.json"
    result = project.runpytest(
        "-k", "control_characters", "-p", "no:cacheprovider", f"--chaos-report={report}"
    )
    result.assert_outcomes(passed=1, deselected=1)
    (item,) = [i for i in json.loads(report.read_text())["items"] if "input:" in i["variant"]]
    assert len(durations) >= 2  # the search ran several payloads
    # the item's run time is all of them, not the last one's
    assert item["duration_s"] == round(sum(durations), 6)


# ---------------------------------------------------------------- where the entry travels

# Counts, before the report plugin rewrites them, the reports that carry a scenario item's
# entry, by node id and phase (on the xdist controller: what the workers sent).
ENTRY_COUNTER = """
import json, pytest

CARRIED = []

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report):
    if any(name == "shakeout" for name, _ in report.user_properties):
        CARRIED.append([report.nodeid, report.when])

def pytest_sessionfinish(session):
    if not hasattr(session.config, "workerinput"):
        (session.config.rootpath / "carried.json").write_text(json.dumps(CARRIED))
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["n0", "n2"])
def test_every_outcome_s_entry_rides_on_its_teardown_report_alone_and_reaches_junit(
    project: pytest.Pytester, workers: list[str]
) -> None:
    wrong = dict(HAPPY["expect"], state="escalated")
    write(project, "happy", scenario())
    write(project, "wrong", scenario(name="refund_wrong", expect=wrong))
    unfired = [{"tool_http_503": {"target": "send_email", "at": {"nth": 3}}}]
    write(project, "unfired", scenario(name="refund_unfired", faults=unfired))
    inputs = {"families": ["control_characters"], "must_reject": ["control_characters"]}
    write(project, "inputs", scenario(name="refund_inputs", input_matrix=inputs | {"examples": 2}))
    project.makeconftest(ENTRY_COUNTER)
    result = project.runpytest("-p", "no:cacheprovider", "--junitxml=junit.xml", *workers)
    result.assert_outcomes(passed=3, failed=1, errors=1)

    verdicts: dict[str, str] = {}
    for case in ET.parse(project.path / "junit.xml").getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        entry = json.loads(props["shakeout"] or "")
        assert props["shakeout.verdict"] == entry["verdict"]
        verdicts[str(case.get("name"))] = entry["verdict"]
    assert verdicts == {
        "refund_happy": "pass",
        "refund_inputs": "pass",
        "refund_inputs[input:control_characters]": "pass",
        "refund_wrong": "fail",
        "refund_unfired": "error",
    }
    carried = json.loads((project.path / "carried.json").read_text())
    assert sorted(when for _, when in carried) == ["teardown"] * 5
    assert len({nodeid for nodeid, _ in carried}) == 5
