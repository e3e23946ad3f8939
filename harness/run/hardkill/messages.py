"""The hard-kill protocol's message encoding: one JSON object per line, bytes as base64.

Owns how requests, answers (plain, streamed, transport errors) and outcomes cross the pipe
between the parent and the agent's process. Pure functions; imports ``faults.surfaces``,
``harness.adapter`` and ``harness.world.bridge`` (the types it encodes), nothing of the package.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any

from faults.surfaces import HttpRequest, HttpResponse, StreamPlan, TransportError, TransportFailure
from harness.adapter import ApprovalRecord, Outcome, RunState
from harness.world.bridge import Answer, StreamedResponse

__all__ = [
    "answer_from_wire",
    "answer_to_wire",
    "dumps",
    "outcome_from_wire",
    "outcome_to_wire",
    "request_from_wire",
    "request_to_wire",
]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def request_to_wire(request: HttpRequest) -> dict[str, Any]:
    return {
        "method": request.method,
        "url": request.url,
        "headers": list(request.headers.items()),
        "body": _b64(request.body),
        "stack": request.stack,
    }


def request_from_wire(data: Mapping[str, Any]) -> HttpRequest:
    return HttpRequest(
        method=data["method"],
        url=data["url"],
        headers=dict(data["headers"]),
        body=_unb64(data["body"]),
        stack=data["stack"],
    )


def answer_to_wire(answer: Answer, stream_id: int) -> dict[str, Any]:
    if isinstance(answer, HttpResponse):
        return {
            "kind": "response",
            "status": answer.status,
            "headers": [list(h) for h in answer.headers],
            "body": _b64(answer.body),
        }
    if isinstance(answer, TransportError):
        return {"kind": "error", "failure": answer.kind.value, "message": answer.message}
    plan = answer.plan
    return {
        "kind": "stream",
        "status": answer.status,
        "headers": [list(h) for h in answer.headers],
        "events": [_b64(e) for e in plan.events],
        "terminator": _b64(plan.terminator),
        "cut_after": plan.cut_after,
        "delay_per_event": plan.delay_per_event,
        "stream": stream_id if answer.on_event is not None else None,
    }


def answer_from_wire(data: Mapping[str, Any], on_event: Callable[[int, int], None]) -> Answer:
    kind = data["kind"]
    headers = tuple((str(k), str(v)) for k, v in data.get("headers", ()))
    if kind == "response":
        return HttpResponse(data["status"], headers, _unb64(data["body"]))
    if kind == "error":
        return TransportError(TransportFailure(data["failure"]), data["message"])
    plan = StreamPlan(
        events=tuple(_unb64(e) for e in data["events"]),
        terminator=_unb64(data["terminator"]),
        cut_after=data["cut_after"],
        delay_per_event=data["delay_per_event"],
    )
    stream = data["stream"]
    hook = None if stream is None else (lambda i: on_event(stream, i))
    return StreamedResponse(data["status"], headers, plan, hook)


def _approval_to_wire(a: ApprovalRecord) -> dict[str, Any]:
    return {
        "approval_id": a.approval_id,
        "tool": a.tool,
        "arguments": dict(a.arguments),
        "summary": a.summary,
        "expires_at": a.expires_at,
    }


def outcome_to_wire(o: Outcome) -> dict[str, Any]:
    return {
        "run_id": o.run_id,
        "state": o.state.value,
        "category": o.category,
        "error": o.error,
        "pending_approval": None
        if o.pending_approval is None
        else _approval_to_wire(o.pending_approval),
        "approvals": [_approval_to_wire(a) for a in o.approvals],
    }


def outcome_from_wire(data: Mapping[str, Any]) -> Outcome:
    pending = data["pending_approval"]
    return Outcome(
        run_id=data["run_id"],
        state=RunState(data["state"]),
        category=data["category"],
        error=data["error"],
        pending_approval=None if pending is None else ApprovalRecord(**pending),
        approvals=tuple(ApprovalRecord(**a) for a in data["approvals"]),
    )


def dumps(message: Mapping[str, Any]) -> bytes:
    # default=str: a trace record holding a datetime or a Path still crosses the pipe
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"
