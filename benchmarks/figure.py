"""One benchmark figure (a ratio against a baseline measured in the same run) and how to time it."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Op = Literal["<=", ">="]


@dataclass
class Figure:
    """A measured figure: the ratio, what it was measured against, and the absolute medians.

    Attributes:
        id: ``P1`` .. ``P6`` (with ``P3b``, ``P5b``).
        title: what the figure says, in a few words.
        ratio: the figure itself (measured / baseline, or as the figure defines it).
        target: the target value of the ratio.
        op: how the ratio must compare with the target (``<=`` or ``>=``).
        baseline: what the ratio was measured against.
        medians: absolute medians behind the ratio (seconds unless ``unit`` says otherwise).
        unit: the unit of ``medians``.
        reps: repetitions each median was taken over.
        note: how it was measured, and what dominated where the target was missed.
        extra: further JSON-able figures (sizes, secondary ratios).
    """

    id: str
    title: str
    ratio: float
    target: float
    op: Op
    baseline: str
    medians: dict[str, float]
    unit: str = "s"
    reps: int = 0
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool:
        """Whether the ratio meets the target."""
        return self.ratio <= self.target if self.op == "<=" else self.ratio >= self.target

    def to_json(self) -> dict[str, Any]:
        """The figure as the JSON object written by ``--json``."""
        return {
            "title": self.title,
            "ratio": round(self.ratio, 4),
            "target": f"{self.op} {self.target:g}",
            "target_value": self.target,
            "target_op": self.op,
            "met": self.met,
            "baseline": self.baseline,
            "medians": {k: _round(v) for k, v in self.medians.items()},
            "unit": self.unit,
            "reps": self.reps,
            "note": self.note,
            **({"extra": self.extra} if self.extra else {}),
        }


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def median(values: list[float]) -> float:
    """The median of a non-empty list."""
    if not values:
        raise ValueError("median of no values: a figure ran zero repetitions")
    return statistics.median(values)


@dataclass
class Timings:
    """Per-call seconds of each repetition of each arm, wall clock and process CPU."""

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]

    def median(self, arm: str) -> float:
        """The arm's median wall seconds per call."""
        return median(self.wall[arm])

    def ratio(self, arm: str, baseline: str, *, cpu: bool = False) -> float:
        """The median of the per-repetition ratios ``arm / baseline``.

        Each repetition runs both arms back to back, so pairing them cancels most of the load
        other processes put on a shared machine between repetitions.
        """
        table = self.cpu if cpu else self.wall
        return median([a / b for a, b in zip(table[arm], table[baseline], strict=True)])


def interleaved(arms: Mapping[str, Callable[[], object]], *, reps: int, batch: int) -> Timings:
    """Time each arm ``reps`` times, ``batch`` calls per repetition, alternating the arm order.

    Alternating (ABBA...) spreads the drift of a shared, noisy machine evenly over the arms.

    Args:
        arms: name -> one call of that arm.
        reps: repetitions per arm.
        batch: calls per repetition; a repetition's value is the mean seconds per call.

    Returns:
        The per-call wall and CPU seconds of each repetition of each arm.
    """
    names = list(arms)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(reps):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            fn = arms[name]
            gc.collect()
            started, cpu_started = time.perf_counter(), time.process_time()
            for _ in range(batch):
                fn()
            wall[name].append((time.perf_counter() - started) / batch)
            cpu[name].append((time.process_time() - cpu_started) / batch)
    return Timings(wall, cpu)
