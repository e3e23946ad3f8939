"""What the harness saw of a load: each run's calls (:class:`Step`), the approvals it saw parked
(:class:`Parked`), and the whole (:class:`LoadRecord`), times on the fake clock.

Imports nothing of the package.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from harness.adapter import RunState
from harness.record import RunRecord


@dataclass(frozen=True)
class Step:
    """One adapter call for one load run, as the harness saw it.

    Attributes:
        order: position among every step and delivery of the load (one counter).
        t: fake time of the call.
        action: ``start``, ``resubmit`` (a throttled run started again) or ``deliver``.
        state: the state the agent reported.
        category: the category it reported.
        error: the reason it reported.
        queue_before: approvals pending in the harness's view of the queue before the call.
    """

    order: int
    t: float
    action: str
    state: str
    category: str | None
    error: str | None
    queue_before: int


@dataclass(frozen=True)
class Parked:
    """An approval the harness saw a run park on, and what became of it.

    ``ended`` is when it left the queue: its delivery, or its expiry when that came first (the
    agent counts an approval pending while ``expires_at > now``).
    """

    run: int
    approval_id: str
    parked_at: float
    parked_order: int
    expires_at: float
    delivered_at: float | None = None
    delivered_order: int | None = None
    verdict: str | None = None  # approve | deny | expired (picked after its expiry)

    def end_key(self) -> tuple[float, int] | None:
        """Sort key of the moment it left the queue (None: it never did)."""
        delivered, order = self.delivered_at, self.delivered_order
        if delivered is not None and order is not None and delivered < self.expires_at:
            return (delivered, order)
        if math.isfinite(self.expires_at):
            return (self.expires_at, -1)  # gone at expires_at, before anything else then
        return None

    @property
    def latency(self) -> float | None:
        """Time to decision on the fake clock, for a delivered decision."""
        if self.delivered_at is None or self.verdict not in ("approve", "deny"):
            return None
        return self.delivered_at - self.parked_at


@dataclass(frozen=True)
class LoadRun:
    """One of the load's runs: its number, the agent's run id, and every call made for it."""

    number: int
    run_id: str | None
    steps: tuple[Step, ...]

    @property
    def final(self) -> Step | None:
        """The last call's step."""
        return self.steps[-1] if self.steps else None

    @property
    def queued(self) -> bool:
        """Whether the run ever parked for a review."""
        return any(s.state == RunState.AWAITING_APPROVAL.value for s in self.steps)

    @property
    def throttles(self) -> tuple[Step, ...]:
        """The calls the agent answered ``throttled``."""
        return tuple(s for s in self.steps if s.state == RunState.THROTTLED.value)


@dataclass(frozen=True)
class LoadRecord:
    """What the harness saw of a load: runs, parked approvals, the declared bounds.

    Times are fake-clock seconds since the load's first start.
    """

    capacity: int
    sla: Mapping[str, float]
    resubmit: bool
    reviewers: int
    runs: tuple[LoadRun, ...]
    parked: tuple[Parked, ...]
    stopped: str | None = None  # why the load stopped before every run ended, if it did
    records: tuple[RunRecord, ...] = ()  # each run's own record: its requests, effects, decisions
