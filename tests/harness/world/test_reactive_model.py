"""End to end: the reactive scripted model (``on_tool_error``) against agents, through the matrix
expansion, the run and the checks (harness.world.model, harness.scenario.matrix, harness.verdict,
session)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from library import SEED, scenario_data
from toy_agents.toolloop import ToolLoopAgent, build_adapter

from faults.base import Fault, Schedule
from faults.tool import ToolHttp404, ToolHttp503
from harness.adapter import AgentAdapter
from harness.plugin.session import RunResult, judge
from harness.run.runner import AdapterCache, endpoints_of, probe, run_variant
from harness.scenario.expect import derive
from harness.scenario.matrix import expand
from harness.scenario.spec import Scenario
from harness.scenario.variant import Variant
from harness.verdict.base import Verdict

LOOP: dict[str, Any] = {
    "name": "loop_refund",
    "description": "A tool-loop agent looks up an order and refunds it.",
    "agent": "toy_agents.toolloop:build_adapter",
    "input": {"ticket_id": "T-1", "customer_id": "C-1", "message": "Refund order O-1001."},
    "model": {
        "turns": [
            {"tool_call": {"name": "get_order", "arguments": {"order_id": "O-1001"}}},
            {
                "tool_call": {
                    "name": "issue_refund",
                    "arguments": {"order_id": "O-1001", "amount": 49.99, "currency": "EUR"},
                }
            },
            {"text": "Refunded 49.99 EUR for order O-1001."},
        ]
    },
    "tools": {
        "services": {
            "get_order": {
                "path": "/orders/O-1001",
                "respond": {"json": {"order_id": "O-1001", "total": 49.99, "currency": "EUR"}},
            },
            "issue_refund": {
                "method": "POST",
                "path": "/refunds",
                "ledger": {"status": 201, "json": {"refund_id": "R-1"}},
            },
        }
    },
    # a permanent get_order failure must leave no refund (the author's word: the refund is not
    # gated here, so stopped_after_failure does not guard it)
    "matrix": {
        "faults": ["tool_http_404"],
        "overrides": {
            "tool_http_404": {"state": "failed", "category": "tool", "effects": {"issue_refund": 0}}
        },
    },
    "expect": {"state": "completed", "effects": {"issue_refund": 1}, "budget": {"wall_s": 10}},
}


def scenario(**model: Any) -> Scenario:
    return Scenario.model_validate({**LOOP, "model": {**LOOP["model"], **model}})


@pytest.fixture(scope="module")
def loop() -> Iterator[ToolLoopAgent]:
    """The tool-loop agent; a looping run is released at teardown."""
    agent = build_adapter(endpoints_of(scenario()))
    yield agent
    agent.release.set()


@pytest.fixture(scope="module")
def reference() -> AgentAdapter:
    sc = Scenario.model_validate(scenario_data("tool_error_reactions"))
    return AdapterCache().get("reference_agent:build_adapter", endpoints_of(sc))


def cell(sc: Scenario, fault: Fault, reaction: Any) -> Variant:
    """A matrix cell played with a reaction, as ``expand`` builds it."""
    label = fault.label()
    expect = derive(sc, fault, label)
    return Variant(
        sc,
        f"{label}+{reaction}",
        (*sc.build_faults(), fault),
        expect,
        "fault",
        on_tool_error=reaction,
    )


def run(variant: Variant, agent: AgentAdapter, *defects: str, wall_s: float = 10.0) -> RunResult:
    config = {"defects": list(defects)}
    record = run_variant(variant, agent, seed=SEED, wall_s=wall_s, config=config)
    return judge(variant, record, f"pytest ... --chaos-seed={SEED}")


def verdict(result: RunResult, name: str) -> Verdict:
    return next(v for v in result.verdicts if v.name == name)


def failed(result: RunResult, name: str, *words: str) -> None:
    v = verdict(result, name)
    assert result.verdict == "fail", result.explain()
    assert v.passed is False, result.explain()
    for w in words:
        assert w in v.reason, v.reason


NOT_FOUND = ToolHttp404(target="get_order", at=Schedule(nth=1))


# --------------------------------------------------------------------------- a correct agent


@pytest.mark.parametrize("reaction", ["retry", "proceed", "give_up"])
def test_a_correct_tool_loop_agent_handles_every_reaction(
    loop: ToolLoopAgent, reaction: Any
) -> None:
    result = run(cell(scenario(), NOT_FOUND, reaction), loop)
    assert result.verdict == "pass", result.explain()
    final = result.record.final
    assert final is not None
    assert (final.state.value, final.category) == ("failed", "tool")
    reacted = verdict(result, "tool_error_reaction")
    assert reacted.passed is True, reacted.reason
    assert f"the model reacted {reaction!r} at model request 2 to the failed get_order" in (
        reacted.reason
    )
    assert [f.label for f in result.record.firings if f.key == "on_tool_error"][:1] == [
        f"on_tool_error:{reaction}"
    ]
    assert not result.record.effects


def test_a_reaction_that_never_fires_is_reported_not_exercised(loop: ToolLoopAgent) -> None:
    # the agent retries a 503 in its own code: the model never sees it, so give_up never plays
    result = run(cell(scenario(), ToolHttp503(target="get_order"), "give_up"), loop)
    assert result.verdict == "pass", result.explain()
    v = verdict(result, "tool_error_reaction")
    assert v.passed is None
    assert "on_tool_error give_up not exercised: no failed tool call reached the model" in v.reason
    assert not [f for f in result.record.firings if f.key == "on_tool_error"]
    # judged as the cell is without a reaction: recovered, same as the fault-free run
    assert verdict(result, "expected_state").passed is True


# --------------------------------------------------------------------------- broken agents


def test_an_agent_rerunning_what_the_model_re_asks_is_stopped_and_fails(
    loop: ToolLoopAgent,
) -> None:
    variant = cell(scenario(), NOT_FOUND, "retry")
    try:
        result = run(variant, loop, "reruns_failed_calls", wall_s=1.5)
    finally:
        loop.release.set()
    for thread in threading.enumerate():
        if thread.name == "shakeout-agent-call":
            thread.join(timeout=10)
            assert not thread.is_alive(), "the released agent thread is still running"
    loop.release.clear()
    assert result.record.timed_out is not None
    failed(result, "terminal_state", "no terminal state within 1.5 s")
    failed(result, "tool_error_reaction", "kept re-asking it", "never reached a terminal state")
    failed(result, "stopped_after_failure", "a permanent failure, and was sent again")


def test_an_agent_letting_a_proceeding_model_act_commits_what_it_must_not(
    loop: ToolLoopAgent,
) -> None:
    variant = cell(scenario(), NOT_FOUND, "proceed")
    result = run(variant, loop, "acts_after_failure")
    # the agent even reports failed: the effect it let through is evidence the ledger holds
    final = result.record.final
    assert final is not None
    assert final.state.value == "failed"
    failed(result, "expected_effects", "issue_refund: expected 0, got 1")
    assert verdict(result, "tool_error_reaction").passed is True  # the reaction itself played


def test_a_proceeding_model_after_a_recovered_read_breaks_same_effects(loop: ToolLoopAgent) -> None:
    # the 503 outlasts the agent's own attempts: the model is shown the failure and proceeds;
    # an agent that lets it act refunds without the order it never got
    sc = Scenario.model_validate({**LOOP, "expect": {**LOOP["expect"], "budget": {"attempts": 3}}})
    fault = ToolHttp503(target="get_order", times=3)
    good = run(cell(sc, fault, "proceed"), loop)
    assert good.verdict == "pass", good.explain()
    result = run(cell(sc, fault, "proceed"), loop, "acts_after_failure")
    failed(result, "recovered", "was never fetched again before the effect on 'issue_refund'")


def test_an_agent_reporting_completed_after_the_model_gave_up_fails(loop: ToolLoopAgent) -> None:
    result = run(cell(scenario(), NOT_FOUND, "give_up"), loop, "completes_on_any_answer")
    failed(result, "tool_error_reaction", "it answered that it cannot continue", "'completed'")
    failed(
        result,
        "expected_state",
        "expected state 'failed' (the model gave up after a failed tool call",
        "got 'completed'",
    )


def test_the_give_up_expectation_applies_to_a_scenario_expecting_completed(
    loop: ToolLoopAgent,
) -> None:
    # per scenario: a static 404, no fault; the model gives up, the run must not be completed
    data = {**LOOP, "model": {**LOOP["model"], "on_tool_error": "give_up"}}
    data["tools"] = {
        "services": {
            **LOOP["tools"]["services"],
            "get_order": {"path": "/orders/O-1001", "respond": {"status": 404, "json": {}}},
        }
    }
    sc = Scenario.model_validate(data)
    variant = Variant(sc, "base", (), derive_base(sc))
    good = run(variant, loop)
    assert good.verdict == "pass", good.explain()
    bad = run(variant, loop, "completes_on_any_answer")
    failed(bad, "tool_error_reaction", "'completed'")


def derive_base(sc: Scenario) -> Any:
    from harness.scenario.matrix import base_variant

    return base_variant(sc).expect


# --------------------------------------------------------------------------- the matrix


def test_the_matrix_plays_each_reaction_against_each_tool_fault_cell(loop: ToolLoopAgent) -> None:
    data = {
        **LOOP,
        "matrix": {
            "faults": ["tool_http_404", "model_refusal"],
            "targets": ["get_order"],
            "on_tool_error": ["retry", "give_up"],
        },
    }
    sc = Scenario.model_validate(data)
    probed = probe(sc, loop, seed=SEED, wall_s=10.0)
    labels = {v.label: v.on_tool_error for v in expand(sc, probed, SEED)}
    assert labels["tool_http_404@get_order#1"] is None
    assert labels["tool_http_404@get_order#1+retry"] == "retry"
    assert labels["tool_http_404@get_order#1+give_up"] == "give_up"
    # a model fault breaks no tool call: nothing to react to, no reaction cells
    assert [label for label in labels if label.startswith("model_refusal")] == ["model_refusal#1"]


# --------------------------------------------------------------------------- the reference agent


@pytest.mark.parametrize("reaction", ["retry", "proceed", "give_up"])
def test_the_reference_agent_passes_and_the_reaction_is_reported_inert(
    reference: AgentAdapter, reaction: Any
) -> None:
    # it handles tool errors in code and never hands one to the model: the reaction cells pass
    # as their plain cells do, each saying the reaction was not exercised
    sc = Scenario.model_validate(scenario_data("tool_error_reactions"))
    probed = probe(sc, reference, seed=SEED, wall_s=10.0)
    cells = [v for v in expand(sc, probed, SEED) if v.on_tool_error == reaction]
    assert cells
    for variant in cells:
        record = run_variant(variant, reference, seed=SEED, wall_s=10.0)
        result = judge(variant, record, "")
        assert result.verdict == "pass", result.explain()
        v = verdict(result, "tool_error_reaction")
        assert v.passed is None, v.reason
        assert "not exercised: no failed tool call reached the model" in v.reason
        assert not [f for f in record.firings if f.key == "on_tool_error"]


# --------------------------------------------------------------------------- through pytest


def test_pytest_prints_the_give_up_cell_that_caught_a_made_up_completion(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nchaos_seed = 11\nfilterwarnings = error\n")
    data = {
        **LOOP,
        "agent_config": {"defects": ["completes_on_any_answer"]},
        "matrix": {**LOOP["matrix"], "targets": ["get_order"], "on_tool_error": ["give_up"]},
    }
    path = pytester.path / "scenarios" / "loop.yaml"
    path.parent.mkdir()
    path.write_text("# yaml-language-server: $schema=schema.json\n" + yaml.safe_dump(data))
    result = pytester.runpytest("-p", "no:cacheprovider", "--assert=plain")
    # the base run and the plain 404 cell pass (the agent's own guard refuses the refund); the
    # give_up cell reports 'completed' for a run whose model gave up
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*FAIL: scenario 'loop_refund', variant 'tool_http_404@get_order#1+give_up'",
            "*check tool_error_reaction: the model reacted 'give_up' at model request 2 to the "
            "failed get_order call (*not_found*): it answered that it cannot continue, yet the "
            "agent reported 'completed'*",
            "*model*POST*/v1/chat/completions -> 200  [[]fault: on_tool_error:give_up]",
            "tool error reactions (on_tool_error): 1/1 items exercised",
        ]
    )
