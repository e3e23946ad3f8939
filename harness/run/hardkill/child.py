"""The child side of hard-kill mode: the agent's process serving the parent's commands.

Owns the protocol loop run inside the agent's process (``python -m harness.run.hardkill``): the
channel to the parent, the proxy clock, the interceptor forwarding every request, the zygote's
fork loop and the forked child's entry point. Imports ``errors`` and ``messages`` of this
package (and ``processes`` for its reap timeout), the harness's adapter, driver and
interception types, and ``harness.run.agent_factory`` to build the agent; never the parent-side
proxy.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from faults.surfaces import BoundaryHook, Clock, HttpRequest
from harness.adapter import AdapterContractError, Decision, Endpoints, Outcome, WorldContext
from harness.run.agent_factory import load_factory
from harness.run.driver import summarise_exception
from harness.run.hardkill.messages import answer_from_wire, dumps, outcome_to_wire, request_to_wire
from harness.run.hardkill.processes import REAP_TIMEOUT_S
from harness.world.intercept import Answer, Interceptor, active_interceptor

__all__ = ["spawned_main", "zygote_main"]


class _Channel:
    """The child's end of the pipe: commands in, requests out, each answered before the next."""

    def __init__(self, inp: IO[bytes], out: IO[bytes]) -> None:
        self._in = inp
        self._out = out
        self._lock = threading.Lock()
        self.now = 0.0

    def send(self, message: Mapping[str, Any]) -> None:
        self._out.write(dumps(message))
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
        reply = self.ask({"t": "http", "request": request_to_wire(request)})
        return answer_from_wire(reply["answer"], self.event)

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


def _serve(adapter: Any, channel: _Channel) -> None:
    """Answer commands until the parent closes the stream (or kills the process)."""
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
                        "summary": summarise_exception(exc),
                        "contract": isinstance(exc, AdapterContractError),
                    }
                )
                continue
            channel.send({"t": "result", "value": value})


def _build(channel: _Channel, build: Callable[[], Any]) -> Any:
    try:
        adapter = build()
    except Exception as exc:
        channel.send({"t": "fatal", "summary": summarise_exception(exc)})
        raise
    channel.send({"t": "ready"})
    return adapter


def spawned_main(factory: str, endpoints_json: str) -> None:
    """A spawned child: the protocol on stdin/stdout, the agent's own output to stderr."""
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # fd 1 belongs to the protocol; anything the agent prints goes to stderr
    channel = _Channel(sys.stdin.buffer, protocol_out)
    endpoints = Endpoints(**json.loads(endpoints_json))
    adapter = _build(channel, lambda: load_factory(factory)(endpoints))
    _serve(adapter, channel)


def zygote_main(ctrl_fd: int, factory: str, endpoints_json: str) -> None:
    """The zygote: import the agent once, then fork one child per request and reap them."""
    ctrl = socket.socket(fileno=ctrl_fd)
    endpoints = Endpoints(**json.loads(endpoints_json))
    try:
        build = load_factory(factory)
    except Exception as exc:
        ctrl.sendall(dumps({"t": "fatal", "summary": summarise_exception(exc)}))
        sys.exit(1)
    ctrl.sendall(dumps({"t": "ready"}))
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
                    ctrl.sendall(dumps({"t": "forked", "pid": pid}))
                elif message["t"] == "reap":
                    pid = int(message["pid"])
                    code = _waitpid(pid, float(message["timeout"]))
                    if code is not None:
                        children.discard(pid)
                    ctrl.sendall(dumps({"t": "reaped", "pid": pid, "code": code}))
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
        return outcome_to_wire(Outcome.read(adapter.start(message["payload"])))
    if kind == "resume":
        raw = message["decision"]
        decision = None if raw is None else Decision(**raw)
        return outcome_to_wire(Outcome.read(adapter.resume(message["run_id"], decision)))
    if kind == "trace":
        trace = adapter.trace(message["run_id"])
        if trace is None:
            return None
        return {
            "records": [dict(r) for r in trace.records],
            "kept_in_full": bool(trace.kept_in_full),
        }
    raise AdapterContractError(f"the hard-kill child received an unknown command {kind!r}")
