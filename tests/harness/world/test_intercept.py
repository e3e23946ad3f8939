"""Tests for harness.world.intercept: both stacks, sync and async, fail closed, canaries that
count."""

from __future__ import annotations

import _socket
import asyncio
import http.server
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st
from respx.patterns import M

from faults.surfaces import (
    AgentCrash,
    HttpRequest,
    HttpResponse,
    StreamPlan,
    TransportError,
    TransportFailure,
)
from harness.world.intercept import (
    Answer,
    InterceptionError,
    Interceptor,
    NetworkBlockedError,
    StreamedResponse,
    SubprocessBlockedError,
    harness_operation,
)
from harness.world.routing import Router

# Building a client creates an SSL context (20-60 ms); these cheap ones are shared.
HTTPX = httpx.Client(verify=False)
HTTPX2 = httpx2.Client(verify=False)

# --------------------------------------------------------------------------- the canary server


@dataclass
class Canary:
    """A loopback HTTP server that counts every request that reaches it."""

    url: str
    hits: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        disable_nagle_algorithm = True

        def _answer(self) -> None:
            hits.append(f"{self.command} {self.path}")
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            body = b'{"from": "network"}'
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Canary(f"http://127.0.0.1:{server.server_address[1]}", hits)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def openai_client(canary: Canary) -> openai.OpenAI:
    return openai.OpenAI(base_url=canary.url + "/v1", api_key="sk-test", max_retries=0)


@pytest.fixture(scope="module")
def anthropic_client(canary: Canary) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=canary.url, api_key="sk-test", max_retries=0)


def answer_all(seen: list[HttpRequest]) -> object:
    def handler(request: HttpRequest) -> Answer:
        seen.append(request)
        return HttpResponse.of_json(200, {"from": "shakeout", "stack": request.stack})

    return handler


def test_the_canary_counts_requests_that_bypass_interception(canary: Canary) -> None:
    # the control: without an interceptor the request reaches the canary, so the zero-hit
    # assertions below would fail if interception were bypassed
    before = len(canary.hits)
    assert HTTPX.get(canary.url + "/control").json() == {"from": "network"}
    assert HTTPX2.get(canary.url + "/control").json() == {"from": "network"}
    assert len(canary.hits) == before + 2


def test_plain_httpx_and_httpx2_sync_are_intercepted(canary: Canary) -> None:
    before = len(canary.hits)
    seen: list[HttpRequest] = []
    with Interceptor(answer_all(seen)):  # type: ignore[arg-type]
        one = HTTPX.post(canary.url + "/a", json={"x": 1})
        two = HTTPX2.get(canary.url + "/b?q=1", headers={"X-Tag": "t"})
    assert isinstance(one, httpx.Response)
    assert isinstance(two, httpx2.Response)
    assert one.json() == {"from": "shakeout", "stack": "httpx"}
    assert two.json() == {"from": "shakeout", "stack": "httpx2"}
    assert [r.method for r in seen] == ["POST", "GET"]
    assert seen[0].json() == {"x": 1}
    assert seen[1].path == "/b"
    assert seen[1].header("x-tag") == "t"
    assert len(canary.hits) == before


def test_plain_httpx_and_httpx2_async_are_intercepted(canary: Canary) -> None:
    before = len(canary.hits)
    seen: list[HttpRequest] = []

    async def both() -> tuple[object, object]:
        async with httpx.AsyncClient(verify=False) as c1, httpx2.AsyncClient(verify=False) as c2:
            r1 = await c1.post(canary.url + "/a", content=b"raw")
            r2 = await c2.get(canary.url + "/b")
            return r1.json(), r2.json()

    with Interceptor(answer_all(seen)):  # type: ignore[arg-type]
        got = asyncio.run(both())
    assert got == ({"from": "shakeout", "stack": "httpx"}, {"from": "shakeout", "stack": "httpx2"})
    assert seen[0].body == b"raw"
    assert len(canary.hits) == before


