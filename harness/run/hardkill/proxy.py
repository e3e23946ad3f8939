"""The parent side of hard-kill mode: an adapter that drives the agent in a child process.

Owns :class:`HardKillAdapter` (the conversation: commands out, the child's requests answered
by the run's world, SIGKILL at a crash point) and the per-worker cache of adapters. Imports
``errors``, ``messages`` and ``processes`` of this package, and the harness's adapter, driver,
interception and record types; never the child-side server.
"""

from __future__ import annotations

import atexit
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from faults.surfaces import AgentCrash, HttpRequest, TransportError, TransportFailure
from harness.adapter import AdapterContractError, Decision, Endpoints, Outcome, WorldContext
from harness.record import TraceCopy
from harness.run.driver import RunTimedOut
from harness.run.hardkill.errors import AgentProcessDied, AgentProcessError, Kill, ended
from harness.run.hardkill.messages import (
    answer_to_wire,
    outcome_from_wire,
    request_from_wire,
)
from harness.run.hardkill.processes import (
    STARTUP_TIMEOUT_S,
    Child,
    ForkedChild,
    SpawnedChild,
    Zygote,
)
from harness.world.intercept import (
    Answer,
    Handler,
    StreamedResponse,
    active_interceptor,
    harness_operation,
    report_blocked,
)

__all__ = ["CALL_TIMEOUT_S", "HardKillAdapter", "close_all", "hard_adapter"]

CALL_TIMEOUT_S = 300.0
"""The bound on one command when no run deadline is attached (real seconds)."""


