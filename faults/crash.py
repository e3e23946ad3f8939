"""Crash faults: the agent's process dies at a boundary and a fresh one must resume the run."""

from __future__ import annotations

from dataclasses import dataclass

from faults.surfaces import CrashFault, CrashMode, CrashPoint


@dataclass(frozen=True)
class _BoundaryCrash(CrashFault):
    """A crash at one kind of boundary; a resumed run must end like the fault-free one."""

    category = None
    transient = True

    def matches(self, point: str, where: str) -> bool:
        """Whether this fault aims at boundary ``point`` of step (or state) ``where``.

        The schedule (``at``) then says which of the matching boundaries it fires on.
        """
        return point == self.point and (self.target is None or self.target == where)

    def label_detail(self) -> str:
        """``hard`` for a SIGKILL crash; the in-process default adds nothing."""
        return "hard" if self.mode is CrashMode.HARD else ""


@dataclass(frozen=True)
class CrashBeforeStep(_BoundaryCrash):
    """The agent dies just before a step starts."""

    key = "crash_before_step"
    point = CrashPoint.BEFORE_STEP


@dataclass(frozen=True)
class CrashAfterEffect(_BoundaryCrash):
    """The agent dies after a service applied a side effect, before it recorded the answer."""

    key = "crash_after_effect"
    point = CrashPoint.AFTER_EFFECT


@dataclass(frozen=True)
class CrashAfterCheckpoint(_BoundaryCrash):
    """The agent dies right after a step's completion was committed."""

    key = "crash_after_checkpoint"
    point = CrashPoint.AFTER_CHECKPOINT


@dataclass(frozen=True)
class CrashWhileParked(_BoundaryCrash):
    """The agent dies while the run waits for a human approval."""

    key = "crash_while_parked"
    point = CrashPoint.WHILE_PARKED


@dataclass(frozen=True)
class CrashTerminalWrite(_BoundaryCrash):
    """The agent dies while writing the terminal state, before it commits."""

    key = "crash_terminal_write"
    point = CrashPoint.TERMINAL_WRITE
