"""The surfaces faults act on: neutral HTTP exchanges, model answers, streams, reviews, crashes.

These types are the contract between the harness's world (which intercepts requests and serves
scripted answers) and the fault catalogue (which bends those answers). They depend on no HTTP
library: the harness converts to and from ``httpx`` / ``httpx2`` objects at its edge.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Literal, Protocol

from faults.base import Fault, Surface

# --------------------------------------------------------------------------- HTTP (tool surface)


@dataclass(frozen=True)
class HttpRequest:
    """One intercepted request, library-neutral. ``stack`` says which client library sent it."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""
    stack: Literal["httpx", "httpx2"] = "httpx"

    @property
    def path(self) -> str:
        """The URL path without query."""
        rest = self.url.split("://", 1)[-1]
        slash = rest.find("/")
        path = rest[slash:] if slash >= 0 else "/"
        return path.split("?", 1)[0]

    @property
    def host(self) -> str:
        """The URL host (without port)."""
        rest = self.url.split("://", 1)[-1]
        return rest.split("/", 1)[0].rsplit(":", 1)[0]

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup."""
        low = name.lower()
        for k, v in self.headers.items():
            if k.lower() == low:
                return v
        return None

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` when it is not JSON)."""
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class HttpResponse:
    """A response to serve, library-neutral."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    @classmethod
    def of_json(
        cls, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> HttpResponse:
        """A JSON response with ``content-type: application/json``."""
        hdrs = {"content-type": "application/json", **(headers or {})}
        return cls(status, tuple(hdrs.items()), json.dumps(payload).encode())

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup."""
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return None


class TransportFailure(StrEnum):
    """Transport-level failures; the harness raises the matching exception of the caller's
    library (``httpx.ConnectTimeout`` or ``httpx2.ConnectTimeout``, and so on)."""

    CONNECT_TIMEOUT = "connect_timeout"
    READ_TIMEOUT = "read_timeout"
    CONNECT_ERROR = "connect_error"
    CONNECTION_RESET = "connection_reset"  # raised as ReadError
    PROTOCOL_ERROR = "protocol_error"  # raised as RemoteProtocolError (e.g. body cut short)


@dataclass(frozen=True)
class TransportError:
    """Answer a request by raising a transport exception instead of responding."""

    kind: TransportFailure
    message: str = ""


ToolResult = HttpResponse | TransportError


class Clock(Protocol):
    """The run's fake clock (seconds); ``sleep`` advances it without waiting."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class ToolCallContext(Protocol):
    """What a tool fault sees of the call it acts on."""

    @property
    def request(self) -> HttpRequest: ...

    @property
    def tool(self) -> str: ...

    @property
    def call_index(self) -> int:
        """1-based index of this call among the calls to ``tool`` in the run."""
        ...

    @property
    def clock(self) -> Clock: ...

    @property
    def rng(self) -> random.Random: ...

    def call_service(self) -> HttpResponse:
        """Let the scripted service handle the request (a ledger commits its effect here)."""
        ...


class ToolFault(Fault):
    """A fault on one HTTP call to a tool service. ``target`` is the tool name (None: any)."""

    surface: ClassVar[Surface] = Surface.TOOL

    def apply(self, ctx: ToolCallContext) -> ToolResult:
        """Return what the agent receives instead of (or after) the service's answer."""
        raise NotImplementedError


# --------------------------------------------------------------------------- model surface


@dataclass(frozen=True)
class ToolCallSpec:
    """One tool call in a model answer. ``arguments`` is the raw JSON text as served, so a
    fault can serve text that is not JSON; ``id`` None serves a call without an id."""

    name: str
    arguments: str
    id: str | None = "call_1"


FinishReason = Literal["stop", "tool_calls", "length", "content_filter"]


@dataclass(frozen=True)
class ModelAnswer:
    """A provider-neutral model answer; the wire encoders render it in each provider's format.

    ``empty`` serves an answer with no choices (OpenAI) or no content blocks (Anthropic).
    ``refusal`` serves the provider's refusal form (OpenAI ``message.refusal``; Anthropic
    ``stop_reason: refusal``). ``finish`` None derives it: tool_calls if any, else stop.
    """

    text: str | None = None
    tool_calls: tuple[ToolCallSpec, ...] = ()
    finish: FinishReason | None = None
    refusal: str | None = None
    empty: bool = False

    def finish_reason(self) -> FinishReason:
        """The finish reason to serve."""
        if self.finish is not None:
            return self.finish
        return "tool_calls" if self.tool_calls else "stop"


@dataclass(frozen=True)
class ProviderError:
    """The provider answers with an HTTP error and its own error body, so the SDK raises its
    real exception class. ``kind``: rate_limit (429), quota (429 insufficient_quota),
    server (500), overloaded (529 Anthropic / 503 OpenAI)."""

    kind: Literal["rate_limit", "quota", "server", "overloaded"]
    retry_after: str | None = None


WireFormat = Literal["openai_chat", "openai_responses", "anthropic_messages"]