class HardKillAdapter:
    """An :class:`~harness.adapter.AgentAdapter` whose agent runs in a child process.

    ``begin`` always starts over in a NEW process, SIGKILLing the previous one: the driver's
    restart after a crash, or while a run is parked, is a real process death. Bind the run's
    world first with :meth:`attach`; end the run with :meth:`release`, which kills the last
    process and returns the kills for the record; :meth:`close` ends every process.

    Args:
        factory: the adapter factory as ``module:callable`` (imported in the child).
        endpoints: what the factory is called with.
        start_method: ``fork``: children are forked by a single-threaded zygote process that
            imported the agent once (milliseconds per child); ``spawn``: a fresh interpreter
            per child (~1 s each, one spare kept warm), for agents whose import starts threads.
            Defaults to ``fork`` where the platform has it.
    """

    def __init__(
        self, factory: str, endpoints: Endpoints, *, start_method: str | None = None
    ) -> None:
        if start_method is None:
            start_method = (
                "fork" if hasattr(os, "fork") and hasattr(socket, "send_fds") else "spawn"
            )
        if start_method not in ("fork", "spawn"):
            raise ValueError(
                f"HardKillAdapter start_method must be 'fork' or 'spawn', got {start_method!r}"
            )
        self.factory = factory
        self.endpoints = endpoints
        self.start_method = start_method
        self._zygote: Zygote | None = None
        self.kills: list[Kill] = []
        self.handler_errors: list[Exception] = []
        self._answer: Handler | None = None
        self._deadline: float | None = None
        self._child: Child | None = None
        self._spare: Child | None = None
        self._world: WorldContext | None = None
        self._streams: dict[int, Callable[[int], None]] = {}
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ run binding

    def attach(self, answer: Handler, *, deadline: float | None = None) -> None:
        """Bind a run: ``answer`` is the world's handler, ``deadline`` a ``time.monotonic()``
        bound on every pipe read during the run."""
        with self._lock:
            self._answer = answer
            self._deadline = deadline
            self.kills = []
            self.handler_errors = []
            self._streams = {}

    def release(self) -> tuple[Kill, ...]:
        """End the run: SIGKILL and reap its last process; the run's kills (for the record).

        Never waits for a call still in progress (one the driver abandoned at its deadline):
        killing the process ends that call.
        """
        child = self._child
        if child is not None:
            self._kill(child, "end of run", record=False)
        with self._lock:
            self._answer = None
            self._world = None
            return tuple(self.kills)

    def close(self) -> None:
        """Kill and reap every process of this adapter, the spare and the zygote included."""
        with self._lock:
            for child in (self._child, self._spare):
                if child is not None:
                    child.discard()
            self._child = self._spare = None
            if self._zygote is not None:
                self._zygote.close()
                self._zygote = None

    @property
    def pid(self) -> int | None:
        """The current agent process's id, if one is running."""
        return None if self._child is None else self._child.pid

    def warm(self) -> None:
        """Have a ready agent process waiting before a run starts.

        Starting one (the zygote importing the agent and its SDKs) takes seconds on a loaded
        machine; done here, outside the run, it never counts against the run's wall-clock limit.
        A failure is left for ``begin`` to meet and report inside the run.
        """
        with self._lock:
            if self._child is not None or (self._spare is not None and self._spare.alive()):
                return
            try:
                spare = self._new_child()
                self._await_ready(spare)
            except Exception:  # begin() starts over and reports it as the run's problem
                return
            self._spare = spare

    # ------------------------------------------------------------------ the adapter protocol

    def begin(self, world: WorldContext) -> None:
        """Start over in a new process bound to ``world`` (the previous one is SIGKILLed)."""
        with self._lock:
            if self._child is not None:
                self._kill(self._child, "while_parked" if self._world is not None else "begin")
                self._child = None
            self._world = world
            # the child's network guard follows the run's: subprocesses only where allowed
            active = active_interceptor()
            allow_subprocess = active is not None and active.allow_subprocess
            child = self._spare if self._spare is not None and self._spare.alive() else None
            if child is None:
                if self._spare is not None:
                    self._spare.discard()
                child = self._new_child()
            self._spare = None
            self._child = child
            self._await_ready(child)
            self._call(
                "begin",
                {
                    "state_dir": str(world.state_dir),
                    "config": dict(world.config),
                    "seed": world.seed,
                    "allow_subprocess": allow_subprocess,
                },
            )
            if self.start_method == "spawn":
                self._spare = self._new_child()

    def _new_child(self) -> Child:
        # Called during a run, on the agent-call thread, while the world's network guard
        # refuses every process start: starting the agent's own process is the harness's doing.
        with harness_operation():
            if self.start_method == "spawn":
                return SpawnedChild(self.factory, self.endpoints)
            if self._zygote is None or not self._zygote.alive():
                if self._zygote is not None:
                    self._zygote.close()
                self._zygote = Zygote(self.factory, self.endpoints)
            try:
                return ForkedChild(self._zygote)
            except AgentProcessDied:
                self._zygote = None  # it closed itself; the next begin starts a new one
                raise

    def start(self, payload: Mapping[str, Any]) -> Outcome:
        """Start a run in the child; returns when terminal or parked."""
        return outcome_from_wire(self._call("start", {"payload": dict(payload)}))

    def resume(self, run_id: str, decision: Decision | None = None) -> Outcome:
        """Resume a run in the child, delivering ``decision`` where one is pending."""
        wire = None
        if decision is not None:
            wire = {
                "approval_id": decision.approval_id,
                "approved": decision.approved,
                "tool": decision.tool,
                "arguments": dict(decision.arguments),
                "reviewer": decision.reviewer,
            }
        return outcome_from_wire(self._call("resume", {"run_id": run_id, "decision": wire}))

    def trace(self, run_id: str) -> TraceCopy | None:
        """The agent's trace of the run, read in the child."""
        data = self._call("trace", {"run_id": run_id})
        if data is None:
            return None
        return TraceCopy(tuple(data["records"]), bool(data["kept_in_full"]))

    # ------------------------------------------------------------------ the conversation

    def _await_ready(self, child: Child) -> None:
        if child.ready:
            return
        message = self._next(child, time.monotonic() + STARTUP_TIMEOUT_S, "starting up")
        if message.get("t") == "ready":
            child.ready = True
            return
        if message.get("t") == "fatal":
            child.kill()
            self._child = None
            raise AgentProcessDied(
                f"the agent process could not build its adapter from {self.factory!r}: "
                f"{message.get('summary')}"
            )
        raise self._protocol_error(child, message)

    def _call(self, command: str, fields: Mapping[str, Any]) -> Any:
        # no lock held while waiting: release() must be able to kill a call the driver abandoned
        child = self._child
        world = self._world
        if child is None or world is None:
            raise AdapterContractError(
                f"HardKillAdapter.{command}() called before begin(world); the driver calls "
                "begin first"
            )
        child.send({"t": command, "now": world.clock.now(), **fields})
        deadline = self._deadline
        if deadline is None:
            deadline = time.monotonic() + CALL_TIMEOUT_S
        while True:
            message = self._next(child, deadline, f"{command}()")
            kind = message.get("t")
            if kind == "result":
                return message.get("value")
            if kind == "error":
                summary = str(message.get("summary"))
                if message.get("contract"):
                    raise AdapterContractError(summary)
                raise AgentProcessError(summary)
            reply = self._serve(child, world, message)
            child.send({"t": "ok", "now": world.clock.now(), **reply})

    def _serve(
        self, child: Child, world: WorldContext, message: Mapping[str, Any]
    ) -> dict[str, Any]:
        kind = message.get("t")
        if kind == "http":
            request = request_from_wire(message["request"])
            answer = self._answer_request(child, request)
            stream_id = len(self._streams) + 1
            if isinstance(answer, StreamedResponse) and answer.on_event is not None:
                self._streams[stream_id] = answer.on_event
            return {"answer": answer_to_wire(answer, stream_id)}
        if kind == "sleep":
            world.clock.sleep(float(message["s"]))
            return {}
        if kind == "event":
            hook = self._streams.get(int(message["stream"]))
            if hook is not None:
                hook(int(message["i"]))
            return {}
        if kind == "blocked":
            # the child's guard refused an attempt to leave the world: the run's evidence
            report_blocked(str(message["what"]), str(message["target"]))
            return {}
        if kind == "boundary":
            point, step = str(message["point"]), str(message["step"])
            try:
                world.boundary(point, step)
            except AgentCrash:
                self._kill(child, f"{point}:{step}")
                raise
            return {}
        raise self._protocol_error(child, message)

    def _answer_request(self, child: Child, request: HttpRequest) -> Answer:
        if self._answer is None:
            raise AdapterContractError(
                "HardKillAdapter has no world to answer the agent's requests; call "
                "attach(world.router) before the run"
            )
        try:
            return self._answer(request)
        except AgentCrash:
            # the world committed the effect and crashes the agent before it hears the answer
            self._kill(child, f"after_effect:{request.method} {request.path}")
            raise
        except Exception as exc:
            self.handler_errors.append(exc)
            return TransportError(
                TransportFailure.CONNECT_ERROR,
                f"shakeout harness error while answering {request.method} {request.url}: "
                f"{type(exc).__name__}: {exc}",
            )

    def _next(self, child: Child, deadline: float, doing: str) -> dict[str, Any]:
        try:
            message = child.inbox.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            self._kill(child, f"timeout during {doing}", record=False)
            if doing == "starting up":
                raise AgentProcessDied(
                    f"the agent process {child.pid} did not start within "
                    f"{STARTUP_TIMEOUT_S:.0f} s; stderr tail:\n{child.stderr_tail()}"
                ) from None
            raise RunTimedOut from None
        if message is None:
            code = child.reap()
            if self._child is child:
                self._child = None
            tail = child.stderr_tail()
            child.discard()
            raise AgentProcessDied(
                f"agent process {child.pid} {ended(code)} during {doing}; "
                f"stderr tail:\n{tail or '(empty)'}"
            )
        return message

    def _kill(self, child: Child, where: str, *, record: bool = True) -> None:
        code = child.kill()
        if record:
            self.kills.append(Kill(child.pid, where, code))
        child.discard()
        if self._child is child:
            self._child = None

    def _protocol_error(self, child: Child, message: Mapping[str, Any]) -> Exception:
        self._kill(child, "protocol error", record=False)
        return AdapterContractError(
            f"the agent process {child.pid} sent {str(dict(message))[:200]!r}, which is not "
            "part of the hard-kill protocol; it may print to its real stdout file descriptor. "
            f"stderr tail:\n{child.stderr_tail()}"
        )


_ADAPTERS: dict[tuple[str, Endpoints], HardKillAdapter] = {}
_ADAPTERS_LOCK = threading.Lock()


def hard_adapter(factory: str, endpoints: Endpoints) -> HardKillAdapter:
    """The worker's hard-kill adapter for ``(factory, endpoints)``, built on first use.

    Cached so that its warm spare process serves the next hard run; every process is killed
    and reaped at interpreter exit.
    """
    key = (factory, endpoints)
    with _ADAPTERS_LOCK:
        adapter = _ADAPTERS.get(key)
        if adapter is None:
            adapter = HardKillAdapter(factory, endpoints)
            _ADAPTERS[key] = adapter
        return adapter


@atexit.register
def close_all() -> None:
    """Kill and reap every process of every cached hard-kill adapter (also run at exit)."""
    with _ADAPTERS_LOCK:
        for adapter in _ADAPTERS.values():
            adapter.close()
