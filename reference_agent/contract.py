"""What the desk answers and what it reads from its caller: the adapter-facing types.

Owns ``Outcome`` (where a run stands), the structural protocols of the harness's world, clock
and reviewer decision (read by shape: this package never imports the harness), ``run_id_for``
and the errors a caller can get for an unknown run or an unbound desk. Imports only ``gate``
(``ApprovalRequest``, ``canonical_json``); everything else in the package may import it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from reference_agent.gate import ApprovalRequest, canonical_json


class ClockLike(Protocol):
    """The world's clock: seconds since the epoch, and a sleep that may only advance it."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class WorldLike(Protocol):
    """What ``begin`` reads from the harness's world (structurally; no harness import)."""

    @property
    def state_dir(self) -> Path: ...

    @property
    def clock(self) -> ClockLike: ...

    @property
    def config(self) -> Mapping[str, Any]: ...

    @property
    def seed(self) -> int: ...

    @property
    def boundary(self) -> Callable[[str, str], None]: ...


class DecisionLike(Protocol):
    """A reviewer's decision (read structurally)."""

    @property
    def approval_id(self) -> str: ...

    @property
    def approved(self) -> bool: ...

    @property
    def tool(self) -> str: ...

    @property
    def arguments(self) -> Mapping[str, Any]: ...


class UnknownRunError(LookupError):
    """``resume``/``trace`` named a run this state directory does not hold."""


class NotBoundError(RuntimeError):
    """The desk was used before ``begin(world)`` bound it to a state directory and clock."""


@dataclass(frozen=True)
class Outcome:
    """Where a run stands after ``start``/``resume`` returned.

    Attributes:
        run_id: the run.
        state: completed, failed, rejected, expired, escalated, throttled or awaiting_approval.
        category: for failed runs: model, tool, logic or input; otherwise None.
        error: what went wrong, or why a decision was refused.
        pending_approval: the approval the run is parked on.
        approvals: every approval request the run made.
        decision: refunded, declined or escalated, once decided.
        refund_id: the refund's id once issued.
    """

    run_id: str
    state: str
    category: str | None = None
    error: str | None = None
    pending_approval: ApprovalRequest | None = None
    approvals: tuple[ApprovalRequest, ...] = ()
    decision: str | None = None
    refund_id: str | None = None


BUSY = (
    "refused: another instance is carrying this run on right now (it holds the run's lock); "
    "the decision was not used - ask for the run's outcome again later"
)


def run_id_for(payload: Any) -> str:
    """``run-`` + sha256(ticket_id)[:16]; a payload without a usable ticket id hashes whole."""
    ticket = payload.get("ticket_id") if isinstance(payload, Mapping) else None
    if isinstance(ticket, str):
        seed = ticket
    else:
        try:
            seed = canonical_json(payload)
        except (TypeError, ValueError):
            seed = repr(payload)
    return "run-" + hashlib.sha256(seed.encode()).hexdigest()[:16]
