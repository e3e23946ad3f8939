"""Hard-kill crash mode: the agent runs in a child process that shakeout SIGKILLs at a crash point.

The parent keeps everything that judges the run (the world, the fake clock, the crash plan); the
child (``python -m harness.hardkill FACTORY ENDPOINTS``) builds the real adapter and serves
``begin``/``start``/``resume``/``trace`` over its stdin/stdout, one JSON object per line. Inside
the child an :class:`~harness.intercept.Interceptor` forwards every HTTP request to the parent,
whose world answers and records it exactly as in-process, so nothing leaves the child. The
child's clock reads the parent's time carried on every message and forwards sleeps; its boundary
hook asks the parent, and when the crash plan (or the world, after an effect) says crash, the
parent sends SIGKILL, reaps the child and raises ``AgentCrash`` to the driver, whose restart
calls ``begin`` again: a new process over the same state directory.

Messages (``t`` is the type)::

    parent -> child   begin | start | resume | trace          a command; the child answers it with
                      ok (+ now, answer)                      result | error, after any requests:
    child -> parent   http | sleep | event | boundary | blocked  ... each answered by one ``ok``
                      ready | fatal                           once, when the adapter is built

Errors::

    AgentProcessError (Exception)          the agent raised inside the child (carries its summary)
    └── AgentProcessDied                   the child died on its own, or never became ready

Cost (2 shared cores): a child imports the SDKs and builds the adapter in ~1 s; one spare child
is kept warm per adapter so a restart costs a few milliseconds; a forwarded request adds ~0.2 ms.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from faults.surfaces import (
    AgentCrash,
    BoundaryHook,
    Clock,
    HttpRequest,
    HttpResponse,
    StreamPlan,
    TransportError,
    TransportFailure,
)
from harness.adapter import (
    AdapterContractError,
    ApprovalRecord,
    Decision,
    Endpoints,
    Outcome,
    RunState,
    WorldContext,
)
from harness.driver import RunTimedOut
from harness.intercept import (
    Answer,
    Handler,
    Interceptor,
    StreamedResponse,
    active_interceptor,
    harness_operation,
    report_blocked,
)
from harness.record import TraceCopy

__all__ = [
    "AgentProcessDied",
    "AgentProcessError",
    "HardKillAdapter",
    "Kill",
    "close_all",
    "hard_adapter",
]

STARTUP_TIMEOUT_S = 60.0
"""How long a child may take to import the agent and build its adapter (real seconds)."""

CALL_TIMEOUT_S = 300.0
"""The bound on one command when no run deadline is attached (real seconds)."""

REAP_TIMEOUT_S = 10.0
"""How long to wait for a SIGKILLed child to be reaped before giving up on it."""

STDERR_TAIL = 2000
"""Characters of a dead child's stderr kept in its error message."""


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
        return f"hard kill: agent process {self.pid} at {self.where}: {_ended(self.returncode)}"


def _ended(returncode: int | None) -> str:
    if returncode is None:
        return "still running after SIGKILL (not reaped)"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"died with signal {-returncode} ({name})"
    return f"exited with exit code {returncode}"


# --------------------------------------------------------------------------- wire encoding


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def _request_to_wire(request: HttpRequest) -> dict[str, Any]:
    return {
        "method": request.method,
        "url": request.url,
        "headers": list(request.headers.items()),
        "body": _b64(request.body),
        "stack": request.stack,
    }


def _request_from_wire(data: Mapping[str, Any]) -> HttpRequest:
    return HttpRequest(
        method=data["method"],
        url=data["url"],
        headers=dict(data["headers"]),
        body=_unb64(data["body"]),
        stack=data["stack"],
    )


