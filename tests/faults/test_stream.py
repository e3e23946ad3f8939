from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faults.base import Category, FaultNotApplicableError, registry
from faults.stream import (
    StreamCutMidEvent,
    StreamErrorEvent,
    StreamNoTerminator,
    StreamPartialToolJson,
    StreamTrickle,
)
from faults.surfaces import StreamFault, StreamPlan, WireFormat

FULL = json.dumps({"amount": 25.0, "reason": "damaged on arrival"})
DONE = b"data: [DONE]\n\n"


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def _split(text: str, cuts: list[int]) -> list[str]:
    edges = [0, *sorted(set(cuts)), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(edges)]


def chat_plan(pieces: list[str], second: str = '{"reason":"x"}') -> StreamPlan:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse(
            {"id": "c1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        )

    head = {"index": 0, "id": "call_1", "function": {"name": "propose_refund", "arguments": ""}}
    events = [chunk({"role": "assistant", "tool_calls": [head]})]
    events += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces]
    other = {"index": 1, "id": "call_2", "function": {"name": "escalate", "arguments": second}}
    events += [chunk({"tool_calls": [other]}), chunk({}, "tool_calls")]
    return StreamPlan(tuple(events), terminator=DONE)


def anthropic_plan(pieces: list[str]) -> StreamPlan:
    block = {"type": "tool_use", "id": "toolu_1", "name": "propose_refund", "input": {}}
    events = [
        _sse({"type": "message_start", "message": {"id": "msg_1"}}, "message_start"),
        _sse(
            {"type": "content_block_start", "index": 0, "content_block": block},
            "content_block_start",
        ),
    ]
    for p in pieces:
        delta = {"type": "input_json_delta", "partial_json": p}
        events.append(
            _sse({"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta")
        )
    events += [
        _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        _sse({"type": "message_delta", "delta": {"stop_reason": "tool_use"}}, "message_delta"),
        _sse({"type": "message_stop"}, "message_stop"),
    ]
    return StreamPlan(tuple(events))


def responses_plan(pieces: list[str]) -> StreamPlan:
    item = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "propose_refund"}
    kind = "response.function_call_arguments"
    events = [
        _sse({"type": "response.created", "response": {"id": "r1"}}, "response.created"),
        _sse(
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {**item, "arguments": ""},
            },
            "response.output_item.added",
        ),
    ]
    for p in pieces:
        data = {"type": f"{kind}.delta", "item_id": "fc_1", "output_index": 0, "delta": p}
        events.append(_sse(data, f"{kind}.delta"))
    done = {**item, "arguments": FULL}
    events += [
        _sse({"type": f"{kind}.done", "item_id": "fc_1", "arguments": FULL}, f"{kind}.done"),
        _sse({"type": "response.output_item.done", "item": done}, "response.output_item.done"),
        _sse(
            {"type": "response.completed", "response": {"id": "r1", "output": [done]}},
            "response.completed",
        ),
    ]
    return StreamPlan(tuple(events))


@dataclass(frozen=True)
class _WireOnly:
    """The part of a stream context the partial-JSON fault reads (Hypothesis bars fixtures)."""

    wire_format: WireFormat
    call_index: int = 1


PLANS = {
    "openai_chat": chat_plan,
    "anthropic_messages": anthropic_plan,
    "openai_responses": responses_plan,
}
FORMATS: list[WireFormat] = ["openai_chat", "anthropic_messages", "openai_responses"]


def _data(event: bytes) -> Any:
    line = next(x for x in event.split(b"\n") if x.startswith(b"data:"))
    return json.loads(line[5:])


def _arguments(plan: StreamPlan, wire: WireFormat) -> str:
    """Reassemble the first tool call's arguments from the deltas, as a client would."""
    out = []
    for event in plan.events:
        data = _data(event)
        if wire == "openai_chat":
            for call in data["choices"][0]["delta"].get("tool_calls", ()):
                if call["index"] == 0:
                    out.append(call["function"]["arguments"])
        elif wire == "anthropic_messages" and data["type"] == "content_block_delta":
            out.append(data["delta"]["partial_json"])
        elif wire == "openai_responses" and data["type"].endswith("arguments.delta"):
            out.append(data["delta"])
    return "".join(out)


@pytest.mark.parametrize("wire", FORMATS)
def test_cut_mid_event_cuts_inside_the_middle_event(make_model_ctx: Any, wire: WireFormat) -> None:
    plan = PLANS[wire](_split(FULL, [5, 17]))
    cut = StreamCutMidEvent().mutate(plan, make_model_ctx(wire_format=wire)).cut_after
    middle = len(plan.events) // 2
    start = sum(len(e) for e in plan.events[:middle])
    assert cut is not None
    assert start < cut < start + len(plan.events[middle])


def test_cut_mid_event_of_an_empty_stream_cuts_at_once(model_ctx: Any) -> None:
    assert StreamCutMidEvent().mutate(StreamPlan(()), model_ctx).cut_after == 0


