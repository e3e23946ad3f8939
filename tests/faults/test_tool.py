from __future__ import annotations

import email.utils
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faults.base import Category, FaultNotApplicableError, registry
from faults.surfaces import HttpResponse, ToolFault, TransportError, TransportFailure
from faults.tool import (
    ONE_MIB,
    ToolConnectionReset,
    ToolConnectTimeout,
    ToolDuplicateDelivery,
    ToolEmptyBody,
    ToolInvalidJson,
    ToolLatency,
    ToolOversizeBody,
    ToolQuotaExhausted,
    ToolRateLimit,
    ToolRateLimitHttpDate,
    ToolReadTimeout,
    ToolSchemaMissingField,
    ToolSchemaRenamedField,
    ToolSchemaWrongType,
    ToolTimeoutAfterCommit,
    ToolTruncatedBody,
    ToolWrongContentType,
    mistyped,
)

PERMANENT = (400, 401, 403, 404, 409, 422)
TRANSIENT = (500, 502, 503, 504)


def _fault(key: str) -> ToolFault:
    fault = registry()[key]()
    assert isinstance(fault, ToolFault)
    return fault


def _json(response: Any) -> Any:
    assert isinstance(response, HttpResponse)
    return json.loads(response.body)


@pytest.mark.parametrize("status", PERMANENT + TRANSIENT)
def test_status_fault_serves_its_status_and_a_json_error_body(tool_ctx: Any, status: int) -> None:
    fault = _fault(f"tool_http_{status}")
    response = fault.apply(tool_ctx)
    assert isinstance(response, HttpResponse)
    assert response.status == status
    assert response.header("Content-Type") == "application/json"
    error = _json(response)["error"]
    assert error["status"] == status
    assert error["code"]
    assert error["message"]
    assert tool_ctx.calls == 0, "an error status must not apply the service's effect"
    assert fault.category is Category.TOOL
    assert fault.transient is (status in TRANSIENT)


def test_status_fault_body_is_deterministic_per_seed(make_tool_ctx: Any) -> None:
    fault = _fault("tool_http_503")
    first, again = fault.apply(make_tool_ctx()), fault.apply(make_tool_ctx())
    assert first == again
    other = make_tool_ctx()
    other.rng.seed(8)
    assert fault.apply(other) != first


def test_rate_limit_sends_retry_after_seconds(tool_ctx: Any) -> None:
    response = ToolRateLimit(seconds=7).apply(tool_ctx)
    assert isinstance(response, HttpResponse)
    assert (response.status, response.header("retry-after")) == (429, "7")
    assert ToolRateLimit().transient
    assert ToolRateLimit(seconds=7, target="get_order").label() == "tool_rate_limit-7s@get_order#1"


def test_rate_limit_http_date_lies_seconds_past_the_clock(tool_ctx: Any) -> None:
    tool_ctx.clock.t += 0.25  # the date must round up, never wait less than asked
    response = ToolRateLimitHttpDate(seconds=3).apply(tool_ctx)
    assert isinstance(response, HttpResponse)
    date = response.header("retry-after")
    assert date is not None
    assert date.endswith("GMT")
    when = email.utils.parsedate_to_datetime(date).timestamp()
    assert when - tool_ctx.clock.now() == pytest.approx(3.75)
    assert response.status == 429


def test_quota_exhausted_is_a_permanent_429(tool_ctx: Any) -> None:
    response = ToolQuotaExhausted().apply(tool_ctx)
    assert isinstance(response, HttpResponse)
    assert response.status == 429
    assert response.header("retry-after") is None
    assert _json(response)["error"]["code"] == "quota_exceeded"
    assert not ToolQuotaExhausted.transient


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (ToolConnectTimeout(), TransportFailure.CONNECT_TIMEOUT),
        (ToolReadTimeout(), TransportFailure.READ_TIMEOUT),
        (ToolConnectionReset(), TransportFailure.CONNECTION_RESET),
    ],
)
def test_transport_faults_raise_without_calling_the_service(
    tool_ctx: Any, fault: ToolFault, kind: TransportFailure
) -> None:
    result = fault.apply(tool_ctx)
    assert isinstance(result, TransportError)
    assert result.kind is kind
    assert tool_ctx.calls == 0
    assert fault.transient
    assert fault.category is Category.TOOL


def test_truncated_body_is_half_the_real_body_without_stale_length(tool_ctx: Any) -> None:
    response = ToolTruncatedBody().apply(tool_ctx)
    assert isinstance(response, HttpResponse)
    real = tool_ctx.answer
    assert response.body == real.body[: len(real.body) // 2]
    assert response.header("content-length") is None
    assert response.header("content-type") == "application/json"
    assert tool_ctx.calls == 1
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.body)


