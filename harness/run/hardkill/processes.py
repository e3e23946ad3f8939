"""The agent's processes, parent side: spawning a fresh interpreter, or forking from a zygote.

Owns starting, reading from, writing to, killing and reaping one agent process (``Child``,
``SpawnedChild``, ``ForkedChild``) and the single-threaded ``Zygote`` that forks them. Imports
``errors`` and ``messages`` of this package and ``harness.adapter`` (``Endpoints``); never the
proxy adapter or the child-side server (it starts the latter by module name).
"""

from __future__ import annotations

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
from collections.abc import Mapping
from typing import IO, Any

from harness.adapter import Endpoints
from harness.run.hardkill.errors import AgentProcessDied, ended
from harness.run.hardkill.messages import dumps

__all__ = ["REAP_TIMEOUT_S", "STARTUP_TIMEOUT_S", "Child", "ForkedChild", "SpawnedChild", "Zygote"]

STARTUP_TIMEOUT_S = 60.0
"""How long a child may take to import the agent and build its adapter (real seconds)."""

REAP_TIMEOUT_S = 10.0
"""How long to wait for a SIGKILLed child to be reaped before giving up on it."""

STDERR_TAIL = 2000
"""Characters of a dead child's stderr kept in its error message."""


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


class Child:
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
            self._write(dumps(message))

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


class SpawnedChild(Child):
    """A fresh interpreter per process (``python -m harness.run.hardkill``): ~1 s to import."""

    def __init__(self, factory: str, endpoints: Endpoints) -> None:
        stderr = _stderr_file()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness.run.hardkill", factory, _endpoints_json(endpoints)],
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


class Zygote:
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
                "harness.run.hardkill",
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
                    f"the hard-kill zygote {self.proc.pid} {ended(self.proc.poll())}; its "
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
            socket.send_fds(self._ctrl, [dumps({"t": "fork"})], [channel.fileno(), stderr.fileno()])
            return int(self._reply(STARTUP_TIMEOUT_S)["pid"])

    def reap(self, pid: int, timeout: float) -> int | None:
        """Wait (in the zygote) for child ``pid`` to end; its exit code, None after timeout."""
        with self._lock:
            try:
                self._ctrl.sendall(dumps({"t": "reap", "pid": pid, "timeout": timeout}))
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


class ForkedChild(Child):
    """A child forked by the zygote, talking over a socket pair."""

    def __init__(self, zygote: Zygote) -> None:
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
