"""The review queue computed from the record alone: its length over time, time to decision,
silent drops, throttles with room in the queue, and the report item's queue figures.

Pure functions of a :class:`~harness.load.record.LoadRecord`; imports only
:mod:`~harness.load.record`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from harness.load.record import LoadRecord, LoadRun, Parked, Step

PERCENTILES = (50, 90, 99)


def percentile(values: Iterable[float], q: float) -> float | None:
    """The nearest-rank percentile ``q`` (0 < q <= 100) of ``values``; None when empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def queue_lengths(parked: Sequence[Parked]) -> list[tuple[float, int, int]]:
    """The queue's length after every change, as ``(t, order, length)`` in time order.

    A sweep over parks (+1) and ends (-1, a delivery or an expiry); at one fake instant, events
    keep the order they happened in, and an expiry at ``t`` comes before anything else at ``t``.
    """
    events: list[tuple[float, int, int]] = []
    for p in parked:
        events.append((p.parked_at, p.parked_order, 1))
        end = p.end_key()
        if end is not None:
            events.append((end[0], end[1], -1))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    out: list[tuple[float, int, int]] = []
    length = 0
    for t, order, delta in events:
        length += delta
        out.append((t, order, length))
    return out


def max_queue_length(parked: Sequence[Parked]) -> int:
    """The most approvals pending at once."""
    return max((n for _, _, n in queue_lengths(parked)), default=0)


def latencies(parked: Sequence[Parked]) -> list[float]:
    """Time to decision of every delivered decision."""
    return [p.latency for p in parked if p.latency is not None]


def figures(load: LoadRecord) -> dict[str, Any]:
    """The queue figures of the report item (the shape ``report_model.QueueFigures`` fixes)."""
    waits = latencies(load.parked)
    throttled = [r for r in load.runs if r.throttles]
    lat = {f"p{q}": _rounded(percentile(waits, q)) for q in PERCENTILES}
    breaches = [k for k, limit in load.sla.items() if (lat.get(k) or 0.0) > limit]
    expired = sum(1 for p in load.parked if p.verdict == "expired")
    return {
        "runs": len(load.runs),
        "capacity": load.capacity,
        "reviewers": load.reviewers,
        "max_queue_length": max_queue_length(load.parked),
        "queued": sum(1 for r in load.runs if r.queued),
        "throttled": len(throttled),
        "throttle_events": sum(len(r.throttles) for r in load.runs),
        "resumed_after_drain": sum(1 for r in throttled if queued_after_throttle(r)),
        "still_throttled": sum(
            1 for r in load.runs if r.final is not None and r.final.state == "throttled"
        ),
        "silent_drops": len(silent_drops(load)),
        "spurious_throttles": len(spurious_throttles(load)),
        "decided": len(waits),
        "expired": expired,
        "latency_s": lat,
        "sla_s": dict(load.sla),
        "sla_met": None if not waits else not breaches and not expired,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def queued_after_throttle(run: LoadRun) -> bool:
    first = next(i for i, s in enumerate(run.steps) if s.state == "throttled")
    return any(s.state == "awaiting_approval" for s in run.steps[first + 1 :])


def silent_drops(load: LoadRecord) -> list[tuple[LoadRun, str]]:
    """Runs that were neither queued and decided nor throttled with a reason, and why."""
    out = []
    for run in load.runs:
        final = run.final
        if final is None:
            continue  # never started: the load stopped first (load_finished says why)
        if final.state == "awaiting_approval":
            out.append((run, "it is still parked: no decision ended it"))
        elif final.state == "throttled":
            if not (final.error or "").strip():
                out.append((run, "it ended 'throttled' without a reason in 'error'"))
        elif not run.queued:
            why = f" ({final.error})" if final.error else ""
            out.append(
                (
                    run,
                    f"it ended '{final.state}'{why} at {final.action} without parking for a "
                    "review or saying it was throttled",
                )
            )
    return out


def spurious_throttles(load: LoadRecord) -> list[tuple[LoadRun, Step]]:
    """Throttles while the harness saw fewer pending approvals than the capacity."""
    return [(run, s) for run in load.runs for s in run.throttles if s.queue_before < load.capacity]