def test_openai_sdk_is_intercepted(canary: Canary, openai_client: openai.OpenAI) -> None:
    before = len(canary.hits)
    seen: list[HttpRequest] = []

    def handler(request: HttpRequest) -> Answer:
        seen.append(request)
        return HttpResponse.of_json(200, {"object": "list", "data": []})

    with Interceptor(handler):
        page = openai_client.models.list()
    assert list(page) == []
    assert seen[0].stack == "httpx2"
    assert seen[0].url == canary.url + "/v1/models"
    assert len(canary.hits) == before


def test_openai_async_sdk_is_intercepted(canary: Canary) -> None:
    before = len(canary.hits)

    async def call() -> int:
        client = openai.AsyncOpenAI(base_url=canary.url + "/v1", api_key="k", max_retries=0)
        async with client:
            page = await client.models.list()
            return len(page.data)

    with Interceptor(lambda r: HttpResponse.of_json(200, {"object": "list", "data": []})):
        assert asyncio.run(call()) == 0
    assert len(canary.hits) == before


def test_anthropic_sdk_is_intercepted(
    canary: Canary, anthropic_client: anthropic.Anthropic
) -> None:
    before = len(canary.hits)
    seen: list[HttpRequest] = []

    def handler(request: HttpRequest) -> Answer:
        seen.append(request)
        return HttpResponse.of_json(200, {"data": [], "has_more": False})

    with Interceptor(handler):
        list(anthropic_client.models.list())
    assert seen[0].url == canary.url + "/v1/models"
    assert len(canary.hits) == before


def test_unrouted_sdk_request_fails_closed_and_is_recorded(
    canary: Canary, openai_client: openai.OpenAI
) -> None:
    before = len(canary.hits)
    refused: list[tuple[HttpRequest, TransportError]] = []
    router = Router(on_unrouted=lambda r, e: refused.append((r, e)))
    router.route(M(path="/never"), lambda r: HttpResponse(204))
    with Interceptor(router), pytest.raises(openai.APIConnectionError):
        openai_client.models.list()
    assert len(refused) == 1
    request, error = refused[0]
    assert request.url == canary.url + "/v1/models"
    assert error.kind is TransportFailure.CONNECT_ERROR
    assert "shakeout: no scenario route for GET" in error.message
    assert "add a route to the scenario's tools or model" in error.message
    assert len(canary.hits) == before


def test_unrouted_plain_request_raises_connect_error_naming_the_fix(canary: Canary) -> None:
    with Interceptor(Router()), pytest.raises(httpx2.ConnectError) as info:
        HTTPX2.get(canary.url + "/x")
    assert "no scenario route for GET " + canary.url + "/x" in str(info.value)
    assert info.value.request.url == canary.url + "/x"


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


def test_agent_crash_propagates_unchanged_through_the_sdk(openai_client: openai.OpenAI) -> None:
    crash = AgentCrash("crash here")

    def handler(request: HttpRequest) -> Answer:
        raise crash

    with Interceptor(handler) as interceptor, pytest.raises(AgentCrash) as info:
        openai_client.models.list()
    assert info.value is crash
    assert interceptor.handler_errors == ()


def test_handler_bugs_are_kept_because_sdks_disguise_them() -> None:
    def handler(request: HttpRequest) -> Answer:
        raise KeyError("harness bug")

    with Interceptor(handler) as interceptor, pytest.raises(KeyError):
        HTTPX.get("http://tool.test/a")
    assert [type(e) for e in interceptor.handler_errors] == [KeyError]
    assert interceptor.request_count == 1


def test_a_handler_answer_of_the_wrong_type_is_explained() -> None:
    with (
        Interceptor(lambda r: "nope"),  # type: ignore[arg-type, return-value]
        pytest.raises(InterceptionError, match="must return HttpResponse, TransportError or"),
    ):
        HTTPX.get("http://tool.test/a")


# --------------------------------------------------------------------------- lifecycle


def _patched_state() -> tuple[object, ...]:
    return (
        httpx.HTTPTransport.handle_request,
        httpx.AsyncHTTPTransport.handle_async_request,
        httpx2.HTTPTransport.handle_request,
        httpx2.AsyncHTTPTransport.handle_async_request,
        socket.socket.connect,
        socket.socket.connect_ex,
        "connect" in socket.socket.__dict__,
    )


