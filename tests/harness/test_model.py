"""Tests for harness.model (not test_model.py: tests/faults has one, and tests are not packages)."""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faults.base import Category, Fault, Schedule, Surface
from faults.model import ModelQuotaExhausted, ModelServerError
from faults.surfaces import (
    FaultFiring,
    HttpRequest,
    HttpResponse,
    ModelAnswer,
    ModelCallContext,
    ModelFault,
    ProviderError,
    StreamCallContext,
    StreamFault,
    StreamPlan,
    ToolCallSpec,
)
from harness.clock import FakeClock
from harness.intercept import StreamedResponse
from harness.model import RETRY_AFTER_MS, ScriptedModel, Served

TURNS = (
    ModelAnswer(tool_calls=(ToolCallSpec("get_order", '{"order_id": "A-1"}'),)),
    ModelAnswer(text="Done."),
)


class Refuse(ModelFault):
    """Test fault: answers with a refusal and keeps the context it saw."""

    def __init__(self, at: Schedule | None = None, answer: Any = None) -> None:
        object.__setattr__(self, "target", None)
        object.__setattr__(self, "at", at or Schedule())
        object.__setattr__(self, "seen", [])
        object.__setattr__(self, "reply", answer or ModelAnswer(refusal="no"))

    def answer(self, ctx: ModelCallContext) -> ModelAnswer | ProviderError:
        self.seen.append(ctx)  # type: ignore[attr-defined]
        return self.reply  # type: ignore[attr-defined, no-any-return]


class Mutate(StreamFault):
    """Test fault: applies a function to the stream plan."""

    def __init__(self, change: Any, at: Schedule | None = None) -> None:
        object.__setattr__(self, "target", None)
        object.__setattr__(self, "at", at or Schedule())
        object.__setattr__(self, "change", change)

    def mutate(self, plan: StreamPlan, ctx: StreamCallContext) -> StreamPlan:
        return self.change(plan, ctx)  # type: ignore[attr-defined, no-any-return]


# set after class creation so the test faults stay out of the global registry
for cls, key in ((Refuse, "test_model_refuse"), (Mutate, "test_model_mutate")):
    cls.key = key
    cls.category = Category.MODEL
    cls.transient = True


def request(body: dict[str, Any] | None = None) -> HttpRequest:
    payload = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **(body or {})}
    return HttpRequest(
        "POST", "http://model.test/v1/chat/completions", {}, json.dumps(payload).encode()
    )


class Harness:
    def __init__(self, model: ScriptedModel, faults: tuple[Fault, ...] = ()) -> None:
        self.model = model
        self.faults = faults
        self.rng = random.Random(1)
        self.clock = FakeClock(100.0)
        self.firings: list[FaultFiring] = []

    def ask(self, body: dict[str, Any] | None = None) -> Served:
        return self.model.handle(
            request(body), self.faults, self.rng, self.clock, self.firings.append
        )


def text_of(served: Served) -> Any:
    assert isinstance(served.response, HttpResponse)
    return json.loads(served.response.body)["choices"][0]["message"]


def test_turns_are_served_in_order_one_per_request() -> None:
    h = Harness(ScriptedModel("openai_chat", TURNS))
    first, second = h.ask(), h.ask()
    assert text_of(first)["tool_calls"][0]["function"]["name"] == "get_order"
    assert text_of(second)["content"] == "Done."
    assert (first.call_index, second.call_index) == (1, 2)
    assert h.model.turns_served == 2
    assert h.model.path_suffix == "/chat/completions"


def test_a_model_fault_is_an_insertion_and_sees_its_context() -> None:
    fault = Refuse(Schedule(nth=2))
    h = Harness(ScriptedModel("openai_chat", TURNS), (fault,))
    one, two, three = h.ask(), h.ask(), h.ask()
    assert text_of(two)["refusal"] == "no"
    assert two.fired == (fault.label(),) == ("test_model_refuse#2",)  # labels, not keys
    assert text_of(three)["content"] == "Done."  # the re-ask gets the scripted turn
    ctx = fault.seen[0]  # type: ignore[attr-defined]
    assert (ctx.call_index, ctx.scripted, ctx.previous) == (2, TURNS[1], TURNS[0])
    assert ctx.wire_format == "openai_chat"
    assert h.firings == [
        FaultFiring("test_model_refuse", Surface.MODEL, "model", 2, {}, "test_model_refuse#2")
    ]
    assert one.fired == three.fired == ()


