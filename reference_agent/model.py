"""The model boundary: one request per call through the official SDKs, answers normalised.

Three wire APIs (OpenAI chat completions, OpenAI responses, Anthropic messages), each streamed
or not. Conversations are kept in a neutral form and translated per API; answers come back as a
``ModelReply``. SDK and transport exceptions become ``ProviderError`` here; judging whether the
reply fits the offered tools happens in ``interpret`` (``reference_agent.replies``, re-exported
here). Infrastructure: it may import ``errors``, ``replies``, ``settings`` and ``tls``, never
the workflow, the engine or the desk.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import httpx2
import openai

from reference_agent.errors import ProviderError
from reference_agent.replies import (
    Message,
    ModelExchange,
    ModelReply,
    ToolInvocation,
    WireToolCall,
    interpret,
    provider_error,
)
from reference_agent.settings import Api, Settings
from reference_agent.tls import httpx2_ssl_context

__all__ = [
    "Message",
    "ModelClient",
    "ModelExchange",
    "ModelReply",
    "ToolInvocation",
    "WireToolCall",
    "interpret",
    "provider_error",
]

_MAX_TOKENS = 1024


# --------------------------------------------------------------------------- client


class ModelClient:
    """Speaks one of three model APIs through the official SDKs, with SDK retries off.

    The OpenAI client is built once here; the Anthropic one on first use (and then kept), so
    a desk that never speaks Anthropic never imports it. Without ``http_client`` each SDK gets
    an HTTP client of its own, with the SDK's defaults, on the process's shared SSL context.

    Args:
        settings: endpoint, key and model name.
        http_client: the ``httpx2.Client`` the SDKs send through (tests pass a MockTransport).
    """

    def __init__(self, settings: Settings, http_client: httpx2.Client | None = None) -> None:
        self._settings = settings
        self._http = http_client
        self._openai = openai.OpenAI(
            api_key=settings.api_key,
            base_url=settings.model_base_url,
            max_retries=0,
            http_client=http_client or openai.DefaultHttpxClient(verify=httpx2_ssl_context()),
        )
        self._anthropic: Any = None

    def close(self) -> None:
        """Close the HTTP clients built here (an ``http_client`` passed in is the caller's)."""
        if self._http is not None:
            return
        self._openai.close()
        if self._anthropic is not None:
            self._anthropic.close()

    def prepare(self, api: Api) -> None:
        """Build the client ``api`` needs now (the Anthropic one is otherwise built on first
        use, importing the SDK), so no run pays for it."""
        if api == "anthropic_messages":
            self._anthropic_client()

    def _anthropic_client(self) -> Any:
        if self._anthropic is None:
            import anthropic  # lazily: only desks that speak Anthropic pay for the import

            self._anthropic = anthropic.Anthropic(
                api_key=self._settings.api_key,
                base_url=self._settings.model_base_url,
                max_retries=0,
                http_client=self._http or anthropic.DefaultHttpxClient(verify=httpx2_ssl_context()),
            )
        return self._anthropic

    def exchange(self, api: Api) -> ModelExchange:
        """The method and full URL of a request in ``api``."""
        if api == "anthropic_messages":
            base = self._settings.model_base_url.rstrip("/")
            return ModelExchange("POST", f"{base}/v1/messages")
        base = str(self._openai.base_url).rstrip("/")
        path = "responses" if api == "openai_responses" else "chat/completions"
        return ModelExchange("POST", f"{base}/{path}")

    def complete(
        self,
        api: Api,
        stream: bool,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]],
        exchange: ModelExchange,
        now: float,
    ) -> ModelReply:
        """Send one request (tool choice required) and return the normalised reply.

        Raises:
            ProviderError: the provider or the transport failed.
        """
        try:
            if api == "openai_chat":
                reply = self._chat(messages, tools, stream)
            elif api == "openai_responses":
                reply = self._responses(messages, tools, stream)
            else:
                reply = self._messages(messages, tools, stream)
        except (openai.OpenAIError, httpx2.HTTPError, httpx.HTTPError) as exc:
            exchange.status = getattr(exc, "status_code", None)
            raise provider_error(exc, now) from exc
        except Exception as exc:
            # Anthropic errors share no base with OpenAI's; map them by shape, not by import.
            if type(exc).__module__.startswith("anthropic"):
                exchange.status = getattr(exc, "status_code", None)
                raise provider_error(exc, now) from exc
            raise
        exchange.status = 200
        exchange.reply = reply
        return reply

    # ------------------------------------------------------------------ openai chat

    def _chat(
        self, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]], stream: bool
    ) -> ModelReply:
        wire: list[dict[str, Any]] = []
        for m in messages:
            if m["role"] == "assistant":
                wire.append(
                    {
                        "role": "assistant",
                        "content": m.get("content"),
                        "tool_calls": [
                            {
                                "id": c["id"],
                                "type": "function",
                                "function": {"name": c["name"], "arguments": c["arguments"]},
                            }
                            for c in m["tool_calls"]
                        ],
                    }
                )
            elif m["role"] == "tool":
                wire.append(
                    {"role": "tool", "tool_call_id": m["tool_call_id"], "content": m["content"]}
                )
            else:
                wire.append({"role": m["role"], "content": m["content"]})
        kwargs: dict[str, Any] = {
            "model": self._settings.model,
            "messages": wire,
            "tools": [{"type": "function", "function": dict(t)} for t in tools],
            "tool_choice": "required",
        }
        if not stream:
            resp: Any = self._openai.chat.completions.create(**kwargs)
            if not resp.choices:
                return ModelReply(empty=True)
            choice = resp.choices[0]
            msg = choice.message
            calls = tuple(
                WireToolCall(c.id, c.function.name, c.function.arguments or "")
                for c in (msg.tool_calls or [])
                if getattr(c, "function", None) is not None
            )
            return ModelReply(
                tool_calls=calls,
                text=msg.content,
                finish=choice.finish_reason,
                refusal=getattr(msg, "refusal", None),
            )
        chunks: Any = self._openai.chat.completions.create(**kwargs, stream=True)
        text: list[str] = []
        refusal: list[str] = []
        parts: dict[int, dict[str, Any]] = {}
        finish: str | None = None
        saw_choice = False
        for chunk in chunks:
            if not chunk.choices:
                continue
            saw_choice = True
            choice = chunk.choices[0]
            delta = choice.delta
            if delta is not None:
                if delta.content:
                    text.append(delta.content)
                if getattr(delta, "refusal", None):
                    refusal.append(delta.refusal)
                for tc in delta.tool_calls or []:
                    part = parts.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                    if tc.id:
                        part["id"] = tc.id
                    if tc.function is not None:
                        part["name"] += tc.function.name or ""
                        part["arguments"] += tc.function.arguments or ""
            if choice.finish_reason:
                finish = choice.finish_reason
        if not saw_choice:
            return ModelReply(empty=True)
        if finish is None:
            raise ProviderError("the model stream ended before its finish reason (cut stream)")
        return ModelReply(
            tool_calls=tuple(
                WireToolCall(p["id"], p["name"], p["arguments"]) for _, p in sorted(parts.items())
            ),
            text="".join(text) or None,
            finish=finish,
            refusal="".join(refusal) or None,
        )

    # ------------------------------------------------------------------ openai responses

    def _responses(
        self, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]], stream: bool
    ) -> ModelReply:
        instructions = "\n".join(m["content"] for m in messages if m["role"] == "system")
        items: list[dict[str, Any]] = []
        for m in messages:
            if m["role"] == "assistant":
                items.extend(
                    {
                        "type": "function_call",
                        "call_id": c["id"],
                        "name": c["name"],
                        "arguments": c["arguments"],
                    }
                    for c in m["tool_calls"]
                )
            elif m["role"] == "tool":
                items.append(
                    {
                        "type": "function_call_output",
                        "call_id": m["tool_call_id"],
                        "output": m["content"],
                    }
                )
            elif m["role"] == "user":
                items.append({"role": "user", "content": m["content"]})
        kwargs: dict[str, Any] = {
            "model": self._settings.model,
            "instructions": instructions or None,
            "input": items,
            "tools": [{"type": "function", **dict(t)} for t in tools],
            "tool_choice": "required",
        }
        if not stream:
            resp: Any = self._openai.responses.create(**kwargs)
            return _from_response(resp)
        events: Any = self._openai.responses.create(**kwargs, stream=True)
        calls: dict[int, dict[str, Any]] = {}
        text: list[str] = []
        refusal: list[str] = []
        final: Any = None
        for event in events:
            kind = event.type
            if kind == "response.output_item.added" and event.item.type == "function_call":
                calls[event.output_index] = {
                    "id": event.item.call_id,
                    "name": event.item.name,
                    "arguments": event.item.arguments or "",
                }
            elif kind == "response.function_call_arguments.delta":
                calls.setdefault(event.output_index, {"id": None, "name": "", "arguments": ""})
                calls[event.output_index]["arguments"] += event.delta
            elif kind == "response.function_call_arguments.done":
                if event.output_index in calls:
                    calls[event.output_index]["arguments"] = event.arguments
            elif kind == "response.output_text.delta":
                text.append(event.delta)
            elif kind == "response.refusal.delta":
                refusal.append(event.delta)
            elif kind in ("response.completed", "response.incomplete"):
                final = event.response
            elif kind in ("response.failed", "error"):
                raise ProviderError(f"the model stream reported {kind}")
        if final is None:
            raise ProviderError("the model stream ended before response.completed (cut stream)")
        if not calls and not text and not refusal:
            return _from_response(final)
        return ModelReply(
            tool_calls=tuple(
                WireToolCall(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())
            ),
            text="".join(text) or None,
            finish=_responses_finish(final, bool(calls)),
            refusal="".join(refusal) or None,
        )

    # ------------------------------------------------------------------ anthropic messages

    def _messages(
        self, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]], stream: bool
    ) -> ModelReply:
        system, wire = _anthropic_wire(messages)
        kwargs: dict[str, Any] = {
            "model": self._settings.model,
            "max_tokens": _MAX_TOKENS,
            "system": system,
            "messages": wire,
            "tools": [
                {
                    "name": t["name"],
                    "description": t["description"],
                    "input_schema": t["parameters"],
                }
                for t in tools
            ],
            "tool_choice": {"type": "any"},
        }
        client = self._anthropic_client()
        if not stream:
            resp: Any = client.messages.create(**kwargs)
            return _from_anthropic(resp.content or [], resp.stop_reason)
        events: Any = client.messages.create(**kwargs, stream=True)
        return _from_anthropic_stream(events)


