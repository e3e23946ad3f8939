"""Tests for harness.world.model (not test_model.py: tests/faults has one, and tests are not
packages)."""

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
from harness.world.clock import FakeClock
from harness.world.intercept import StreamedResponse
from harness.world.model import RETRY_AFTER_MS, ScriptedModel, Served

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
    from harness.world.model import bait_of

    payload = pick("approval_spoofing", Target(), 3, "input.message")
    return payload, bait_of(payload, "inject:approval_spoofing@input.message")


def test_the_baited_model_answers_the_marker_with_the_goal_once_then_the_script() -> None:
    from harness.world.model import BaitedModel

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
    from harness.world.model import BaitedModel

    payload, bait = _bait()
    h = Harness(BaitedModel(bait, wire, TURNS))
    served = h.ask({"stream": True, "note": payload.text})
    assert isinstance(served.response, StreamedResponse)
    assert served.fired == (bait.label,)
    streamed = b"".join(served.response.plan.events)
    assert payload.goal.tool.encode() in streamed
    assert h.model.turns_served == 0


# --------------------------------------------------------------------------- on_tool_error

CALL = ToolCallSpec("get_order", '{"order_id": "A-1"}', "call_1")
ERROR_BODY = '{"error": "not_found", "status": 404}'
ORDER_BODY = '{"order_id": "A-1", "total": 49.99}'
SCRIPT = (
    ModelAnswer(tool_calls=(CALL,)),
    ModelAnswer(tool_calls=(ToolCallSpec("issue_refund", '{"order_id": "A-1"}', "call_2"),)),
    ModelAnswer(text="Refunded."),
)


def conversation(wire: str, result: str, *, flagged: bool = False, echo: bool = True) -> Any:
    """A request body in ``wire`` format: the model's get_order call, then its result."""
    call_id, name, args = CALL.id, CALL.name, CALL.arguments
    if wire == "openai_chat":
        call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
        return {
            "model": "m",
            "messages": [
                {"role": "user", "content": "refund A-1"},
                *([{"role": "assistant", "content": None, "tool_calls": [call]}] if echo else []),
                {"role": "tool", "tool_call_id": call_id, "content": result},
            ],
        }
    if wire == "openai_responses":
        echoed = {"type": "function_call", "call_id": call_id, "name": name, "arguments": args}
        return {
            "model": "m",
            "input": [
                {"role": "user", "content": "refund A-1"},
                *([echoed] if echo else []),
                {"type": "function_call_output", "call_id": call_id, "output": result},
            ],
        }
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id, "content": result}
    if flagged:
        block["is_error"] = True
    use = {"type": "tool_use", "id": call_id, "name": name, "input": json.loads(args)}
    return {
        "model": "m",
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "refund A-1"},
            *([{"role": "assistant", "content": [use]}] if echo else []),
            {"role": "user", "content": [block]},
        ],
    }


def served_answer(wire: str, served: Served) -> tuple[str | None, list[tuple[str, Any, Any]]]:
    """The text and ``(name, arguments, id)`` of the tool calls a served answer carries."""
    assert isinstance(served.response, HttpResponse)
    body = json.loads(served.response.body)
    if wire == "openai_chat":
        message = body["choices"][0]["message"]
        calls = [
            (c["function"]["name"], json.loads(c["function"]["arguments"]), c["id"])
            for c in message.get("tool_calls") or ()
        ]
        return message.get("content"), calls
    if wire == "openai_responses":
        items = body["output"]
        text = next((i["content"][0]["text"] for i in items if i["type"] == "message"), None)
        calls = [
            (i["name"], json.loads(i["arguments"]), i["call_id"])
            for i in items
            if i["type"] == "function_call"
        ]
        return text, calls
    blocks = body["content"]
    text = next((b["text"] for b in blocks if b["type"] == "text"), None)
    return text, [(b["name"], b["input"], b["id"]) for b in blocks if b["type"] == "tool_use"]


class Reacting(Harness):
    def send(self, body: Any) -> Served:
        raw = json.dumps(body).encode()
        req = HttpRequest("POST", "http://model.test/v1" + self.model.path_suffix, {}, raw)
        return self.model.handle(req, self.faults, self.rng, self.clock, self.firings.append)


WIRES = ("openai_chat", "openai_responses", "anthropic_messages")
REACTION_NAMES = ("retry", "proceed", "give_up")


def reacting(wire: Any, reaction: Any) -> Reacting:
    return Reacting(ScriptedModel(wire, SCRIPT, on_tool_error=reaction))