def test_everything_is_restored_on_exit_even_after_an_exception() -> None:
    before = _patched_state()
    during: list[tuple[object, ...]] = []

    def body() -> None:
        with Interceptor(lambda r: HttpResponse(204)):
            during.append(_patched_state())
            raise RuntimeError("inside")

    with pytest.raises(RuntimeError, match="inside"):
        body()
    assert during[0] != before
    assert _patched_state() == before


def test_two_active_interceptors_are_refused() -> None:
    outer = Interceptor(lambda r: HttpResponse(204))
    with outer:
        with (
            pytest.raises(InterceptionError, match="another Interceptor is already active"),
            Interceptor(lambda r: HttpResponse(204)),
        ):
            pass  # pragma: no cover
        with pytest.raises(InterceptionError, match="this interceptor is already active"):
            outer.__enter__()
        assert HTTPX.get("http://tool.test/").status_code == 204
    with Interceptor(lambda r: HttpResponse(201)):
        assert HTTPX.get("http://tool.test/").status_code == 201


# --------------------------------------------------------------------------- socket guard


@pytest.mark.parametrize("address", [("10.255.255.1", 9), ("example.com", 80)])
def test_socket_guard_refuses_non_loopback(address: tuple[str, int]) -> None:
    with Interceptor(lambda r: HttpResponse(204)) as interceptor:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            with pytest.raises(NetworkBlockedError) as info:
                sock.connect(address)
            with pytest.raises(NetworkBlockedError):
                sock.connect_ex(address)
        finally:
            sock.close()
    message = str(info.value)
    assert "shakeout blocked a connection to" in message
    assert "no request leaves the machine" in message
    assert interceptor.blocked == (f"{address[0]}:{address[1]}",) * 2


def test_socket_guard_lets_loopback_through(canary: Canary) -> None:
    port = int(canary.url.rsplit(":", 1)[1])
    with Interceptor(lambda r: HttpResponse(204)) as interceptor:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            assert sock.connect_ex(("localhost", port)) == 0
        finally:
            sock.close()
    assert interceptor.blocked == ()


# --------------------------------------------------------------------------- the audit hook


def _c_connect() -> None:
    sock = _socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # below the patched class
    try:
        sock.connect(("203.0.113.1", 80))
    finally:
        sock.close()


def _udp_send() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"x", ("203.0.113.1", 53))


def _fast_open() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.sendto(b"GET / HTTP/1.0\r\n\r\n", socket.MSG_FASTOPEN, ("203.0.113.1", 80))


def _udp_sendmsg() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.sendmsg([b"x"], [], 0, ("2001:db8::1", 53))


def _lookup() -> None:
    socket.getaddrinfo("example.invalid", 80)


def _gethostbyname() -> None:
    socket.gethostbyname("example.invalid")


def _run_true() -> None:
    subprocess.run(["true"], check=True)


def _system() -> None:
    os.system("true")


def _posix_spawn() -> None:
    os.posix_spawn("/bin/true", ["true", "-x"], os.environ)


def _fork() -> None:
    if os.fork() == 0:  # pragma: no cover - the guard refuses the fork
        os._exit(0)


LEAVING = [
    (_c_connect, NetworkBlockedError, "connect", "203.0.113.1:80"),
    (_udp_send, NetworkBlockedError, "sendto", "203.0.113.1:53"),
    (_fast_open, NetworkBlockedError, "sendto", "203.0.113.1:80"),
    (_udp_sendmsg, NetworkBlockedError, "sendto", "2001:db8::1:53"),
    (_lookup, NetworkBlockedError, "getaddrinfo", "example.invalid"),
    (_gethostbyname, NetworkBlockedError, "getaddrinfo", "example.invalid"),
    (_run_true, SubprocessBlockedError, "subprocess", "true"),
    (_system, SubprocessBlockedError, "subprocess", "true"),
    (_posix_spawn, SubprocessBlockedError, "subprocess", "true -x"),
    (_fork, SubprocessBlockedError, "subprocess", "fork()"),
]