@pytest.mark.parametrize(
    ("wire", "dropped"), [("openai_chat", 0), ("anthropic_messages", 1), ("openai_responses", 1)]
)
def test_no_terminator_drops_the_end_marker(
    make_model_ctx: Any, wire: WireFormat, dropped: int
) -> None:
    plan = PLANS[wire](_split(FULL, [9]))
    out = StreamNoTerminator().mutate(plan, make_model_ctx(wire_format=wire))
    assert out.terminator == b""
    assert out.events == plan.events[: len(plan.events) - dropped]
    assert _arguments(out, wire) == FULL, "every content event still arrives"


def test_no_terminator_keeps_a_last_event_that_is_not_the_marker(make_model_ctx: Any) -> None:
    plan = StreamPlan(anthropic_plan([FULL]).events[:-1])
    ctx = make_model_ctx(wire_format="anthropic_messages")
    assert StreamNoTerminator().mutate(plan, ctx) == plan


@pytest.mark.parametrize("wire", ["openai_chat", "anthropic_messages"])
def test_error_event_replaces_the_second_half(make_model_ctx: Any, wire: WireFormat) -> None:
    ctx = make_model_ctx(wire_format=wire)
    plan = PLANS[wire](_split(FULL, [4, 8, 12]))
    out = StreamErrorEvent().mutate(plan, ctx)
    half = len(plan.events) // 2
    assert out.events == (*plan.events[:half], ctx.error_event())
    assert out.terminator == b""


def test_trickle_delays_each_event(model_ctx: Any) -> None:
    plan = chat_plan([FULL])
    out = StreamTrickle(delay_per_event=2.0).mutate(plan, model_ctx)
    assert (out.events, out.terminator, out.delay_per_event) == (plan.events, DONE, 2.0)
    assert StreamTrickle(delay_per_event=2.0).label() == "stream_trickle-2s#1"


@pytest.mark.parametrize("wire", FORMATS)
def test_partial_tool_json_keeps_half_the_arguments(make_model_ctx: Any, wire: WireFormat) -> None:
    plan = PLANS[wire](_split(FULL, [3, 11, 30]))
    out = StreamPartialToolJson().mutate(plan, make_model_ctx(wire_format=wire))
    partial = _arguments(out, wire)
    assert partial == FULL[: len(FULL) // 2]
    with pytest.raises(json.JSONDecodeError):
        json.loads(partial)
    assert len(out.events) == len(plan.events)
    assert out.terminator == plan.terminator
    last = out.events[-1].split(b"\n")[0]
    assert last == plan.events[-1].split(b"\n")[0], "the stream ends normally"
    assert FULL not in b"".join(out.events).decode().replace("\\", "")


def test_partial_tool_json_rewrites_the_responses_closing_events(make_model_ctx: Any) -> None:
    plan = responses_plan(_split(FULL, [10]))
    out = StreamPartialToolJson().mutate(plan, make_model_ctx(wire_format="openai_responses"))
    half = FULL[: len(FULL) // 2]
    done, item_done, completed = (_data(e) for e in out.events[-3:])
    assert done["arguments"] == half
    assert item_done["item"]["arguments"] == half
    assert completed["response"]["output"][0]["arguments"] == half
    assert out.events[-1].startswith(b"event: response.completed\n")


def test_partial_tool_json_leaves_the_second_tool_call_alone(model_ctx: Any) -> None:
    plan = chat_plan(_split(FULL, [6]))
    out = StreamPartialToolJson().mutate(plan, model_ctx)
    assert out.events[-2:] == plan.events[-2:]
    assert out.events[0] == plan.events[0], "untouched events keep their exact bytes"


def test_partial_tool_json_without_a_tool_call_is_not_applicable(model_ctx: Any) -> None:
    text_only = StreamPlan((_sse({"choices": [{"index": 0, "delta": {"content": "hi"}}]}),), DONE)
    with pytest.raises(FaultNotApplicableError, match="aim it at a tool-call answer"):
        StreamPartialToolJson().mutate(text_only, model_ctx)


@given(
    wire=st.sampled_from(FORMATS),
    cuts=st.lists(st.integers(1, len(FULL) - 1), max_size=8),
)
def test_partial_tool_json_any_chunking(wire: WireFormat, cuts: list[int]) -> None:
    plan = PLANS[wire](_split(FULL, cuts))
    out = StreamPartialToolJson().mutate(plan, _WireOnly(wire))  # type: ignore[arg-type]
    assert _arguments(out, wire) == FULL[: len(FULL) // 2]


@pytest.mark.parametrize("key", ["stream_cut_mid_event", "stream_no_terminator", "stream_trickle"])
def test_stream_faults_are_transient_model_faults(key: str) -> None:
    fault = registry()[key]()
    assert isinstance(fault, StreamFault)
    assert fault.category is Category.MODEL
    assert fault.transient
