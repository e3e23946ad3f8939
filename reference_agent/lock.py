"""The per-run lock: one instance (one worker, one process) carries a run on at a time.

Owns ``run_lock``, an advisory ``flock`` on ``<state_dir>/<run_id>.lock``. Infrastructure: it
imports nothing from the package.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def run_lock(state_dir: Path | None, run_id: str, *, wait: bool = False) -> Iterator[bool]:
    """Hold the run's lock while carrying it on; yields False if another instance holds it.

    The lock dies with its holder (closing the descriptor releases it), so a crashed process
    never blocks a resume.

    Args:
        state_dir: where the run persists; None (persistence off) means in-memory state that
            belongs to this instance alone, so the lock is always ours.
        run_id: the run.
        wait: block until the holder lets go instead of yielding False.
    """
    if state_dir is None:
        yield True
        return
    fd = os.open(Path(state_dir) / f"{run_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