def _answer_to_wire(answer: Answer, stream_id: int) -> dict[str, Any]:
    if isinstance(answer, HttpResponse):
        return {
            "kind": "response",
            "status": answer.status,
            "headers": [list(h) for h in answer.headers],
            "body": _b64(answer.body),
        }
    if isinstance(answer, TransportError):
        return {"kind": "error", "failure": answer.kind.value, "message": answer.message}
    plan = answer.plan
    return {
        "kind": "stream",
        "status": answer.status,
        "headers": [list(h) for h in answer.headers],
        "events": [_b64(e) for e in plan.events],
        "terminator": _b64(plan.terminator),
        "cut_after": plan.cut_after,
        "delay_per_event": plan.delay_per_event,
        "stream": stream_id if answer.on_event is not None else None,
    }


def _answer_from_wire(data: Mapping[str, Any], on_event: Callable[[int, int], None]) -> Answer:
    kind = data["kind"]
    headers = tuple((str(k), str(v)) for k, v in data.get("headers", ()))
    if kind == "response":
        return HttpResponse(data["status"], headers, _unb64(data["body"]))
    if kind == "error":
        return TransportError(TransportFailure(data["failure"]), data["message"])
    plan = StreamPlan(
        events=tuple(_unb64(e) for e in data["events"]),
        terminator=_unb64(data["terminator"]),
        cut_after=data["cut_after"],
        delay_per_event=data["delay_per_event"],
    )
    stream = data["stream"]
    hook = None if stream is None else (lambda i: on_event(stream, i))
    return StreamedResponse(data["status"], headers, plan, hook)


def _approval_to_wire(a: ApprovalRecord) -> dict[str, Any]:
    return {
        "approval_id": a.approval_id,
        "tool": a.tool,
        "arguments": dict(a.arguments),
        "summary": a.summary,
        "expires_at": a.expires_at,
    }


def _outcome_to_wire(o: Outcome) -> dict[str, Any]:
    return {
        "run_id": o.run_id,
        "state": o.state.value,
        "category": o.category,
        "error": o.error,
        "pending_approval": None
        if o.pending_approval is None
        else _approval_to_wire(o.pending_approval),
        "approvals": [_approval_to_wire(a) for a in o.approvals],
    }


def _outcome_from_wire(data: Mapping[str, Any]) -> Outcome:
    pending = data["pending_approval"]
    return Outcome(
        run_id=data["run_id"],
        state=RunState(data["state"]),
        category=data["category"],
        error=data["error"],
        pending_approval=None if pending is None else ApprovalRecord(**pending),
        approvals=tuple(ApprovalRecord(**a) for a in data["approvals"]),
    )


def _dumps(message: Mapping[str, Any]) -> bytes:
    # default=str: a trace record holding a datetime or a Path still crosses the pipe
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"


# --------------------------------------------------------------------------- parent side


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # the child must import what the parent imports (test modules, a user's agent package)
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _endpoints_json(endpoints: Endpoints) -> str:
    return json.dumps(
        {
            "model_base_url": endpoints.model_base_url,
            "tools_base_url": endpoints.tools_base_url,
            "api_key": endpoints.api_key,
            "model": endpoints.model,
        }
    )


def _stderr_file() -> IO[bytes]:
    # a file, not a pipe: a chatty agent can never block on a full stderr pipe
    return tempfile.TemporaryFile(prefix="shakeout-agent-stderr-")


def _tail(stderr: IO[bytes]) -> str:
    try:
        stderr.seek(0, os.SEEK_END)
        size = stderr.tell()
        stderr.seek(max(size - 4 * STDERR_TAIL, 0))
        text = stderr.read().decode(errors="replace")
    except (OSError, ValueError):
        return ""
    return text[-STDERR_TAIL:].strip()


