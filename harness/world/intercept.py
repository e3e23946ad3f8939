"""Interception of every ``httpx`` and ``httpx2`` request in the process, answered by a handler.

While an :class:`Interceptor` is active, the four real transports (``httpx.HTTPTransport``,
``httpx.AsyncHTTPTransport``, ``httpx2.HTTPTransport``, ``httpx2.AsyncHTTPTransport``) answer
from a handler instead of the network, patched at class level so that SDK clients built before
or after entering, by the agent's own code, are covered without its cooperation. A socket guard
refuses any non-loopback connection for clients that use neither library. It fails closed: a
request no route matches gets a connect error, never the network.

Owns the interceptor's life: one active per process, what it patches and restores, the requests
it counted, the handler's errors and the refusals it recorded. The request/response conversion
at the transport edge is :mod:`harness.world.bridge`'s; the audit hook, the loopback policy and the
seal are :mod:`harness.world.netguard`'s. May import those two and :mod:`faults.surfaces`; the names
callers use from either (answers, errors, ``harness_operation``, ``seal_network``,
``native_request``) are re-exported here, the interception's public surface.

The network guard is one process-wide audit hook (``sys.addaudithook``), installed the first time
an interceptor is entered (a hook cannot be removed, so there is only ever one). It sees what
patching cannot: the C-level ``_socket.socket.connect``, UDP ``sendto``/``sendmsg`` (and
``sendto(MSG_FASTOPEN)``), name lookups and process creation, from any thread, including threads
the agent started itself or that outlive the run. While an interceptor is active it refuses
(see :mod:`harness.world.netguard` for what), from every thread except the harness's own marked
operations (:func:`harness_operation`), and reports each refusal to ``on_blocked(what,
target)``: the evidence of an attempt the agent's code swallowed. Outside an active interceptor
the hook returns at once (after :func:`seal_network`, it keeps refusing non-loopback
connections and sends, unrecorded).

Errors::

    InterceptionError (RuntimeError)             misuse: two interceptors active at once
    NetworkBlockedError (ConnectionRefusedError) a socket or lookup tried to leave the machine
    SubprocessBlockedError (PermissionError)     a process was started while not allowed
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from faults.surfaces import HttpRequest
from harness.world import netguard
from harness.world.bridge import (
    STACKS,
    Answer,
    Handler,
    InterceptionError,
    StreamedResponse,
    async_handler,
    native_request,
    sync_handler,
)
from harness.world.netguard import (
    NetworkBlockedError,
    SubprocessBlockedError,
    harness_operation,
    seal_network,
)

__all__ = [
    "Answer",
    "Handler",
    "InterceptionError",
    "Interceptor",
    "NetworkBlockedError",
    "StreamedResponse",
    "SubprocessBlockedError",
    "active_interceptor",
    "harness_operation",
    "native_request",
    "report_blocked",
    "seal_network",
]


def active_interceptor() -> Interceptor | None:
    """The interceptor active in this process, if any."""
    return _active


def report_blocked(what: str, target: str) -> None:
    """Record, on the active interceptor, an attempt refused in an agent process that the
    harness runs for it (hard-kill mode): the child's guard refused it, the parent keeps it."""
    interceptor = _active
    if interceptor is not None:
        interceptor._note_blocked(what, target)


# --------------------------------------------------------------------------- interceptor

_INHERITED = object()
_ACTIVE_LOCK = threading.Lock()
_active: Interceptor | None = None


class Interceptor:
    """Answers every httpx/httpx2 request in the process from ``handler`` while active.

    Use as a context manager. Only one interceptor may be active per process at a time;
    everything patched is restored on exit, even when the block raises.

    Args:
        handler: called with each intercepted request (body read fully); returns the answer.
            Exceptions it raises propagate to the caller (``AgentCrash`` unchanged); ordinary
            exceptions are also kept in :attr:`handler_errors`, because SDKs disguise them as
            connection errors.
        on_blocked: called with ``(what, target)`` for each attempt the network guard refused:
            ``connect``/``sendto`` and ``host:port``, ``getaddrinfo`` and the host name, or
            ``subprocess`` and the command line. Called on the attempting thread.
        allow_subprocess: let processes start (subprocess, exec, spawn, system, fork) instead
            of refusing them; sockets and lookups stay guarded in this process.
    """

    def __init__(
        self,
        handler: Handler,
        on_blocked: Callable[[str, str], None] | None = None,
        *,
        allow_subprocess: bool = False,
    ) -> None:
        self._handler = handler
        self._on_blocked = on_blocked
        self.allow_subprocess = allow_subprocess
        self._saved: list[tuple[Any, str, Any]] = []
        self._blocked: list[str] = []
        self._errors: list[Exception] = []
        self._count = 0

    @property
    def request_count(self) -> int:
        """How many requests the transports handed to the handler."""
        return self._count

    @property
    def blocked(self) -> tuple[str, ...]:
        """Targets the network guard refused, in order (``host:port``, host or command)."""
        return tuple(self._blocked)

    @property
    def handler_errors(self) -> tuple[Exception, ...]:
        """Exceptions the handler raised (harness faults, not the agent's)."""
        return tuple(self._errors)

    def _note_blocked(self, what: str, target: str) -> None:
        """Keep a refused attempt and tell the world (the evidence a swallowed error leaves)."""
        self._blocked.append(target)
        if self._on_blocked is not None:
            self._on_blocked(what, target)

    def _police(self, event: str, args: tuple[Any, ...]) -> None:
        """Refuse (record and raise) an audited attempt to leave the world (the policy is
        :func:`harness.world.netguard.police`)."""
        netguard.police(event, args, self._note_blocked, self.allow_subprocess)

    def _answer(self, request: HttpRequest) -> Answer:
        self._count += 1
        try:
            return self._handler(request)
        except Exception as exc:
            self._errors.append(exc)
            raise

    def __enter__(self) -> Interceptor:
        global _active
        with _ACTIVE_LOCK:
            if _active is not None:
                which = "this interceptor is" if _active is self else "another Interceptor is"
                raise InterceptionError(
                    f"shakeout cannot intercept twice: {which} already active in this process; "
                    "leave the active world before entering another (run worlds one after "
                    "another, or in separate xdist workers)"
                )
            netguard.install_hook()
            _active = self
            netguard.engage(self._police)
            try:
                self._patch()
            except BaseException:
                self._restore()
                netguard.disengage()
                _active = None
                raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _active
        with _ACTIVE_LOCK:
            self._restore()
            netguard.disengage()
            _active = None

    def _set(self, owner: Any, name: str, value: Any) -> None:
        # an inherited attribute (socket.socket.connect lives on _socket.socket) is restored by
        # deleting our override, not by copying the base's method onto the subclass
        self._saved.append((owner, name, owner.__dict__.get(name, _INHERITED)))
        setattr(owner, name, value)

    def _restore(self) -> None:
        while self._saved:
            owner, name, original = self._saved.pop()
            if original is _INHERITED:
                delattr(owner, name)
            else:
                setattr(owner, name, original)

    def _patch(self) -> None:
        answer = self._answer
        for stack in STACKS:
            self._set(stack.module.HTTPTransport, "handle_request", sync_handler(stack, answer))
            self._set(
                stack.module.AsyncHTTPTransport,
                "handle_async_request",
                async_handler(stack, answer),
            )
        connect, connect_ex = netguard.guarded_connects(self._note_blocked)
        self._set(socket.socket, "connect", connect)
        self._set(socket.socket, "connect_ex", connect_ex)