@pytest.mark.parametrize(("attempt", "error", "what", "target"), LEAVING)
def test_the_audit_hook_refuses_and_records_what_patching_misses(
    attempt: Any, error: type[OSError], what: str, target: str
) -> None:
    seen: list[tuple[str, str]] = []
    with (
        Interceptor(lambda r: HttpResponse(204), on_blocked=lambda *b: seen.append(b)) as i,
        pytest.raises(error, match="shakeout blocked"),
    ):
        attempt()
    assert seen == [(what, target)]
    assert i.blocked == (target,)
    assert issubclass(error, OSError)  # SDKs and clients take it for a connection error


def test_the_audit_hook_polices_threads_the_agent_starts() -> None:
    seen: list[tuple[str, str]] = []
    caught: list[BaseException] = []

    def agent_thread() -> None:
        try:
            _lookup()
        except OSError as exc:
            caught.append(exc)  # the agent swallows it: the record still has it

    with Interceptor(lambda r: HttpResponse(204), on_blocked=lambda *b: seen.append(b)):
        thread = threading.Thread(target=agent_thread, name="agents-own-worker")
        thread.start()
        thread.join(timeout=10)
    assert [type(e) for e in caught] == [NetworkBlockedError]
    assert seen == [("getaddrinfo", "example.invalid")]


def test_loopback_unix_sockets_and_localhost_stay_allowed(canary: Canary) -> None:
    port = int(canary.url.rsplit(":", 1)[1])
    with Interceptor(lambda r: HttpResponse(204), on_blocked=lambda *b: pytest.fail(str(b))):
        sock = _socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.connect(("127.0.0.1", port))  # C level, loopback
        finally:
            sock.close()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"x", ("127.0.0.1", 9))
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with mine, theirs:
            socket.send_fds(mine, [b"fd"], [theirs.fileno()])
            assert socket.recv_fds(theirs, 16, 1)[0] == b"fd"
        assert socket.getaddrinfo("localhost", port)
        assert socket.getaddrinfo("127.0.0.1", port)
        assert socket.getaddrinfo("203.0.113.1", 80)  # numeric: no lookup; its connect is policed
        assert socket.gethostbyname("localhost").startswith("127.")


def test_allowed_subprocesses_really_run_and_sockets_stay_guarded() -> None:
    seen: list[tuple[str, str]] = []
    with Interceptor(
        lambda r: HttpResponse(204), on_blocked=lambda *b: seen.append(b), allow_subprocess=True
    ):
        done = subprocess.run(["sh", "-c", "echo ran"], capture_output=True, text=True, check=True)
        assert os.system("true") == 0
        with pytest.raises(NetworkBlockedError):
            _c_connect()
    assert done.stdout == "ran\n"
    assert seen == [("connect", "203.0.113.1:80")]


def test_the_harness_own_operations_are_exempt() -> None:
    seen: list[tuple[str, str]] = []
    with Interceptor(lambda r: HttpResponse(204), on_blocked=lambda *b: seen.append(b)):
        with harness_operation(), harness_operation():
            subprocess.run(["true"], check=True)
        with pytest.raises(SubprocessBlockedError):  # the mark ends with its block
            subprocess.run(["true"], check=True)
    assert seen == [("subprocess", "true")]