class _Child:
    """One agent process: a byte stream each way, a reader thread turning lines into a queue.

    Subclasses say how the process starts and how it is reaped.
    """

    pid: int

    def __init__(self, out: IO[bytes], stderr: IO[bytes]) -> None:
        self.stderr = stderr
        self.inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.ready = False
        self.reaped: int | None = None
        self._done = False
        self._out = out
        self._reader = threading.Thread(
            target=self._read, name="shakeout-agent-reader", daemon=True
        )
        self._reader.start()

    def _read(self) -> None:
        try:
            for line in self._out:
                try:
                    self.inbox.put(json.loads(line))
                except ValueError:
                    self.inbox.put({"t": "garbage", "line": line[:200].decode(errors="replace")})
        except (OSError, ValueError):
            pass  # the stream was closed under us: the child is gone
        self.inbox.put(None)

    def send(self, message: Mapping[str, Any]) -> None:
        # a child that died cannot be written to; the next read reports how it ended
        with contextlib.suppress(OSError, ValueError):
            self._write(_dumps(message))

    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def _wait(self, timeout: float) -> int | None:
        """The exit code once the process ended (negative: the signal), None after timeout."""
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def alive(self) -> bool:
        return not self._done and self._poll()

    def _poll(self) -> bool:
        raise NotImplementedError

    def kill(self) -> int | None:
        """SIGKILL the child (if still running) and reap it; the return code (None: not reaped)."""
        if self._done:
            return self.reaped
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        return self.reap()

    def reap(self) -> int | None:
        """Wait for the process to end (it closed its stream, or was killed)."""
        if self._done:
            return self.reaped
        code = self._wait(REAP_TIMEOUT_S)
        if code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            code = self._wait(REAP_TIMEOUT_S)
        self._done = True
        self.reaped = code
        self._close()
        self._reader.join(timeout=1.0)
        with contextlib.suppress(OSError):
            self._out.close()
        return code

    def stderr_tail(self) -> str:
        return _tail(self.stderr)

    def discard(self) -> None:
        self.kill()
        with contextlib.suppress(OSError):
            self.stderr.close()


class _SpawnedChild(_Child):
    """A fresh interpreter per process (``python -m harness.hardkill``): ~1 s to import."""

    def __init__(self, factory: str, endpoints: Endpoints) -> None:
        stderr = _stderr_file()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness.hardkill", factory, _endpoints_json(endpoints)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=_child_env(),
            close_fds=True,
        )
        self.pid = self.proc.pid
        assert self.proc.stdout is not None
        super().__init__(self.proc.stdout, stderr)

    def _write(self, data: bytes) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        stdin.write(data)
        stdin.flush()

    def _poll(self) -> bool:
        return self.proc.poll() is None

    def _wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def _close(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


class _Zygote:
    """A single-threaded process that imported the agent once and forks a child per request.

    The parent has threads, so it never forks itself; the zygote, started as a fresh
    interpreter, has none, so its forks are safe and cost milliseconds instead of an import.
    Its children are its own: it reaps them when asked and reports how they ended.
    """

    def __init__(self, factory: str, endpoints: Endpoints) -> None:
        self.stderr = _stderr_file()
        self._ctrl, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness.hardkill",
                "--zygote",
                str(theirs.fileno()),
                factory,
                _endpoints_json(endpoints),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.stderr,
            stderr=self.stderr,
            env=_child_env(),
            pass_fds=(theirs.fileno(),),
        )
        theirs.close()
        self._lock = threading.Lock()
        self._buffer = b""
        self.factory = factory
        self.ready = False

    def _reply(self, timeout: float) -> dict[str, Any]:
        self._ctrl.settimeout(timeout)
        while b"\n" not in self._buffer:
            try:
                chunk = self._ctrl.recv(65536)
            except TimeoutError:
                raise AgentProcessDied(
                    f"the hard-kill zygote {self.proc.pid} did not answer within {timeout:.0f} s; "
                    f"its output:\n{_tail(self.stderr) or '(empty)'}"
                ) from None
            except OSError:
                chunk = b""
            if not chunk:
                self.close()
                raise AgentProcessDied(
                    f"the hard-kill zygote {self.proc.pid} {_ended(self.proc.poll())}; its "
                    f"output:\n{_tail(self.stderr) or '(empty)'}"
                )
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def start(self) -> None:
        """Wait until the zygote imported the agent (raises when it cannot)."""
        with self._lock:
            if self.ready:
                return
            reply = self._reply(STARTUP_TIMEOUT_S)
            if reply.get("t") == "fatal":
                self.close()
                raise AgentProcessDied(
                    f"the agent process could not load its factory {self.factory!r}: "
                    f"{reply.get('summary')}"
                )
            self.ready = True

    def fork(self, channel: socket.socket, stderr: IO[bytes]) -> int:
        """A new child serving ``channel`` (stderr to ``stderr``); its pid."""
        self.start()
        with self._lock:
            socket.send_fds(
                self._ctrl, [_dumps({"t": "fork"})], [channel.fileno(), stderr.fileno()]
            )
            return int(self._reply(STARTUP_TIMEOUT_S)["pid"])

    def reap(self, pid: int, timeout: float) -> int | None:
        """Wait (in the zygote) for child ``pid`` to end; its exit code, None after timeout."""
        with self._lock:
            try:
                self._ctrl.sendall(_dumps({"t": "reap", "pid": pid, "timeout": timeout}))
                reply = self._reply(timeout + 5.0)
            except (OSError, AgentProcessDied):
                return None
            code = reply.get("code")
            return None if code is None else int(code)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        """End the zygote: it kills and reaps its children when its control socket closes."""
        with contextlib.suppress(OSError):
            self._ctrl.close()
        try:
            self.proc.wait(timeout=REAP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=REAP_TIMEOUT_S)
        with contextlib.suppress(OSError):
            self.stderr.close()


