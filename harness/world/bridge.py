"""The transport edge shared by ``httpx`` and ``httpx2``: the neutral request and the response.

Owns what the patched transports do with one request: convert the library's own request to the
neutral :class:`~faults.surfaces.HttpRequest` (:func:`sync_handler` / :func:`async_handler`),
keep the caller's own request object beside it for the router (:func:`native_request`), and turn
the handler's :data:`Answer` back into the library's response: a body over a ``ByteStream``, an
SSE body delivered event by event from a :class:`StreamedResponse` (cut where its plan says, with
the library's own protocol error), or the library's own exception for a ``TransportError``.
Which transports are patched, and when, is :mod:`harness.world.intercept`'s.

May import :mod:`faults.surfaces` (the neutral types), ``httpx`` and ``httpx2``; nothing of the
harness.

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

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
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
    "STACKS",
    "Answer",
    "Handler",
    "InterceptionError",
    "Stack",
    "StreamedResponse",
    "async_handler",
    "native_request",
    "sync_handler",
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
class Stack:
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


STACKS = (
    Stack("httpx", httpx, _HttpxSyncStream, _HttpxAsyncStream, _errors(httpx)),
    Stack("httpx2", httpx2, _Httpx2SyncStream, _Httpx2AsyncStream, _errors(httpx2)),
)


# The request being answered on this thread, next to its neutral copy: the Router matches
# respx patterns against the library's own request object (respx patterns read it by duck
# typing, httpx2 requests included), which saves building an httpx.Request probe (~40 µs).
_native = threading.local()


def native_request(neutral: HttpRequest) -> Any | None:
    """The calling library's own request object for ``neutral`` when it is the request being
    answered on this thread (``httpx.Request`` or ``httpx2.Request``), else None."""
    pair = getattr(_native, "pair", None)
    return pair[1] if pair is not None and pair[0] is neutral else None


def sync_handler(stack: Stack, answer: Callable[[HttpRequest], Answer]) -> Any:
    def handle_request(transport: Any, request: Any) -> Any:
        neutral = stack.to_neutral(request, request.read())
        _native.pair = (neutral, request)
        try:
            result = answer(neutral)
        finally:
            _native.pair = None
        return stack.to_response(result, request, is_async=False)

    return handle_request


def async_handler(stack: Stack, answer: Callable[[HttpRequest], Answer]) -> Any:
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
