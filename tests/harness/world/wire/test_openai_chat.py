"""Tests for harness.world.wire.openai_chat: the real openai SDK parses everything served."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest
import scripted_provider

from faults.base import Schedule
from faults.model import ModelOverloaded, ModelQuotaExhausted, ModelRateLimit, ModelServerError
from faults.surfaces import HttpRequest, ModelAnswer, ModelFault, ProviderError, ToolCallSpec
from harness.world.intercept import Answer, Interceptor, StreamedResponse
from harness.world.model import RETRY_AFTER_MS
from harness.world.wire import OpenAIChatEncoder, encoder_for
from harness.world.wire.base import SSE_HEADERS

ENC = OpenAIChatEncoder()
BASE = "http://model.shakeout.test/v1"
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]

ANSWERS = {
    "text": ModelAnswer(text="Hello there, how can I help?"),
    "tool": ModelAnswer(tool_calls=(ToolCallSpec("get_order", '{"order_id": "A-1"}', "c1"),)),
    "two_tools": ModelAnswer(
        text="Looking both up.",
        tool_calls=(
            ToolCallSpec("get_order", '{"order_id": "A-1"}', "c1"),
            ToolCallSpec("get_customer", '{"customer_id": 7}', "c2"),
        ),
    ),
    "refusal": ModelAnswer(refusal="I can't help with that."),
    "length": ModelAnswer(text="This is cut sh", finish="length"),
    "content_filter": ModelAnswer(text="", finish="content_filter"),
    "empty": ModelAnswer(empty=True),
}


@pytest.fixture(scope="module")
def client() -> openai.OpenAI:
    return openai.OpenAI(base_url=BASE, api_key="sk-test", max_retries=0)


def serve(answer: Answer, seen: list[HttpRequest] | None = None) -> Interceptor:
    def handler(request: HttpRequest) -> Answer:
        if seen is not None:
            seen.append(request)
        return answer

    return Interceptor(handler)


def streamed(answer: ModelAnswer) -> StreamedResponse:
    return StreamedResponse(200, SSE_HEADERS, ENC.stream(answer, model="m", seq=1, created=1))


def expected_calls(answer: ModelAnswer) -> list[tuple[str | None, str, str]]:
    return [(c.id, c.name, c.arguments) for c in answer.tool_calls]


@pytest.mark.parametrize("name", list(ANSWERS))
def test_sdk_parses_the_json_answer(client: openai.OpenAI, name: str) -> None:
    answer = ANSWERS[name]
    seen: list[HttpRequest] = []
    with serve(ENC.response(answer, model="shakeout-model", seq=3, created=7), seen):
        got = client.chat.completions.create(model="shakeout-model", messages=MESSAGES)
    assert seen[0].path == "/v1/chat/completions"
    assert got.id == "chatcmpl-shakeout-3"
    assert got.created == 7
    if answer.empty:
        assert got.choices == []
        return
    choice = got.choices[0]
    assert choice.finish_reason == answer.finish_reason()
    assert choice.message.content == answer.text
    assert choice.message.refusal == answer.refusal
    calls = [
        (c.id, c.function.name, c.function.arguments)  # type: ignore[union-attr]
        for c in choice.message.tool_calls or []
    ]
    assert calls == expected_calls(answer)


@pytest.mark.parametrize("name", list(ANSWERS))
def test_sdk_reassembles_the_streamed_answer(client: openai.OpenAI, name: str) -> None:
    answer = ANSWERS[name]
    text, refusal, finish = "", "", None
    calls: dict[int, list[str | None]] = {}
    chunks = 0
    with serve(streamed(answer)):
        for chunk in client.chat.completions.create(
            model="shakeout-model", messages=MESSAGES, stream=True
        ):
            chunks += 1
            for choice in chunk.choices:
                delta = choice.delta
                text += delta.content or ""
                refusal += delta.refusal or ""
                finish = choice.finish_reason or finish
                for tc in delta.tool_calls or []:
                    entry = calls.setdefault(tc.index, [None, "", ""])
                    entry[0] = tc.id or entry[0]
                    if tc.function is not None:
                        entry[1] = (entry[1] or "") + (tc.function.name or "")
                        entry[2] = (entry[2] or "") + (tc.function.arguments or "")
    if answer.empty:
        assert (chunks, text, finish) == (1, "", None)
        return
    assert text == (answer.text or "")
    assert refusal == (answer.refusal or "")
    assert finish == answer.finish_reason()
    assert [tuple(calls[i]) for i in sorted(calls)] == expected_calls(answer)


def test_tool_arguments_arrive_in_several_deltas() -> None:
    plan = ENC.stream(ANSWERS["tool"], model="m", seq=1, created=1)
    argument_deltas = [
        e for e in plan.events if b'"arguments":"' in e and b'"arguments":""' not in e
    ]
    assert len(argument_deltas) == 2
    assert plan.terminator == b"data: [DONE]\n\n"


def test_stream_helper_builds_the_final_completion(client: openai.OpenAI) -> None:
    answer = ANSWERS["two_tools"]
    with (
        serve(streamed(answer)),
        client.chat.completions.stream(model="shakeout-model", messages=MESSAGES) as stream,
    ):
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == answer.text
    assert [(c.function.name, c.function.arguments) for c in message.tool_calls or []] == [
        (c.name, c.arguments) for c in answer.tool_calls
    ]


def test_async_sdk_parses_a_stream() -> None:
    async def run() -> str:
        client = openai.AsyncOpenAI(base_url=BASE, api_key="k", max_retries=0)
        async with client:
            out = ""
            stream = await client.chat.completions.create(
                model="shakeout-model", messages=MESSAGES, stream=True
            )
            async for chunk in stream:
                out += "".join(c.delta.content or "" for c in chunk.choices)
            return out

    with serve(streamed(ANSWERS["text"])):
        assert asyncio.run(run()) == ANSWERS["text"].text


def test_a_call_without_id_omits_the_key() -> None:
    answer = ModelAnswer(tool_calls=(ToolCallSpec("get_order", "{}", None),))
    body = json.loads(ENC.response(answer, model="m", seq=1, created=1).body)
    assert "id" not in body["choices"][0]["message"]["tool_calls"][0]


@pytest.mark.parametrize(
    ("error", "status", "exc", "code"),
    [
        (ProviderError("rate_limit"), 429, openai.RateLimitError, "rate_limit_exceeded"),
        (ProviderError("quota"), 429, openai.RateLimitError, "insufficient_quota"),
        (ProviderError("server"), 500, openai.InternalServerError, None),
        (ProviderError("overloaded"), 503, openai.InternalServerError, "overloaded"),
    ],
)
def test_provider_errors_raise_the_sdk_class(
    client: openai.OpenAI,
    error: ProviderError,
    status: int,
    exc: type[openai.APIStatusError],
    code: str | None,
) -> None:
    seen: list[HttpRequest] = []
    with serve(ENC.error(error), seen), pytest.raises(exc) as info:
        client.chat.completions.create(model="shakeout-model", messages=MESSAGES)
    assert info.value.status_code == status
    assert info.value.code == code
    assert len(seen) == 1  # max_retries=0
    if error.kind == "rate_limit":
        assert info.value.response.headers["retry-after"] == "1"


def scripted(fault: ModelFault, seen: list[HttpRequest]) -> Interceptor:
    """The harness's scripted model (one text turn) answering with ``fault`` in its path."""
    return scripted_provider.scripted("openai_chat", ANSWERS["text"], fault, seen)


