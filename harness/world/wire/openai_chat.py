"""The OpenAI chat completions wire format: JSON bodies, SSE chunks with tool-call deltas."""

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

DONE = b"data: [DONE]\n\n"

_OPENAI_ERRORS: dict[str, tuple[str, str | None, str]] = {
    # kind: (type, code, message) as the OpenAI API words them
    "rate_limit": (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again in 1s.",
    ),
    "quota": (
        "insufficient_quota",
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    "server": (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    "overloaded": (
        "server_error",
        "overloaded",
        "The engine is currently overloaded, please try again later.",
    ),
}


def openai_error(
    error: ProviderError, wire_format: WireFormat, message: str | None = None
) -> HttpResponse:
    """The OpenAI API's error response (shared by chat completions and responses)."""
    kind, code, stock = _OPENAI_ERRORS[error.kind]
    message = stock if message is None else message
    headers: dict[str, str] = {}
    retry_after = error.retry_after
    if retry_after is None and error.kind == "rate_limit":
        retry_after = "1"
    if retry_after is not None:
        headers["retry-after"] = retry_after
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return HttpResponse.of_json(provider_error_status(error, wire_format), body, headers)


class OpenAIChatEncoder(WireEncoder):
    """``POST /v1/chat/completions``: ``chat.completion`` bodies and ``chat.completion.chunk``
    streams ending in ``data: [DONE]``."""

    wire_format: ClassVar[WireFormat] = "openai_chat"
    path_suffix: ClassVar[str] = "/chat/completions"

    def response(self, answer: ModelAnswer, *, model: str, seq: int, created: int) -> HttpResponse:
        """See :meth:`WireEncoder.response`."""
        choices: list[dict[str, Any]] = []
        if not answer.empty:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": answer.text,
                "refusal": answer.refusal,
            }
            if answer.tool_calls:
                message["tool_calls"] = [
                    _id(
                        {
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments},
                        },
                        c.id,
                    )
                    for c in answer.tool_calls
                ]
            choices.append(
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": answer.finish_reason(),
                    "logprobs": None,
                }
            )
        body = {
            "id": f"chatcmpl-shakeout-{seq}",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": choices,
            "usage": _usage(answer),
        }
        return HttpResponse.of_json(200, body)

    def stream(self, answer: ModelAnswer, *, model: str, seq: int, created: int) -> StreamPlan:
        """See :meth:`WireEncoder.stream`."""
        head = {
            "id": f"chatcmpl-shakeout-{seq}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return sse_event({**head, "choices": [choice]})

        if answer.empty:
            return StreamPlan((sse_event({**head, "choices": []}),), DONE)
        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        events.extend(chunk({"content": part}) for part in pieces(answer.text or "", 3))
        events.extend(chunk({"refusal": part}) for part in pieces(answer.refusal or "", 2))
        for index, call in enumerate(answer.tool_calls):
            opening = _id(
                {
                    "index": index,
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                },
                call.id,
            )
            events.append(chunk({"tool_calls": [opening]}))
            events.extend(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
                for part in pieces(call.arguments, 2)
            )
        events.append(chunk({}, answer.finish_reason()))
        return StreamPlan(tuple(events), DONE)

    def error(self, error: ProviderError, message: str | None = None) -> HttpResponse:
        """See :meth:`WireEncoder.error`."""
        return openai_error(error, self.wire_format, message)

    def error_event(self) -> bytes:
        """A ``data: {"error": ...}`` chunk, which the openai SDK raises as ``APIError``."""
        kind, code, message = _OPENAI_ERRORS["server"]
        return sse_event({"error": {"message": message, "type": kind, "param": None, "code": code}})

    def offered_tools(self, body: Any) -> tuple[str, ...]:
        """Names under ``tools[].function.name`` (and legacy ``functions[].name``)."""
        if not isinstance(body, dict):
            return ()
        return named_tools(body.get("tools"), "function", "name") + named_tools(
            body.get("functions"), "name"
        )

    def last_turn(self, body: Any) -> LastTurn:
        """The last ``assistant`` message's ``tool_calls`` and the ``tool`` messages after it."""
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list):
            return LastTurn()
        at = last_index(messages, lambda m: m.get("role") == "assistant")
        calls = []
        if at >= 0:
            for call in messages[at].get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("name"), str):
                    arguments = function.get("arguments")
                    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
                    calls.append(ToolCallSpec(function["name"], text, text_or_none(call.get("id"))))
        results = tuple(
            ToolResultSent(text_or_none(m.get("tool_call_id")), content_text(m.get("content")))
            for m in messages[at + 1 :]
            if isinstance(m, dict) and m.get("role") == "tool"
        )
        return LastTurn(tuple(calls), results)

    def decode(self, body: bytes) -> DecodedAnswer:
        """The answer of a ``chat.completion`` body: the first choice's message."""
        return _decode(json_body(body))

    def decode_stream(self, body: bytes) -> DecodedAnswer:
        """The answer ``chat.completion.chunk`` deltas add up to (tool calls by index)."""
        text: list[str] = []
        refusal: list[str] = []
        calls: dict[int, list[str]] = {}
        finish: str | None = None
        saw_choice = False
        for _, chunk in sse_events(body):
            for choice in chunk.get("choices") or [] if isinstance(chunk, dict) else []:
                saw_choice = True
                delta = choice.get("delta") or {}
                text.append(delta.get("content") or "")
                refusal.append(delta.get("refusal") or "")
                for call in delta.get("tool_calls") or []:
                    slot = calls.setdefault(int(call.get("index", len(calls))), ["", ""])
                    function = call.get("function") or {}
                    slot[0] += function.get("name") or ""
                    slot[1] += function.get("arguments") or ""
                finish = choice.get("finish_reason") or finish
        if not saw_choice:
            return DecodedAnswer(empty=True)
        return DecodedAnswer(
            "".join(text) or None,
            "".join(refusal) or None,
            tuple((name, args) for _, (name, args) in sorted(calls.items())),
            finish,
        )


def _decode(body: Any) -> DecodedAnswer:
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list):
        raise UnreadableAnswer("it has no 'choices' list")
    if not choices:
        return DecodedAnswer(empty=True)
    choice = choices[0]
    message = choice.get("message") or {}
    calls = tuple(
        (str(c["function"]["name"]), str(c["function"].get("arguments") or ""))
        for c in message.get("tool_calls") or []
        if isinstance(c, dict) and isinstance(c.get("function"), dict)
    )
    return DecodedAnswer(
        message.get("content"), message.get("refusal"), calls, choice.get("finish_reason")
    )


def _id(entry: dict[str, Any], call_id: str | None) -> dict[str, Any]:
    # a call without an id is a model fault the scenario asked for: omit the key entirely
    return entry if call_id is None else {"id": call_id, **entry}


def _usage(answer: ModelAnswer) -> dict[str, int]:
    completion = rough_tokens(answer.text) + sum(
        rough_tokens(c.arguments) + 1 for c in answer.tool_calls
    )
    return {"prompt_tokens": 16, "completion_tokens": completion, "total_tokens": 16 + completion}
