"""Tests for reading answers back from each wire format (harness.world.wire
``decode``/``decode_stream``).

What an encoder serves, the same format's decoder reads back unchanged, JSON body or SSE stream:
the invariant ``harness.recording.cassette_import`` relies on when it turns a recorded session into
turns.
"""

from __future__ import annotations

import json
from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faults.surfaces import ModelAnswer, ToolCallSpec, WireFormat
from harness.world.wire import (
    DecodedAnswer,
    UnreadableAnswer,
    encoder_for,
    format_of_path,
    sse_events,
)

FORMATS: tuple[WireFormat, ...] = get_args(WireFormat)

names = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True)
values = st.one_of(st.integers(-(10**6), 10**6), st.text(max_size=12), st.booleans())
arguments = st.dictionaries(names, values, max_size=3).map(
    lambda d: json.dumps(d, separators=(",", ":"))
)
calls = st.lists(st.tuples(names, arguments), max_size=3)
texts = st.one_of(st.none(), st.text(min_size=1, max_size=80))


def _expected(wire: WireFormat, text: str | None, made: list[tuple[str, str]]) -> DecodedAnswer:
    # the Responses format says a finish reason only for an incomplete response
    finish = None if wire == "openai_responses" else ("tool_calls" if made else "stop")
    return DecodedAnswer(text, None, tuple(made), finish)


def _served(wire: WireFormat, answer: ModelAnswer) -> tuple[bytes, bytes]:
    encoder = encoder_for(wire)
    body = encoder.response(answer, model="m", seq=3, created=1_700_000_000).body
    plan = encoder.stream(answer, model="m", seq=3, created=1_700_000_000)
    return body, b"".join(plan.events) + plan.terminator


@pytest.mark.parametrize("wire", FORMATS)
@given(text=texts, made=calls)
def test_what_an_encoder_serves_its_decoder_reads_back(
    wire: WireFormat, text: str | None, made: list[tuple[str, str]]
) -> None:
    if text is None and not made:
        text = "ok"  # an answer says something; ``empty`` is its own case below
    specs = tuple(ToolCallSpec(n, a, f"call_{i}") for i, (n, a) in enumerate(made))
    body, stream = _served(wire, ModelAnswer(text=text, tool_calls=specs))
    encoder = encoder_for(wire)
    assert encoder.decode(body) == _expected(wire, text, made)
    assert encoder.decode_stream(stream) == _expected(wire, text, made)


@pytest.mark.parametrize("wire", FORMATS)
@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (ModelAnswer(refusal="I can't help with that."), "refusal"),
        (ModelAnswer(text="cut sh", finish="length"), "length"),
        (ModelAnswer(empty=True), "empty"),
    ],
    ids=["refusal", "length", "empty"],
)
def test_refusals_cut_answers_and_empty_answers_read_back(
    wire: WireFormat, answer: ModelAnswer, expected: str
) -> None:
    body, stream = _served(wire, answer)
    encoder = encoder_for(wire)
    for decoded in (encoder.decode(body), encoder.decode_stream(stream)):
        if expected == "refusal":
            assert decoded.refusal == "I can't help with that."
            assert decoded.text is None
        elif expected == "length":
            assert (decoded.text, decoded.finish) == ("cut sh", "length")
        else:
            assert decoded == DecodedAnswer(empty=True)


@pytest.mark.parametrize(
    ("wire", "body", "message"),
    [
        ("openai_chat", b"<html>502</html>", "its body is not JSON"),
        ("openai_chat", b'{"error": {}}', "it has no 'choices' list"),
        ("openai_responses", b'{"id": "r"}', "it has no 'output' list"),
        ("anthropic_messages", b"[]", "it has no 'content' list"),
    ],
)
def test_a_body_that_is_no_answer_is_unreadable_and_says_why(
    wire: WireFormat, body: bytes, message: str
) -> None:
    with pytest.raises(UnreadableAnswer, match=message):
        encoder_for(wire).decode(body)


def test_a_responses_stream_without_its_final_event_is_unreadable() -> None:
    stream = b'event: response.created\ndata: {"type":"response.created"}\n\n'
    with pytest.raises(UnreadableAnswer, match=r"no response\.completed event"):
        encoder_for("openai_responses").decode_stream(stream)


def test_anthropic_tool_input_streamed_as_text_that_is_not_json_is_kept_verbatim() -> None:
    stream = (
        b'data: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"tool_use","name":"refund","input":{}}}\n\n'
        b'data: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"input_json_delta","partial_json":"{\\"amount\\": 1"}}\n\n'
        b'data: {"type":"message_delta","delta":{"stop_reason":"tool_use"}}\n\n'
    )
    decoded = encoder_for("anthropic_messages").decode_stream(stream)
    assert decoded == DecodedAnswer(None, None, (("refund", '{"amount": 1'),), "tool_calls")


def test_sse_events_skip_the_terminator_comments_and_data_that_is_not_json() -> None:
    body = (
        b'event: a\r\ndata: {"x": 1}\r\n\r\n'
        b": a comment\n\n"
        b"data: not json\n\n"
        b'data: {"y":\ndata: 2}\n\n'
        b"data: [DONE]\n\n"
    )
    assert list(sse_events(body)) == [("a", {"x": 1}), (None, {"y": 2})]


@pytest.mark.parametrize("wire", FORMATS)
def test_a_format_is_found_from_its_endpoint_path(wire: WireFormat) -> None:
    assert format_of_path("/v1" + encoder_for(wire).path_suffix) == wire
    assert format_of_path("/v1/orders/O-1") is None
