"""The bounded human review queue: capacity for throttling, time-to-decision against the SLA.

Infrastructure: imports ``store`` only; never the workflow, the engine or the desk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from reference_agent.store import Store


@dataclass(frozen=True)
class ReviewStats:
    """Time-to-decision of decided approvals, in clock seconds.

    Attributes:
        decided: approvals with a reviewer decision.
        pending: approvals waiting now (not expired).
        p50: median time to decision (None with no decisions).
        p90: 90th percentile.
        p99: 99th percentile.
        sla_breaches: decisions later than the SLA plus approvals that expired undecided.
    """

    decided: int
    pending: int
    p50: float | None
    p90: float | None
    p99: float | None
    sla_breaches: int


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile ``q`` (0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class ReviewQueue:
    """Pending approvals across every run in one state directory.

    Args:
        store: the desk's database, where approvals persist.
        capacity: the number of pending approvals at which intake throttles.
        sla_s: the time-to-decision target (also each approval's lifetime).
    """

    def __init__(self, store: Store, *, capacity: int, sla_s: float) -> None:
        self._store = store
        self.capacity = capacity
        self.sla_s = sla_s

    def pending(self, now: float) -> int:
        """Approvals waiting for a decision now."""
        return self._store.pending_count(now)

    def is_full(self, now: float) -> bool:
        """Whether intake must throttle."""
        return self.pending(now) >= self.capacity

    def stats(self, now: float) -> ReviewStats:
        """Percentiles of time-to-decision and SLA breaches."""
        waits: list[float] = []
        breaches = 0
        for row in self._store.decided():
            if row.decision == "expired":
                breaches += 1
                continue
            wait = (row.decided_at or row.requested_at) - row.requested_at
            waits.append(wait)
            if wait > self.sla_s:
                breaches += 1
        return ReviewStats(
            decided=len(waits),
            pending=self.pending(now),
            p50=percentile(waits, 50),
            p90=percentile(waits, 90),
            p99=percentile(waits, 99),
            sla_breaches=breaches,
        )