class _ForkedChild(_Child):
    """A child forked by the zygote, talking over a socket pair."""

    def __init__(self, zygote: _Zygote) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        stderr = _stderr_file()
        try:
            self.pid = zygote.fork(theirs, stderr)
        except BaseException:
            mine.close()
            stderr.close()
            raise
        finally:
            theirs.close()
        self._zygote = zygote
        self._sock = mine
        super().__init__(mine.makefile("rb"), stderr)

    def _write(self, data: bytes) -> None:
        self._sock.sendall(data)

    def _poll(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def _wait(self, timeout: float) -> int | None:
        return self._zygote.reap(self.pid, timeout)

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()


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
        self._zygote: _Zygote | None = None
        self.kills: list[Kill] = []
        self.handler_errors: list[Exception] = []
        self._answer: Handler | None = None
        self._deadline: float | None = None
        self._child: _Child | None = None
        self._spare: _Child | None = None
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

    def _new_child(self) -> _Child:
        # Called during a run, on the agent-call thread, while the world's network guard
        # refuses every process start: starting the agent's own process is the harness's doing.
        with harness_operation():
            if self.start_method == "spawn":
                return _SpawnedChild(self.factory, self.endpoints)
            if self._zygote is None or not self._zygote.alive():
                if self._zygote is not None:
                    self._zygote.close()
                self._zygote = _Zygote(self.factory, self.endpoints)
            try:
                return _ForkedChild(self._zygote)
            except AgentProcessDied:
                self._zygote = None  # it closed itself; the next begin starts a new one
                raise

    def start(self, payload: Mapping[str, Any]) -> Outcome:
        """Start a run in the child; returns when terminal or parked."""
        return _outcome_from_wire(self._call("start", {"payload": dict(payload)}))

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
        return _outcome_from_wire(self._call("resume", {"run_id": run_id, "decision": wire}))

    def trace(self, run_id: str) -> TraceCopy | None:
        """The agent's trace of the run, read in the child."""
        data = self._call("trace", {"run_id": run_id})
        if data is None:
            return None
        return TraceCopy(tuple(data["records"]), bool(data["kept_in_full"]))

    # ------------------------------------------------------------------ the conversation

    def _await_ready(self, child: _Child) -> None:
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
        self, child: _Child, world: WorldContext, message: Mapping[str, Any]
    ) -> dict[str, Any]:
        kind = message.get("t")
        if kind == "http":
            request = _request_from_wire(message["request"])
            answer = self._answer_request(child, request)
            stream_id = len(self._streams) + 1
            if isinstance(answer, StreamedResponse) and answer.on_event is not None:
                self._streams[stream_id] = answer.on_event
            return {"answer": _answer_to_wire(answer, stream_id)}
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

    def _answer_request(self, child: _Child, request: HttpRequest) -> Answer:
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

    def _next(self, child: _Child, deadline: float, doing: str) -> dict[str, Any]:
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
                f"agent process {child.pid} {_ended(code)} during {doing}; "
                f"stderr tail:\n{tail or '(empty)'}"
            )
        return message

    def _kill(self, child: _Child, where: str, *, record: bool = True) -> None:
        code = child.kill()
        if record:
            self.kills.append(Kill(child.pid, where, code))
        child.discard()
        if self._child is child:
            self._child = None

    def _protocol_error(self, child: _Child, message: Mapping[str, Any]) -> Exception:
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


