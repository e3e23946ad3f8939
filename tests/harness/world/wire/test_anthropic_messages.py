"""Tests for harness.world.wire.anthropic_messages: the real anthropic SDK parses everything
served."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import pytest
import scripted_provider

from faults.base import Schedule
from faults.model import ModelOverloaded, ModelQuotaExhausted, ModelRateLimit, ModelServerError
from faults.surfaces import (
    HttpRequest,
    ModelAnswer,
    ModelFault,
    ProviderError,
    StreamPlan,
    ToolCallSpec,
    WireFormat,
)
from harness.world.intercept import Answer, Interceptor, StreamedResponse
from harness.world.model import RETRY_AFTER_MS
from harness.world.wire import AnthropicMessagesEncoder
from harness.world.wire.base import SSE_HEADERS

ENC = AnthropicMessagesEncoder()
BASE = "http://model.shakeout.test"
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
FORMAT: WireFormat = "anthropic_messages"
MODEL = "shakeout-model"  # a made-up name: real ones can raise DeprecationWarning

ANSWERS = {
    "text": ModelAnswer(text="Hello there, how can I help?"),
    "tool": ModelAnswer(tool_calls=(ToolCallSpec("get_order", '{"order_id": "A-1"}', "t1"),)),
    "two_tools": ModelAnswer(
        text="Looking both up.",
        tool_calls=(
            ToolCallSpec("get_order", '{"order_id": "A-1"}', "t1"),
            ToolCallSpec("get_customer", '{"customer_id": 7}', "t2"),
        ),
    ),
    "refusal": ModelAnswer(refusal="I can't help with that."),
    "length": ModelAnswer(text="This is cut sh", finish="length"),
    "content_filter": ModelAnswer(text="", finish="content_filter"),
    "empty": ModelAnswer(empty=True),
}
STOP = {
    "text": "end_turn",
    "tool": "tool_use",
    "two_tools": "tool_use",
    "refusal": "refusal",
    "length": "max_tokens",
    "content_filter": "refusal",
    "empty": "end_turn",
}


@pytest.fixture(scope="module")
def client() -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=BASE, api_key="sk-test", max_retries=0)


def serve(answer: Answer, seen: list[HttpRequest] | None = None) -> Interceptor:
    def handler(request: HttpRequest) -> Answer:
        if seen is not None:
            seen.append(request)
        return answer

    return Interceptor(handler)


def streamed(answer: ModelAnswer) -> StreamedResponse:
    return StreamedResponse(200, SSE_HEADERS, ENC.stream(answer, model=MODEL, seq=1, created=1))


def check(message: Any, name: str) -> None:
    answer = ANSWERS[name]
    assert message.stop_reason == STOP[name]
    text = "".join(b.text for b in message.content if b.type == "text")
    assert text == (answer.text if answer.text is not None else answer.refusal or "")
    uses = [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
    assert uses == [(c.id, c.name, json.loads(c.arguments)) for c in answer.tool_calls]
    if answer.empty:
        assert message.content == []


@pytest.mark.parametrize("name", list(ANSWERS))
def test_sdk_parses_the_json_answer(client: anthropic.Anthropic, name: str) -> None:
    seen: list[HttpRequest] = []
    with serve(ENC.response(ANSWERS[name], model=MODEL, seq=4, created=1), seen):
        got = client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert seen[0].path == "/v1/messages"
    assert got.id == "msg_shakeout_4"
    check(got, name)


@pytest.mark.parametrize("name", list(ANSWERS))
def test_stream_helper_builds_the_final_message(client: anthropic.Anthropic, name: str) -> None:
    with (
        serve(streamed(ANSWERS[name])),
        client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream,
    ):
        final = stream.get_final_message()
    check(final, name)


def test_raw_stream_carries_input_json_deltas(client: anthropic.Anthropic) -> None:
    with serve(streamed(ANSWERS["two_tools"])):
        events = list(
            client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
        )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    partial = [
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert len(partial) == 4
    assert "".join(partial) == '{"order_id": "A-1"}{"customer_id": 7}'


def test_async_sdk_streams() -> None:
    async def run() -> Any:
        client = anthropic.AsyncAnthropic(base_url=BASE, api_key="k", max_retries=0)
        async with (
            client,
            client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream,
        ):
            return await stream.get_final_message()

    with serve(streamed(ANSWERS["tool"])):
        check(asyncio.run(run()), "tool")


def test_arguments_that_are_not_json_are_served_as_a_string(client: anthropic.Anthropic) -> None:
    answer = ModelAnswer(tool_calls=(ToolCallSpec("get_order", '{"order_id": ', None),))
    body = json.loads(ENC.response(answer, model=MODEL, seq=1, created=1).body)
    assert body["content"] == [{"type": "tool_use", "name": "get_order", "input": '{"order_id": '}]
    with serve(streamed(answer)):
        events = list(
            client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
        )
    raw = "".join(
        e.delta.partial_json  # type: ignore[union-attr]
        for e in events
        if e.type == "content_block_delta"
    )
    assert raw == '{"order_id": '


@pytest.mark.parametrize(
    ("error", "status", "exc", "kind"),
    [
        (ProviderError("rate_limit"), 429, anthropic.RateLimitError, "rate_limit_error"),
        (ProviderError("quota"), 402, anthropic.PaymentRequiredError, "billing_error"),
        (ProviderError("server"), 500, anthropic.InternalServerError, "api_error"),
        (ProviderError("overloaded"), 529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_provider_errors_raise_the_sdk_class(
    client: anthropic.Anthropic,
    error: ProviderError,
    status: int,
    exc: type[anthropic.APIStatusError],
    kind: str,
) -> None:
    seen: list[HttpRequest] = []
    with serve(ENC.error(error), seen), pytest.raises(exc) as info:
        client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert (info.value.status_code, len(seen)) == (status, 1)
    assert info.value.body["error"]["type"] == kind  # type: ignore[index]
    if error.kind == "rate_limit":
        assert info.value.response.headers["retry-after"] == "1"


def scripted(fault: ModelFault, seen: list[HttpRequest]) -> Interceptor:
    """The harness's scripted model (one text turn) answering with ``fault`` in its path."""
    return scripted_provider.scripted(FORMAT, ANSWERS["text"], fault, seen)


