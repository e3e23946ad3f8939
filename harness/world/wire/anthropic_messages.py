"""The Anthropic Messages wire format: ``message`` bodies and the typed SSE event stream."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from faults.surfaces import (
    HttpResponse,
    ModelAnswer,
    ProviderError,
    StreamPlan,
    ToolCallSpec,
    WireFormat,
)
from harness.world.wire.base import (
    DecodedAnswer,
    LastTurn,
    ToolResultSent,
    UnreadableAnswer,
    WireEncoder,
    content_text,
    json_body,
    last_index,
    named_tools,
    provider_error_status,
    text_or_none,
)
from harness.world.wire.sse import pieces, rough_tokens, sse_event, sse_events

_STOP = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "tool_calls"}
_FINISH |= {"max_tokens": "length", "refusal": "refusal"}

_ERRORS: dict[str, tuple[str, str]] = {
    "rate_limit": (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization. Please try again later.",
    ),
    "quota": (
        "billing_error",
        "Your credit balance is too low to access the Anthropic API.",
    ),
    "server": ("api_error", "Internal server error"),
    "overloaded": ("overloaded_error", "Overloaded"),
}


class AnthropicMessagesEncoder(WireEncoder):
    """``POST /v1/messages``: a ``message`` body, or ``message_start`` ... ``message_stop``
    events with ``input_json_delta`` pieces for tool input."""

    wire_format: ClassVar[WireFormat] = "anthropic_messages"
    path_suffix: ClassVar[str] = "/messages"

    def response(self, answer: ModelAnswer, *, model: str, seq: int, created: int) -> HttpResponse:
        """See :meth:`WireEncoder.response`.

        Tool input is served as the parsed JSON of ``ToolCallSpec.arguments``; arguments that
        are not JSON are served as a string, so the body stays parseable and the agent's own
        input validation has to catch the wrong type.
        """
        content = [] if answer.empty else _blocks(answer)
        body = {**_message(answer, model, seq), "content": content}
        body["stop_reason"] = _stop_reason(answer)
        body["usage"] = _usage(answer)
        return HttpResponse.of_json(200, body)

    def stream(self, answer: ModelAnswer, *, model: str, seq: int, created: int) -> StreamPlan:
        """See :meth:`WireEncoder.stream`. Tool input arrives as raw ``partial_json`` pieces."""
        opening = {
            **_message(answer, model, seq),
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 16, "output_tokens": 1},
        }
        events = [sse_event({"type": "message_start", "message": opening}, "message_start")]
        blocks = [] if answer.empty else _blocks(answer)
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                start: dict[str, Any] = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": p} for p in pieces(block["text"], 3)]
            else:
                start = {**block, "input": {}}
                raw = answer.tool_calls[index - _text_blocks(answer)].arguments
                deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces(raw, 2)]
            events.append(
                sse_event(
                    {"type": "content_block_start", "index": index, "content_block": start},
                    "content_block_start",
                )
            )
            if index == 0:
                events.append(sse_event({"type": "ping"}, "ping"))
            events.extend(
                sse_event(
                    {"type": "content_block_delta", "index": index, "delta": d},
                    "content_block_delta",
                )
                for d in deltas
            )
            events.append(
                sse_event({"type": "content_block_stop", "index": index}, "content_block_stop")
            )
        events.append(
            sse_event(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": _stop_reason(answer), "stop_sequence": None},
                    "usage": {"output_tokens": _usage(answer)["output_tokens"]},
                },
                "message_delta",
            )
        )
        events.append(sse_event({"type": "message_stop"}, "message_stop"))
        return StreamPlan(tuple(events))

    def error(self, error: ProviderError, message: str | None = None) -> HttpResponse:
        """See :meth:`WireEncoder.error`."""
        kind, stock = _ERRORS[error.kind]
        message = stock if message is None else message
        headers: dict[str, str] = {}
        retry_after = error.retry_after
        if retry_after is None and error.kind == "rate_limit":
            retry_after = "1"
        if retry_after is not None:
            headers["retry-after"] = retry_after
        body = {"type": "error", "error": {"type": kind, "message": message}}
        return HttpResponse.of_json(provider_error_status(error, self.wire_format), body, headers)

    def error_event(self) -> bytes:
        """An ``event: error`` with an ``overloaded_error`` body, as the API sends mid-stream."""
        return sse_event(
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            "error",
        )

    def offered_tools(self, body: Any) -> tuple[str, ...]:
        """Names under ``tools[].name``."""
        return named_tools(body.get("tools"), "name") if isinstance(body, dict) else ()

    def last_turn(self, body: Any) -> LastTurn:
        """The ``tool_use`` blocks of the last ``assistant`` message and the ``tool_result``
        blocks of the messages after it (``is_error: true`` is the format's own error flag)."""
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list):
            return LastTurn()
        at = last_index(messages, lambda m: m.get("role") == "assistant")
        calls = tuple(
            ToolCallSpec(
                block["name"], json.dumps(block.get("input")), text_or_none(block.get("id"))
            )
            for block in (_blocks_of(messages[at]) if at >= 0 else ())
            if block.get("type") == "tool_use" and isinstance(block.get("name"), str)
        )
        results = tuple(
            ToolResultSent(
                text_or_none(block.get("tool_use_id")),
                content_text(block.get("content")),
                block.get("is_error") is True,
            )
            for message in messages[at + 1 :]
            for block in _blocks_of(message)
            if block.get("type") == "tool_result"
        )
        return LastTurn(calls, results)

    def decode(self, body: bytes) -> DecodedAnswer:
        """The answer of a ``message`` body: its content blocks and stop reason."""
        message = json_body(body)
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            raise UnreadableAnswer("it has no 'content' list")
        return _decode(message["content"], message.get("stop_reason"))

    def decode_stream(self, body: bytes) -> DecodedAnswer:
        """The answer the content-block events add up to (tool input from its JSON pieces)."""
        blocks: dict[int, dict[str, Any]] = {}
        partial: dict[int, str] = {}
        stop: Any = None
        for name, event in sse_events(body):
            kind = event.get("type", name) if isinstance(event, dict) else name
            if kind == "content_block_start":
                index = int(event.get("index", len(blocks)))
                blocks[index] = dict(event.get("content_block") or {})
            elif kind == "content_block_delta":
                index = int(event.get("index", 0))
                delta = event.get("delta") or {}
                block = blocks.setdefault(index, {"type": "text", "text": ""})
                if delta.get("type") == "text_delta":
                    block["text"] = str(block.get("text") or "") + str(delta.get("text") or "")
                elif delta.get("type") == "input_json_delta":
                    piece = str(delta.get("partial_json") or "")
                    partial[index] = partial.get(index, "") + piece
            elif kind == "message_delta":
                stop = (event.get("delta") or {}).get("stop_reason") or stop
        for index, raw in partial.items():
            blocks[index]["input"] = raw  # the raw text: parsed (or kept verbatim) by the reader
        return _decode([blocks[i] for i in sorted(blocks)], stop)


