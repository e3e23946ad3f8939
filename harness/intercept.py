"""Interception of every ``httpx`` and ``httpx2`` request in the process, answered by a handler.

While an :class:`Interceptor` is active, the four real transports (``httpx.HTTPTransport``,
``httpx.AsyncHTTPTransport``, ``httpx2.HTTPTransport``, ``httpx2.AsyncHTTPTransport``) answer
from a handler instead of the network, patched at class level so that SDK clients built before
or after entering, by the agent's own code, are covered without its cooperation. A socket guard
refuses any non-loopback connection for clients that use neither library. It fails closed: a
request no route matches gets a connect error, never the network.

Errors::

    InterceptionError (RuntimeError)           misuse: two interceptors active at once
    NetworkBlockedError (ConnectionRefusedError) a socket tried to leave the machine

Cost (measured on 2 shared cores, medians; ratios hold better than absolute times): converting a
request to the neutral form costs ~4-7 µs; a response is built over a ``ByteStream`` (~2 µs,
against ~18 µs for ``Response(content=...)`` as a MockTransport handler would write it). The
:class:`Router` matches respx patterns against the caller's own request object; a route's
pattern tests the path first, so a route that is not the request's costs ~1 µs and the matching
one ~7 µs: a world with a model route and six tool routes routes a request in ~10-15 µs, about
1-2% of one SDK chat completion through a bare ``httpx2.MockTransport`` (~1 ms). Matching a bare
neutral request (no caller object: a request relayed from a subprocess, or a test) first builds
an ``httpx.Request`` probe (~40 µs). At the transport, a tool request through a world costs about
what a MockTransport handler costs (~30-40 µs); a model request adds its JSON encoding (~13 µs).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import httpx
import httpx2
from respx.patterns import Pattern

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
    "Route",
    "Router",
    "StreamedResponse",
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
    """A socket tried to connect beyond loopback while shakeout intercepts the process."""


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


# --------------------------------------------------------------------------- socket guard


def _is_loopback(sock: socket.socket, address: Any) -> bool:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return True  # unix sockets and the like never leave the machine
    host = address[0] if isinstance(address, tuple) and address else address
    if not isinstance(host, str):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False  # a host name: refusing it avoids even the DNS lookup


def _blocked_message(address: Any) -> str:
    where = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else repr(address)
    return (
        f"shakeout blocked a connection to {where}: no request leaves the machine while a "
        "shakeout world is active. Route it in the scenario (tools or model), or send it "
        "through httpx/httpx2 so the world can answer it"
    )


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
    """

    def __init__(
        self, handler: Handler, on_blocked: Callable[[str, str], None] | None = None
    ) -> None:
        self._handler = handler
        self._on_blocked = on_blocked
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
        """Addresses the socket guard refused, in order (``host:port``)."""
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
    and once the world is gone that thread's requests would reach the real network. Idempotent;
    interceptors entered later keep the seal (they restore what they found).
    """
    global _SEALED
    if _SEALED:
        return
    connect = socket.socket.connect
    connect_ex = socket.socket.connect_ex

    def refuse(address: Any) -> NetworkBlockedError:
        return NetworkBlockedError(
            f"shakeout blocked a connection to {_where(address)}: an agent call that timed out "
            "earlier in this process may still be running, so no connection leaves the "
            "machine for the rest of the session. Fix the hang (see the run that reported "
            "'no terminal state within N s')"
        )

    def sealed_connect(sock: socket.socket, address: Any) -> None:
        if not _is_loopback(sock, address):
            raise refuse(address)
        connect(sock, address)

    def sealed_connect_ex(sock: socket.socket, address: Any) -> int:
        if not _is_loopback(sock, address):
            raise refuse(address)
        return connect_ex(sock, address)

    socket.socket.connect = sealed_connect  # type: ignore[method-assign, assignment]
    socket.socket.connect_ex = sealed_connect_ex  # type: ignore[method-assign, assignment]
    _SEALED = True


def _where(address: Any) -> str:
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else repr(address)


# The request being answered on this thread, next to its neutral copy: the Router matches
# respx patterns against the library's own request object (respx patterns read it by duck
# typing, httpx2 requests included), which saves building an httpx.Request probe (~40 µs).
_native = threading.local()


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


# --------------------------------------------------------------------------- router


@dataclass(frozen=True)
class Route:
    """A respx pattern and the handler that answers the requests it matches."""

    pattern: Pattern
    handler: Handler
    name: str = ""


class Router:
    """Routes neutral requests by respx pattern; first match wins; unmatched fails closed.

    Patterns are matched against an ``httpx.Request`` probe built once per request from the
    neutral request, whichever library sent it, so one set of routes covers both stacks.

    Args:
        on_unrouted: called with each request no route matched and the connect error it is
            refused with, before the refusal is returned.
    """

    def __init__(
        self, on_unrouted: Callable[[HttpRequest, TransportError], None] | None = None
    ) -> None:
        self._routes: list[Route] = []
        self._on_unrouted = on_unrouted

    @property
    def routes(self) -> tuple[Route, ...]:
        """The routes in match order."""
        return tuple(self._routes)

    def route(self, pattern: Pattern, handler: Handler, name: str = "") -> Route:
        """Add a route after the existing ones and return it."""
        added = Route(pattern, handler, name)
        self._routes.append(added)
        return added

    def match(self, request: HttpRequest) -> Route | None:
        """The first route whose pattern matches ``request``, or None."""
        pair = getattr(_native, "pair", None)
        if pair is not None and pair[0] is request:
            probe = pair[1]
        else:
            probe = httpx.Request(
                request.method, request.url, headers=request.headers, content=request.body
            )
        for candidate in self._routes:
            if candidate.pattern.match(probe):
                return candidate
        return None

    def __call__(self, request: HttpRequest) -> Answer:
        """Answer ``request`` from the first matching route, or refuse it with a connect error."""
        found = self.match(request)
        if found is not None:
            return found.handler(request)
        refusal = TransportError(
            TransportFailure.CONNECT_ERROR,
            f"shakeout: no scenario route for {request.method} {request.url}; add a route to "
            "the scenario's tools or model",
        )
        if self._on_unrouted is not None:
            self._on_unrouted(request, refusal)
        return refusal
