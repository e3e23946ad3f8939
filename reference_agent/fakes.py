"""In-process fake model and tool services for the demo and the desk's own tests.

``FakeModel`` answers OpenAI chat, OpenAI responses and Anthropic messages requests (streamed
or not) from a script of ``Turn``s through ``httpx2.MockTransport``; ``FakeTools`` serves the
tool contracts through ``httpx.MockTransport`` with a ledger that dedupes idempotency keys.

Test and demo infrastructure: imports nothing from the package.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2


@dataclass(frozen=True)
class Turn:
    """One scripted model answer (or provider failure).

    Attributes:
        tool: the tool to call (None: a text answer).
        args: the arguments (a dict is JSON-encoded; a str is served verbatim).
        call_id: the call id (None serves a call without an id).
        text: text content.
        finish: override the finish reason (``length``, ``content_filter``...).
        refusal: a refusal text.
        empty: serve no choices / no content.
        status: a non-200 status serves a provider error body instead.
        error_code: the error body's code (e.g. ``insufficient_quota``).
        headers: extra response headers (e.g. ``retry-after``).
        cut: streamed: end the stream before its finish.
    """

    tool: str | None = None
    args: Mapping[str, Any] | str | None = None
    call_id: str | None = "call_1"
    text: str | None = None
    finish: str | None = None
    refusal: str | None = None
    empty: bool = False
    status: int = 200
    error_code: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    cut: bool = False

    @property
    def arguments(self) -> str:
        """The arguments as served."""
        if isinstance(self.args, str):
            return self.args
        return json.dumps(dict(self.args or {}))


def _sse(events: list[tuple[str | None, Any]]) -> bytes:
    out = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        body = data if isinstance(data, str) else json.dumps(data)
        out.append(f"{head}data: {body}\n\n")
    return "".join(out).encode()


class FakeModel:
    """A scripted model endpoint. Unscripted requests get a 500 naming the problem.

    Args:
        turns: the answers, served one per request in order.
    """

    def __init__(self, turns: list[Turn] | None = None) -> None:
        self.turns: deque[Turn] = deque(turns or [])
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []

    def script(self, *turns: Turn) -> None:
        """Append turns to the script."""
        self.turns.extend(turns)

    def client(self) -> httpx2.Client:
        """An ``httpx2.Client`` answering from this script."""
        return httpx2.Client(transport=httpx2.MockTransport(self.handle))

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        """Answer one request."""
        body = json.loads(request.content or b"{}")
        self.requests.append(body)
        path = request.url.path
        self.paths.append(path)
        if not self.turns:
            return httpx2.Response(500, json={"error": {"message": "script exhausted"}})
        turn = self.turns.popleft()
        if turn.status != 200:
            payload = {
                "type": "error",
                "error": {
                    "type": "rate_limit_error" if turn.status == 429 else "api_error",
                    "message": f"scripted {turn.status}",
                    "code": turn.error_code,
                },
            }
            return httpx2.Response(turn.status, json=payload, headers=dict(turn.headers))
        stream = bool(body.get("stream"))
        if path.endswith("/chat/completions"):
            encode: Callable[[Turn, bool], httpx2.Response] = self._chat
        elif path.endswith("/responses"):
            encode = self._responses
        else:
            encode = self._anthropic
        return encode(turn, stream)

    # --------------------------------------------------------------- openai chat

    def _chat(self, turn: Turn, stream: bool) -> httpx2.Response:
        calls = (
            [
                {
                    "id": turn.call_id,
                    "type": "function",
                    "function": {"name": turn.tool, "arguments": turn.arguments},
                }
            ]
            if turn.tool
            else None
        )
        finish = turn.finish or ("tool_calls" if turn.tool else "stop")
        base = {"id": "chatcmpl-1", "created": 0, "model": "fake-model"}
        if not stream:
            choices = (
                []
                if turn.empty
                else [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": turn.text,
                            "refusal": turn.refusal,
                            "tool_calls": calls,
                        },
                        "finish_reason": finish,
                    }
                ]
            )
            return httpx2.Response(
                200, json={**base, "object": "chat.completion", "choices": choices}
            )
        chunk = {**base, "object": "chat.completion.chunk"}
        events: list[tuple[str | None, Any]] = []
        if not turn.empty:
            events.append((None, {**chunk, "choices": [_delta({"role": "assistant"})]}))
            if turn.text:
                events.append((None, {**chunk, "choices": [_delta({"content": turn.text})]}))
            if turn.refusal:
                events.append((None, {**chunk, "choices": [_delta({"refusal": turn.refusal})]}))
            if turn.tool:
                args = turn.arguments
                half = len(args) // 2
                first = {
                    "index": 0,
                    "id": turn.call_id,
                    "type": "function",
                    "function": {"name": turn.tool, "arguments": args[:half]},
                }
                events.append((None, {**chunk, "choices": [_delta({"tool_calls": [first]})]}))
                rest = {"index": 0, "function": {"arguments": args[half:]}}
                events.append((None, {**chunk, "choices": [_delta({"tool_calls": [rest]})]}))
            if not turn.cut:
                done = {"index": 0, "delta": {}, "finish_reason": finish}
                events.append((None, {**chunk, "choices": [done]}))
        else:
            events.append((None, {**chunk, "choices": []}))
        if not turn.cut:
            events.append((None, "[DONE]"))
        return _stream(events)

    # --------------------------------------------------------------- openai responses

    def _responses(self, turn: Turn, stream: bool) -> httpx2.Response:
        output: list[dict[str, Any]] = []
        if turn.tool:
            output.append(
                {
                    "type": "function_call",
                    "id": "fc_1",
                    "call_id": turn.call_id,
                    "name": turn.tool,
                    "arguments": turn.arguments,
                    "status": "completed",
                }
            )
        parts = []
        if turn.text:
            parts.append({"type": "output_text", "text": turn.text, "annotations": []})
        if turn.refusal:
            parts.append({"type": "refusal", "refusal": turn.refusal})
        if parts:
            output.append(
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": parts,
                }
            )
        if turn.empty:
            output = []
        incomplete = turn.finish in ("length", "content_filter")
        reason = "content_filter" if turn.finish == "content_filter" else "max_output_tokens"
        resp = {
            "id": "resp_1",
            "object": "response",
            "created_at": 0,
            "model": "fake-model",
            "status": "incomplete" if incomplete else "completed",
            "incomplete_details": {"reason": reason} if incomplete else None,
            "output": output,
            "parallel_tool_calls": False,
            "tool_choice": "required",
            "tools": [],
        }
        if not stream:
            return httpx2.Response(200, json=resp)
        events: list[tuple[str | None, Any]] = []
        seq = iter(range(1000))

        def add(kind: str, **data: Any) -> None:
            events.append((kind, {"type": kind, "sequence_number": next(seq), **data}))

        add("response.created", response={**resp, "status": "in_progress", "output": []})
        for index, item in enumerate(output):
            if item["type"] == "function_call":
                add(
                    "response.output_item.added", output_index=index, item={**item, "arguments": ""}
                )
                args = item["arguments"]
                half = len(args) // 2
                for piece in (args[:half], args[half:]):
                    add(
                        "response.function_call_arguments.delta",
                        output_index=index,
                        item_id="fc_1",
                        delta=piece,
                    )
                add(
                    "response.function_call_arguments.done",
                    output_index=index,
                    item_id="fc_1",
                    arguments=args,
                )
            else:
                add("response.output_item.added", output_index=index, item={**item, "content": []})
                for part in item["content"]:
                    if part["type"] == "output_text":
                        add(
                            "response.output_text.delta",
                            output_index=index,
                            item_id="msg_1",
                            content_index=0,
                            delta=part["text"],
                            logprobs=[],
                        )
                    else:
                        add(
                            "response.refusal.delta",
                            output_index=index,
                            item_id="msg_1",
                            content_index=0,
                            delta=part["refusal"],
                        )
            add("response.output_item.done", output_index=index, item=item)
        if not turn.cut:
            add("response.incomplete" if incomplete else "response.completed", response=resp)
        return _stream(events)

    # --------------------------------------------------------------- anthropic messages

    def _anthropic(self, turn: Turn, stream: bool) -> httpx2.Response:
        content: list[dict[str, Any]] = []
        if turn.text:
            content.append({"type": "text", "text": turn.text})
        if turn.tool:
            raw: Any = turn.args if isinstance(turn.args, str) else dict(turn.args or {})
            content.append(
                {"type": "tool_use", "id": turn.call_id, "name": turn.tool, "input": raw}
            )
        if turn.empty:
            content = []
        stop = {"length": "max_tokens", "content_filter": "refusal"}.get(turn.finish or "")
        if turn.refusal:
            stop = "refusal"
        stop = stop or ("tool_use" if turn.tool else "end_turn")
        message = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "fake-model",
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
        if not stream:
            return httpx2.Response(200, json=message)
        events: list[tuple[str | None, Any]] = [
            ("message_start", {"type": "message_start", "message": {**message, "content": []}})
        ]
        for index, block in enumerate(content):
            if block["type"] == "tool_use":
                start = {**block, "input": {}}
                events.append(
                    (
                        "content_block_start",
                        {"type": "content_block_start", "index": index, "content_block": start},
                    )
                )
                args = turn.arguments
                half = len(args) // 2
                for piece in (args[:half], args[half:]):
                    delta = {"type": "input_json_delta", "partial_json": piece}
                    events.append(
                        (
                            "content_block_delta",
                            {"type": "content_block_delta", "index": index, "delta": delta},
                        )
                    )
            else:
                start = {"type": "text", "text": ""}
                events.append(
                    (
                        "content_block_start",
                        {"type": "content_block_start", "index": index, "content_block": start},
                    )
                )
                delta = {"type": "text_delta", "text": block["text"]}
                events.append(
                    (
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                    )
                )
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        if not turn.cut:
            events.append(
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": stop, "stop_sequence": None},
                        "usage": {"output_tokens": 1},
                    },
                )
            )
            events.append(("message_stop", {"type": "message_stop"}))
        return _stream(events)


def _delta(delta: dict[str, Any]) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "finish_reason": None}


def _stream(events: list[tuple[str | None, Any]]) -> httpx2.Response:
    return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=_sse(events))


ToolAnswer = httpx.Response | Exception


class FakeTools:
    """Fake tool services with a ledger: a replayed idempotency key returns the first answer.

    Args:
        orders: order bodies by id.
        customers: customer bodies by id.
        policy: the refund policy body.
    """

    def __init__(
        self,
        orders: Mapping[str, Mapping[str, Any]],
        customers: Mapping[str, Mapping[str, Any]],
        policy: Mapping[str, Any],
    ) -> None:
        self.orders = {k: dict(v) for k, v in orders.items()}
        self.customers = {k: dict(v) for k, v in customers.items()}
        self.policy = dict(policy)
        self.ledger: dict[str, dict[str, Any]] = {}
        self.effects: list[tuple[str, str, dict[str, Any]]] = []
        self.calls: list[tuple[str, str, str | None]] = []
        self.faults: dict[str, deque[ToolAnswer]] = {}

    def client(self) -> httpx.Client:
        """An ``httpx.Client`` answering from these services."""
        return httpx.Client(transport=httpx.MockTransport(self.handle))

    def inject(self, tool: str, *answers: ToolAnswer) -> None:
        """Serve these answers (or raise these exceptions) to the next calls of ``tool``."""
        self.faults.setdefault(tool, deque()).extend(answers)

    def count(self, tool: str) -> int:
        """How many requests ``tool`` received."""
        return sum(1 for name, _, _ in self.calls if name == tool)

    def effects_of(self, tool: str) -> list[dict[str, Any]]:
        """Committed side effects of ``tool`` (after ledger dedupe)."""
        return [body for name, _, body in self.effects if name == tool]

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request."""
        tool, arg = _route(request.method, request.url.path)
        key = request.headers.get("idempotency-key")
        self.calls.append((tool, request.url.path, key))
        queued = self.faults.get(tool)
        if queued:
            injected = queued.popleft()
            if isinstance(injected, Exception):
                raise injected
            return injected
        if tool == "get_order":
            order = self.orders.get(arg)
            if order is None:
                return httpx.Response(404, json={"error": {"code": "not_found"}})
            return httpx.Response(200, json=order)
        if tool == "get_customer":
            customer = self.customers.get(arg)
            if customer is None:
                return httpx.Response(404, json={"error": {"code": "not_found"}})
            return httpx.Response(200, json=customer)
        if tool == "get_refund_policy":
            return httpx.Response(200, json=self.policy)
        if tool == "unknown":
            return httpx.Response(404, json={"error": {"code": "no_route"}})
        if key is None:
            return httpx.Response(400, json={"error": {"code": "idempotency_key_required"}})
        if key in self.ledger:
            return httpx.Response(200, json=self.ledger[key])
        body = json.loads(request.content)
        n = len(self.effects) + 1
        if tool == "issue_refund":
            answer: dict[str, Any] = {"refund_id": f"re_{n}", "status": "succeeded"}
        elif tool == "send_email":
            answer = {"message_id": f"msg_{n}"}
        else:
            answer = {"ticket_id": arg, "status": "closed"}
        self.ledger[key] = answer
        self.effects.append((tool, key, body))
        return httpx.Response(200, json=answer)


def _route(method: str, path: str) -> tuple[str, str]:
    parts = [p for p in path.split("/") if p]
    table: dict[tuple[str, str], str] = {
        ("GET", "orders"): "get_order",
        ("GET", "customers"): "get_customer",
        ("GET", "policy"): "get_refund_policy",
        ("POST", "refunds"): "issue_refund",
        ("POST", "emails"): "send_email",
        ("PATCH", "tickets"): "close_ticket",
    }
    head = parts[0] if parts else ""
    return table.get((method, head), "unknown"), parts[-1] if parts else ""


def happy_script(order_id: str = "O-1001", amount: float = 40.0) -> Iterator[Turn]:
    """The model turns of a refund that goes through: classify, then propose."""
    yield Turn(tool="classify_request", args={"intent": "refund", "order_id": order_id})
    yield Turn(
        tool="propose_refund",
        args={"amount": amount, "reason": "item arrived damaged"},
        call_id="call_2",
    )