def _responses_finish(resp: Any, has_calls: bool) -> str:
    if getattr(resp, "status", None) == "incomplete":
        details = getattr(resp, "incomplete_details", None)
        reason = getattr(details, "reason", None)
        return "content_filter" if reason == "content_filter" else "length"
    return "tool_calls" if has_calls else "stop"


def _from_response(resp: Any) -> ModelReply:
    output = list(resp.output or [])
    if not output:
        return ModelReply(empty=True, finish=_responses_finish(resp, False))
    calls: list[WireToolCall] = []
    text: list[str] = []
    refusal: list[str] = []
    for item in output:
        if item.type == "function_call":
            calls.append(WireToolCall(item.call_id, item.name, item.arguments or ""))
        elif item.type == "message":
            for part in item.content or []:
                if part.type == "output_text":
                    text.append(part.text)
                elif part.type == "refusal":
                    refusal.append(part.refusal)
    return ModelReply(
        tool_calls=tuple(calls),
        text="".join(text) or None,
        finish=_responses_finish(resp, bool(calls)),
        refusal="".join(refusal) or None,
    )


def _anthropic_finish(stop_reason: str | None) -> str | None:
    return {
        "max_tokens": "length",
        "refusal": "refusal",
        "tool_use": "tool_calls",
        "end_turn": "stop",
        "stop_sequence": "stop",
    }.get(stop_reason or "", stop_reason)