def test_a_provider_error_asks_for_a_short_retry_and_keeps_the_turn() -> None:
    # no x-should-retry: the SDKs' own retries stay on, as in production; retry-after-ms
    # keeps their real sleep at 20 ms, the fault's own retry-after stays for agents' loops
    fault = Refuse(answer=ProviderError("rate_limit", retry_after="7"))
    h = Harness(ScriptedModel("anthropic_messages", TURNS), (fault,))
    served = h.ask()
    assert isinstance(served.response, HttpResponse)
    assert served.response.status == 429
    assert served.response.header("retry-after") == "7"
    assert served.response.header("retry-after-ms") == RETRY_AFTER_MS == "20"
    assert served.response.header("x-should-retry") is None
    assert h.model.turns_served == 0
    assert h.ask().response.status == 200


def test_a_permanent_provider_error_answers_every_retry_of_the_same_request() -> None:
    h = Harness(ScriptedModel("openai_chat", TURNS), (ModelQuotaExhausted(at=Schedule(nth=1)),))
    answers = [h.ask() for _ in range(3)]  # an SDK's retries send the identical body
    assert [a.response.status for a in answers] == [429, 429, 429]
    assert all(a.fired == ("model_quota_exhausted#1",) for a in answers)
    assert [f.detail for f in h.firings] == [{}, {"repeat": True}, {"repeat": True}]
    assert h.model.turns_served == 0
    other = h.ask({"messages": [{"role": "user", "content": "something else"}]})
    assert other.response.status == 200  # a different request is not the failed one
    assert other.fired == ()


def test_a_transient_provider_error_answers_once_and_the_retry_gets_the_turn() -> None:
    h = Harness(ScriptedModel("openai_chat", TURNS), (ModelServerError(at=Schedule(nth=1)),))
    first, retry = h.ask(), h.ask()
    assert (first.response.status, first.fired) == (500, ("model_server_error#1",))
    assert (retry.response.status, retry.fired) == (200, ())
    assert text_of(retry)["tool_calls"][0]["function"]["name"] == "get_order"


def test_requests_beyond_the_script_get_a_500_that_explains() -> None:
    h = Harness(ScriptedModel("openai_chat", TURNS[:1]))
    h.ask()
    served = h.ask()
    assert served.exhausted
    assert isinstance(served.response, HttpResponse)
    assert served.response.status == 500
    # the script ran out: no provider fault, so the SDKs are told not to retry it
    assert served.response.header("x-should-retry") == "false"
    assert served.response.header("retry-after-ms") is None
    message = json.loads(served.response.body)["error"]["message"]
    assert message == (
        "shakeout: scripted model has no turn left for request 2 (scenario scripts 1 turns)"
    )
    assert h.model.exhausted == (2,)


def test_the_request_body_decides_streaming_and_the_flag_is_the_fallback() -> None:
    h = Harness(ScriptedModel("openai_chat", TURNS * 3, stream=True))
    assert h.ask({"stream": False}).stream is False
    streamed = h.ask({"stream": True})
    assert isinstance(streamed.response, StreamedResponse)
    assert streamed.response.plan.terminator == b"data: [DONE]\n\n"
    assert streamed.response.on_event is None
    not_json = HttpRequest("POST", "http://m/v1/chat/completions", {}, b"<xml/>")
    assert h.model.handle(not_json, (), h.rng, h.clock, h.firings.append).stream is True


def test_a_slow_stream_serves_the_turn_and_advances_the_clock_per_event() -> None:
    trickle = Mutate(lambda plan, ctx: dataclasses.replace(plan, delay_per_event=0.5))
    h = Harness(ScriptedModel("openai_chat", TURNS), (trickle,))
    served = h.ask({"stream": True})
    assert isinstance(served.response, StreamedResponse)
    assert served.fired == (trickle.label(),)
    assert h.model.turns_served == 1
    hook = served.response.on_event
    assert hook is not None
    for i in range(len(served.response.plan.events)):
        hook(i)
    assert h.clock.now() == 100.0 + 0.5 * len(served.response.plan.events)


def test_a_broken_stream_leaves_the_turn_for_an_identical_re_ask() -> None:
    cut = Mutate(lambda plan, ctx: dataclasses.replace(plan, cut_after=10))
    h = Harness(ScriptedModel("openai_chat", TURNS), (cut,))
    h.ask({"stream": True})
    assert h.model.turns_served == 0
    again = h.ask({"stream": True})  # same body: a re-ask
    assert isinstance(again.response, StreamedResponse)
    assert b"get_order" in b"".join(again.response.plan.events)
    assert h.model.turns_served == 1


