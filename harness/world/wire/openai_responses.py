"""The OpenAI Responses wire format: ``response`` bodies and typed SSE events."""

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
    text_or_none,
)
from harness.world.wire.openai_chat import openai_error
from harness.world.wire.sse import pieces, rough_tokens, sse_event, sse_events

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
_FINISH = {reason: finish for finish, reason in _INCOMPLETE.items()}


class OpenAIResponsesEncoder(WireEncoder):
    """``POST /v1/responses``: a ``response`` object, or the event stream from
    ``response.created`` to ``response.completed`` (``response.incomplete`` when cut short)."""

    wire_format: ClassVar[WireFormat] = "openai_responses"
    path_suffix: ClassVar[str] = "/responses"

    def response(self, answer: ModelAnswer, *, model: str, seq: int, created: int) -> HttpResponse:
        """See :meth:`WireEncoder.response`."""
        return HttpResponse.of_json(200, _response(answer, model, seq, created, final=True))

    def stream(self, answer: ModelAnswer, *, model: str, seq: int, created: int) -> StreamPlan:
        """See :meth:`WireEncoder.stream`."""
        events: list[bytes] = []

        def emit(kind: str, **fields: Any) -> None:
            events.append(sse_event({"type": kind, "sequence_number": len(events), **fields}, kind))

        opening = _response(answer, model, seq, created, final=False)
        emit("response.created", response=opening)
        emit("response.in_progress", response=opening)
        for index, item in enumerate(_output(answer, seq)):
            item_id = item["id"]
            if item["type"] == "message":
                emit(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "content": []},
                )
                part = item["content"][0]
                field = "refusal" if part["type"] == "refusal" else "text"
                where = {"item_id": item_id, "output_index": index, "content_index": 0}
                emit("response.content_part.added", **where, part={**part, field: ""})
                delta_kind = "response.refusal" if field == "refusal" else "response.output_text"
                extra: dict[str, Any] = {} if field == "refusal" else {"logprobs": []}
                for piece in pieces(part[field], 3):
                    emit(f"{delta_kind}.delta", **where, delta=piece, **extra)
                emit(f"{delta_kind}.done", **where, **{field: part[field]}, **extra)
                emit("response.content_part.done", **where, part=part)
            else:
                emit(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "arguments": "", "status": "in_progress"},
                )
                for piece in pieces(item["arguments"], 2):
                    emit(
                        "response.function_call_arguments.delta",
                        item_id=item_id,
                        output_index=index,
                        delta=piece,
                    )
                emit(
                    "response.function_call_arguments.done",
                    item_id=item_id,
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            emit("response.output_item.done", output_index=index, item=item)
        final = _response(answer, model, seq, created, final=True)
        emit(
            "response.incomplete" if final["status"] == "incomplete" else "response.completed",
            response=final,
        )
        return StreamPlan(tuple(events))

    def error(self, error: ProviderError, message: str | None = None) -> HttpResponse:
        """See :meth:`WireEncoder.error`."""
        return openai_error(error, self.wire_format, message)

    def error_event(self) -> bytes:
        """An ``error`` event (``type: error`` with code and message), as the API sends it."""
        return sse_event(
            {
                "type": "error",
                "code": "server_error",
                "message": "The server had an error while processing your request.",
                "param": None,
                "sequence_number": 0,
            },
            "error",
        )

    def offered_tools(self, body: Any) -> tuple[str, ...]:
        """Names under ``tools[].name`` (function tools are flat in this format)."""
        return named_tools(body.get("tools"), "name") if isinstance(body, dict) else ()

    def last_turn(self, body: Any) -> LastTurn:
        """The ``function_call`` items of the model's last answer in ``input`` and the
        ``function_call_output`` items after it (with ``previous_response_id`` the answer is
        not echoed back: only the outputs are read)."""
        items = body.get("input") if isinstance(body, dict) else None
        if not isinstance(items, list):
            return LastTurn()
        at = last_index(items, _is_answer)
        start = at
        while start > 0 and isinstance(items[start - 1], dict) and _is_answer(items[start - 1]):
            start -= 1
        calls = tuple(
            ToolCallSpec(
                item["name"],
                item["arguments"]
                if isinstance(item.get("arguments"), str)
                else json.dumps(item.get("arguments")),
                text_or_none(item.get("call_id")),
            )
            for item in items[start : at + 1]
            if item.get("type") == "function_call" and isinstance(item.get("name"), str)
        )
        results = tuple(
            ToolResultSent(text_or_none(item.get("call_id")), content_text(item.get("output")))
            for item in items[at + 1 :]
            if isinstance(item, dict) and item.get("type") == "function_call_output"
        )
        return LastTurn(calls, results)

    def decode(self, body: bytes) -> DecodedAnswer:
        """The answer of a ``response`` body: its output items in order."""
        return _decode(json_body(body))

    def decode_stream(self, body: bytes) -> DecodedAnswer:
        """The answer of the final ``response.completed`` (or ``.incomplete``) event, else of
        the ``response.output_item.done`` items seen."""
        done: list[Any] = []
        for name, event in sse_events(body):
            kind = event.get("type", name) if isinstance(event, dict) else name
            if kind in ("response.completed", "response.incomplete"):
                return _decode(event.get("response"))
            if kind == "response.output_item.done":
                done.append(event.get("item"))
        if not done:
            raise UnreadableAnswer("the stream has no response.completed event")
        return _decode({"output": done})


def _is_answer(item: dict[str, Any]) -> bool:
    """An item the model produced: a function call or an assistant message."""
    return item.get("type") == "function_call" or item.get("role") == "assistant"


def _decode(body: Any) -> DecodedAnswer:
    output = body.get("output") if isinstance(body, dict) else None
    if not isinstance(output, list):
        raise UnreadableAnswer("it has no 'output' list")
    if not output:
        return DecodedAnswer(empty=True)
    text: str | None = None
    refusal: str | None = None
    calls: list[tuple[str, str]] = []
    for item in output:
        if item.get("type") == "function_call":
            calls.append((str(item.get("name")), str(item.get("arguments") or "")))
        elif item.get("type") == "message":
            for part in item.get("content") or []:
                if part.get("type") == "refusal":
                    refusal = (refusal or "") + str(part.get("refusal") or "")
                elif part.get("type") == "output_text":
                    text = (text or "") + str(part.get("text") or "")
    reason = (body.get("incomplete_details") or {}).get("reason")
    finish = _FINISH.get(str(reason)) if body.get("status") == "incomplete" else None
    return DecodedAnswer(text, refusal, tuple(calls), finish)


def _output(answer: ModelAnswer, seq: int) -> list[dict[str, Any]]:
    if answer.empty:
        return []
    items: list[dict[str, Any]] = []
    if answer.refusal is not None or answer.text is not None:
        part: dict[str, Any] = (
            {"type": "refusal", "refusal": answer.refusal}
            if answer.refusal is not None
            else {"type": "output_text", "text": answer.text, "annotations": [], "logprobs": []}
        )
        items.append(
            {
                "type": "message",
                "id": f"msg_shakeout_{seq}",
                "status": "completed",
                "role": "assistant",
                "content": [part],
            }
        )
    for index, call in enumerate(answer.tool_calls):
        item: dict[str, Any] = {
            "type": "function_call",
            "id": f"fc_shakeout_{seq}_{index}",
            "name": call.name,
            "arguments": call.arguments,
            "status": "completed",
        }
        if call.id is not None:
            item["call_id"] = call.id
        items.append(item)
    return items


def _response(
    answer: ModelAnswer, model: str, seq: int, created: int, *, final: bool
) -> dict[str, Any]:
    reason = _INCOMPLETE.get(answer.finish_reason())
    status = ("incomplete" if reason else "completed") if final else "in_progress"
    output = _output(answer, seq) if final else []
    text_tokens = rough_tokens(answer.text) + rough_tokens(answer.refusal)
    out_tokens = text_tokens + sum(rough_tokens(c.arguments) + 1 for c in answer.tool_calls)
    return {
        "id": f"resp_shakeout_{seq}",
        "object": "response",
        "created_at": created,
        "status": status,
        "model": model,
        "output": output,
        "error": None,
        "incomplete_details": {"reason": reason} if final and reason else None,
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "temperature": 1.0,
        "top_p": 1.0,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 16,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": out_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 16 + out_tokens,
        }
        if final
        else None,
    }
