"""Hard-kill crash mode: the agent runs in a child process that shakeout SIGKILLs at a crash point.

The parent keeps everything that judges the run (the world, the fake clock, the crash plan); the
child (``python -m harness.run.hardkill FACTORY ENDPOINTS``) builds the real adapter and serves
``begin``/``start``/``resume``/``trace`` over its stdin/stdout, one JSON object per line. Inside
the child an :class:`~harness.world.intercept.Interceptor` forwards every HTTP request to the
parent, whose world answers and records it exactly as in-process, so nothing leaves the child. The
child's clock reads the parent's time carried on every message and forwards sleeps; its boundary
hook asks the parent, and when the crash plan (or the world, after an effect) says crash, the
parent sends SIGKILL, reaps the child and raises ``AgentCrash`` to the driver, whose restart
calls ``begin`` again: a new process over the same state directory.

Messages (``t`` is the type)::

    parent -> child   begin | start | resume | trace          a command; the child answers it with
                      ok (+ now, answer)                      result | error, after any requests:
    child -> parent   http | sleep | event | boundary | blocked  ... each answered by one ``ok``
                      ready | fatal                           once, when the adapter is built

Errors (:mod:`harness.run.hardkill.errors`)::

    AgentProcessError (Exception)          the agent raised inside the child (carries its summary)
    └── AgentProcessDied                   the child died on its own, or never became ready

Layers, each importing only those above it (checked by ``tests/test_layout.py``)::

    errors      the exception tree and Kill                      (standard library only)
    messages    encoding requests, answers, outcomes for the pipe
    processes   parent side: spawn a child, or fork one from the zygote; kill and reap
    proxy       parent side: HardKillAdapter, the conversation with the child, the cache
    child       child side: the protocol loop, the zygote's fork loop (``__main__`` runs it)

Cost (2 shared cores): a child imports the SDKs and builds the adapter in ~1 s; one spare child
is kept warm per adapter so a restart costs a few milliseconds; a forwarded request adds ~0.2 ms.
"""

from __future__ import annotations

from harness.run.hardkill.errors import AgentProcessDied, AgentProcessError, Kill
from harness.run.hardkill.proxy import HardKillAdapter, close_all, hard_adapter

__all__ = [
    "AgentProcessDied",
    "AgentProcessError",
    "HardKillAdapter",
    "Kill",
    "close_all",
    "hard_adapter",
]