# --------------------------------------------------------------------------- child side


class _Channel:
    """The child's end of the pipe: commands in, requests out, each answered before the next."""

    def __init__(self, inp: IO[bytes], out: IO[bytes]) -> None:
        self._in = inp
        self._out = out
        self._lock = threading.Lock()
        self.now = 0.0

    def send(self, message: Mapping[str, Any]) -> None:
        self._out.write(_dumps(message))
        self._out.flush()

    def receive(self) -> dict[str, Any]:
        line = self._in.readline()
        if not line:
            os._exit(0)  # the parent is gone: nobody is left to answer
        message: dict[str, Any] = json.loads(line)
        if "now" in message:
            self.now = float(message["now"])
        return message

    def ask(self, message: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.send(message)
            return self.receive()

    # the interceptor's handler
    def http(self, request: HttpRequest) -> Answer:
        reply = self.ask({"t": "http", "request": _request_to_wire(request)})
        return _answer_from_wire(reply["answer"], self.event)

    def event(self, stream: int, index: int) -> None:
        self.ask({"t": "event", "stream": stream, "i": index})

    def boundary(self, point: str, step: str) -> None:
        self.ask({"t": "boundary", "point": point, "step": step})

    # the network guard's on_blocked: the parent's world records the refused attempt
    def blocked(self, what: str, target: str) -> None:
        self.ask({"t": "blocked", "what": what, "target": target})


class _ProxyClock:
    """The parent's fake clock as seen from the child: time arrives on every message."""

    def __init__(self, channel: _Channel) -> None:
        self._channel = channel

    def now(self) -> float:
        return self._channel.now

    def sleep(self, seconds: float) -> None:
        if not (seconds >= 0):
            raise ValueError(
                f"clock.sleep() needs a non-negative number of seconds, got {seconds!r}"
            )
        self._channel.ask({"t": "sleep", "s": seconds})


def _load(factory: str) -> Callable[[Endpoints], Any]:
    from harness.runner import load_factory

    return load_factory(factory)


def _serve(adapter: Any, channel: _Channel) -> None:
    """Answer commands until the parent closes the stream (or kills the process)."""
    from harness.driver import _summarise

    clock: Clock = _ProxyClock(channel)
    hook: BoundaryHook = channel.boundary
    with Interceptor(channel.http, on_blocked=channel.blocked):
        while True:
            message = channel.receive()
            try:
                value = _command(adapter, message, clock, hook)
            except Exception as exc:
                channel.send(
                    {
                        "t": "error",
                        "summary": _summarise(exc),
                        "contract": isinstance(exc, AdapterContractError),
                    }
                )
                continue
            channel.send({"t": "result", "value": value})


def _build(channel: _Channel, build: Callable[[], Any]) -> Any:
    from harness.driver import _summarise

    try:
        adapter = build()
    except Exception as exc:
        channel.send({"t": "fatal", "summary": _summarise(exc)})
        raise
    channel.send({"t": "ready"})
    return adapter


def _spawned_main(factory: str, endpoints_json: str) -> None:
    """A spawned child: the protocol on stdin/stdout, the agent's own output to stderr."""
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # fd 1 belongs to the protocol; anything the agent prints goes to stderr
    channel = _Channel(sys.stdin.buffer, protocol_out)
    endpoints = Endpoints(**json.loads(endpoints_json))
    adapter = _build(channel, lambda: _load(factory)(endpoints))
    _serve(adapter, channel)


def _zygote_main(ctrl_fd: int, factory: str, endpoints_json: str) -> None:
    """The zygote: import the agent once, then fork one child per request and reap them."""
    from harness.driver import _summarise

    ctrl = socket.socket(fileno=ctrl_fd)
    endpoints = Endpoints(**json.loads(endpoints_json))
    try:
        build = _load(factory)
    except Exception as exc:
        ctrl.sendall(_dumps({"t": "fatal", "summary": _summarise(exc)}))
        sys.exit(1)
    ctrl.sendall(_dumps({"t": "ready"}))
    children: set[int] = set()
    buffer = b""
    fds: list[int] = []
    try:
        while True:
            data, received, _flags, _addr = socket.recv_fds(ctrl, 65536, 2)
            fds.extend(received)
            if not data:
                return  # the parent is gone or done: its children go with it (finally)
            buffer += data
            while b"\n" in buffer:
                line, _, buffer = buffer.partition(b"\n")
                message = json.loads(line)
                if message["t"] == "fork":
                    channel_fd, stderr_fd = fds.pop(0), fds.pop(0)
                    pid = os.fork()
                    if pid == 0:  # pragma: no cover - runs in the forked child
                        _forked_main(ctrl, channel_fd, stderr_fd, build, endpoints)
                    os.close(channel_fd)
                    os.close(stderr_fd)
                    children.add(pid)
                    ctrl.sendall(_dumps({"t": "forked", "pid": pid}))
                elif message["t"] == "reap":
                    pid = int(message["pid"])
                    code = _waitpid(pid, float(message["timeout"]))
                    if code is not None:
                        children.discard(pid)
                    ctrl.sendall(_dumps({"t": "reaped", "pid": pid, "code": code}))
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _waitpid(pid, REAP_TIMEOUT_S)


def _waitpid(pid: int, timeout: float) -> int | None:
    """Reap ``pid``: its exit code (negative: the signal), None when still running at timeout."""
    ends = time.monotonic() + timeout
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if done == pid:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= ends:
            return None
        time.sleep(0.001)  # a SIGKILLed process is gone within a few milliseconds


def _forked_main(
    ctrl: socket.socket,
    channel_fd: int,
    stderr_fd: int,
    build: Callable[[Endpoints], Any],
    endpoints: Endpoints,
) -> None:  # pragma: no cover - runs in the forked child
    code = 0
    try:
        ctrl.close()
        os.dup2(stderr_fd, 1)
        os.dup2(stderr_fd, 2)
        os.close(stderr_fd)
        sock = socket.socket(fileno=channel_fd)
        channel = _Channel(sock.makefile("rb"), sock.makefile("wb"))
        adapter = _build(channel, lambda: build(endpoints))
        _serve(adapter, channel)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)  # never return into the zygote's loop, never run its atexit hooks


