"""Tests for harness.world.wire.openai_responses: the real openai SDK parses everything served."""

from __future__ import annotations

import json
from typing import Any

import openai
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
from harness.world.wire import OpenAIResponsesEncoder
from harness.world.wire.base import SSE_HEADERS

ENC = OpenAIResponsesEncoder()
BASE = "http://model.shakeout.test/v1"
FORMAT: WireFormat = "openai_responses"

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

STATUS = {
    "length": ("incomplete", "max_output_tokens"),
    "content_filter": ("incomplete", "content_filter"),
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


def check(response: Any, answer: ModelAnswer, name: str) -> None:
    status, reason = STATUS.get(name, ("completed", None))
    assert response.status == status
    assert (response.incomplete_details.reason if response.incomplete_details else None) == reason
    if answer.empty:
        assert response.output == []
        return
    assert response.output_text == (answer.text or "")
    calls = [(o.call_id, o.name, o.arguments) for o in response.output if o.type == "function_call"]
    assert calls == [(c.id, c.name, c.arguments) for c in answer.tool_calls]
    refusals = [
        part.refusal
        for o in response.output
        if o.type == "message"
        for part in o.content
        if part.type == "refusal"
    ]
    assert refusals == ([answer.refusal] if answer.refusal else [])


@pytest.mark.parametrize("name", list(ANSWERS))
def test_sdk_parses_the_json_answer(client: openai.OpenAI, name: str) -> None:
    seen: list[HttpRequest] = []
    with serve(ENC.response(ANSWERS[name], model="m", seq=2, created=5), seen):
        got = client.responses.create(model="shakeout-model", input="hi")
    assert seen[0].path == "/v1/responses"
    assert got.id == "resp_shakeout_2"
    check(got, ANSWERS[name], name)


@pytest.mark.parametrize("name", [n for n in ANSWERS if n not in STATUS])
def test_stream_helper_builds_the_final_response(client: openai.OpenAI, name: str) -> None:
    answer = ANSWERS[name]
    deltas = ""
    with (
        serve(streamed(answer)),
        client.responses.stream(model="shakeout-model", input="hi") as stream,
    ):
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas += event.delta
        final = stream.get_final_response()
    assert deltas == (answer.text or "")
    check(final, answer, name)


@pytest.mark.parametrize("name", list(STATUS))
def test_a_cut_short_stream_ends_with_response_incomplete(client: openai.OpenAI, name: str) -> None:
    # as the API does; the SDK's stream helper then refuses get_final_response(), which is
    # exactly what an agent built on it has to handle
    with serve(streamed(ANSWERS[name])):
        events = list(client.responses.create(model="m", input="hi", stream=True))
    assert events[-1].type == "response.incomplete"
    check(events[-1].response, ANSWERS[name], name)


def test_raw_stream_events_are_typed_in_order(client: openai.OpenAI) -> None:
    with serve(streamed(ANSWERS["two_tools"])):
        events = list(client.responses.create(model="m", input="hi", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert kinds.count("response.function_call_arguments.delta") == 4
    assert [e.sequence_number for e in events] == list(range(len(events)))


@pytest.mark.parametrize(
    ("error", "status", "exc", "code"),
    [
        (ProviderError("rate_limit"), 429, openai.RateLimitError, "rate_limit_exceeded"),
        (ProviderError("quota"), 429, openai.RateLimitError, "insufficient_quota"),
        (ProviderError("server", retry_after="3"), 500, openai.InternalServerError, None),
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
        client.responses.create(model="m", input="hi")
    assert (info.value.status_code, info.value.code, len(seen)) == (status, code, 1)
    if error.retry_after:
        assert info.value.response.headers["retry-after"] == error.retry_after


def scripted(fault: ModelFault, seen: list[HttpRequest]) -> Interceptor:
    """The harness's scripted model (one text turn) answering with ``fault`` in its path."""
    return scripted_provider.scripted(FORMAT, ANSWERS["text"], fault, seen)


@pytest.mark.parametrize("fault", [ModelRateLimit, ModelOverloaded, ModelServerError])
def test_the_sdk_retries_a_transient_provider_error_and_gets_the_scripted_answer(
    fault: type[ModelFault], sleeps: list[float]
) -> None:
    client = openai.OpenAI(base_url=BASE, api_key="k")  # default max_retries, on purpose
    seen: list[HttpRequest] = []
    with scripted(fault(at=Schedule(nth=1)), seen):
        got = client.responses.create(model="m", input="hi")
    assert got.output_text == ANSWERS["text"].text
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
        client.responses.create(model="m", input="hi")
    assert (info.value.status_code, info.value.code) == (429, "insufficient_quota")
    assert len(seen) == 3
    assert len({r.body for r in seen}) == 1
    assert sleeps == [0.02, 0.02]


def test_in_stream_error_event_reaches_the_caller(client: openai.OpenAI) -> None:
    plan = ENC.stream(ANSWERS["text"], model="m", seq=1, created=1)
    broken = StreamedResponse(200, SSE_HEADERS, StreamPlan((plan.events[0], ENC.error_event())))
    with serve(broken):
        events = list(client.responses.create(model="m", input="hi", stream=True))
    assert events[-1].type == "error"
    assert events[-1].code == "server_error"


def test_offered_tools_and_call_without_id() -> None:
    body = {"tools": [{"type": "function", "name": "get_order"}, {"type": "web_search"}]}
    assert ENC.offered_tools(body) == ("get_order",)
    answer = ModelAnswer(tool_calls=(ToolCallSpec("get_order", "{}", None),))
    item = json.loads(ENC.response(answer, model="m", seq=1, created=1).body)["output"][0]
    assert "call_id" not in item


def test_a_failed_call_sent_back_by_the_sdk_is_read_and_retried() -> None:
    turns = (ModelAnswer(tool_calls=(ToolCallSpec("get_order", '{"order_id": "A-1"}', "c1"),)),)
    interceptor, firings = scripted_provider.reacting(FORMAT, turns, "retry")
    sdk = openai.OpenAI(base_url=BASE, api_key="k", max_retries=0)
    with interceptor:
        first = sdk.responses.create(model="m", input="hi")
        call = next(i for i in first.output if i.type == "function_call")
        items: list[Any] = [
            {"role": "user", "content": "hi"},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": '{"status": 503}'},
        ]
        again = sdk.responses.create(model="m", input=items)
        # with previous_response_id only the output is sent: the model's last answer tells
        retry_id = next(i.call_id for i in again.output if i.type == "function_call")
        output = {"type": "function_call_output", "call_id": retry_id, "output": '{"error": 1}'}
        only = sdk.responses.create(model="m", previous_response_id=again.id, input=[output])
    turn = ENC.last_turn({"input": json.loads(json.dumps(items))})
    assert [(c.name, c.id) for c in turn.calls] == [("get_order", "c1")]
    assert [(r.call_id, r.is_error) for r in turn.results] == [("c1", True)]
    for answer in (again, only):
        retried = [i for i in answer.output if i.type == "function_call"]
        assert [(i.name, json.loads(i.arguments)) for i in retried] == [  # type: ignore[union-attr]
            ("get_order", {"order_id": "A-1"})
        ]
    assert [f.label for f in firings] == ["on_tool_error:retry"] * 2
