"""The interface every wire format implements (encoding answers, reading them back), and what
the providers share."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from faults.surfaces import (
    HttpResponse,
    ModelAnswer,
    ProviderError,
    StreamPlan,
    ToolCallSpec,
    WireFormat,
)

SSE_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-type", "text/event-stream; charset=utf-8"),
    ("cache-control", "no-cache"),
)


ERROR_STATUS_KEYS = ("status", "status_code", "statusCode")
"""Top-level keys of a JSON tool result whose value 400..599 says the call failed."""


def signals_error(text: str) -> bool:
    """Whether a tool result's text says the call failed: a JSON object with a non-empty
    ``error``, ``isError``/``is_error`` true, or a ``status``/``status_code``/``statusCode`` of
    400..599 (an HTTP error body, or the agent's own wrapping of one). Plain text never does:
    wording is the model's to read, not the harness's to guess."""
    if not text.lstrip().startswith("{"):
        return False
    try:
        data = json.loads(text)
    except ValueError:
        return False
    if not isinstance(data, dict):
        return False
    if data.get("isError") is True or data.get("is_error") is True:
        return True
    if data.get("error") not in (None, False, "", {}, []):
        return True
    return any(
        isinstance(v, int) and not isinstance(v, bool) and 400 <= v <= 599
        for v in (data.get(k) for k in ERROR_STATUS_KEYS)
    )


@dataclass(frozen=True)
class ToolResultSent:
    """A tool result as an agent sent it to the model.

    Attributes:
        call_id: the id of the tool call it answers (None when the format or agent gave none).
        text: its content as text (text parts joined).
        flagged: the format's own error flag is set (Anthropic ``is_error: true``).
    """

    call_id: str | None
    text: str
    flagged: bool = False

    @property
    def is_error(self) -> bool:
        """Whether the result tells the model its call failed (flag, or :func:`signals_error`)."""
        return self.flagged or signals_error(self.text)


@dataclass(frozen=True)
class LastTurn:
    """The end of the conversation a model request carries: the tool calls of the model's last
    answer (as the agent echoes it back) and the tool results sent after that answer."""

    calls: tuple[ToolCallSpec, ...] = ()
    results: tuple[ToolResultSent, ...] = ()

    def errors(self) -> tuple[ToolResultSent, ...]:
        """The results that tell the model its call failed."""
        return tuple(r for r in self.results if r.is_error)


def content_text(content: Any) -> str:
    """A message content as text: a string as is, a list of parts with ``text`` joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p
        )
    return "" if content is None else json.dumps(content)


def text_or_none(value: Any) -> str | None:
    """``value`` if it is a string, else None (ids read from an untrusted request body)."""
    return value if isinstance(value, str) else None


def last_index(items: list[Any], is_answer: Any) -> int:
    """The index of the last item for which ``is_answer(item)`` holds, or -1."""
    for i in range(len(items) - 1, -1, -1):
        if isinstance(items[i], Mapping) and is_answer(items[i]):
            return i
    return -1


@dataclass(frozen=True)
class DecodedAnswer:
    """A model answer read back from a provider's wire format (a recorded response).

    Attributes:
        text: the answer's text, None when it has none.
        refusal: the provider's refusal text (Anthropic: the text of a ``refusal`` stop).
        calls: each tool call as (name, arguments as raw JSON text), in order.
        finish: the finish reason in shakeout's words (``stop``, ``tool_calls``, ``length``,
            ``content_filter``, or the provider's own word when it has no equivalent); None
            when the format does not say.
        empty: the answer had no choices, output items or content blocks at all.
    """

    text: str | None = None
    refusal: str | None = None
    calls: tuple[tuple[str, str], ...] = ()
    finish: str | None = None
    empty: bool = False


class UnreadableAnswer(ValueError):
    """A response that is not an answer in its wire format; the message says what is missing."""


def json_body(body: bytes) -> object:
    """A response body parsed as JSON.

    Raises:
        UnreadableAnswer: the body is not JSON.
    """
    try:
        parsed: object = json.loads(body)
    except ValueError:
        raise UnreadableAnswer("its body is not JSON") from None
    return parsed


class WireEncoder(ABC):
    """Renders answers and errors in one provider's wire format.

    Attributes:
        wire_format: the format's name in scenarios.
        path_suffix: how the endpoint's path ends (the world routes POSTs ending so).
    """

    wire_format: ClassVar[WireFormat]
    path_suffix: ClassVar[str]

    @abstractmethod
    def response(self, answer: ModelAnswer, *, model: str, seq: int, created: int) -> HttpResponse:
        """The non-streamed JSON response for ``answer``.

        Args:
            answer: what the model says.
            model: the model name echoed in the body.
            seq: the 1-based index of the model request, used to make ids unique per run.
            created: the Unix timestamp to stamp (from the fake clock).
        """

    @abstractmethod
    def stream(self, answer: ModelAnswer, *, model: str, seq: int, created: int) -> StreamPlan:
        """The streamed form of ``answer`` as SSE events plus the format's terminator."""

    @abstractmethod
    def error(self, error: ProviderError, message: str | None = None) -> HttpResponse:
        """The provider's HTTP error response for ``error`` (status, headers, error body).

        Args:
            error: which error the provider reports.
            message: replaces the provider's stock message (the world explains itself there).
        """

    @abstractmethod
    def error_event(self) -> bytes:
        """An in-stream error event in the provider's format."""

    @abstractmethod
    def offered_tools(self, body: Any) -> tuple[str, ...]:
        """The tool names a request body offers the model (empty when none or unreadable)."""

    @abstractmethod
    def last_turn(self, body: Any) -> LastTurn:
        """The model's last answer's tool calls and the tool results sent after it, read from
        a parsed request body (empty when there are none or the body is unreadable)."""

    @abstractmethod
    def decode(self, body: bytes) -> DecodedAnswer:
        """The answer a provider's JSON response body holds.

        Raises:
            UnreadableAnswer: the body is not an answer in this format.
        """

    @abstractmethod
    def decode_stream(self, body: bytes) -> DecodedAnswer:
        """The answer a provider's whole SSE stream (as recorded) adds up to.

        Raises:
            UnreadableAnswer: the stream is not an answer in this format.
        """


def provider_error_status(error: ProviderError, wire_format: WireFormat) -> int:
    """The HTTP status a provider answers ``error`` with."""
    anthropic = wire_format == "anthropic_messages"
    return {
        "rate_limit": 429,
        "quota": 402 if anthropic else 429,
        "server": 500,
        "overloaded": 529 if anthropic else 503,
    }[error.kind]


def named_tools(entries: Any, *path: str) -> tuple[str, ...]:
    """Names found at ``path`` inside each entry of a request's ``tools`` list."""
    if not isinstance(entries, list):
        return ()
    out: list[str] = []
    for entry in entries:
        node: Any = entry
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, str):
            out.append(node)
    return tuple(out)
