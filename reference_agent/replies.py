"""The model's answers in neutral form, provider errors, and judging an answer against the tools.

Owns ``ModelReply`` (what any of the three APIs answered), ``ModelExchange`` (what one request
sent and received, for the trace), ``provider_error`` (SDK and transport exceptions onto
``ProviderError``) and ``interpret`` (is the answer exactly one valid call of an offered tool).
Infrastructure: it may import ``errors`` and ``tools`` (for the shared error-body parsing), never
the workflow, the engine or the desk.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
from pydantic import BaseModel, ValidationError

from reference_agent.errors import (
    EmptyAnswer,
    InvalidJSON,
    MissingToolCallId,
    ProviderError,
    Refusal,
    SchemaViolation,
    TruncatedOutput,
    UnknownTool,
)
from reference_agent.tools import QUOTA_CODES, _error_code, parse_retry_after

Message = dict[str, Any]
"""Neutral message: ``{"role": "system"|"user", "content"}``, ``{"role": "assistant",
"content", "tool_calls": [{"id", "name", "arguments"}]}``, ``{"role": "tool", "tool_call_id",
"name", "content"}``."""


@dataclass(frozen=True)
class WireToolCall:
    """A tool call as the model sent it; ``arguments`` is the raw JSON text."""

    id: str | None
    name: str
    arguments: str


@dataclass(frozen=True)
class ModelReply:
    """A provider-neutral answer.

    Attributes:
        tool_calls: the calls, in order.
        text: any text content.
        finish: ``stop``, ``tool_calls``, ``length``, ``content_filter``, ``refusal`` or None.
        refusal: the refusal text, when the provider gave one.
        empty: no choices (OpenAI) / no content (Anthropic, Responses).
    """

    tool_calls: tuple[WireToolCall, ...] = ()
    text: str | None = None
    finish: str | None = None
    refusal: str | None = None
    empty: bool = False

    def as_record(self) -> dict[str, Any]:
        """The reply as a JSON-able trace fragment."""
        return {
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls
            ],
            "text": self.text,
            "finish": self.finish,
            "refusal": self.refusal,
            "empty": self.empty,
        }


@dataclass
class ModelExchange:
    """What one model request sent and received, for the trace (filled as the call goes)."""

    method: str
    url: str
    status: int | None = None
    reply: ModelReply | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- errors


def provider_error(exc: BaseException, now: float) -> ProviderError:
    """Map an SDK or raw transport exception onto ``ProviderError`` (transient or not)."""
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    if isinstance(exc, httpx2.TimeoutException | httpx.TimeoutException) or "Timeout" in name:
        return ProviderError(f"model request timed out ({name}: {exc})")
    if status is None:
        # APIConnectionError, a raw httpx2 error escaping mid-stream, an in-stream error event.
        return ProviderError(f"model provider failed: {name}: {exc}")
    body = getattr(exc, "body", None)
    code = _error_code(body)
    response = getattr(exc, "response", None)
    retry_after = None
    if response is not None:
        retry_after = parse_retry_after(response.headers.get("retry-after"), now)
    if status == 429 and code in QUOTA_CODES:
        return ProviderError(
            f"model provider 429 with code {code!r}: the quota is exhausted; "
            "add credit or change the key, retrying cannot help",
            transient=False,
        )
    transient = status in (408, 409, 429, 529) or status >= 500 or status == 200
    return ProviderError(
        f"model provider answered {status} ({name}"
        + (f", code {code!r}" if code else "")
        + ")"
        + ("" if transient else "; the request itself was refused, not retried"),
        transient=transient,
        retry_after=retry_after,
    )


# --------------------------------------------------------------------------- interpretation


@dataclass(frozen=True)
class ToolInvocation:
    """A validated tool call: the name, its validated arguments, the call id."""

    call_id: str
    name: str
    arguments: BaseModel
    raw_arguments: dict[str, Any]


def interpret(reply: ModelReply, offered: Mapping[str, type[BaseModel]]) -> ToolInvocation:
    """Check that a reply is exactly one usable call of an offered tool.

    Raises:
        ModelError: the subclass naming what is wrong with the reply.
    """
    if reply.refusal is not None or reply.finish in ("content_filter", "refusal"):
        raise Refusal(f"the model refused: {reply.refusal or reply.finish}")
    if reply.empty:
        raise EmptyAnswer("the model answered with no choices or no content")
    if reply.finish == "length":
        raise TruncatedOutput("the answer stopped at the token limit (finish reason 'length')")
    if not reply.tool_calls:
        names = ", ".join(offered)
        raise SchemaViolation(
            f"no tool call where one was required; received text {str(reply.text)[:200]!r}; "
            f"call one of: {names}"
        )
    call = reply.tool_calls[0]
    if not call.id:
        raise MissingToolCallId(f"the call to {call.name!r} has no id")
    model = offered.get(call.name)
    if model is None:
        raise UnknownTool(
            f"the model called {call.name!r}, which was not offered; offered: {', '.join(offered)}"
        )
    try:
        args = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError as exc:
        raise InvalidJSON(
            f"the arguments of {call.name!r} are not valid JSON ({exc}); "
            f"received {call.arguments[:200]!r}"
        ) from None
    if not isinstance(args, dict):
        raise InvalidJSON(
            f"the arguments of {call.name!r} must be a JSON object; "
            f"received {call.arguments[:200]!r}"
        )
    try:
        validated = model.model_validate(args)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<arguments>'}: {e['msg']}"
            for e in exc.errors()
        )
        raise SchemaViolation(f"the arguments of {call.name!r} are invalid: {problems}") from None
    return ToolInvocation(call_id=call.id, name=call.name, arguments=validated, raw_arguments=args)