def _from_anthropic(content: Sequence[Any], stop_reason: str | None) -> ModelReply:
    if not content:
        return ModelReply(empty=True, finish=_anthropic_finish(stop_reason))
    calls: list[WireToolCall] = []
    text: list[str] = []
    for block in content:
        if block.type == "tool_use":
            raw = block.input
            calls.append(
                WireToolCall(block.id, block.name, raw if isinstance(raw, str) else json.dumps(raw))
            )
        elif block.type == "text":
            text.append(block.text)
    return ModelReply(
        tool_calls=tuple(calls),
        text="".join(text) or None,
        finish=_anthropic_finish(stop_reason),
        refusal="refusal" if stop_reason == "refusal" else None,
    )


def _anthropic_wire(messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    """The neutral conversation as an Anthropic system prompt and alternating turns."""
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    wire: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "system":
            continue
        if m["role"] == "assistant":
            blocks: list[dict[str, Any]] = []
            if m.get("content"):
                blocks.append({"type": "text", "text": m["content"]})
            for c in m["tool_calls"]:
                try:
                    parsed = json.loads(c["arguments"])
                except ValueError:
                    parsed = {}
                blocks.append(
                    {"type": "tool_use", "id": c["id"], "name": c["name"], "input": parsed}
                )
            wire.append({"role": "assistant", "content": blocks})
            continue
        if m["role"] == "tool":
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": m["tool_call_id"],
                "content": m["content"],
            }
        else:
            block = {"type": "text", "text": m["content"]}
        # Anthropic wants user/assistant turns to alternate: fold adjacent user content.
        if wire and wire[-1]["role"] == "user":
            wire[-1]["content"].append(block)
        else:
            wire.append({"role": "user", "content": [block]})
    return system, wire