@pytest.mark.parametrize("wire", WIRES)
def test_without_on_tool_error_the_script_answers_a_failed_call(wire: Any) -> None:
    h = Reacting(ScriptedModel(wire, SCRIPT))
    h.send(conversation(wire, "refund A-1"))
    served = h.send(conversation(wire, ERROR_BODY, flagged=True))
    assert served_answer(wire, served)[1][0][0] == "issue_refund"
    assert h.firings == []
    assert served.fired == ()


@pytest.mark.parametrize("wire", WIRES)
def test_retry_answers_the_failed_call_again_and_keeps_the_script_in_line(wire: Any) -> None:
    h = reacting(wire, "retry")
    first = h.send(conversation(wire, "refund A-1", echo=False))
    assert served_answer(wire, first)[1][0][0] == "get_order"
    again = h.send(conversation(wire, ERROR_BODY))
    text, calls = served_answer(wire, again)
    assert text is None
    assert [(n, a) for n, a, _ in calls] == [("get_order", {"order_id": "A-1"})]
    assert calls[0][2] != CALL.id  # a fresh id: ids are unique within a conversation
    assert again.fired == ("on_tool_error:retry",)
    firing = h.firings[-1]
    assert (firing.key, firing.surface, firing.where, firing.call_index) == (
        "on_tool_error",
        Surface.MODEL,
        "get_order",
        again.call_index,
    )
    assert firing.detail["reaction"] == "retry"
    assert "not_found" in firing.detail["error"]
    # the retried call worked: the scripted turn that was due is served
    after = h.send(conversation(wire, ORDER_BODY))
    assert served_answer(wire, after)[1][0][0] == "issue_refund"
    assert after.fired == ()


@pytest.mark.parametrize("wire", WIRES)
def test_proceed_serves_the_scripted_turn_and_records_the_reaction(wire: Any) -> None:
    h = reacting(wire, "proceed")
    h.model._next, h.model._previous = 1, SCRIPT[0]
    served = h.send(conversation(wire, ERROR_BODY))
    assert served_answer(wire, served)[1][0][0] == "issue_refund"
    assert h.model.turns_served == 2
    # the agent got the script's own answer: the exchange stays "real", the firing is recorded
    assert served.fired == ()
    assert [f.label for f in h.firings] == ["on_tool_error:proceed"]


@pytest.mark.parametrize("wire", WIRES)
def test_give_up_answers_a_final_text_and_keeps_to_it(wire: Any) -> None:
    h = reacting(wire, "give_up")
    h.model._next, h.model._previous = 1, SCRIPT[0]
    served = h.send(conversation(wire, ERROR_BODY))
    text, calls = served_answer(wire, served)
    assert calls == []
    assert text is not None
    assert text.startswith("I cannot continue: the get_order call failed")
    assert "not_found" in text
    # asked again (with or without the error), the model has given up for good
    later = h.send(conversation(wire, ORDER_BODY))
    assert served_answer(wire, later) == (text, [])
    assert [f.detail.get("repeat", False) for f in h.firings] == [False, True]
    assert h.model.turns_served == 1


def test_anthropic_is_error_flag_counts_whatever_the_text() -> None:
    h = reacting("anthropic_messages", "give_up")
    h.model._previous = SCRIPT[0]
    served = h.send(conversation("anthropic_messages", "Order lookup timed out", flagged=True))
    assert "timed out" in (served_answer("anthropic_messages", served)[0] or "")


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    "result",
    [
        ORDER_BODY,
        "Error: the order service is down",  # plain text: wording is the model's to read
        '{"status": "issued"}',
        '{"status": 200, "error": null}',
        '{"error": ""}',
        "[1, 2]",
    ],
)
def test_a_result_that_does_not_signal_an_error_gets_the_script(wire: Any, result: str) -> None:
    h = reacting(wire, "give_up")
    h.model._next, h.model._previous = 1, SCRIPT[0]
    served = h.send(conversation(wire, result))
    assert served_answer(wire, served)[1][0][0] == "issue_refund"
    assert h.firings == []


@pytest.mark.parametrize(
    "result",
    [
        '{"error": {"message": "boom"}}',
        '{"isError": true, "content": []}',
        '{"is_error": true}',
        '{"status_code": 503}',
        '{"statusCode": 422, "message": "bad"}',
    ],
)
def test_every_documented_error_form_is_an_error(result: str) -> None:
    from harness.world.wire.base import signals_error

    assert signals_error(result)