class ModelCallContext(Protocol):
    """What a model fault sees of the model request it answers."""

    @property
    def request(self) -> HttpRequest: ...

    @property
    def call_index(self) -> int:
        """1-based index of this request among the run's model requests."""
        ...

    @property
    def scripted(self) -> ModelAnswer | None:
        """The scripted answer this request would get without the fault (None if exhausted)."""
        ...

    @property
    def previous(self) -> ModelAnswer | None:
        """The answer served to the previous model request, if any."""
        ...

    @property
    def wire_format(self) -> WireFormat: ...

    @property
    def rng(self) -> random.Random: ...


class ModelFault(Fault):
    """A faulty model answer inserted before the scripted turn (the turn is not consumed)."""

    surface: ClassVar[Surface] = Surface.MODEL

    def answer(self, ctx: ModelCallContext) -> ModelAnswer | ProviderError:
        """The faulty answer to serve for this request."""
        raise NotImplementedError


# --------------------------------------------------------------------------- stream surface


@dataclass(frozen=True)
class StreamPlan:
    """How a streamed answer is delivered: the encoded SSE events in order, then how it ends.

    ``events`` are complete SSE events (bytes ending in a blank line); ``terminator`` the
    provider's end marker (``data: [DONE]`` for OpenAI chat, empty when the format has none);
    ``cut_after`` raises a protocol error after that many bytes of the joined body;
    ``delay_per_event`` advances the fake clock per event.
    """

    events: tuple[bytes, ...]
    terminator: bytes = b""
    cut_after: int | None = None
    delay_per_event: float = 0.0


class StreamCallContext(ModelCallContext, Protocol):
    """A model call context for a streamed answer, with format-aware encoders."""

    def error_event(self) -> bytes:
        """An in-stream error event in the provider's format (OpenAI: an ``error`` data
        object; Anthropic: ``event: error``)."""
        ...


class StreamFault(Fault):
    """A fault on the delivery of a streamed model answer."""

    surface: ClassVar[Surface] = Surface.STREAM

    def mutate(self, plan: StreamPlan, ctx: StreamCallContext) -> StreamPlan:
        """The plan to deliver instead."""
        raise NotImplementedError


# --------------------------------------------------------------------------- approval surface


ReviewVerdict = Literal["approve", "deny", "never"]


@dataclass(frozen=True)
class ReviewAction:
    """What the scripted reviewer delivers for one approval request.

    ``verdict`` never: no decision (the harness advances the clock past expiry and resumes).
    ``arguments`` not None: the decision is bound to these arguments instead of the requested
    ones (the agent must refuse it). ``times`` > 1 delivers the same decision again.
    ``after_restart``: the harness crashes the agent while parked and delivers the decision to
    a fresh instance. ``concurrent``: the decision is delivered twice at the same moment, by two
    workers (two adapter instances over the same persisted state).
    """

    verdict: ReviewVerdict
    arguments: Mapping[str, Any] | None = None
    times: int = 1
    after_restart: bool = False
    delay_s: float = 1.0
    concurrent: bool = False


@dataclass(frozen=True)
class ReviewContext:
    """The approval request as the scripted reviewer sees it."""

    tool: str
    arguments: Mapping[str, Any]
    scripted: ReviewAction
    request_index: int
    expires_at: float | None = None
    """The pending approval's expiry as the agent reported it (fake clock), if known."""
    now: float | None = None
    """The fake clock when the reviewer looks at the request, if known."""


class ApprovalFault(Fault):
    """A fault in how the human approval step answers."""

    surface: ClassVar[Surface] = Surface.APPROVAL

    def review(self, ctx: ReviewContext) -> ReviewAction:
        """The reviewer action delivered instead of the scripted one."""
        raise NotImplementedError


# --------------------------------------------------------------------------- crash surface


class CrashPoint(StrEnum):
    """Boundaries at which a run can be torn down."""

    BEFORE_STEP = "before_step"
    AFTER_EFFECT = "after_effect"  # the service applied the effect; the agent has not recorded it
    AFTER_CHECKPOINT = "after_checkpoint"
    WHILE_PARKED = "while_parked"
    TERMINAL_WRITE = "terminal_write"


class CrashMode(StrEnum):
    """In-process teardown, or SIGKILL of the agent's subprocess."""

    IN_PROCESS = "in_process"
    HARD = "hard"


class AgentCrash(BaseException):
    """Raised at a crash point. A ``BaseException`` so ``except Exception`` cannot swallow it."""


@dataclass(frozen=True)
class CrashFault(Fault):
    """Tears the run down at a boundary; ``target`` names the step (None: the nth boundary)."""

    surface: ClassVar[Surface] = Surface.CRASH
    point: ClassVar[CrashPoint]
    mode: CrashMode = CrashMode.IN_PROCESS


# --------------------------------------------------------------------------- inputs


BoundaryHook = Callable[[str, str], None]
"""``hook(point, step)``: an agent calls it at each boundary (``before_step``,
``after_checkpoint``, ``terminal_write``) so the harness can crash it there."""


@dataclass(frozen=True)
class FaultFiring:
    """One firing of a fault, for the record: which fault, on which surface, where."""

    key: str
    surface: Surface
    where: str
    call_index: int
    detail: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""  # the firing fault's label (key, target, schedule): which declared fault
