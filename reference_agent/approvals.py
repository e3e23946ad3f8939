"""The approval gate's persistence: parking a run on a request, judging and claiming a decision.

Owns ``Approvals``: ``park`` (persist the request for the exact action, with its summary and
expiry, and park the run, in one transaction), ``pending``, ``refusal`` (why a delivered decision
cannot be used: another approval, expired, another action), ``claim`` (consume the approval
atomically inside the caller's transaction) and ``record_refusal``. The action itself (what is
gated, its arguments, the summary's conclusion) comes from the workflow as arguments.
Infrastructure: it may import ``contract``, ``gate``, ``settings`` and ``store``; never the
workflow, the engine or the desk.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from reference_agent.contract import DecisionLike
from reference_agent.gate import ApprovalRequest, Risk, action_hash, build_summary, canonical_json
from reference_agent.store import ApprovalRow, RunRow, Store


def as_request(a: ApprovalRow) -> ApprovalRequest:
    """The persisted approval as the caller sees it."""
    return ApprovalRequest(
        approval_id=a.approval_id,
        run_id=a.run_id,
        tool=a.tool,
        arguments=a.arguments,
        summary=a.summary,
        requested_at=a.requested_at,
        expires_at=a.expires_at,
        action_hash=a.action_hash,
    )


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (``repr`` for what JSON cannot hold)."""
    try:
        return json.loads(json.dumps(value, default=repr))
    except (TypeError, ValueError):
        return repr(value)


class Approvals:
    """Approval requests of one state directory.

    Args:
        store: the desk's database.
        now: the world's clock.
        sla_s: each approval's lifetime (the review queue's time-to-decision target).
    """

    def __init__(self, store: Store, now: Callable[[], float], *, sla_s: float) -> None:
        self._store = store
        self._now = now
        self._sla_s = sla_s

    def pending(self, run_id: str) -> ApprovalRow | None:
        """The run's unconsumed approval, if any."""
        return next((a for a in self._store.approvals(run_id) if not a.consumed), None)

    def park(
        self,
        run_id: str,
        *,
        tool: str,
        arguments: Mapping[str, Any],
        conclusion: str,
        customer_message: str,
        model_reason: str,
        before: Callable[[], None],
    ) -> None:
        """Request a decision on ``tool(arguments)`` and park the run on it (one transaction).

        A run already holding an unconsumed request is parked on it again: a resume never asks
        twice for one action. ``before`` runs first when a new request is made (the world's
        ``before_step`` boundary of ``approve``).
        """
        store, now = self._store, self._now()
        if self.pending(run_id) is not None:
            with store.transaction() as db:
                store.update_run(db, run_id, state="awaiting_approval", parked_at=now)
            return
        before()
        digest = action_hash(tool, arguments)
        seed = f"{run_id}:approve:{digest}".encode()
        approval_id = "apr-" + hashlib.sha256(seed).hexdigest()[:16]
        expires_at = now + self._sla_s
        summary = build_summary(
            conclusion=conclusion,
            tool=tool,
            arguments=arguments,
            expires_at=expires_at,
            customer_message=customer_message,
            model_reason=model_reason,
        )
        row = ApprovalRow(
            approval_id=approval_id,
            run_id=run_id,
            tool=tool,
            arguments=dict(arguments),
            action_hash=digest,
            summary=summary,
            requested_at=now,
            expires_at=expires_at,
            consumed=False,
            decision=None,
            reviewer=None,
            decided_at=None,
        )
        with store.transaction() as db:
            store.mark_started(db, run_id, "approve", {"approval_id": approval_id})
            store.insert_approval(db, row)
            store.update_run(db, run_id, state="awaiting_approval", parked_at=now)
            store.insert_trace(
                db,
                run_id,
                {
                    "kind": "transition",
                    "step": "approve",
                    "to": "awaiting_approval",
                    "approval_id": approval_id,
                    "action_hash": digest,
                    "risk": Risk.HIGH.value,
                },
                now,
            )

    @staticmethod
    def refusal(decision: DecisionLike, pending: ApprovalRow, now: float) -> str | None:
        """Why ``decision`` cannot decide ``pending`` (None when it can)."""
        if decision.approval_id != pending.approval_id:
            return (
                f"refused: the decision names approval {decision.approval_id!r}, but the run "
                f"waits on {pending.approval_id!r}"
            )
        if now >= pending.expires_at:
            return (
                f"refused: approval {pending.approval_id} expired at clock second "
                f"{pending.expires_at:.0f} (now {now:.0f}); the run stays parked"
            )
        if decision.tool != pending.tool or (
            action_hash(decision.tool, dict(decision.arguments)) != pending.action_hash
        ):
            return (
                f"refused: the decision is bound to {decision.tool} "
                f"{canonical_json(dict(decision.arguments))}, not to the requested action "
                f"{pending.tool} {canonical_json(pending.arguments)}"
            )
        return None

    def claim(
        self,
        db: sqlite3.Connection,
        row: RunRow,
        pending: ApprovalRow,
        decision: DecisionLike,
        now: float,
    ) -> dict[str, Any] | None:
        """Consume ``pending`` with ``decision`` and unpark the run, inside ``db``'s transaction.

        Returns:
            The ``approve`` step's output to checkpoint in the same transaction, or None when
            another decision consumed the approval first.
        """
        store = self._store
        verdict = "approve" if decision.approved else "deny"
        reviewer = str(getattr(decision, "reviewer", "") or "") or None
        if not store.claim_approval(db, pending.approval_id, verdict, reviewer, now):
            return None
        parked = now - (row.parked_at if row.parked_at is not None else now)
        store.update_run(
            db,
            row.run_id,
            state="running",
            parked_at=None,
            parked_total=row.parked_total + parked,
        )
        store.insert_trace(
            db,
            row.run_id,
            {
                "kind": "decision",
                "step": "approve",
                "approval_id": pending.approval_id,
                "approved": decision.approved,
                "reviewer": reviewer,
                "waited_s": now - pending.requested_at,
            },
            now,
        )
        return {
            "approved": decision.approved,
            "approval_id": pending.approval_id,
            "action_hash": pending.action_hash,
            "reviewer": reviewer,
        }

    def record_refusal(self, run_id: str, decision: DecisionLike, why: str) -> None:
        """Trace a decision that was not used, and why (its own transaction)."""
        self._store.add_trace(
            run_id,
            {
                "kind": "approval_refused",
                "approval_id": decision.approval_id,
                "approved": decision.approved,
                "tool": decision.tool,
                "arguments": jsonable(dict(decision.arguments)),
                "reason": why,
            },
            self._now(),
        )
