"""What a hard-kill run reports: the agent process's errors and the kills shakeout sent.

Owns the exception tree and :class:`Kill`. Imports only the standard library: every other
module of the package may import it.

Errors::

    AgentProcessError (Exception)          the agent raised inside the child (carries its summary)
    └── AgentProcessDied                   the child died on its own, or never became ready
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

__all__ = ["AgentProcessDied", "AgentProcessError", "Kill", "ended"]


class AgentProcessError(Exception):
    """The agent raised inside its process; ``summary`` is the one-line form the driver records.

    Args:
        summary: the exception as ``Type: message (at file:line in function)``.
    """

    def __init__(self, summary: str) -> None:
        super().__init__(summary)
        self.summary = summary


class AgentProcessDied(AgentProcessError):
    """The agent's process died without being told to (or never became ready)."""


@dataclass(frozen=True)
class Kill:
    """One SIGKILL shakeout sent to an agent process, and how the process ended.

    Attributes:
        pid: the killed process.
        where: the crash point (``before_step:gather``, ``after_effect:issue_refund``,
            ``while_parked``, ``end of run``, ...).
        returncode: the process's return code once reaped (``-9`` for SIGKILL), None if it
            could not be reaped in time.
    """

    pid: int
    where: str
    returncode: int | None

    def note(self) -> str:
        """The line the run's record keeps, naming the signal the process died of."""
        return f"hard kill: agent process {self.pid} at {self.where}: {ended(self.returncode)}"


def ended(returncode: int | None) -> str:
    """How a process ended, from its return code (None: it could not be reaped)."""
    if returncode is None:
        return "still running after SIGKILL (not reaped)"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"died with signal {-returncode} ({name})"
    return f"exited with exit code {returncode}"
