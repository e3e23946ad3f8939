"""The run engine: carries one run along the workflow's plan, checkpointing each stage.

Owns ``Engine``: intake (validate, throttle on a full review queue), driving the plan from the
first unfinished stage, the checkpoint transaction (a stage's output and the next stage's start
record, with their trace records, in ONE SQLite transaction), parking on and resuming from an
approval; and ``Outcomes``: the terminal write (state, approvals closed, trace summary and
retention) and the ``Outcome``. It calls the world's boundaries ``before_step``,
``after_checkpoint`` and ``terminal_write``. It may import the workflow and every
infrastructure module; only the desk imports it.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from reference_agent.approvals import Approvals, as_request, jsonable
from reference_agent.calls import ActiveRun, Calls
from reference_agent.contract import BUSY, DecisionLike, Outcome, UnknownRunError
from reference_agent.errors import (
    BudgetExhausted,
    IllegalTransition,
    InputError,
    RunError,
    ThrottledError,
    restore,
)
from reference_agent.gate import Risk
from reference_agent.queue import ReviewQueue
from reference_agent.schemas import TicketPayload
from reference_agent.settings import RunOptions
from reference_agent.store import RunRow, StepRow, Store
from reference_agent.trace import keep_in_full
from reference_agent.workflow import (
    TERMINAL,
    Workflow,
    checked,
    decision_of,
    done,
    next_step,
    refund_action,
    refund_conclusion,
)

Boundary = Callable[[str, str], None]


class Engine:
    """Runs of one state directory, carried on by one desk instance (the caller holds the lock).

    Args:
        store: the desk's database.
        calls: model and tool requests of the bound world.
        options: the world's run options.
        queue: the review queue (intake throttles when it is full).
        boundary: the world's crash-point hook.
    """

    def __init__(
        self,
        store: Store,
        calls: Calls,
        options: RunOptions,
        queue: ReviewQueue,
        boundary: Boundary,
    ) -> None:
        self._store = store
        self._calls = calls
        self._options = options
        self._queue = queue
        self._boundary = boundary
        self._workflow = Workflow(calls)
        self.approvals = Approvals(store, calls.now, sla_s=options.approval_sla_s)
        self._outcomes = Outcomes(store, calls.now, options, boundary)

    # ------------------------------------------------------------------ entry

    def carry_on(self, row: RunRow, decision: DecisionLike | None) -> Outcome:
        """Continue a known run: report a terminal one, decide a parked one, drive the rest."""
        if row.state in TERMINAL:
            if decision is None:
                return self._outcomes.outcome(row.run_id)
            why = f"refused: run {row.run_id} is already {row.state}; the decision has no effect"
            self.approvals.record_refusal(row.run_id, decision, why)
            return self._outcomes.outcome(row.run_id, note=why)
        if row.state == "awaiting_approval":
            return self._decide(row, decision)
        refused = None
        if decision is not None:
            refused = "refused: no approval is pending for this run; continuing it from its steps"
            self.approvals.record_refusal(row.run_id, decision, refused)
        steps = self._store.steps(row.run_id)
        if "intake" not in steps:
            # Crashed before intake finished: the payload is stored, so intake runs again.
            return self.intake(row.run_id, row.payload)
        outcome = self._drive(self._calls.load(row), steps)
        if refused is not None and outcome.error is None:
            # The caller's decision was not used (it was consumed already): say so.
            outcome = dataclasses.replace(outcome, error=refused)
        return outcome

    def busy(self, run_id: str, decision: DecisionLike | None) -> Outcome:
        """The outcome for a caller that found the run held by another instance."""
        if decision is not None:
            self.approvals.record_refusal(run_id, decision, BUSY)
        return self._outcomes.outcome(run_id, note=BUSY)

    def intake(self, run_id: str, payload: Any) -> Outcome:
        """Store the payload, validate it, throttle on a full queue, then drive the run."""
        store, now = self._store, self._calls.now()
        ticket_id = payload.get("ticket_id") if isinstance(payload, Mapping) else None
        self._boundary("before_step", "intake")
        error: RunError | None = None
        ticket: TicketPayload | None = None
        try:
            ticket = TicketPayload.model_validate(payload)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<payload>'}: {e['msg']}"
                for e in exc.errors()
            )
            error = InputError(f"the ticket was rejected at intake: {problems}")
        with store.transaction() as db:
            store.insert_run(
                db,
                run_id,
                ticket_id if isinstance(ticket_id, str) else None,
                ticket.model_dump() if ticket else jsonable(payload),
                "running",
                now,
            )
            self._record(db, run_id, {"kind": "transition", "step": "intake", "to": "started"})
        row = self._outcomes.reload(run_id)
        if error is not None or ticket is None:
            return self._outcomes.finish(row, "failed", error=error)
        try:
            self._check_queue()
        except ThrottledError as exc:
            return self._outcomes.finish(row, "throttled", message=str(exc))
        steps: dict[str, StepRow] = {}
        with store.transaction() as db:
            started = self._checkpoint(db, run_id, "intake", ticket.model_dump(), steps)
        self._boundary("after_checkpoint", "intake")
        return self._drive(self._calls.load(row), steps, started)

    def _check_queue(self) -> None:
        pending = self._queue.pending(self._calls.now())
        if pending >= self._queue.capacity:
            raise ThrottledError(
                f"the review queue is full ({pending} pending approvals, capacity "
                f"{self._queue.capacity}); retry the ticket once reviewers catch up"
            )

    # ------------------------------------------------------------------ driving

    def _checkpoint(
        self,
        db: sqlite3.Connection,
        run_id: str,
        step: str,
        output: Mapping[str, Any],
        steps: dict[str, StepRow],
        *,
        transition: bool = True,
    ) -> str | None:
        """Checkpoint ``step`` and record the next stage's start, in the caller's transaction.

        ``steps`` is updated in place (as a re-read would return it), so the run needs no
        re-read between stages. Returns the stage whose start was recorded, if any (``approve``
        records its own start with its request; the end of the plan has none).
        """
        store = self._store
        store.complete_step(db, run_id, step, output)
        if transition:
            self._record(db, run_id, {"kind": "transition", "step": step, "to": "completed"})
        # What a re-read would return: the stored JSON, parsed.
        stored = json.loads(json.dumps(output, sort_keys=True, default=str))
        steps[step] = StepRow(step=step, status="completed", input=None, output=stored)
        following, terminal = next_step(steps)
        if terminal is not None or following == "approve":
            return None
        store.mark_started(db, run_id, following, {"after": done(steps)})
        self._record(db, run_id, {"kind": "transition", "step": following, "to": "started"})
        return following

    def _record(self, db: sqlite3.Connection, run_id: str, record: dict[str, Any]) -> None:
        self._store.insert_trace(db, run_id, record, self._calls.now())

    def _drive(
        self, run: ActiveRun, steps: Mapping[str, StepRow], started: str | None = None
    ) -> Outcome:
        """Run stages from the first unfinished one until terminal or parked.

        ``started`` names a stage whose start record the previous checkpoint already wrote.
        """
        store, known = self._store, dict(steps)
        step = "intake"
        try:
            while True:
                step, terminal = next_step(known)
                if terminal == "failed":
                    # The step failed before a crash interrupted the terminal write: end with
                    # its recorded error, never by running the step again.
                    f = known[step].output
                    error = restore(f["kind"], f["message"])
                    return self._outcomes.finish(run.row, "failed", error=error)
                if terminal is not None:
                    return self._outcomes.finish(run.row, terminal)
                if step == "approve":
                    return self._park(run, known)
                self._boundary("before_step", step)
                if started != step:
                    with store.transaction() as db:
                        store.mark_started(db, run.run_id, step, {"after": done(known)})
                        self._record(
                            db, run.run_id, {"kind": "transition", "step": step, "to": "started"}
                        )
                output = checked(step, self._workflow.handler(step)(run, known))
                with store.transaction() as db:
                    started = self._checkpoint(db, run.run_id, step, output, known)
                self._boundary("after_checkpoint", step)
        except RunError as exc:
            failure = {"category": exc.category, "kind": exc.kind, "message": str(exc)}
            with store.transaction() as db:
                store.fail_step(db, run.run_id, step, failure)
            return self._outcomes.finish(self._outcomes.reload(run.run_id), "failed", error=exc)

    def _park(self, run: ActiveRun, steps: Mapping[str, StepRow]) -> Outcome:
        verdict = steps["decide"].output
        self.approvals.park(
            run.run_id,
            tool="issue_refund",
            arguments=refund_action(steps),
            conclusion=refund_conclusion(steps),
            customer_message=run.ticket.message,
            model_reason=str(verdict["reason"]),
            before=lambda: self._boundary("before_step", "approve"),
        )
        return self._outcomes.outcome(run.run_id)

    def _decide(self, row: RunRow, decision: DecisionLike | None) -> Outcome:
        store, now = self._store, self._calls.now()
        pending = self.approvals.pending(row.run_id)
        if pending is None:
            # Another instance claimed the approval between our read of the run and of its
            # approvals (two deliveries at once): the decision is already being acted on.
            consumed = f"refused: the approval of run {row.run_id} was already consumed"
            if decision is not None:
                self.approvals.record_refusal(row.run_id, decision, consumed)
            return self._outcomes.outcome(row.run_id, note=consumed)
        if decision is None:
            if now >= pending.expires_at:
                return self._outcomes.finish(
                    row,
                    "expired",
                    message=f"approval {pending.approval_id} "
                    f"expired at clock second {pending.expires_at:.0f} undecided",
                )
            return self._outcomes.outcome(row.run_id)
        why = self.approvals.refusal(decision, pending, now)
        if why is not None:
            self.approvals.record_refusal(row.run_id, decision, why)
            return self._outcomes.outcome(row.run_id, note=why)
        steps = dict(store.steps(row.run_id))
        started = None
        with store.transaction() as db:
            output = self.approvals.claim(db, row, pending, decision, now)
            if output is not None:
                started = self._checkpoint(
                    db, row.run_id, "approve", checked("approve", output), steps, transition=False
                )
        if output is None:
            why = (
                f"refused: approval {pending.approval_id} was already consumed by another decision"
            )
            self.approvals.record_refusal(row.run_id, decision, why)
            return self._outcomes.outcome(row.run_id, note=why)
        self._boundary("after_checkpoint", "approve")
        fresh = self._outcomes.reload(row.run_id)
        if not decision.approved:
            return self._outcomes.finish(fresh, "rejected")
        return self._drive(self._calls.load(fresh), steps, started)


class Outcomes:
    """The terminal write of a run and the reading of where a run stands.

    Args:
        store: the desk's database.
        now: the world's clock.
        options: the trace sample rate.
        boundary: the world's crash-point hook (``terminal_write``).
    """

    def __init__(
        self, store: Store, now: Callable[[], float], options: RunOptions, boundary: Boundary
    ) -> None:
        self._store = store
        self._now = now
        self._options = options
        self._boundary = boundary

    def finish(
        self,
        row: RunRow,
        state: str,
        *,
        error: RunError | None = None,
        message: str | None = None,
    ) -> Outcome:
        """Write the terminal state, close open approvals, write the summary, apply retention."""
        store, now = self._store, self._now()
        steps = store.steps(row.run_id)
        approvals = store.approvals(row.run_id)
        keep = keep_in_full(
            row.run_id,
            rate=self._options.trace_sample_rate,
            requested_approval=bool(approvals),
            failed=state == "failed",
            hit_budget=isinstance(error, BudgetExhausted),
            touched_high_risk=store.has_trace_risk(row.run_id, Risk.HIGH.value),
        )
        decision = decision_of(steps)
        act = steps.get("act")
        refund_id = act.output["refund_id"] if act and act.status == "completed" else None
        outcome_decision = {"refund": "refunded", "declined": "declined"}.get(decision or "")
        if state == "escalated":
            outcome_decision = "escalated"
        if state == "completed" and decision == "refund" and refund_id is None:
            state, error = (
                "failed",
                IllegalTransition(
                    f"run {row.run_id} reached completion without issuing its approved refund"
                ),
            )
        text = message if error is None else f"{error.kind}: {error}"
        with store.transaction() as db:
            store.update_run(
                db,
                row.run_id,
                state=state,
                category=None if error is None else error.category,
                error=text,
                decision=outcome_decision,
                refund_id=refund_id,
                finished_at=now,
                parked_at=None,
                kept_in_full=int(keep),
            )
            for a in approvals:
                if not a.consumed:
                    store.claim_approval(
                        db, a.approval_id, "expired" if state == "expired" else "closed", None, now
                    )
            self._record(
                db, row.run_id, {"kind": "transition", "step": None, "to": state, "error": text}
            )
            models, tools = store.count_calls(row.run_id)
            summary = {
                "kind": "summary",
                "state": state,
                "category": None if error is None else error.category,
                "error": text,
                "decision": outcome_decision,
                "model_calls": models,
                "tool_calls": tools,
                "approvals": len(approvals),
                "steps": done(steps),
                "kept_in_full": keep,
            }
            store.insert_trace(db, row.run_id, summary, now)
            if not keep:
                store.keep_summary_only(db, row.run_id)
            # Inside the transaction: a crash here leaves the terminal state unwritten.
            self._boundary("terminal_write", state)
        return self.outcome(row.run_id)

    def outcome(self, run_id: str, note: str | None = None) -> Outcome:
        """Where the run stands, as persisted (``note`` replaces the stored error)."""
        row = self.reload(run_id)
        rows = self._store.approvals(run_id)
        pending = None
        if row.state == "awaiting_approval":
            pending = next((as_request(a) for a in rows if not a.consumed), None)
        # "running" is only seen by a loser of a concurrent decision: another instance is
        # carrying the run on, so this caller still sees it as parked on its (now used) approval.
        state = "awaiting_approval" if row.state == "running" else row.state
        return Outcome(
            run_id=run_id,
            state=state,
            category=row.category,
            error=note if note is not None else row.error,
            pending_approval=pending,
            approvals=tuple(as_request(a) for a in rows),
            decision=row.decision,
            refund_id=row.refund_id,
        )

    def reload(self, run_id: str) -> RunRow:
        """The run's row (it must exist)."""
        row = self._store.get_run(run_id)
        if row is None:
            raise UnknownRunError(f"run {run_id!r} vanished from the state directory")
        return row

    def _record(self, db: sqlite3.Connection, run_id: str, record: dict[str, Any]) -> None:
        self._store.insert_trace(db, run_id, record, self._now())
