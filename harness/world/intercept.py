"""Interception of every ``httpx`` and ``httpx2`` request in the process, answered by a handler.

While an :class:`Interceptor` is active, the four real transports (``httpx.HTTPTransport``,
``httpx.AsyncHTTPTransport``, ``httpx2.HTTPTransport``, ``httpx2.AsyncHTTPTransport``) answer
from a handler instead of the network, patched at class level so that SDK clients built before
or after entering, by the agent's own code, are covered without its cooperation. A socket guard
refuses any non-loopback connection for clients that use neither library. It fails closed: a
request no route matches gets a connect error, never the network.

The network guard is one process-wide audit hook (``sys.addaudithook``), installed the first time
an interceptor is entered (a hook cannot be removed, so there is only ever one). It sees what
patching cannot: the C-level ``_socket.socket.connect``, UDP ``sendto``/``sendmsg`` (and
``sendto(MSG_FASTOPEN)``), name lookups and process creation, from any thread, including threads
the agent started itself or that outlive the run. While an interceptor is active it refuses, from
every thread except the harness's own marked operations (:func:`harness_operation`):

- a ``connect``/``sendto`` to anything but loopback (127.0.0.0/8, ::1, ``localhost``) or a unix
  socket: ``NetworkBlockedError``;
- a name lookup (``getaddrinfo``, ``gethostbyname``) of a name other than ``localhost``: the
  world's hosts are answered at the transport before any lookup, so this is always a call that
  would leave the world (``NetworkBlockedError``);
- a subprocess, exec, ``posix_spawn``, ``os.system`` or fork, unless the interceptor was built
  with ``allow_subprocess=True``: ``SubprocessBlockedError``;

and reports each refusal to ``on_blocked(what, target)``: the evidence of an attempt the agent's
code swallowed. Outside an active interceptor the hook returns at once (after
:func:`seal_network`, it keeps refusing non-loopback connections and sends, unrecorded).

A host name given to the C-level ``_socket.socket.connect``/``sendto`` is resolved before the
audit event is raised, so that lookup happens before the refusal; ``socket.socket.connect`` and
``connect_ex`` are also patched, which refuses such names without a lookup.

Errors::

    InterceptionError (RuntimeError)             misuse: two interceptors active at once
    NetworkBlockedError (ConnectionRefusedError) a socket or lookup tried to leave the machine
    SubprocessBlockedError (PermissionError)     a process was started while not allowed

Cost (measured on 2 shared cores, medians; ratios hold better than absolute times): converting a
request to the neutral form costs ~4-7 µs; a response is built over a ``ByteStream`` (~2 µs,
against ~18 µs for ``Response(content=...)`` as a MockTransport handler would write it). The
router (:mod:`harness.world.routing`) matches respx patterns against the caller's own request
object; a route's pattern tests the path first, so a route that is not the request's costs ~1 µs
and the matching one ~7 µs: a world with a model route and six tool routes routes a request in
~10-15 µs, about 1-2% of one SDK chat completion through a bare ``httpx2.MockTransport`` (~1 ms).
Matching a bare neutral request (no caller object: a request relayed from a subprocess, or a
test) first builds an ``httpx.Request`` probe (~40 µs). At the transport, a tool request through
a world costs about what a MockTransport handler costs (~30-40 µs); a model request adds its
JSON encoding (~13 µs).
"""

from __future__ import annotations

import ipaddress
import os
import platform
import shlex
import socket
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import httpx
import httpx2