def _command(adapter: Any, message: Mapping[str, Any], clock: Clock, hook: BoundaryHook) -> Any:
    kind = message.get("t")
    if kind == "begin":
        guard = active_interceptor()
        if guard is not None:
            guard.allow_subprocess = bool(message.get("allow_subprocess", False))
        adapter.begin(
            WorldContext(
                Path(message["state_dir"]), clock, message["config"], int(message["seed"]), hook
            )
        )
        return None
    if kind == "start":
        return _outcome_to_wire(Outcome.read(adapter.start(message["payload"])))
    if kind == "resume":
        raw = message["decision"]
        decision = None if raw is None else Decision(**raw)
        return _outcome_to_wire(Outcome.read(adapter.resume(message["run_id"], decision)))
    if kind == "trace":
        trace = adapter.trace(message["run_id"])
        if trace is None:
            return None
        return {
            "records": [dict(r) for r in trace.records],
            "kept_in_full": bool(trace.kept_in_full),
        }
    raise AdapterContractError(f"the hard-kill child received an unknown command {kind!r}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--zygote":
        _zygote_main(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 3:
        _spawned_main(sys.argv[1], sys.argv[2])
    else:
        sys.exit(
            "usage: python -m harness.hardkill [--zygote FD] FACTORY ENDPOINTS_JSON "
            "(started by shakeout's hard-kill crash mode)"
        )