def _from_anthropic_stream(events: Any) -> ModelReply:
    """Fold an Anthropic event stream into one reply (a cut stream is a provider error)."""
    blocks_by_index: dict[int, dict[str, Any]] = {}
    stop_reason: str | None = None
    stopped = False
    for event in events:
        kind = event.type
        if kind == "content_block_start":
            cb = event.content_block
            if cb.type == "tool_use":
                blocks_by_index[event.index] = {
                    "type": "tool_use",
                    "id": cb.id,
                    "name": cb.name,
                    "json": "",
                    "input": cb.input,
                }
            elif cb.type == "text":
                blocks_by_index[event.index] = {"type": "text", "text": cb.text or ""}
        elif kind == "content_block_delta":
            open_block = blocks_by_index.get(event.index)
            delta = event.delta
            if open_block is None:
                continue
            if delta.type == "input_json_delta":
                open_block["json"] += delta.partial_json
            elif delta.type == "text_delta":
                open_block["text"] += delta.text
        elif kind == "message_delta":
            stop_reason = event.delta.stop_reason or stop_reason
        elif kind == "message_stop":
            stopped = True
    if not stopped and stop_reason is None:
        raise ProviderError("the model stream ended before message_stop (cut stream)")
    calls = tuple(
        WireToolCall(b["id"], b["name"], b["json"] if b["json"] else json.dumps(b["input"] or {}))
        for _, b in sorted(blocks_by_index.items())
        if b["type"] == "tool_use"
    )
    text = "".join(b["text"] for b in blocks_by_index.values() if b["type"] == "text")
    if not blocks_by_index:
        return ModelReply(empty=True, finish=_anthropic_finish(stop_reason))
    return ModelReply(
        tool_calls=calls,
        text=text or None,
        finish=_anthropic_finish(stop_reason),
        refusal="refusal" if stop_reason == "refusal" else None,
    )