@pytest.mark.parametrize("fault", [ModelRateLimit, ModelOverloaded, ModelServerError])
def test_the_sdk_retries_a_transient_provider_error_and_gets_the_scripted_answer(
    fault: type[ModelFault], sleeps: list[float]
) -> None:
    client = anthropic.Anthropic(base_url=BASE, api_key="k")  # default max_retries, on purpose
    seen: list[HttpRequest] = []
    with scripted(fault(at=Schedule(nth=1)), seen):
        got = client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert "".join(b.text for b in got.content if b.type == "text") == ANSWERS["text"].text
    assert len(seen) == 2
    assert seen[0].body == seen[1].body  # the SDK's retry, not a new question
    assert sleeps == [int(RETRY_AFTER_MS) / 1000]  # retry-after-ms, not 0.5-8 s of backoff


def test_the_sdk_does_not_retry_a_quota_error_and_raises_it(sleeps: list[float]) -> None:
    # Anthropic's quota error is 402 billing_error, which the SDK does not retry (it retries
    # 408, 409, 429 and 5xx); the sticky fault would answer a retry with the same error
    client = anthropic.Anthropic(base_url=BASE, api_key="k")  # default max_retries (2)
    seen: list[HttpRequest] = []
    with (
        scripted(ModelQuotaExhausted(at=Schedule(nth=1)), seen),
        pytest.raises(anthropic.PaymentRequiredError) as info,
    ):
        client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert info.value.status_code == 402
    assert info.value.body["error"]["type"] == "billing_error"  # type: ignore[index]
    assert (len(seen), sleeps) == (1, [])


def test_in_stream_error_event_raises_a_status_error(client: anthropic.Anthropic) -> None:
    plan = ENC.stream(ANSWERS["text"], model=MODEL, seq=1, created=1)
    broken = StreamedResponse(200, SSE_HEADERS, StreamPlan((*plan.events[:3], ENC.error_event())))
    with (
        serve(broken),
        pytest.raises(anthropic.APIStatusError, match="overloaded_error"),
        client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream,
    ):
        stream.get_final_message()


def test_offered_tools() -> None:
    assert ENC.offered_tools({"tools": [{"name": "a"}, {"name": "b"}]}) == ("a", "b")
    assert ENC.offered_tools({"tools": "nope"}) == ()


def test_a_failed_call_sent_back_by_the_sdk_is_read_and_given_up_on(
    client: anthropic.Anthropic,
) -> None:
    turns = (ModelAnswer(tool_calls=(ToolCallSpec("get_order", '{"order_id": "A-1"}', "t1"),)),)
    interceptor, firings = scripted_provider.reacting(FORMAT, turns, "give_up")
    with interceptor:
        first = client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
        use = next(b for b in first.content if b.type == "tool_use")
        messages: list[Any] = [
            *MESSAGES,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": use.id,
                        "content": [{"type": "text", "text": "the order service timed out"}],
                        "is_error": True,
                    }
                ],
            },
        ]
        again = client.messages.create(model=MODEL, max_tokens=100, messages=messages)
    turn = ENC.last_turn({"messages": json.loads(json.dumps(messages))})
    assert [(c.name, c.id) for c in turn.calls] == [("get_order", "t1")]
    assert [(r.call_id, r.text, r.is_error) for r in turn.results] == [
        ("t1", "the order service timed out", True)
    ]
    text = "".join(b.text for b in again.content if b.type == "text")
    assert text.startswith("I cannot continue: the get_order call failed (the order service")
    assert again.stop_reason == "end_turn"
    assert [f.label for f in firings] == ["on_tool_error:give_up"]