@pytest.mark.parametrize("fault", [ModelRateLimit, ModelOverloaded, ModelServerError])
def test_the_sdk_retries_a_transient_provider_error_and_gets_the_scripted_answer(
    fault: type[ModelFault], sleeps: list[float]
) -> None:
    client = openai.OpenAI(base_url=BASE, api_key="k")  # default max_retries, on purpose
    seen: list[HttpRequest] = []
    with scripted(fault(at=Schedule(nth=1)), seen):
        got = client.chat.completions.create(model="shakeout-model", messages=MESSAGES)
    assert got.choices[0].message.content == ANSWERS["text"].text
    assert len(seen) == 2
    assert seen[0].body == seen[1].body  # the SDK's retry, not a new question
    assert sleeps == [int(RETRY_AFTER_MS) / 1000]  # retry-after-ms, not 0.5-8 s of backoff


def test_the_sdk_retries_a_sticky_quota_error_then_raises_it(sleeps: list[float]) -> None:
    client = openai.OpenAI(base_url=BASE, api_key="k")  # default max_retries (2)
    seen: list[HttpRequest] = []
    with (
        scripted(ModelQuotaExhausted(at=Schedule(nth=1)), seen),
        pytest.raises(openai.RateLimitError) as info,
    ):
        client.chat.completions.create(model="shakeout-model", messages=MESSAGES)
    assert (info.value.status_code, info.value.code) == (429, "insufficient_quota")
    assert len(seen) == 3
    assert len({r.body for r in seen}) == 1
    assert sleeps == [0.02, 0.02]


def test_error_message_can_be_replaced() -> None:
    body = json.loads(ENC.error(ProviderError("server"), "shakeout: no turn").body)
    assert body["error"]["message"] == "shakeout: no turn"


def test_in_stream_error_event_raises_api_error(client: openai.OpenAI) -> None:
    plan = ENC.stream(ANSWERS["text"], model="m", seq=1, created=1)
    broken = StreamedResponse(200, SSE_HEADERS, plan.__class__((plan.events[0], ENC.error_event())))
    with serve(broken), pytest.raises(openai.APIError, match="server had an error"):
        for _ in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
            pass


def test_offered_tools_are_read_from_the_request() -> None:
    body = {
        "tools": [
            {"type": "function", "function": {"name": "get_order"}},
            {"type": "function", "function": {"name": "refund"}},
            "junk",
        ],
        "functions": [{"name": "legacy"}],
    }
    assert ENC.offered_tools(body) == ("get_order", "refund", "legacy")
    assert ENC.offered_tools(None) == ()
    assert encoder_for("openai_chat") is encoder_for("openai_chat")


def test_unknown_format_is_explained() -> None:
    with pytest.raises(ValueError, match="unknown wire format 'grpc'; use one of"):
        encoder_for("grpc")  # type: ignore[arg-type]


def test_a_failed_call_sent_back_by_the_sdk_is_read_and_retried() -> None:
    turns = (ModelAnswer(tool_calls=(ToolCallSpec("get_order", '{"order_id": "A-1"}', "c1"),)),)
    interceptor, firings = scripted_provider.reacting("openai_chat", turns, "retry")
    sdk = openai.OpenAI(base_url="http://model.shakeout.test/v1", api_key="k", max_retries=0)
    with interceptor:
        first = sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
        messages: list[Any] = [
            {"role": "user", "content": "hi"},
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": '{"error": "not_found"}'},
        ]
        again = sdk.chat.completions.create(model="m", messages=messages)
    body = json.loads(json.dumps(messages))
    turn = ENC.last_turn({"messages": body})
    assert [(c.name, c.id) for c in turn.calls] == [("get_order", "c1")]
    assert [(r.call_id, r.is_error) for r in turn.results] == [("c1", True)]
    retried = again.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert (retried.function.name, json.loads(retried.function.arguments)) == (  # type: ignore[union-attr]
        "get_order",
        {"order_id": "A-1"},
    )
    assert [f.label for f in firings] == ["on_tool_error:retry"]