from faults.surfaces import (
    HttpRequest,
    HttpResponse,
    StreamPlan,
    TransportError,
    TransportFailure,
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


@dataclass(frozen=True)
class StreamedResponse:
    """A response whose body is delivered event by event from a :class:`StreamPlan`.

    Attributes:
        status: the HTTP status.
        headers: response headers (``content-type: text/event-stream`` for SSE).
        plan: the events, terminator and optional cut to deliver.
        on_event: called with the event's 0-based index before each event is delivered (the
            world advances the fake clock there for slow streams); not called for the
            terminator.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    plan: StreamPlan
    on_event: Callable[[int], None] | None = None


Answer = HttpResponse | TransportError | StreamedResponse
"""What a handler answers a request with."""

Handler = Callable[[HttpRequest], Answer]
"""``handler(request) -> answer``; may raise ``AgentCrash``, which propagates unchanged."""


class InterceptionError(RuntimeError):
    """The interceptor was misused (for example, entered while another one is active)."""


class NetworkBlockedError(ConnectionRefusedError):
    """A socket or name lookup tried to reach beyond loopback while shakeout intercepts the
    process (an ``OSError``, so SDKs and HTTP clients treat it as a connection error)."""


class SubprocessBlockedError(PermissionError):
    """The agent tried to start a process while the scenario does not allow subprocesses."""


# --------------------------------------------------------------------------- streams


class _PlanBytes:
    """Yields a plan's events, then its terminator, cutting the body at ``cut_after`` bytes."""

    def __init__(
        self,
        plan: StreamPlan,
        on_event: Callable[[int], None] | None,
        cut_error: Callable[[str], BaseException],
    ) -> None:
        self._plan = plan
        self._on_event = on_event
        self._cut_error = cut_error

    def _chunks(self) -> Iterator[bytes]:
        plan = self._plan
        on_event = self._on_event
        budget = plan.cut_after
        if budget is not None:
            total = sum(len(e) for e in plan.events) + len(plan.terminator)
            if budget >= total:
                budget = None  # nothing is left to cut: the body arrives whole
        for i, event in enumerate(plan.events):
            if on_event is not None:
                on_event(i)
            if budget is not None:
                if len(event) >= budget:
                    yield from self._cut(event, budget)
                budget -= len(event)
            yield event
        if plan.terminator:
            if budget is not None:
                yield from self._cut(plan.terminator, budget)
            yield plan.terminator

    def _cut(self, chunk: bytes, budget: int) -> Iterator[bytes]:
        if budget > 0:
            yield chunk[:budget]
        cut_after = self._plan.cut_after
        raise self._cut_error(
            "peer closed connection without sending complete message body "
            f"(shakeout cut the stream after {cut_after} bytes)"
        )


class _HttpxSyncStream(_PlanBytes, httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        return self._chunks()


class _HttpxAsyncStream(_PlanBytes, httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks():
            yield chunk


class _Httpx2SyncStream(_PlanBytes, httpx2.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        return self._chunks()


class _Httpx2AsyncStream(_PlanBytes, httpx2.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks():
            yield chunk


# --------------------------------------------------------------------------- per-library bridge


@dataclass(frozen=True)
class _Stack:
    """What differs between httpx and httpx2 at the transport edge."""

    name: Literal["httpx", "httpx2"]
    module: Any
    sync_stream: type[_PlanBytes]
    async_stream: type[_PlanBytes]
    errors: dict[TransportFailure, Any]

    def to_neutral(self, request: Any, body: bytes) -> HttpRequest:
        return HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=dict(request.headers.items()),
            body=body,
            stack=self.name,
        )

    def to_response(self, answer: Answer, request: Any, *, is_async: bool) -> Any:
        if isinstance(answer, HttpResponse):
            # a ByteStream, not content=: the client reads it as it would a network body, and
            # this skips an eager read that costs ~15 µs per response
            headers = answer.headers
            if (
                answer.header("content-length") is None
                and answer.header("transfer-encoding") is None
            ):
                headers = (*headers, ("content-length", str(len(answer.body))))
            return self.module.Response(
                answer.status,
                headers=headers,
                stream=self.module.ByteStream(answer.body),
                request=request,
            )
        if isinstance(answer, StreamedResponse):
            cls = self.async_stream if is_async else self.sync_stream
            protocol_error = self.errors[TransportFailure.PROTOCOL_ERROR]

            def cut_error(message: str) -> BaseException:
                exc: BaseException = protocol_error(message, request=request)
                return exc

            stream = cls(answer.plan, answer.on_event, cut_error)
            return self.module.Response(
                answer.status, headers=answer.headers, stream=stream, request=request
            )
        if isinstance(answer, TransportError):
            message = answer.message or (
                f"shakeout injected {answer.kind.value} for {request.method} {request.url}"
            )
            raise self.errors[answer.kind](message, request=request)
        raise InterceptionError(
            f"the interception handler answered {request.method} {request.url} with "
            f"{type(answer).__name__}; it must return HttpResponse, TransportError or "
            "StreamedResponse"
        )


def _errors(module: Any) -> dict[TransportFailure, Any]:
    return {
        TransportFailure.CONNECT_TIMEOUT: module.ConnectTimeout,
        TransportFailure.READ_TIMEOUT: module.ReadTimeout,
        TransportFailure.CONNECT_ERROR: module.ConnectError,
        TransportFailure.CONNECTION_RESET: module.ReadError,
        TransportFailure.PROTOCOL_ERROR: module.RemoteProtocolError,
    }


_STACKS = (
    _Stack("httpx", httpx, _HttpxSyncStream, _HttpxAsyncStream, _errors(httpx)),
    _Stack("httpx2", httpx2, _Httpx2SyncStream, _Httpx2AsyncStream, _errors(httpx2)),
)


# --------------------------------------------------------------------------- network guard

_IP_FAMILIES = frozenset({socket.AF_INET, socket.AF_INET6})
# sockets of these families cannot leave the machine (the harness's own socketpairs are unix)
_LOCAL_FAMILIES = frozenset(
    f for f in (getattr(socket, "AF_UNIX", None), getattr(socket, "AF_NETLINK", None)) if f
)


def _local_host(host: Any) -> bool:
    """Whether ``host`` names this machine: loopback, unspecified (``0.0.0.0`` connects to the
    machine itself) or ``localhost`` (RFC 6761: every name below ``.localhost`` is loopback)."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.rstrip(".").lower()
    if name in ("", "localhost") or name.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def _ip_literal(host: Any) -> bool:
    """Whether ``host`` is a numeric address (looking it up sends nothing)."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return False
    return True


def _is_loopback(sock: Any, address: Any) -> bool:
    """Whether ``sock`` reaching ``address`` stays on this machine."""
    family = getattr(sock, "family", None)
    if family in _LOCAL_FAMILIES:
        return True
    if family not in _IP_FAMILIES:
        return False  # raw packets, bluetooth, CAN...: they can leave the machine
    host = address[0] if isinstance(address, tuple) and address else address
    # a host name other than localhost is refused: that also avoids its DNS lookup
    return _local_host(host)


def _blocked_message(address: Any) -> str:
    return (
        f"shakeout blocked a connection to {_where(address)}: no request leaves the machine "
        "while a shakeout world is active. Route it in the scenario (tools or model), or send "
        "it through httpx/httpx2 so the world can answer it"
    )


def _sealed_refusal(address: Any) -> NetworkBlockedError:
    return NetworkBlockedError(
        f"shakeout blocked a connection to {_where(address)}: an agent call that timed out "
        "earlier in this process may still be running, so no connection leaves the "
        "machine for the rest of the session. Fix the hang (see the run that reported "
        "'no terminal state within N s')"
    )


def _where(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{_text(address[0])}:{address[1]}"
    return repr(address)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _command_line(event: str, args: tuple[Any, ...]) -> str:
    """The command an audited process event was about to run, for the record."""
    if event in ("os.fork", "os.forkpty"):
        return event[3:] + "()"
    argv: Any = args[0] if event == "os.system" else args[1] if len(args) > 1 else None
    if argv is None and args:
        argv = args[0]  # Popen without args: the executable
    if isinstance(argv, str | bytes | os.PathLike):
        return _text(os.fsdecode(argv) if isinstance(argv, os.PathLike) else argv)
    try:
        return shlex.join(_text(os.fsdecode(a) if isinstance(a, os.PathLike) else a) for a in argv)
    except TypeError:
        return repr(argv)


# What the audit hook watches. Every other event of the process (imports, open(), compile...)
# returns after one frozenset lookup: the hook costs a Python call per audited event.
_SOCKET_EVENTS = {
    "socket.connect": "connect",
    "socket.sendto": "sendto",
    "socket.sendmsg": "sendto",
}
_LOOKUP_EVENTS = frozenset({"socket.getaddrinfo", "socket.gethostbyname"})
# os.spawn* and pty.spawn go through os.fork + os.exec; subprocess.Popen (fork_exec in C)
# raises only its own event. os.fork is policed as well: a forked copy of the agent is a
# process the run's world does not see into.
_PROCESS_EVENTS = frozenset(
    {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.fork", "os.forkpty"}
)
_WATCHED = frozenset(_SOCKET_EVENTS) | _LOOKUP_EVENTS | _PROCESS_EVENTS

# Which threads are policed: every thread of the process while an interceptor is active, not
# only the driver's agent-call threads, because an agent may start threads (or executors) of
# its own, and a thread left over from an earlier run must not slip out either. The harness's
# own operations during a run (hard-kill mode spawning its zygote and children) are exempted
# explicitly, by marking them on their thread with harness_operation(): a mark an agent never
# sets by accident, unlike a policy by socket family or thread name that agent code could match.
_harness = threading.local()
_HOOKED = False


@contextmanager
def harness_operation() -> Iterator[None]:
    """Exempt this thread from the network guard for the block: the harness's own work during a
    run (starting an agent process, its socketpairs), never the agent's."""
    depth = getattr(_harness, "depth", 0)
    _harness.depth = depth + 1
    try:
        yield
    finally:
        _harness.depth = depth


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in _WATCHED:
        return
    interceptor = _active
    if interceptor is None and not _SEALED:
        return
    if getattr(_harness, "depth", 0):
        return
    if interceptor is not None:
        interceptor._police(event, args)
        return
    what = _SOCKET_EVENTS.get(event)
    if what is not None and args[1] is not None and not _is_loopback(args[0], args[1]):
        raise _sealed_refusal(args[1])  # sealed, no run active: refused, nobody to tell


def active_interceptor() -> Interceptor | None:
    """The interceptor active in this process, if any."""
    return _active


def report_blocked(what: str, target: str) -> None:
    """Record, on the active interceptor, an attempt refused in an agent process that the
    harness runs for it (hard-kill mode): the child's guard refused it, the parent keeps it."""
    interceptor = _active
    if interceptor is not None:
        interceptor._note_blocked(what, target)


def _install_hook() -> None:
    """Add the process's one audit hook (it can never be removed; it stays cheap when idle)."""
    global _HOOKED
    if not _HOOKED:
        # The standard library runs `uname -p` the first time anything asks for the processor
        # name, and the openai SDK's platform header does (platform.platform()) on its first
        # request: a process the agent never meant to start. Ask once now, before any world is
        # active, so that the cached answer serves it and no correct agent fails for it.
        platform.uname().processor  # noqa: B018 - a cached property, read for its side effect
        sys.addaudithook(_audit)
        _HOOKED = True


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
        """Refuse (record and raise) an audited attempt to leave the world; see the module."""
        what = _SOCKET_EVENTS.get(event)
        if what is not None:
            address = args[1]
            if address is None or _is_loopback(args[0], address):
                return  # sendmsg on a connected socket: its connect was policed
            self._note_blocked(what, _where(address))
            if what == "connect":
                raise NetworkBlockedError(_blocked_message(address))
            raise NetworkBlockedError(
                f"shakeout blocked a datagram to {_where(address)}: nothing leaves the machine "
                "while a shakeout world is active. Route the call through the scenario's "
                "services"
            )
        if event in _LOOKUP_EVENTS:
            host = args[0]
            if host is None or _local_host(host) or _ip_literal(host):
                return  # loopback, or a numeric address whose connect is policed
            name = _text(host)
            self._note_blocked("getaddrinfo", name)
            raise NetworkBlockedError(
                f"shakeout blocked a DNS lookup of {name!r}: the world answers its own hosts "
                "before any lookup, so this name is outside the world and nothing may reach "
                "it. Route the call through the scenario's services"
            )
        if self.allow_subprocess:
            return
        command = _command_line(event, args)
        self._note_blocked("subprocess", command)
        raise SubprocessBlockedError(
            f"shakeout blocked a subprocess ({command}): no process may start while a "
            "shakeout world is active, as its traffic would bypass the world. Set "
            "'allow_subprocess: true' in the scenario if the agent must run one"
        )

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
            _install_hook()
            _active = self
            try:
                self._patch()
            except BaseException:
                self._restore()
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
        for stack in _STACKS:
            self._set(stack.module.HTTPTransport, "handle_request", _sync_handle(stack, answer))
            self._set(
                stack.module.AsyncHTTPTransport,
                "handle_async_request",
                _async_handle(stack, answer),
            )
        connect = socket.socket.connect
        connect_ex = socket.socket.connect_ex
        note = self._note_blocked

        def guarded_connect(sock: socket.socket, address: Any) -> None:
            if not _is_loopback(sock, address):
                note("connect", _where(address))
                raise NetworkBlockedError(_blocked_message(address))
            connect(sock, address)

        def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
            if not _is_loopback(sock, address):
                note("connect", _where(address))
                raise NetworkBlockedError(_blocked_message(address))
            return connect_ex(sock, address)

        self._set(socket.socket, "connect", guarded_connect)
        self._set(socket.socket, "connect_ex", guarded_connect_ex)


_SEALED = False


def seal_network() -> None:
    """From now on, refuse every non-loopback connection of this process, for good.

    Called after a run timed out: its hung agent call lives on in a thread Python cannot kill,
    and once the world is gone that thread's requests would reach the real network. The audit
    hook refuses every non-loopback connect and datagram at the C level from then on (no run
    active: refused, not recorded); ``socket.socket.connect``/``connect_ex`` are also patched so
    a host name is refused before its lookup. Idempotent; interceptors entered later keep the
    seal (they restore what they found).
    """
    global _SEALED
    if _SEALED:
        return
    _install_hook()
    connect = socket.socket.connect
    connect_ex = socket.socket.connect_ex

    def sealed_connect(sock: socket.socket, address: Any) -> None:
        if not _is_loopback(sock, address):
            raise _sealed_refusal(address)
        connect(sock, address)

    def sealed_connect_ex(sock: socket.socket, address: Any) -> int:
        if not _is_loopback(sock, address):
            raise _sealed_refusal(address)
        return connect_ex(sock, address)

    socket.socket.connect = sealed_connect  # type: ignore[method-assign, assignment]
    socket.socket.connect_ex = sealed_connect_ex  # type: ignore[method-assign, assignment]
    _SEALED = True


# The request being answered on this thread, next to its neutral copy: the Router matches
# respx patterns against the library's own request object (respx patterns read it by duck
# typing, httpx2 requests included), which saves building an httpx.Request probe (~40 µs).
_native = threading.local()


def native_request(neutral: HttpRequest) -> Any | None:
    """The calling library's own request object for ``neutral`` when it is the request being
    answered on this thread (``httpx.Request`` or ``httpx2.Request``), else None."""
    pair = getattr(_native, "pair", None)
    return pair[1] if pair is not None and pair[0] is neutral else None


def _sync_handle(stack: _Stack, answer: Callable[[HttpRequest], Answer]) -> Any:
    def handle_request(transport: Any, request: Any) -> Any:
        neutral = stack.to_neutral(request, request.read())
        _native.pair = (neutral, request)
        try:
            result = answer(neutral)
        finally:
            _native.pair = None
        return stack.to_response(result, request, is_async=False)

    return handle_request


def _async_handle(stack: _Stack, answer: Callable[[HttpRequest], Answer]) -> Any:
    async def handle_async_request(transport: Any, request: Any) -> Any:
        neutral = stack.to_neutral(request, await request.aread())
        # no await until the answer is in: the thread-local cannot be seen by another task
        _native.pair = (neutral, request)
        try:
            result = answer(neutral)
        finally:
            _native.pair = None
        return stack.to_response(result, request, is_async=True)

    return handle_async_request