@given(st.integers(100, 599), st.sampled_from(["status", "status_code", "statusCode"]))
def test_a_status_is_an_error_exactly_from_400_to_599(status: int, key: str) -> None:
    from harness.world.wire.base import signals_error

    assert signals_error(json.dumps({key: status, "detail": "x"})) == (status >= 400)


def test_only_results_sent_after_the_models_last_answer_count() -> None:
    # an error the model already answered (proceeded past) is history, not news
    h = reacting("openai_chat", "give_up")
    body = conversation("openai_chat", ERROR_BODY)
    body["messages"].append({"role": "assistant", "content": "Noted.", "tool_calls": None})
    body["messages"].append({"role": "user", "content": "go on"})
    served = h.send(body)
    assert served_answer("openai_chat", served)[1][0][0] == "get_order"
    assert h.firings == []


def test_retry_finds_the_call_in_the_last_answer_when_the_request_does_not_echo_it() -> None:
    # the responses API with previous_response_id sends only the outputs
    h = reacting("openai_responses", "retry")
    first = h.send({"model": "m", "input": "refund A-1"})
    assert served_answer("openai_responses", first)[1][0][0] == "get_order"
    again = h.send(conversation("openai_responses", ERROR_BODY, echo=False))
    assert [n for n, _, _ in served_answer("openai_responses", again)[1]] == ["get_order"]


def test_retry_without_a_call_to_repeat_does_not_react() -> None:
    h = reacting("openai_chat", "retry")
    served = h.send(conversation("openai_chat", ERROR_BODY, echo=False))
    assert served_answer("openai_chat", served)[1][0][0] == "get_order"  # the script
    assert h.firings == []


def test_a_streamed_reaction_is_served_as_a_stream() -> None:
    h = reacting("openai_chat", "retry")
    h.model._previous = SCRIPT[0]
    served = h.send({**conversation("openai_chat", ERROR_BODY), "stream": True})
    assert served.stream
    assert isinstance(served.response, StreamedResponse)
    streamed = b"".join(served.response.plan.events)
    assert b"get_order" in streamed
    assert b"call_retry_" in streamed
    assert served.fired == ("on_tool_error:retry",)


def test_a_model_fault_on_the_same_request_wins_over_the_reaction() -> None:
    fault = Refuse(Schedule(nth=1))
    h = Reacting(ScriptedModel("openai_chat", SCRIPT, on_tool_error="give_up"), (fault,))
    served = h.send(conversation("openai_chat", ERROR_BODY))
    assert served.fired == (fault.label(),)
    assert [f.key for f in h.firings] == ["test_model_refuse"]


def test_an_unknown_reaction_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="retry, proceed, give_up"):
        ScriptedModel("openai_chat", SCRIPT, on_tool_error="ignore")  # type: ignore[arg-type]


def test_the_scenario_and_the_model_name_the_same_reactions() -> None:
    from typing import get_args

    from harness.scenario.base import OnToolError
    from harness.world.model import REACTIONS

    assert get_args(OnToolError) == REACTIONS


RESULT_TEXTS = st.one_of(
    st.text(max_size=40),
    st.dictionaries(
        st.sampled_from(["error", "status", "status_code", "statusCode", "isError", "detail"]),
        st.one_of(st.none(), st.booleans(), st.integers(0, 700), st.text(max_size=8), st.just({})),
        max_size=4,
    ).map(json.dumps),
)


@given(st.sampled_from(WIRES), RESULT_TEXTS, st.sampled_from([None, *REACTION_NAMES]))
def test_the_model_reacts_exactly_when_a_result_signals_an_error(
    wire: Any, result: str, reaction: Any
) -> None:
    from harness.world.wire.base import signals_error

    h = Reacting(ScriptedModel(wire, SCRIPT, on_tool_error=reaction))
    h.model._next, h.model._previous = 1, SCRIPT[0]
    served = h.send(conversation(wire, result))
    reacted = reaction is not None and signals_error(result)
    assert [f.label for f in h.firings] == ([f"on_tool_error:{reaction}"] if reacted else [])
    text, calls = served_answer(wire, served)
    if reacted and reaction == "retry":
        assert [n for n, _, _ in calls] == ["get_order"]
    elif reacted and reaction == "give_up":
        assert calls == []
        assert text is not None
    else:  # no reaction, or proceed: the script's turn, as without on_tool_error
        assert [n for n, _, _ in calls] == ["issue_refund"]
