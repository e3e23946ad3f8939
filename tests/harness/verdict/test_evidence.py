"""Verdicts from evidence: each agent that lies in its outcome is caught by what the world saw.

Every test runs a deliberately broken mini agent (``tests/lib/toy_agents/mini.py``) through the real
runner and checks, and names the check that catches it. Most of these agents report a perfectly
plausible outcome (``completed``, or ``failed`` with the right category), so a check that read
only the agent's testimony would pass them.
"""

from __future__ import annotations

import pytest
from library import SEED, scenario_data, without_matrices
from toy_agents.mini import MiniAgent

from faults.approval import ApprovalDuplicate
from faults.base import Fault, Schedule
from faults.crash import CrashAfterCheckpoint
from faults.tool import ToolHttp404, ToolHttp500, ToolHttp503, ToolLatency, ToolRateLimit
from harness.adapter import AgentAdapter
from harness.plugin.session import RunResult, judge
from harness.record import Baseline
from harness.run.runner import AdapterCache, endpoints_of, probe, run_variant
from harness.scenario.expect import derive, expectation
from harness.scenario.matrix import base_variant, baseline_of, crash_cells
from harness.scenario.spec import Scenario
from harness.scenario.variant import Variant
from harness.verdict.base import Verdict

HAPPY = scenario_data("refund_happy")
MINI = "toy_agents.mini:build_adapter"


scenario = without_matrices


HAPPY_SC = scenario(HAPPY)


@pytest.fixture(scope="module")
def baseline(mini: MiniAgent) -> Baseline:
    """The correct mini agent's fault-free run: the oracle of the cells below."""
    found = probe(HAPPY_SC, mini, seed=SEED, wall_s=10.0, config={"defects": []})
    return baseline_of(HAPPY_SC, found)


def run(variant: Variant, agent: AgentAdapter, *defects: str) -> RunResult:
    record = run_variant(variant, agent, seed=SEED, wall_s=10.0, config={"defects": list(defects)})
    return judge(variant, record, f"pytest ... --chaos-seed={SEED}")


def cell(fault: Fault, baseline: Baseline | None = None, sc: Scenario = HAPPY_SC) -> Variant:
    label = fault.label()
    return Variant(sc, label, (*sc.build_faults(), fault), derive(sc, fault, label, baseline))


def check(result: RunResult, name: str) -> Verdict:
    return next(v for v in result.verdicts if v.name == name)


def caught(result: RunResult, name: str, *words: str, outcome: str = "fail") -> None:
    v = check(result, name)
    assert result.verdict == outcome, result.explain()
    assert v.passed is False, result.explain()
    for w in words:
        assert w in v.reason, v.reason


# --------------------------------------------------------------------------- the correct agent


def test_the_correct_agent_passes_every_cell_used_below(
    mini: MiniAgent, baseline: Baseline
) -> None:
    for variant in (
        base_variant(HAPPY_SC),
        cell(ToolHttp503(target="get_customer"), baseline),
        cell(ToolHttp404(target="get_customer")),
        cell(ToolLatency(target="get_order"), baseline),
        cell(ToolRateLimit(target="get_order"), baseline),
        cell(ToolHttp503(target="get_order", times=3)),
        cell(ApprovalDuplicate(), baseline),
    ):
        result = run(variant, mini)
        assert result.verdict == "pass", result.explain()


# --------------------------------------------------------------------------- effects by body


def test_a_refund_of_the_wrong_amount_fails_on_its_body(
    mini: MiniAgent, baseline: Baseline
) -> None:
    # the agent asks approval for the inflated amount and the reviewer approves what it sees:
    # approvals hold, counts hold; the body does not
    result = run(base_variant(HAPPY_SC), mini, "inflate_refund")
    assert check(result, "unapproved_effects").passed is True
    assert check(result, "expected_state").passed is True
    caught(result, "expected_effects", "the issue_refund sent (amount 4999.0)", "(amount 49.99)")
    in_cell = run(cell(ToolHttp503(target="get_order"), baseline), mini, "inflate_refund")
    caught(in_cell, "same_effects", '"amount":4999.0', '"amount":49.99')


def test_approval_with_empty_arguments_covers_nothing(mini: MiniAgent) -> None:
    result = run(base_variant(HAPPY_SC), mini, "empty_approval_args")
    caught(result, "unapproved_effects", "empty arguments cover nothing")


# --------------------------------------------------------------------------- order from the log


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param((), id="plain"),
        pytest.param((ToolLatency(target="get_order", seconds=30.0),), id="under-tool-latency"),
    ],
)
def test_a_refund_sent_just_before_parking_is_unapproved(
    mini: MiniAgent, faults: tuple[Fault, ...]
) -> None:
    base = base_variant(HAPPY_SC)
    variant = Variant(HAPPY_SC, "early", faults, base.expect)
    result = run(variant, mini, "refund_before_parking")
    caught(result, "unapproved_effects", "was delivered after the request")


# --------------------------------------------------------------------------- permanent faults


def test_going_on_after_a_permanent_404_fails_even_when_it_reports_failed(
    mini: MiniAgent,
) -> None:
    result = run(cell(ToolHttp404(target="get_customer")), mini, "ignore_permanent_read")
    # its testimony matches the cell's expectation exactly...
    assert check(result, "expected_state").passed is True
    assert check(result, "expected_category").passed is True
    # ...but the world saw a refund after the failure
    caught(result, "stopped_after_failure", "get_customer (request #", "'issue_refund'")


