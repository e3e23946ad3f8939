"""The engine's checkpoint: a stage's output and the next stage's start commit together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from refund_world import TICKET, Crash, DeskFactory, FakeClock, World, approve, refund_script

from reference_agent import run_id_for
from reference_agent.fakes import FakeModel, FakeTools
from reference_agent.store import Store
from reference_agent.workflow import STEPS

# (stage whose start is recorded, the stage checkpointed in the same transaction)
HANDOFFS = [
    ("classify", "intake"),
    ("gather", "classify"),
    ("decide", "gather"),
    ("act", "approve"),
    ("notify", "act"),
    ("close", "notify"),
]


@pytest.mark.parametrize(("started", "checkpointed"), HANDOFFS, ids=lambda s: str(s))
def test_a_crash_between_checkpoint_and_next_start_keeps_neither(
    make_desk: DeskFactory,
    model: FakeModel,
    tools: FakeTools,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    started: str,
    checkpointed: str,
) -> None:
    """The start record is written after the checkpoint inside one transaction: a crash there
    rolls both back, so the resumed run redoes the checkpointed stage (its effects under the
    same Idempotency-Key) and still completes with every effect applied once."""
    model.script(*refund_script(), *refund_script())
    state = tmp_path / "s"
    desk = make_desk(state=state)
    real = Store.mark_started
    armed = [True]

    def crashing(self: Store, db: Any, run_id: str, step: str, step_input: Any) -> None:
        real(self, db, run_id, step, step_input)
        if step == started and armed[0]:
            armed[0] = False
            raise Crash(f"crash while recording the start of {step}")

    monkeypatch.setattr(Store, "mark_started", crashing)
    run_id = run_id_for(TICKET)

    def carry_on() -> None:
        outcome = desk.start(TICKET)
        desk.resume(run_id, approve(outcome))

    with pytest.raises(Crash):
        carry_on()
    assert not armed[0], f"the start of {started} was never recorded"
    probe = Store(state)
    try:
        steps = probe.steps(run_id)
    finally:
        probe.close()
    assert started not in steps, f"{started}'s start outlived the crash: {steps[started]}"
    if checkpointed in steps:
        assert steps[checkpointed].status != "completed", (
            f"{checkpointed}'s checkpoint committed apart from {started}'s start record"
        )

    desk.begin(World(state, clock))  # a fresh process over the same state dir
    outcome = desk.start(TICKET) if checkpointed == "intake" else desk.resume(run_id)
    if outcome.state == "awaiting_approval":
        outcome = desk.resume(run_id, approve(outcome))
    assert outcome.state == "completed", outcome.error
    for effect in ("issue_refund", "send_email", "close_ticket"):
        assert len(tools.effects_of(effect)) == 1, effect
    probe = Store(state)
    try:
        assert [s for s in STEPS if probe.steps(run_id)[s].status == "completed"] == list(STEPS)
    finally:
        probe.close()


def test_resume_after_a_checkpoint_records_the_next_start_once_more(
    make_desk: DeskFactory, model: FakeModel, clock: FakeClock, tmp_path: Path
) -> None:
    """A crash at ``after_checkpoint`` leaves the next stage started (same transaction); the
    resume runs it (an attempt more) and never asks the model for the checkpointed stage again."""
    from refund_world import Boundary

    model.script(*refund_script())
    state = tmp_path / "s"
    desk = make_desk(boundary=Boundary(crash_at=("after_checkpoint", "classify")), state=state)
    with pytest.raises(Crash):
        desk.start(TICKET)
    run_id = run_id_for(TICKET)
    probe = Store(state)
    try:
        steps = probe.steps(run_id)
    finally:
        probe.close()
    assert steps["classify"].status == "completed"
    assert steps["gather"].status == "started"
    assert steps["gather"].input == {"after": ["intake", "classify"]}
    desk.begin(World(state, clock))
    assert desk.resume(run_id).state == "awaiting_approval"
    assert len(model.requests) == 2
