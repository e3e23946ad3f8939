"""A fake clock for runs: time only moves when something sleeps or advances it."""

from __future__ import annotations

import math
import threading

DEFAULT_START = 1_767_225_600.0
"""2026-01-01T00:00:00Z: a fixed epoch so timestamps in records are reproducible."""


class FakeClock:
    """A thread-safe clock that never waits; ``sleep`` and ``advance`` move it forward.

    Satisfies ``faults.surfaces.Clock``. Every sleep of an agent under test should come from it,
    so a run that backs off for minutes of fake time takes microseconds of real time.

    Args:
        start: the initial time in seconds since the epoch.
    """

    __slots__ = ("_lock", "_now", "_slept")

    def __init__(self, start: float = DEFAULT_START) -> None:
        if not math.isfinite(start):
            raise ValueError(f"FakeClock start must be a finite number of seconds, got {start!r}")
        self._lock = threading.Lock()
        self._now = float(start)
        self._slept = 0.0

    def now(self) -> float:
        """The current fake time in seconds."""
        return self._now

    def sleep(self, seconds: float) -> None:
        """Advance the clock by ``seconds`` without waiting, counted as slept time.

        Raises:
            ValueError: when ``seconds`` is negative or not finite.
        """
        self._check(seconds, "sleep")
        with self._lock:
            self._now += seconds
            self._slept += seconds

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (the world passing, not the agent sleeping).

        Raises:
            ValueError: when ``seconds`` is negative or not finite.
        """
        self._check(seconds, "advance")
        with self._lock:
            self._now += seconds

    @property
    def slept(self) -> float:
        """Total seconds passed through ``sleep`` (how long the agent chose to wait)."""
        return self._slept

    @staticmethod
    def _check(seconds: float, verb: str) -> None:
        if not (seconds >= 0 and math.isfinite(seconds)):
            raise ValueError(
                f"FakeClock.{verb}() needs a finite, non-negative number of seconds, got "
                f"{seconds!r}; time in a shakeout run only moves forward"
            )

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r}, slept={self._slept!r})"
