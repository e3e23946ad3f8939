"""The guarded rules: a broken mini agent per rule, caught by the check meant for it.

Each test runs a deliberately broken mini agent (``tests/lib/toy_agents/mini.py``) through the real
runner and checks (``run_variant`` + ``judge``), names the check that catches it and the words
of its message; the correct mini agent and the reference agent pass the same cells.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from toy_agents.mini import MiniAgent

from faults.approval import ApprovalLate
from faults.base import Fault, Schedule
from faults.model import ModelLengthValidJson, ModelProgressLoop
from harness.adapter import AgentAdapter
from harness.plugin.session import RunResult, judge
from harness.record import Baseline
from harness.run.runner import AdapterCache, endpoints_of, probe, run_variant
from harness.scenario.expect import derive
from harness.scenario.matrix import base_variant, baseline_of
from harness.scenario.spec import Scenario
from harness.scenario.variant import Variant
from harness.verdict.base import Verdict

ROOT = Path(__file__).resolve().parents[3]
SEED = 20261124
REFERENCE = "reference_agent.adapter:build_adapter"


def scenario(name: str, **changes: Any) -> Scenario:
    data = yaml.safe_load((ROOT / "scenarios" / f"{name}.yaml").read_text())
    drop = ("matrix", "input_matrix", "crash_matrix")
    return Scenario.model_validate({**{k: v for k, v in data.items() if k not in drop}, **changes})


HAPPY = scenario("refund_happy")
LOOP = scenario("budget_progress_loop")


@pytest.fixture(scope="module")
def reference() -> AgentAdapter:
    return AdapterCache().get(REFERENCE, endpoints_of(HAPPY))


@pytest.fixture(scope="module")
def baseline(mini: MiniAgent) -> Baseline:
    found = probe(HAPPY, mini, seed=SEED, wall_s=10.0, config={"defects": []})
    return baseline_of(HAPPY, found)


def run(variant: Variant, agent: AgentAdapter, *defects: str) -> RunResult:
    config: Mapping[str, Any] = {"defects": list(defects)} if isinstance(agent, MiniAgent) else {}
    record = run_variant(variant, agent, seed=SEED, wall_s=10.0, config=config)
    return judge(variant, record, f"pytest ... --chaos-seed={SEED}")


def cell(fault: Fault, baseline: Baseline | None = None, sc: Scenario = HAPPY) -> Variant:
    label = fault.label()
    return Variant(sc, label, (*sc.build_faults(), fault), derive(sc, fault, label, baseline))


def check(result: RunResult, name: str) -> Verdict:
    return next(v for v in result.verdicts if v.name == name)


def caught(result: RunResult, name: str, *words: str) -> None:
    v = check(result, name)
    assert result.verdict == "fail", result.explain()
    assert v.passed is False, result.explain()
    for w in words:
        assert w in v.reason, v.reason


def cut_cell(baseline: Baseline, n: int) -> Variant:
    return cell(ModelLengthValidJson(at=Schedule(nth=n)), baseline)


# --------------------------------------------------------------------------- the correct agents


def test_the_correct_agents_pass_every_cell_used_below(
    mini: MiniAgent, reference: AgentAdapter
) -> None:
    for agent in (mini, reference):
        config = {"defects": []} if agent is mini else {}
        own = baseline_of(HAPPY, probe(HAPPY, agent, seed=SEED, wall_s=10.0, config=config))
        variants = (
            base_variant(HAPPY),
            base_variant(LOOP),
            cut_cell(own, 1),
            cut_cell(own, 2),
            cell(ApprovalLate()),
        )
        for variant in variants:
            result = run(variant, agent)
            assert result.verdict == "pass", result.explain()
            assert check(result, "approval_summary").passed is not False


# --------------------------------------------------------------------------- the approval summary


def test_raw_ticket_text_in_the_summary_is_caught(mini: MiniAgent) -> None:
    result = run(base_variant(HAPPY), mini, "raw_text_in_summary")
    caught(result, "approval_summary", "raw text outside a fenced quote", "order O-1001 arrived")


def test_injected_words_in_the_summary_are_caught(mini: MiniAgent) -> None:
    result = run(base_variant(HAPPY), mini, "injected_summary")
    caught(result, "approval_summary", "'approved by manager' outside a fenced quote")


def test_a_summary_without_the_amount_is_caught(mini: MiniAgent) -> None:
    result = run(base_variant(HAPPY), mini, "summary_omits_amount")
    caught(result, "approval_summary", "does not show amount 49.99", "the committed effect")


def test_a_long_summary_is_caught_and_its_bound_is_the_scenarios(mini: MiniAgent) -> None:
    result = run(base_variant(HAPPY), mini, "long_summary")
    caught(result, "approval_summary", "over the bound of 500", "approval_summary.max_chars")
    roomy = scenario("refund_happy", approval_summary={"max_chars": 5000})
    assert run(base_variant(roomy), mini, "long_summary").verdict == "pass"


def test_an_empty_summary_is_not_applicable(mini: MiniAgent) -> None:
    result = run(base_variant(HAPPY), mini, "empty_summary")
    v = check(result, "approval_summary")
    assert v.passed is None
    assert "not applicable" in v.reason


# --------------------------------------------------------------------------- guarded faults


@pytest.mark.parametrize("n", [1, 2])
def test_an_answer_cut_by_length_is_never_used(mini: MiniAgent, baseline: Baseline, n: int) -> None:
    result = run(cut_cell(baseline, n), mini, "ignores_finish_reason")
    caught(
        result,
        "incomplete_answer_unused",
        f"model_length_valid_json#{n}",
        "it acted on an incomplete answer",
    )


def test_a_loop_with_new_arguments_needs_a_call_budget(mini: MiniAgent) -> None:
    result = run(base_variant(LOOP), mini, "no_call_budget")
    caught(result, "budget", "model requests, budget 10")
    loop = result.record.exchanges
    assert any(e.tool == "get_order" and "loop" in e.request.url for e in loop)


def test_the_progress_loop_never_repeats_itself(mini: MiniAgent) -> None:
    result = run(base_variant(LOOP), mini)
    urls = [e.request.url for e in result.record.exchanges if "loop" in e.request.url]
    assert len(urls) == len(set(urls)) > 3  # new arguments every turn: no repeat to detect
    assert ModelProgressLoop().label() == "model_progress_loop#1x64"


def test_a_late_approval_is_refused(mini: MiniAgent) -> None:
    late = cell(ApprovalLate())
    assert late.expect.state == "expired"
    result = run(late, mini, "honours_late_approval")
    caught(result, "unapproved_effects", "after it expired at")
    delivery = next(d for d in result.record.deliveries if d.verdict == "approve")
    assert delivery.expires_at is not None
    assert delivery.t == delivery.expires_at + 60.0
