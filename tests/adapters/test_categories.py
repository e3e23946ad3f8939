"""categorize(): the real openai and anthropic SDKs' exceptions (over httpx2) map onto the four
categories, transient where retrying can help."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shakeout_adapters.categories import (
    AgentError,
    LogicError,
    ModelError,
    ToolError,
    categorize,
)


def _transport(status: int, code: str | None, *, fail: bool = False) -> httpx2.MockTransport:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if fail:
            raise httpx2.ConnectError("refused", request=request)
        body: dict[str, Any] = {"error": {"message": "no", "type": code or "error", "code": code}}
        return httpx2.Response(status, json=body, headers={"retry-after": "3"})

    return httpx2.MockTransport(handler)


def openai_failure(status: int, code: str | None = None, *, fail: bool = False) -> Exception:
    client = openai.OpenAI(
        base_url="http://model.test/v1",
        api_key="sk-test",
        max_retries=0,
        http_client=httpx2.Client(transport=_transport(status, code, fail=fail)),
    )
    with pytest.raises(openai.OpenAIError) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    return caught.value


def anthropic_failure(status: int, code: str | None = None, *, fail: bool = False) -> Exception:
    client = anthropic.Anthropic(
        base_url="http://model.test",
        api_key="sk-test",
        max_retries=0,
        http_client=httpx2.Client(transport=_transport(status, code, fail=fail)),
    )
    with pytest.raises(anthropic.AnthropicError) as caught:
        client.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    return caught.value


@pytest.mark.parametrize("failure", [openai_failure, anthropic_failure])
@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [
        (429, "rate_limit_exceeded", True),
        (429, "insufficient_quota", False),
        (500, None, True),
        (503, None, True),
        (529, "overloaded_error", True),
        (400, "invalid_request_error", False),
        (401, None, False),
        (404, None, False),
        (422, None, False),
    ],
)
def test_provider_errors_are_model_errors(
    failure: Any, status: int, code: str | None, transient: bool
) -> None:
    error = categorize(failure(status, code))
    assert isinstance(error, ModelError)
    assert error.category == "model"
    assert error.transient is transient
    assert f"HTTP {status}" in str(error)
    assert error.retry_after == 3.0


@pytest.mark.parametrize("failure", [openai_failure, anthropic_failure])
def test_an_unreachable_model_is_a_transient_model_error(failure: Any) -> None:
    exc = failure(0, fail=True)
    assert isinstance(exc, openai.APIConnectionError | anthropic.APIConnectionError)
    error = categorize(exc)
    assert (error.category, error.transient) == ("model", True)


@settings(max_examples=40, deadline=None)
@given(st.integers(400, 599))
def test_every_provider_status_is_a_model_error_transient_only_where_a_retry_helps(
    status: int,
) -> None:
    error = categorize(openai_failure(status))
    assert error.category == "model"
    assert error.transient is (status >= 500 or status in (408, 429))


def test_tool_transport_errors_schema_violations_and_the_rest() -> None:
    assert categorize(httpx.ReadTimeout("slow")).category == "tool"
    assert categorize(httpx2.ConnectError("refused")).category == "tool"

    class Args(pydantic.BaseModel):
        amount: float

    with pytest.raises(pydantic.ValidationError) as caught:
        Args.model_validate_json(json.dumps({"amount": "lots"}))
    assert categorize(caught.value).category == "model"
    assert isinstance(categorize(RuntimeError("boom")), LogicError)
    own = ToolError("mine")
    assert categorize(own) is own
    assert isinstance(own, AgentError)
