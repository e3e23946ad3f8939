"""Tests for harness.world.intercept: both stacks, sync and async, fail closed, canaries that
count."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from canary import Canary
from hypothesis import given
from hypothesis import strategies as st
from respx.patterns import M

from faults.surfaces import (
    AgentCrash,
    HttpRequest,
    HttpResponse,
    TransportError,
    TransportFailure,
)
from harness.world.intercept import (
    Answer,
    InterceptionError,
    Interceptor,
)
from harness.world.routing import Router

# Building a client creates an SSL context (20-60 ms); these cheap ones are shared.
HTTPX = httpx.Client(verify=False)
HTTPX2 = httpx2.Client(verify=False)

# --------------------------------------------------------------------------- the canary server


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


# --------------------------------------------------------------------------- handler errors


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
    from harness.world import bridge

    bridge._native.pair = (request, native)
    try:
        yield
    finally:
        bridge._native.pair = None