def test_invalid_json_is_labelled_json_but_does_not_parse(tool_ctx: Any) -> None:
    response = ToolInvalidJson().apply(tool_ctx)
    assert isinstance(response, HttpResponse)
    assert response.status == 200
    assert response.header("content-type") == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.body)


def test_wrong_content_type_serves_html(tool_ctx: Any) -> None:
    response = ToolWrongContentType().apply(tool_ctx)
    assert isinstance(response, HttpResponse)
    assert response.status == 200
    assert (response.header("content-type") or "").startswith("text/html")
    assert response.body.startswith(b"<!DOCTYPE html>")


def test_empty_body(tool_ctx: Any) -> None:
    response = ToolEmptyBody().apply(tool_ctx)
    assert response == HttpResponse(200, (("content-type", "application/json"),), b"")


def test_oversize_body_keeps_every_real_field_past_one_mib(tool_ctx: Any) -> None:
    response = ToolOversizeBody().apply(tool_ctx)
    assert isinstance(response, HttpResponse)
    assert len(response.body) >= ONE_MIB + 4096 > ONE_MIB
    payload = _json(response)
    real = _json(tool_ctx.answer)
    assert {k: payload[k] for k in real} == real
    assert response.header("content-length") is None
    assert not ToolOversizeBody.transient


def test_schema_missing_field_drops_the_first_field_by_default(tool_ctx: Any) -> None:
    payload = _json(ToolSchemaMissingField().apply(tool_ctx))
    assert "order_id" not in payload
    assert payload["customer_id"] == "C-1"
    payload = _json(ToolSchemaMissingField(field="total").apply(tool_ctx))
    assert "total" not in payload
    assert "order_id" in payload
    assert ToolSchemaMissingField(field="total").label() == "tool_schema_missing_field-total#1"


def test_schema_renamed_field_uses_camel_case_or_a_suffix(tool_ctx: Any) -> None:
    payload = _json(ToolSchemaRenamedField().apply(tool_ctx))
    assert "order_id" not in payload
    assert payload["orderId"] == "O-1"
    assert next(iter(payload)) == "orderId", "the field keeps its position"
    payload = _json(ToolSchemaRenamedField(field="total").apply(tool_ctx))
    assert payload["total_v2"] == 40.0
    assert "total" not in payload


def test_schema_wrong_type_changes_the_json_type(tool_ctx: Any) -> None:
    payload = _json(ToolSchemaWrongType(field="total").apply(tool_ctx))
    assert payload["total"] == [40.0]
    payload = _json(ToolSchemaWrongType().apply(tool_ctx))
    assert payload["order_id"] == ["O-1"]


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=4,
    )
)
def test_mistyped_never_keeps_the_json_type(value: Any) -> None:
    assert type(mistyped(value)) is not type(value)


@pytest.mark.parametrize("key", ["tool_schema_missing_field", "tool_oversize_body"])
@pytest.mark.parametrize("body", [b"[1, 2]", b"not json", b"{}", b""])
def test_body_mutations_refuse_a_body_that_is_not_a_json_object(
    make_tool_ctx: Any, key: str, body: bytes
) -> None:
    ctx = make_tool_ctx(answer=HttpResponse(200, (), body))
    with pytest.raises(FaultNotApplicableError, match="JSON object"):
        _fault(key).apply(ctx)


def test_schema_fault_on_an_absent_field_names_the_fields_it_has(tool_ctx: Any) -> None:
    with pytest.raises(FaultNotApplicableError, match=r"'amount'.*\['currency'"):
        ToolSchemaWrongType(field="amount").apply(tool_ctx)


def test_latency_advances_the_clock_then_serves_the_real_answer(tool_ctx: Any) -> None:
    start = tool_ctx.clock.now()
    response = ToolLatency(seconds=12.5).apply(tool_ctx)
    assert response == tool_ctx.answer
    assert tool_ctx.calls == 1
    assert tool_ctx.clock.now() - start == 12.5
    assert ToolLatency.category is None
    assert ToolLatency.transient
    assert ToolLatency(seconds=12.5).label() == "tool_latency-12.5s#1"


def test_timeout_after_commit_applies_the_effect_then_times_out(tool_ctx: Any) -> None:
    result = ToolTimeoutAfterCommit().apply(tool_ctx)
    assert isinstance(result, TransportError)
    assert result.kind is TransportFailure.READ_TIMEOUT
    assert tool_ctx.calls == 1


def test_duplicate_delivery_calls_the_service_twice(make_tool_ctx: Any) -> None:
    answers = [HttpResponse(201, (), b"first"), HttpResponse(200, (), b"replayed")]
    ctx = make_tool_ctx()
    ctx.call_service = lambda: answers.pop(0)
    assert ToolDuplicateDelivery().apply(ctx) == HttpResponse(200, (), b"replayed")
    assert answers == [], "the service was called twice"
