"""ToolHttp: bounded retries on the world's clock, Retry-After honoured, permanent answers never
retried, the same Idempotency-Key on every attempt."""

from __future__ import annotations

import email.utils
from collections.abc import Callable

import httpx
import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.world.clock import FakeClock
from shakeout_adapters.categories import ToolError
from shakeout_adapters.tool_http import MAX_BODY_BYTES, ToolHttp, idempotency_key


class Order(pydantic.BaseModel):
    order_id: str
    total: float


OK = httpx.Response(200, json={"order_id": "O-1", "total": 9.5})


def tools(
    answers: list[httpx.Response | Exception], seen: list[httpx.Request]
) -> tuple[ToolHttp, FakeClock]:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    clock = FakeClock()
    client = httpx.Client(base_url="http://tools.test", transport=httpx.MockTransport(handler))
    return ToolHttp(client, clock), clock


def test_a_transient_answer_is_retried_after_the_wait_it_asks_for() -> None:
    seen: list[httpx.Request] = []
    http, clock = tools([httpx.Response(429, headers={"retry-after": "7"}), OK], seen)
    start = clock.now()
    assert http.get("/orders/O-1", Order) == Order(order_id="O-1", total=9.5)
    assert len(seen) == 2
    assert clock.now() - start == pytest.approx(7.0)


def test_retry_after_as_an_http_date_is_read_on_the_worlds_clock() -> None:
    seen: list[httpx.Request] = []
    date = email.utils.formatdate(FakeClock().now() + 4, usegmt=True)
    http, clock = tools([httpx.Response(429, headers={"retry-after": date}), OK], seen)
    start = clock.now()
    http.get("/orders/O-1", Order)
    assert clock.now() - start == pytest.approx(4.0, abs=1.0)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(503),
        httpx.Response(200, text="{not json", headers={"content-type": "application/json"}),
        httpx.Response(200, text="<html>", headers={"content-type": "text/html"}),
        httpx.ReadTimeout("slow"),
    ],
    ids=["503", "cut_json", "html", "timeout"],
)
def test_transient_failures_are_bounded_by_the_attempts(answer: httpx.Response | Exception) -> None:
    seen: list[httpx.Request] = []
    http, _ = tools([answer, answer, answer], seen)
    with pytest.raises(ToolError, match="failed 3 times in a row") as caught:
        http.get("/orders/O-1", Order)
    assert caught.value.transient
    assert len(seen) == 3


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (httpx.Response(404), "HTTP 404"),
        (httpx.Response(429, json={"error": {"code": "quota_exceeded"}}), "quota exhausted"),
        (httpx.Response(200, json={"order_id": "O-1", "total": "lots"}), "breaks its schema"),
        (httpx.Response(200, content=b"x" * (MAX_BODY_BYTES + 1)), "more than"),
    ],
    ids=["404", "quota", "schema", "oversize"],
)
def test_permanent_failures_are_never_retried(answer: httpx.Response, why: str) -> None:
    seen: list[httpx.Request] = []
    http, _ = tools([answer, OK], seen)
    with pytest.raises(ToolError, match=why) as caught:
        http.get("/orders/O-1", Order)
    assert not caught.value.transient
    assert len(seen) == 1


def test_an_effect_carries_the_same_idempotency_key_on_every_attempt() -> None:
    seen: list[httpx.Request] = []
    http, _ = tools([httpx.ReadTimeout("slow"), OK], seen)
    http.effect("POST", "/refunds", {"amount": 9.5}, Order, key="k-1")
    assert [r.headers["idempotency-key"] for r in seen] == ["k-1", "k-1"]
    assert [r.content for r in seen] == [b'{"amount":9.5}'] * 2


ids: Callable[..., st.SearchStrategy[str]] = st.text


@given(ids(min_size=1, max_size=20), ids(min_size=1, max_size=20), ids(min_size=1, max_size=20))
def test_idempotency_keys_are_stable_and_distinct_per_call(run: str, a: str, b: str) -> None:
    assert idempotency_key(run, a) == idempotency_key(run, a)
    assert (idempotency_key(run, a) == idempotency_key(run, b)) is (a == b)
