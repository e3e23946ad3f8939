"""Tests for harness.world.bridge: answers become each library's own responses, streams and
errors."""

from __future__ import annotations

import asyncio

import httpx
import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from faults.surfaces import (
    HttpResponse,
    StreamPlan,
    TransportError,
    TransportFailure,
)
from harness.world.intercept import (
    InterceptionError,
    Interceptor,
    StreamedResponse,
)

# Building a client creates an SSL context (20-60 ms); these cheap ones are shared.
HTTPX = httpx.Client(verify=False)
HTTPX2 = httpx2.Client(verify=False)


# --------------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    ("kind", "httpx_exc", "httpx2_exc"),
    [
        (TransportFailure.CONNECT_TIMEOUT, httpx.ConnectTimeout, httpx2.ConnectTimeout),
        (TransportFailure.READ_TIMEOUT, httpx.ReadTimeout, httpx2.ReadTimeout),
        (TransportFailure.CONNECT_ERROR, httpx.ConnectError, httpx2.ConnectError),
        (TransportFailure.CONNECTION_RESET, httpx.ReadError, httpx2.ReadError),
        (TransportFailure.PROTOCOL_ERROR, httpx.RemoteProtocolError, httpx2.RemoteProtocolError),
    ],
)
def test_transport_errors_raise_the_callers_library_exception(
    kind: TransportFailure, httpx_exc: type[Exception], httpx2_exc: type[Exception]
) -> None:
    with Interceptor(lambda r: TransportError(kind, "boom")):
        with pytest.raises(httpx_exc, match="boom") as one:
            HTTPX.get("http://tool.test/a")
        with pytest.raises(httpx2_exc, match="boom") as two:
            HTTPX2.get("http://tool.test/a")

        async def async_call() -> None:
            async with httpx2.AsyncClient(verify=False) as client:
                await client.get("http://tool.test/a")

        with pytest.raises(httpx2_exc):
            asyncio.run(async_call())
    assert one.value.request.url == "http://tool.test/a"  # type: ignore[attr-defined]
    assert two.value.request.url == "http://tool.test/a"  # type: ignore[attr-defined]


def test_a_transport_error_without_message_says_shakeout_injected_it() -> None:
    answer = TransportError(TransportFailure.READ_TIMEOUT)
    with Interceptor(lambda r: answer), pytest.raises(httpx.ReadTimeout) as info:
        HTTPX.get("http://tool.test/slow")
    assert str(info.value) == "shakeout injected read_timeout for GET http://tool.test/slow"


def test_sse_stream_calls_on_event_before_each_event() -> None:
    plan = StreamPlan((b"data: 1\n\n", b"data: 2\n\n"), terminator=b"data: [DONE]\n\n")
    calls: list[int] = []
    streamed = StreamedResponse(200, (("content-type", "text/event-stream"),), plan, calls.append)
    received: list[bytes] = []
    with Interceptor(lambda r: streamed), HTTPX2.stream("GET", "http://model.test/s") as response:
        for chunk in response.iter_raw():
            received.append(chunk)
            calls.append(-1)
    assert received == [b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"]
    assert calls == [0, -1, 1, -1, -1]


def test_async_stream_is_cut_with_the_async_library_error() -> None:
    plan = StreamPlan((b"abcdef", b"ghij"), cut_after=8)

    async def read() -> bytes:
        got = b""
        async with (
            httpx.AsyncClient(verify=False) as client,
            client.stream("GET", "http://model.test/s") as response,
        ):
            async for chunk in response.aiter_raw():
                got += chunk
        return got

    with (
        Interceptor(lambda r: StreamedResponse(200, (), plan)),
        pytest.raises(httpx.RemoteProtocolError, match="cut the stream after 8 bytes"),
    ):
        asyncio.run(read())


def _deliver(plan: StreamPlan) -> tuple[bytes, BaseException | None]:
    got = b""
    error: BaseException | None = None
    with (
        Interceptor(lambda r: StreamedResponse(200, (), plan)),
        HTTPX2.stream("GET", "http://model.test/s") as response,
    ):
        try:
            for chunk in response.iter_raw():
                got += chunk
        except httpx2.RemoteProtocolError as exc:
            error = exc
    return got, error


@given(
    events=st.lists(st.binary(min_size=1, max_size=12), max_size=6),
    terminator=st.binary(max_size=6),
    cut=st.none() | st.integers(min_value=0, max_value=80),
)
def test_a_cut_stream_delivers_exactly_the_bytes_before_the_cut(
    events: list[bytes], terminator: bytes, cut: int | None
) -> None:
    plan = StreamPlan(tuple(events), terminator, cut_after=cut)
    whole = b"".join(events) + terminator
    got, error = _deliver(plan)
    if cut is None or cut >= len(whole):
        assert (got, error) == (whole, None)
    else:
        assert got == whole[:cut]
        assert error is not None


def test_a_handler_answer_of_the_wrong_type_is_explained() -> None:
    with (
        Interceptor(lambda r: "nope"),  # type: ignore[arg-type, return-value]
        pytest.raises(InterceptionError, match="must return HttpResponse, TransportError or"),
    ):
        HTTPX.get("http://tool.test/a")


def test_responses_carry_a_content_length_unless_the_answer_sets_one() -> None:
    answers = iter(
        [HttpResponse(200, (), b"abc"), HttpResponse(200, (("content-length", "9"),), b"abc")]
    )
    with Interceptor(lambda r: next(answers)):
        assert HTTPX2.get("http://x.test/").headers["content-length"] == "3"
        assert HTTPX2.get("http://x.test/").headers["content-length"] == "9"