def _blocks_of(message: Any) -> list[dict[str, Any]]:
    content = message.get("content") if isinstance(message, dict) else None
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _decode(blocks: list[Any], stop: Any) -> DecodedAnswer:
    if not blocks:
        return DecodedAnswer(empty=True)
    text: str | None = None
    calls: list[tuple[str, str]] = []
    for block in blocks:
        if block.get("type") == "text":
            text = (text or "") + str(block.get("text") or "")
        elif block.get("type") == "tool_use":
            raw = block.get("input")
            args = raw if isinstance(raw, str) else json.dumps(raw, separators=(",", ":"))
            calls.append((str(block.get("name")), args))
    finish = _FINISH.get(str(stop))
    if finish == "refusal":
        # Anthropic has no refusal field: a refusal is the text with stop_reason "refusal"
        return DecodedAnswer(None, text or "", tuple(calls), None)
    return DecodedAnswer(text, None, tuple(calls), finish)


def _message(answer: ModelAnswer, model: str, seq: int) -> dict[str, Any]:
    return {
        "id": f"msg_shakeout_{seq}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "stop_sequence": None,
    }


def _text_blocks(answer: ModelAnswer) -> int:
    return 1 if (answer.text is not None or answer.refusal is not None) else 0


def _blocks(answer: ModelAnswer) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if _text_blocks(answer):
        # Anthropic has no separate refusal field: a refusal is text with stop_reason "refusal"
        text = answer.text if answer.text is not None else answer.refusal
        blocks.append({"type": "text", "text": text})
    for call in answer.tool_calls:
        block: dict[str, Any] = {"type": "tool_use", "name": call.name, "input": _input(call)}
        if call.id is not None:
            block = {"type": "tool_use", "id": call.id, "name": call.name, "input": _input(call)}
        blocks.append(block)
    return blocks


def _input(call: Any) -> Any:
    try:
        return json.loads(call.arguments)
    except ValueError:
        return call.arguments


def _stop_reason(answer: ModelAnswer) -> str:
    if answer.refusal is not None:
        return "refusal"
    return _STOP.get(answer.finish_reason(), "refusal")


def _usage(answer: ModelAnswer) -> dict[str, int]:
    out = rough_tokens(answer.text) + rough_tokens(answer.refusal)
    out += sum(rough_tokens(c.arguments) + 1 for c in answer.tool_calls)
    return {"input_tokens": 16, "output_tokens": out}