def test_a_permanent_fault_answers_every_retry(mini: MiniAgent) -> None:
    result = run(cell(ToolHttp404(target="get_customer")), mini, "retry_permanent")
    calls = [e for e in result.record.exchanges if e.tool == "get_customer"]
    assert len(calls) == 4  # the defect retries past its limit: each retry got the 404 again
    assert all(e.status == 404 for e in calls)
    assert all(e.faults == ("tool_http_404@get_customer#1",) for e in calls)


# --------------------------------------------------------------------------- recovery


def test_an_error_body_taken_as_data_did_not_recover(mini: MiniAgent, baseline: Baseline) -> None:
    result = run(cell(ToolHttp500(target="get_customer"), baseline), mini, "treat_500_as_success")
    assert result.record.final is not None
    assert result.record.final.state.value == "completed"
    caught(
        result,
        "recovered",
        "get_customer (request #",
        "tool_http_500@get_customer#1",
        "never fetched again before the effect on 'issue_refund'",
    )
    caught(result, "same_effects", "send_email")


# --------------------------------------------------------------------------- timing


def test_retrying_a_429_at_once_ignores_retry_after(mini: MiniAgent, baseline: Baseline) -> None:
    result = run(cell(ToolRateLimit(target="get_order"), baseline), mini, "retry_at_once")
    caught(result, "retry_timing", "asking to retry after 2 s", "Retry-After was ignored")


def test_retrying_a_503_at_once_is_a_storm(mini: MiniAgent, baseline: Baseline) -> None:
    result = run(cell(ToolHttp503(target="get_order"), baseline), mini, "retry_at_once")
    caught(result, "retry_timing", "retried at once")


def test_a_retry_past_the_budget_fails_in_the_exhaustion_cell(mini: MiniAgent) -> None:
    exhausted = cell(ToolHttp503(target="get_order", times=3))
    assert exhausted.expect.state == "failed"  # 3 failed attempts of 3 allowed
    result = run(exhausted, mini, "retry_past_limit")
    caught(result, "retry_timing", "attempted 4 times", "allows 3 attempts")


# --------------------------------------------------------------------------- approvals


def test_one_approval_used_twice_is_caught(mini: MiniAgent, baseline: Baseline) -> None:
    result = run(cell(ApprovalDuplicate(), baseline), mini, "approval_reuse")
    caught(result, "unapproved_effects", "already used for an earlier effect")


# --------------------------------------------------------------------------- crashes


def test_progress_kept_in_memory_does_not_survive_a_real_crash(mini: MiniAgent) -> None:
    crash = CrashAfterCheckpoint(target="gather")
    base = base_variant(HAPPY_SC)
    variant = Variant(HAPPY_SC, crash.label(), (crash,), base.expect, "crash")
    cached = AdapterCache().get(MINI, endpoints_of(HAPPY_SC))
    result = run(variant, cached, "memory_resume")
    restarts = [e for e in result.record.others if e.kind == "restart"]
    assert restarts
    assert all(e.kind == "restart" and e.fresh for e in restarts)
    # the fresh instance knows nothing of the run: the redelivered ticket starts it over
    assert result.verdict == "fail", result.explain()
    caught(result, "expected_state", "expected state 'completed'")
    # the same instance re-begun (what the harness did before, and still does for an adapter
    # handed over without a factory) would have "resumed" from memory: the restart says so
    same = run(variant, mini, "memory_resume")
    assert [e.fresh for e in same.record.others if e.kind == "restart"] == [False]
    assert same.verdict == "pass", same.explain()


def test_an_agent_that_announces_no_boundaries_gets_error_cells() -> None:
    sc = Scenario.model_validate(
        {
            **HAPPY,
            "agent_config": {"defects": ["no_boundaries"]},
            "matrix": None,
            "input_matrix": None,
        }
    )
    agent = AdapterCache().get(MINI, endpoints_of(sc))
    found = probe(sc, agent, seed=SEED, wall_s=10.0, config=dict(sc.agent_config))
    cells = list(crash_cells(sc, found))
    missing = {c.label: c.error for c in cells if c.error is not None}
    assert set(missing) == {
        "before_step:missing",
        "after_checkpoint:missing",
        "terminal_write:missing",
    }
    assert "announced no 'before_step' boundary" in (missing["before_step:missing"] or "")
    # the points the world itself causes still get their cells
    assert any(c.label.startswith("crash_after_effect") for c in cells)


# --------------------------------------------------------------------------- faults by label


def test_a_fault_that_fired_elsewhere_under_the_same_key_does_not_count(mini: MiniAgent) -> None:
    fired = ToolHttp503(target="get_customer", at=Schedule(nth=1))
    never = ToolHttp503(target="get_order", at=Schedule(nth=7))
    sc = HAPPY_SC
    variant = Variant(
        sc, "two-503", (fired, never), expectation(sc, sc.expect, "test", budget=False)
    )
    result = run(variant, mini)
    caught(result, "faults_fired", "never fired: tool_http_503@get_order#7", outcome="error")
