"""Tests for harness.scenario.matrix: cells from a probe, derived expectations, crash cells."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from toy_agents.mini import MiniAgent

from faults.approval import ApprovalDeny
from faults.base import FaultOutcome, Surface, registry
from faults.model import ModelRepeatCall
from faults.tool import ToolHttp404, ToolHttp503
from harness.record import RunRecord
from harness.run.runner import probe, run_variant
from harness.scenario.expect import (
    OutcomeConfigError,
    OutcomeRule,
    accepted,
    derive,
    gated_tools,
    project_outcomes,
)
from harness.scenario.fault_specs import import_catalogue
from harness.scenario.matrix import base_variant, crash_cells, expand, fault_cells
from harness.scenario.spec import Scenario
from harness.scenario.variant import Probe

ROOT = Path(__file__).resolve().parents[3]
HAPPY = yaml.safe_load((ROOT / "scenarios" / "refund_happy.yaml").read_text())
TOOLS = tuple(HAPPY["tools"]["services"])
LEDGERS = ("issue_refund", "send_email", "close_ticket")
STEPS = ("intake", "classify", "gather", "decide", "approve", "act", "notify", "close")


def scenario(**changes: Any) -> Scenario:
    drop = ("matrix", "input_matrix", "crash_matrix")
    return Scenario.model_validate({**{k: v for k, v in HAPPY.items() if k not in drop}, **changes})


def fake_probe(tool_calls: Mapping[str, int] | None = None, **kw: Any) -> Probe:
    calls = Counter(dict.fromkeys(TOOLS, 1) if tool_calls is None else tool_calls)
    boundaries = [(p, s) for s in STEPS for p in ("before_step", "after_checkpoint")]
    return Probe(
        tool_calls=calls,
        model_requests=kw.get("model_requests", 2),
        approval_rounds=kw.get("approval_rounds", 1),
        boundaries=[*boundaries, ("terminal_write", "completed")],
        ledger_calls=Counter({t: n for t, n in calls.items() if t in LEDGERS}),
        record=RunRecord("s", "probe", 1, (), (), (), (), ()),
    )


def keys_on(surface: Surface) -> list[str]:
    import_catalogue()
    return [k for k, cls in registry().items() if cls.surface is surface]


# --------------------------------------------------------------------------- fault cells


def test_expand_puts_the_base_run_first_and_one_cell_per_reached_call() -> None:
    sc = scenario(
        matrix={
            "faults": ["tool_http_503", "model_refusal"],
            "targets": ["get_order"],
            "calls": [1, 2],
        }
    )
    labels = [v.label for v in expand(sc, fake_probe())]
    assert labels == [
        "base",
        "tool_http_503@get_order#1",  # the probe called get_order once: no #2
        "tool_http_503@get_order#1x3",  # budget.attempts is 3: a cell where all 3 fail
        "model_refusal#1",
        "model_refusal#2",
    ]


def test_exhaustion_cells_expect_failure_and_only_with_an_attempts_budget() -> None:
    sc = scenario(matrix={"faults": ["tool_http_503", "tool_http_404"], "targets": ["get_order"]})
    cells = {v.label: v for v in fault_cells(sc, fake_probe())}
    assert set(cells) == {
        "tool_http_503@get_order#1",
        "tool_http_503@get_order#1x3",
        "tool_http_404@get_order#1",
    }
    exhausted = cells["tool_http_503@get_order#1x3"].expect
    assert (exhausted.state, exhausted.category) == ("failed", "tool")
    assert "3 failed attempts in a row" in exhausted.origin
    recovered = cells["tool_http_503@get_order#1"].expect
    assert recovered.state == "completed"
    assert recovered.baseline is not None  # compared effect by effect with the fault-free run
    unbudgeted = dict(HAPPY["expect"])
    unbudgeted["budget"] = {k: v for k, v in HAPPY["expect"]["budget"].items() if k != "attempts"}
    plain = scenario(
        matrix={"faults": ["tool_http_503"], "targets": ["get_order"]}, expect=unbudgeted
    )
    assert [v.label for v in fault_cells(plain, fake_probe())] == ["tool_http_503@get_order#1"]


def test_expand_without_a_probe_is_the_base_run_only() -> None:
    sc = scenario(matrix={"surfaces": ["tool"]})
    assert [v.kind for v in expand(sc, None)] == ["base"]


def test_a_tool_surface_breaks_every_tool_the_probe_reached() -> None:
    sc = scenario(matrix={"surfaces": ["tool"]})
    reached = dict.fromkeys(TOOLS, 1) | {"close_ticket": 0}
    cells = [v for v in fault_cells(sc, fake_probe(reached)) if v.faults[-1].times == 1]
    assert len(cells) == len(keys_on(Surface.TOOL)) * (len(TOOLS) - 1)
    assert not any(v.label.endswith("@close_ticket#1") for v in cells)


def test_stream_faults_need_a_streaming_scenario() -> None:
    sc = scenario(matrix={"surfaces": ["stream"]})
    assert list(fault_cells(sc, fake_probe())) == []
    streamed = scenario(matrix={"surfaces": ["stream"]}, model={**HAPPY["model"], "stream": True})
    assert len(list(fault_cells(streamed, fake_probe()))) == len(keys_on(Surface.STREAM))


def test_a_fault_that_needs_history_is_not_aimed_at_the_first_call() -> None:
    sc = scenario(matrix={"faults": ["model_repeat_call"], "calls": [1, 2]})
    assert [v.label for v in fault_cells(sc, fake_probe())] == ["model_repeat_call#2"]
    assert not ModelRepeatCall().eligible(1)


def test_cells_keep_the_scenarios_own_faults() -> None:
    sc = scenario(
        faults=[{"tool_latency": {"target": "get_customer"}}],
        matrix={"faults": ["tool_http_503"], "targets": ["get_order"]},
    )
    cell, exhausted = fault_cells(sc, fake_probe())
    assert [f.key for f in cell.faults] == ["tool_latency", "tool_http_503"]
    assert [f.label() for f in exhausted.faults][-1] == "tool_http_503@get_order#1x3"


# --------------------------------------------------------------------------- derive


def test_a_transient_cell_expects_the_fault_free_outcome_without_a_budget() -> None:
    sc = scenario()
    expect = derive(sc, ToolHttp503(target="get_order"), "tool_http_503@get_order#1")
    assert (expect.state, expect.category, expect.check_category) == ("completed", None, True)
    assert expect.effects == {"issue_refund": 1, "send_email": 1, "close_ticket": 1}
    assert (expect.max_model_calls, expect.max_tool_calls) == (None, None)
    assert expect.origin == "transient tool_http_503: same as the fault-free run"
    assert base_variant(sc).expect.max_model_calls == 5


def test_a_permanent_cell_expects_failed_with_the_faults_category() -> None:
    expect = derive(scenario(), ToolHttp404(target="get_order"), "tool_http_404@get_order#1")
    assert (expect.state, expect.category) == ("failed", "tool")
    assert expect.gated_tools == frozenset({"issue_refund"})
    assert expect.origin == "permanent tool_http_404: failed with its category"


def test_a_fault_class_can_declare_its_terminal_state() -> None:
    expect = derive(scenario(), ApprovalDeny(), "approval_deny#1")
    assert (expect.state, expect.effects) == ("rejected", {"issue_refund": 0})
    assert expect.origin == "approval_deny is expected to end 'rejected'"


@pytest.mark.parametrize("name", ["tool_http_404@get_order", "tool_http_404"])
def test_a_scenario_override_wins_over_the_fault_class(name: str) -> None:
    matrix = {"faults": ["tool_http_404"], "overrides": {name: {"state": "escalated"}}}
    sc = scenario(matrix=matrix)
    expect = derive(sc, ToolHttp404(target="get_order"), "tool_http_404@get_order#1")
    assert expect.state == "escalated"
    assert expect.origin == f"matrix override {name!r}"
    assert expect.max_model_calls is None


def test_gated_tools_come_from_the_scenario() -> None:
    assert gated_tools(scenario()) == frozenset({"issue_refund"})


# --------------------------------------------------------------------------- crash cells


def test_one_crash_cell_per_boundary_the_probe_passed() -> None:
    points = ["before_step", "after_effect", "after_checkpoint", "while_parked", "terminal_write"]
    sc = scenario(crash_matrix={"points": points})
    cells = list(crash_cells(sc, fake_probe(approval_rounds=2)))
    labels = [v.label for v in cells]
    assert labels == [
        *(f"crash_before_step@{s}#1" for s in STEPS),
        *(f"crash_after_effect@{t}#1" for t in LEDGERS),
        *(f"crash_after_checkpoint@{s}#1" for s in STEPS),
        "crash_while_parked#1",
        "crash_while_parked#2",
        "crash_terminal_write@completed#1",
    ]
    assert all(v.kind == "crash" for v in cells)
    effect = next(v for v in cells if v.label == "crash_after_effect@send_email#1")
    assert effect.allowed_extra == {"send_email": 1}
    assert effect.baseline_requests is not None
    assert effect.baseline_requests["(model)"] == 2
    assert effect.expect.origin == "crash and resume: same as the fault-free run"


def test_no_crash_matrix_no_crash_cells() -> None:
    assert list(crash_cells(scenario(), fake_probe())) == []


# --------------------------------------------------------------------------- every cell fires

MATRIX_SC = scenario(
    matrix={"surfaces": ["tool", "model", "approval"], "calls": [1, 2]},
    crash_matrix={"points": ["before_step", "after_effect", "while_parked"]},
)


@pytest.fixture(scope="module")
def cells(mini: MiniAgent) -> list[Any]:
    found = probe(MATRIX_SC, mini, seed=3, wall_s=10.0, config={"defects": []})
    return expand(MATRIX_SC, found)[1:]


def test_the_real_probe_reaches_every_tool_once_and_the_model_twice(cells: list[Any]) -> None:
    labels = {v.label for v in cells}
    assert "tool_http_503@get_order#1" in labels
    assert "tool_http_503@get_order#2" not in labels
    assert "model_refusal#2" in labels
    assert "crash_while_parked#1" in labels


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_expanded_cell_is_eligible_and_fires(
    mini: MiniAgent, cells: list[Any], data: st.DataObject
) -> None:
    variant = data.draw(st.sampled_from(cells), label="cell")
    fault = variant.faults[-1]
    if fault.at.nth is not None:
        assert fault.eligible(fault.at.nth)
    record = run_variant(variant, mini, seed=3, wall_s=10.0, config={"defects": []})
    assert fault.key in {f.key for f in record.firings}, variant.label


# --------------------------------------------------------------------------- acceptable outcomes


def test_each_fault_declares_its_outcomes_from_its_class() -> None:
    import_catalogue()
    reg = registry()
    assert reg["tool_http_503"].outcomes() == (FaultOutcome.RECOVER,)
    assert reg["tool_http_404"].outcomes() == (FaultOutcome.FAIL,)
    assert reg["approval_deny"].outcomes() == (FaultOutcome.REJECT,)
    assert reg["approval_never"].outcomes() == (FaultOutcome.EXPIRE,)
    for cls in reg.values():
        assert cls.outcomes(), cls.key


def test_a_fault_class_may_declare_several_outcomes() -> None:
    class Flaky(ToolHttp404):  # no key of its own: not registered, no other test sees it
        accepts = (FaultOutcome.FAIL, FaultOutcome.ESCALATE)

    sc = scenario()
    fault = Flaky(target="get_order")
    expect, acceptance = accepted(sc, fault, fault.label())
    assert acceptance is not None
    assert (expect.state, expect.category) == ("failed", "tool")
    alternatives = [(o, e.state) for o, e in acceptance.alternatives]
    assert alternatives == [(FaultOutcome.ESCALATE, "escalated")]


def test_untuned_cells_keep_their_single_derived_expectation() -> None:
    sc = scenario(matrix={"surfaces": ["tool", "model", "approval"]})
    for cell in fault_cells(sc, fake_probe()):
        assert cell.acceptance is not None
        assert cell.acceptance.alternatives == ()
        assert cell.acceptance.reason is None
        plain = derive(sc, cell.faults[-1], cell.label)
        for attr in ("state", "category", "effects", "origin", "recovery_required"):
            assert getattr(cell.expect, attr) == getattr(plain, attr), (cell.label, attr)


def rule(*accept: str, reason: str = "free-form loop") -> dict[str, Any]:
    return {"accept": list(accept), "reason": reason}


def test_the_scenario_widens_a_fault_and_wins_over_the_project() -> None:
    outcomes = {"model_no_tool_use": rule("recover", "complete", reason="text is final")}
    sc = scenario(matrix={"faults": ["model_no_tool_use"], "outcomes": outcomes})
    tuning = {"model_no_tool_use": OutcomeRule(accept=(FaultOutcome.FAIL,), reason="project")}
    (cell,) = [c for c in fault_cells(sc, fake_probe(), tuning) if c.label.endswith("#1")]
    assert cell.acceptance is not None
    assert cell.acceptance.outcomes == (FaultOutcome.RECOVER, FaultOutcome.COMPLETE)
    assert (cell.acceptance.reason, cell.acceptance.source) == ("text is final", "scenario")
    ((outcome, complete),) = cell.acceptance.alternatives
    assert (outcome, complete.state, complete.recovery_required) == (
        FaultOutcome.COMPLETE,
        "completed",
        False,
    )
    assert "accepted by the scenario: text is final" in complete.origin
    plain = scenario(matrix={"faults": ["model_no_tool_use"]})
    (cell,) = [c for c in fault_cells(plain, fake_probe(), tuning) if c.label.endswith("#1")]
    assert cell.acceptance is not None
    assert cell.acceptance.outcomes == (FaultOutcome.FAIL,)
    assert cell.acceptance.source == "pyproject.toml"


def test_a_rule_for_one_target_leaves_the_others_alone() -> None:
    outcomes = {"tool_oversize_body@issue_refund": rule("recover", reason="already committed")}
    sc = scenario(matrix={"faults": ["tool_oversize_body"], "outcomes": outcomes})
    by_target = {c.faults[-1].target: c for c in fault_cells(sc, fake_probe())}
    assert by_target["issue_refund"].expect.state == "completed"
    assert by_target["get_order"].expect.state == "failed"


@pytest.mark.parametrize(
    ("outcomes", "words"),
    [
        ({"model_no_tool_use": {"accept": ["complete"]}}, "reason"),
        ({"model_no_tool_use": rule("complete", reason="  ")}, "the reason is blank"),
        ({"model_no_tool_use": rule("finish")}, "accept"),
        ({"model_no_tool_usee": rule("complete")}, "model_no_tool_usee"),
        ({"tool_http_503@no_such_tool": rule("recover")}, "no_such_tool"),
    ],
)
def test_a_malformed_outcome_rule_is_refused(outcomes: dict[str, Any], words: str) -> None:
    data = {**{k: v for k, v in HAPPY.items() if k != "matrix"}}
    data["matrix"] = {"faults": ["model_no_tool_use"], "outcomes": outcomes}
    with pytest.raises(ValueError, match=words):
        Scenario.model_validate(data)


def test_project_outcomes_reads_pyproject_and_names_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(
        '[tool.shakeout.outcomes.model_no_tool_use]\naccept = ["recover", "complete"]\n'
        'reason = "a text answer is final"\n'
    )
    (found,) = project_outcomes(path).items()
    assert found == (
        "model_no_tool_use",
        OutcomeRule(
            accept=(FaultOutcome.RECOVER, FaultOutcome.COMPLETE), reason="a text answer is final"
        ),
    )
    path.write_text('[tool.shakeout.outcomes.model_no_tool_usee]\naccept = ["complete"]\n')
    with pytest.raises(OutcomeConfigError, match="did you mean 'model_no_tool_use'"):
        project_outcomes(path)
    path.write_text('[tool.shakeout.outcomes.model_no_tool_use]\naccept = ["complete"]\n')
    with pytest.raises(OutcomeConfigError, match=r"model_no_tool_use: reason: Field required"):
        project_outcomes(path)
    assert project_outcomes(tmp_path / "missing.toml") == {}


def test_every_variant_of_a_scenario_shares_its_rules_instead_of_copying_them() -> None:
    # A 10k-variant session kept the rules' sets, maps and input texts once per variant
    # (about 0.6 KiB an item): every cell's expectation must point at the scenario's one copy.
    sc = scenario(
        matrix={"faults": ["tool_http_503", "tool_http_404", "model_refusal"], "calls": [1]}
    )
    variants = list(expand(sc, fake_probe()))
    assert len(variants) > 5
    first = variants[0].expect
    assert first.input_texts, "refund_happy's ticket has free text"
    for v in variants[1:]:
        assert v.expect.input_texts is first.input_texts, v.label
        assert v.expect.gated_tools is first.gated_tools, v.label
        assert v.expect.vary is first.vary, v.label
    # Sharing never crosses scenarios: another scenario derives its own rules.
    other = scenario(input={**HAPPY["input"], "message": "a different ticket text"})
    assert expand(other, fake_probe())[0].expect.input_texts != first.input_texts