def test_outside_an_active_interceptor_nothing_is_blocked() -> None:
    # In a child process, so that a seal set by another test cannot hide a false refusal: after
    # an interceptor came and went, the hook is installed and must let everything through.
    code = (
        "import _socket, os, socket, subprocess\n"
        "from harness.world.intercept import Interceptor, NetworkBlockedError\n"
        "from faults.surfaces import HttpResponse\n"
        "with Interceptor(lambda r: HttpResponse(204)):\n"
        "    pass\n"
        "s = _socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "try:\n"
        "    s.connect(('203.0.113.1', 9))  # UDP: sends nothing\n"
        "except NetworkBlockedError:\n"
        "    raise\n"
        "except OSError:\n"
        "    pass  # no route in this sandbox: the system's answer, not shakeout's\n"
        "assert subprocess.run(['true']).returncode == 0\n"
        "assert os.system('true') == 0\n"
        "socket.getaddrinfo('localhost', 80)\n"
        "print('nothing blocked')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "nothing blocked" in done.stdout


# --------------------------------------------------------------------------- router


def test_router_first_match_wins_on_either_stack() -> None:
    router = Router()
    router.route(M(method="GET", path__regex=r"^/orders/\d+$"), lambda r: HttpResponse(200))
    router.route(M(path__startswith="/orders"), lambda r: HttpResponse(202))
    router.route(M(host="tool.test"), lambda r: HttpResponse(203))
    with Interceptor(router):
        assert HTTPX.get("http://tool.test/orders/42").status_code == 200
        assert HTTPX2.post("http://tool.test/orders/42").status_code == 202
        assert HTTPX2.get("http://tool.test/other").status_code == 203
        with pytest.raises(httpx.ConnectError):
            HTTPX.get("http://elsewhere.test/")
    assert [r.name for r in router.routes] == ["", "", ""]


def test_router_match_reports_the_route() -> None:
    router = Router()
    route = router.route(M(method="POST"), lambda r: HttpResponse(200), name="post")
    assert router.match(HttpRequest("POST", "http://x.test/", {})) is route
    assert router.match(HttpRequest("GET", "http://x.test/", {})) is None


def test_router_patterns_on_headers_and_body_match_the_callers_request() -> None:
    router = Router()
    router.route(
        M(method="POST", json={"k": 1}, headers={"x-tenant": "a"}), lambda r: HttpResponse(200)
    )
    router.route(M(params={"page": "2"}), lambda r: HttpResponse(206))
    with Interceptor(router):
        assert (
            HTTPX2.post("http://x.test/", json={"k": 1}, headers={"x-tenant": "a"}).status_code
            == 200
        )
        assert HTTPX.get("http://x.test/list?page=2").status_code == 206
        with pytest.raises(httpx2.ConnectError):
            HTTPX2.post("http://x.test/", json={"k": 2}, headers={"x-tenant": "a"})


def test_routers_over_the_same_patterns_share_a_memo_but_answer_with_their_own_handlers() -> None:
    # a world builds its router per run over cached patterns: the second run's requests are
    # routed from the memo, and must reach the second run's handlers
    orders, other = M(method="GET", path__startswith="/orders"), M(host="tool.test")
    answered: list[str] = []

    def handler(label: str, status: int) -> Callable[[HttpRequest], Answer]:
        def answer(request: HttpRequest) -> Answer:
            answered.append(label)
            return HttpResponse(status)

        return answer

    for run in ("first", "second"):
        router = Router()
        router.route(orders, handler(f"{run}:orders", 200))
        router.route(other, handler(f"{run}:other", 201))
        with Interceptor(router):
            assert HTTPX.get("http://tool.test/orders/1").status_code == 200
            assert HTTPX2.get("http://tool.test/orders/1").status_code == 200
            assert HTTPX.post("http://tool.test/orders/1").status_code == 201
            with pytest.raises(httpx.ConnectError):
                HTTPX.post("http://elsewhere.test/x")
    assert answered == [
        "first:orders", "first:orders", "first:other",
        "second:orders", "second:orders", "second:other",
    ]  # fmt: skip


def test_a_router_whose_patterns_read_headers_is_matched_per_request() -> None:
    # the same method and URL, told apart by a header: no memo may answer the second request
    router = Router()
    router.route(M(headers={"x-tenant": "a"}), lambda r: HttpResponse(200))
    router.route(M(host="x.test"), lambda r: HttpResponse(201))
    for _ in range(2):
        with Interceptor(router):
            assert HTTPX2.get("http://x.test/", headers={"x-tenant": "a"}).status_code == 200
            assert HTTPX2.get("http://x.test/", headers={"x-tenant": "b"}).status_code == 201
            assert HTTPX.get("http://x.test/", headers={"x-tenant": "a"}).status_code == 200


def test_adding_a_route_after_matching_is_seen() -> None:
    router = Router()
    router.route(M(path="/a"), lambda r: HttpResponse(200))
    request = HttpRequest("GET", "http://x.test/b", {})
    assert router.match(request) is None
    added = router.route(M(path="/b"), lambda r: HttpResponse(201))
    assert router.match(request) is added


_PATTERNS = (
    M(method="GET"),
    M(method="POST", path__startswith="/orders"),
    M(path__regex=r"^/orders/\d+$"),
    M(host="a.test"),
    M(params={"page": "2"}),
    M(scheme="https", port=8443),
    M(url__regex=r"refund"),
)
_URLS = st.builds(
    lambda scheme, host, path, query: f"{scheme}://{host}{path}{query}",
    st.sampled_from(["http", "https"]),
    st.sampled_from(["a.test", "b.test", "a.test:8443", "b.test:8443"]),
    st.sampled_from(["/", "/orders", "/orders/7", "/orders/x", "/refunds/1"]),
    st.sampled_from(["", "?page=2", "?page=1"]),
)


@given(
    table=st.lists(st.integers(0, len(_PATTERNS) - 1), min_size=1, max_size=4),
    requests=st.lists(
        st.tuples(st.sampled_from(["GET", "POST", "PUT"]), _URLS, st.booleans()), max_size=12
    ),
)
def test_a_memoised_route_is_the_route_respx_matching_finds(
    table: list[int], requests: list[tuple[str, str, bool]]
) -> None:
    patterns = [_PATTERNS[i] for i in table]
    routers = [Router(), Router()]  # the second one finds the first one's memo
    for router in routers:
        for i, pattern in enumerate(patterns):
            router.route(pattern, lambda r: HttpResponse(200), name=str(i))
    for method, url, native in requests:
        probe = httpx.Request(method, url)
        expected = next((str(i) for i, p in enumerate(patterns) if p.match(probe)), None)
        for router in routers:
            request = HttpRequest(method, url, {})
            if native:  # as the transports hand it: the caller's own request object
                with _answering(request, httpx2.Request(method, url)):
                    found = router.match(request)
            else:
                found = router.match(request)
            assert (found.name if found is not None else None) == expected


@contextmanager
def _answering(request: HttpRequest, native: Any) -> Iterator[None]:
    from harness.world import intercept

    intercept._native.pair = (request, native)
    try:
        yield
    finally:
        intercept._native.pair = None


def test_responses_carry_a_content_length_unless_the_answer_sets_one() -> None:
    answers = iter(
        [HttpResponse(200, (), b"abc"), HttpResponse(200, (("content-length", "9"),), b"abc")]
    )
    with Interceptor(lambda r: next(answers)):
        assert HTTPX2.get("http://x.test/").headers["content-length"] == "3"
        assert HTTPX2.get("http://x.test/").headers["content-length"] == "9"


def test_a_sealed_process_refuses_the_network_for_good_but_keeps_loopback() -> None:
    # In a child process: the seal is permanent, and this test process must stay unsealed.
    code = (
        "import socket\n"
        "from harness.world.intercept import NetworkBlockedError, seal_network\n"
        "seal_network(); seal_network()\n"
        "try:\n"
        "    socket.create_connection(('203.0.113.7', 80), timeout=1)\n"
        "except NetworkBlockedError as exc:\n"
        "    print('blocked:', exc)\n"
        "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1)\n"
        "socket.create_connection(srv.getsockname(), timeout=1).close()\n"
        "print('loopback ok')\n"
        "import _socket\n"
        "for act in (lambda s: s.connect(('203.0.113.8', 80)),\n"
        "            lambda s: s.sendto(b'x', ('203.0.113.9', 53))):\n"
        "    try:\n"
        "        act(_socket.socket(socket.AF_INET, socket.SOCK_DGRAM))\n"
        "    except NetworkBlockedError as exc:\n"
        "        print('C level:', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "blocked: shakeout blocked a connection to 203.0.113.7:80" in done.stdout
    assert "loopback ok" in done.stdout
    assert "C level: shakeout blocked a connection to 203.0.113.8:80" in done.stdout
    assert "C level: shakeout blocked a connection to 203.0.113.9:53" in done.stdout