def test_a_broken_stream_counts_as_served_when_the_agent_moves_on() -> None:
    no_end = Mutate(lambda plan, ctx: dataclasses.replace(plan, terminator=b""))
    h = Harness(ScriptedModel("openai_chat", TURNS), (no_end,))
    h.ask({"stream": True})
    moved_on = h.ask({"stream": True, "messages": [{"role": "tool", "content": "{}"}]})
    assert isinstance(moved_on.response, StreamedResponse)
    delivered = b"".join(moved_on.response.plan.events)
    assert b"get_order" not in delivered
    assert b'"finish_reason":"stop"' in delivered


def test_a_broken_answer_stays_next_for_a_corrective_re_ask_with_another_body() -> None:
    cut = Mutate(lambda plan, ctx: dataclasses.replace(plan, cut_after=10))
    h = Harness(ScriptedModel("openai_chat", TURNS), (cut,))
    h.ask({"stream": True})
    correction = {"role": "user", "content": "your tool call was cut off; call it again"}
    reask = h.ask({"stream": True, "messages": [correction]})
    assert isinstance(reask.response, StreamedResponse)
    assert b"get_order" in b"".join(reask.response.plan.events)
    assert h.model.turns_served == 1


def test_a_cut_beyond_the_end_cuts_nothing_and_serves_the_turn() -> None:
    late = Mutate(lambda plan, ctx: dataclasses.replace(plan, cut_after=10**6))
    h = Harness(ScriptedModel("openai_chat", TURNS), (late,))
    h.ask({"stream": True})
    assert h.model.turns_served == 1


def test_stream_faults_get_the_formats_error_event() -> None:
    events: list[bytes] = []

    def grab(plan: StreamPlan, ctx: StreamCallContext) -> StreamPlan:
        events.append(ctx.error_event())
        return plan

    h = Harness(ScriptedModel("anthropic_messages", TURNS), (Mutate(grab),))
    h.ask({"stream": True})
    assert events[0].startswith(b"event: error\n")


@given(seed=st.integers(0, 2**32 - 1))
def test_probability_schedules_are_a_function_of_the_seed(seed: int) -> None:
    def firings() -> list[int]:
        fault = Refuse(Schedule(probability=0.5))
        model = ScriptedModel("openai_chat", TURNS * 10)
        rng, clock, fired = random.Random(seed), FakeClock(), []
        for _ in range(12):
            served = model.handle(request(), (fault,), rng, clock, lambda f: None)
            fired.append(served.call_index if served.fired else 0)
        return fired

    assert firings() == firings()


@pytest.mark.parametrize("fmt", ["openai_chat", "openai_responses", "anthropic_messages"])
def test_every_format_serves_json_and_streams(fmt: Any) -> None:
    h = Harness(ScriptedModel(fmt, TURNS * 2, model_name="custom"))
    assert b'"custom"' in h.ask().response.body  # type: ignore[union-attr]
    assert isinstance(h.ask({"stream": True}).response, StreamedResponse)


def _bait() -> Any:
    from faults.injection import Target, pick
    from harness.model import bait_of

    payload = pick("approval_spoofing", Target(), 3, "input.message")
    return payload, bait_of(payload, "inject:approval_spoofing@input.message")


def test_the_baited_model_answers_the_marker_with_the_goal_once_then_the_script() -> None:
    from harness.model import BaitedModel

    payload, bait = _bait()
    h = Harness(BaitedModel(bait, "openai_chat", TURNS))
    clean = h.ask()
    assert text_of(clean)["tool_calls"][0]["function"]["name"] == "get_order"
    carrying = {"messages": [{"role": "user", "content": payload.text}]}
    goal = text_of(h.ask(carrying))["tool_calls"][0]["function"]
    assert (goal["name"], json.loads(goal["arguments"])) == (
        payload.goal.tool,
        dict(payload.goal.arguments),
    )
    # an insertion: the scripted turn is still next, and the bait is taken only once
    assert text_of(h.ask(carrying))["content"] == "Done."
    assert h.model.taken == 2
    assert [(f.key, f.surface, f.call_index) for f in h.firings] == [
        ("take_bait", Surface.INJECTION, 2)
    ]
    assert h.firings[0].label == "take_bait:inject:approval_spoofing@input.message"


@pytest.mark.parametrize("wire", ["openai_chat", "openai_responses", "anthropic_messages"])
def test_the_baited_model_streams_the_goal_in_each_wire_format(wire: Any) -> None:
    from harness.model import BaitedModel

    payload, bait = _bait()
    h = Harness(BaitedModel(bait, wire, TURNS))
    served = h.ask({"stream": True, "note": payload.text})
    assert isinstance(served.response, StreamedResponse)
    assert served.fired == (bait.label,)
    streamed = b"".join(served.response.plan.events)
    assert payload.goal.tool.encode() in streamed
    assert h.model.turns_served == 0
