"""The workflow: the plan's order, each stage's output schema, and where a resume picks up."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from refund_world import TICKET, DeskFactory, refund_script

from reference_agent.calls import ActiveRun
from reference_agent.errors import IllegalTransition
from reference_agent.fakes import FakeModel, FakeTools
from reference_agent.store import StepRow
from reference_agent.workflow import STAGES, STEPS, Workflow, checked, next_step

OUTPUTS: dict[str, dict[str, Any]] = {
    "intake": {"ticket_id": "T-1", "customer_id": "C-7", "message": "refund please"},
    "classify": {"intent": "refund", "order_id": "O-1001", "escalate": False},
    "gather": {"order": {"order_id": "O-1001"}, "customer": {}, "policy": {}},
    "decide": {"decision": "refund", "amount": 40.0, "currency": "EUR", "reason": "late"},
    "approve": {"approved": True, "approval_id": "apr-1", "action_hash": "h", "reviewer": None},
    "act": {
        "refund_id": "re_1",
        "status": "issued",
        "order_id": "O-1001",
        "amount": 40.0,
        "currency": "EUR",
        "reason": "late",
    },
    "notify": {"message_id": "m_1", "template": "refund_issued"},
    "close": {"status": "closed", "resolution": "refunded"},
}


def test_every_stage_reads_only_earlier_stages() -> None:
    seen: set[str] = set()
    for stage in STAGES:
        assert set(stage.reads) <= seen, f"{stage.name} reads a later stage: {stage.reads}"
        assert stage.recovery
        seen.add(stage.name)
    assert tuple(s.name for s in STAGES) == STEPS


@pytest.mark.parametrize("step", STEPS)
def test_a_stage_output_is_checked_against_its_schema(step: str) -> None:
    good = OUTPUTS[step]
    assert checked(step, good) == good
    with pytest.raises(IllegalTransition, match=f"stage {step} produced an output"):
        checked(step, {**good, "unexpected": 1})


def _completed(names: list[str], decision: str) -> dict[str, StepRow]:
    out = {**OUTPUTS, "decide": {**OUTPUTS["decide"], "decision": decision}}
    return {n: StepRow(step=n, status="completed", input=None, output=out[n]) for n in names}


@given(st.integers(min_value=0, max_value=len(STEPS)), st.sampled_from(["refund", "declined"]))
def test_the_plan_resumes_at_the_first_unfinished_stage(done: int, decision: str) -> None:
    plan = [s for s in STEPS if decision == "refund" or s not in ("approve", "act")]
    names = plan[: min(done, len(plan))]
    step, terminal = next_step(_completed(names, decision))
    if len(names) == len(plan):
        assert (step, terminal) == ("end", "completed")
    else:
        assert (step, terminal) == (plan[len(names)], None)


def test_a_stage_that_breaks_its_schema_fails_the_run_before_its_checkpoint(
    make_desk: DeskFactory,
    model: FakeModel,
    tools: FakeTools,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broken stage body (classify answering an intent its schema forbids) ends the run as a
    logic failure; nothing after it runs and the bad output is never checkpointed."""
    real = Workflow.classify

    def broken(self: Workflow, run: ActiveRun, steps: Any) -> dict[str, Any]:
        return {**real(self, run, steps), "intent": "refund-ish"}

    monkeypatch.setattr(Workflow, "classify", broken)
    model.script(*refund_script())
    outcome = make_desk().start(TICKET)
    assert outcome.state == "failed"
    assert outcome.category == "logic"
    assert "stage classify produced an output that breaks its schema" in (outcome.error or "")
    assert tools.calls == []
