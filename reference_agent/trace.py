"""The reasoning trace: records, the keep-in-full policy, deterministic sampling and retention.

Infrastructure (the trace policy): imports ``store`` only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from reference_agent.store import Store


@dataclass(frozen=True)
class Trace:
    """A run's trace as the harness reads it.

    Attributes:
        records: dicts with a ``kind``: ``model_call``, ``tool_call``, ``decision``,
            ``transition``, ``approval_refused``, ``summary``.
        kept_in_full: False when the retention policy kept only the summary record.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    kept_in_full: bool = True


def sample_fraction(run_id: str) -> float:
    """A run id's fixed position in [0, 1): the same id always samples the same way."""
    digest = hashlib.sha256(run_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def keep_in_full(
    run_id: str,
    *,
    rate: float,
    requested_approval: bool,
    failed: bool,
    hit_budget: bool,
    touched_high_risk: bool,
) -> bool:
    """Whether a finished run keeps its full trace.

    High-risk runs (approval requested, failed, budget hit, high-risk tool touched) always do;
    routine runs are sampled at ``rate`` by their run id.
    """
    if requested_approval or failed or hit_budget or touched_high_risk:
        return True
    return sample_fraction(run_id) < rate


def prune(store: Store, *, now: float, older_than_s: float) -> int:
    """Delete the trace records of runs that finished more than ``older_than_s`` ago.

    Returns:
        The number of records deleted.
    """
    return store.prune_trace(now - older_than_s)
