"""ToolClient: every status and transport failure lands on the right taxonomy class."""

from __future__ import annotations

import json

import httpx
import pytest

from reference_agent.errors import (
    ConnectionFailed,
    MalformedBody,
    OversizeBody,
    RateLimited,
    SchemaDrift,
    Timeout,
    ToolError,
    UnexpectedStatus,
)
from reference_agent.schemas import OrderBody
from reference_agent.tools import MAX_BODY_BYTES, ToolClient, parse_retry_after

ORDER = {
    "order_id": "O-1",
    "customer_id": "C-1",
    "total": 10,
    "currency": "EUR",
    "placed_at": "2026-10-01",
    "refunded_amount": 0,
}


def call(answer: httpx.Response | Exception) -> OrderBody:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    client = ToolClient("http://tools.test", httpx.Client(transport=httpx.MockTransport(handler)))
    exchange = client.exchange("get_order", {"order_id": "O-1"})
    result = client.call("get_order", exchange, body=None, idempotency_key=None, now=0.0)
    assert isinstance(result, OrderBody)
    return result


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (409, False),
        (422, False),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
    ],
)
def test_status_codes_map_to_unexpected_status(status: int, transient: bool) -> None:
    with pytest.raises(UnexpectedStatus) as info:
        call(httpx.Response(status, json={}))
    assert info.value.transient is transient
    assert info.value.status == status


@pytest.mark.parametrize(
    ("answer", "kind", "transient"),
    [
        (httpx.Response(429, json={}), RateLimited, True),
        (httpx.Response(429, json={"error": {"code": "insufficient_quota"}}), RateLimited, False),
        (httpx.Response(429, json={"error": "quota_exceeded"}), RateLimited, False),
        (httpx.ConnectTimeout("t"), Timeout, True),
        (httpx.ReadTimeout("t"), Timeout, True),
        (httpx.ConnectError("refused"), ConnectionFailed, True),
        (httpx.ReadError("reset"), ConnectionFailed, True),
        (httpx.RemoteProtocolError("cut"), ConnectionFailed, True),
        (httpx.Response(200, text="<html>"), MalformedBody, True),
        (
            httpx.Response(
                200, content=b'{"order_id": ', headers={"content-type": "application/json"}
            ),
            MalformedBody,
            True,
        ),
        (
            httpx.Response(200, content=b"", headers={"content-type": "application/json"}),
            MalformedBody,
            True,
        ),
        (
            httpx.Response(
                200, content=json.dumps(ORDER).encode(), headers={"content-type": "text/plain"}
            ),
            MalformedBody,
            True,
        ),
        (httpx.Response(200, json={**ORDER, "total": "10.00"}), SchemaDrift, False),
        (
            httpx.Response(200, json={k: v for k, v in ORDER.items() if k != "currency"}),
            SchemaDrift,
            False,
        ),
        (httpx.Response(200, json=[ORDER]), SchemaDrift, False),
        (
            httpx.Response(
                200,
                content=b" " * (MAX_BODY_BYTES + 1),
                headers={"content-type": "application/json"},
            ),
            OversizeBody,
            False,
        ),
    ],
)
def test_failures_map_to_their_class(
    answer: httpx.Response | Exception, kind: type[ToolError], transient: bool
) -> None:
    with pytest.raises(kind) as info:
        call(answer)
    assert type(info.value) is kind
    assert info.value.transient is transient
    assert info.value.category == "tool"


def test_extra_fields_are_ignored_and_json_charset_accepted() -> None:
    answer = httpx.Response(
        200,
        content=json.dumps({**ORDER, "new_field": 1}).encode(),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert call(answer).total == 10.0


def test_path_arguments_are_quoted() -> None:
    client = ToolClient("http://tools.test/", httpx.Client())
    exchange = client.exchange("get_order", {"order_id": "../refunds"})
    assert exchange.url == "http://tools.test/orders/..%2Frefunds"
    client.close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        ("0", 0.0),
        (None, None),
        ("soon", None),
        ("-5", 0.0),
        ("Thu, 01 Jan 1970 00:01:40 GMT", 60.0),
    ],
)
def test_retry_after_parses_seconds_and_dates(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=40.0) == expected
