"""What the world answers in a scenario: the tool services, the model's turns and the reviewer.

These are the specs a scenario file writes (``tools``, ``model``, ``reviewer``), with the short
forms YAML authors use; the world's runtime services are built from them in
``harness.world.services``.

May import: ``base``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    PositiveInt,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from faults.surfaces import HttpResponse, ModelAnswer, ReviewAction
from faults.surfaces import ToolCallSpec as _ToolCallSpec
from harness.scenario.base import (
    DEFAULT_MODEL_BASE_URL,
    DEFAULT_TOOLS_BASE_URL,
    MAX_ENTRIES,
    MAX_FAKE_S,
    MAX_NAME,
    MAX_PARAM_NUMBER,
    MAX_REVIEW_TIMES,
    MAX_STEPS,
    MAX_TEXT,
    FinishReason,
    HttpMethod,
    OnToolError,
    ReviewVerdict,
    RuleProblem,
    WireFormat,
    _fail,
    _one_of,
    _Spec,
)

# --------------------------------------------------------------------------- tools


class ResponseSpec(_Spec):
    """One HTTP response a fake tool service answers with.

    Attributes:
        status: the HTTP status code.
        json: the JSON body (served with ``content-type: application/json``).
        body: a raw text body instead of ``json``.
        headers: extra response headers (e.g. ``retry-after``).
    """

    status: int = Field(200, ge=100, le=599)
    json_body: Any = Field(None, alias="json")
    body: str | None = Field(None, max_length=MAX_TEXT)
    headers: dict[str, Annotated[str, Field(max_length=MAX_NAME)]] = Field(
        default_factory=dict, max_length=MAX_ENTRIES
    )

    @model_validator(mode="after")
    def _one_body(self) -> ResponseSpec:
        if "json_body" in self.model_fields_set and self.body is not None:
            raise _fail(
                RuleProblem(
                    ("body",),
                    "'json' and 'body' are both set",
                    "keep 'json' for a JSON body or 'body' for raw text, not both",
                )
            )
        return self

    def to_http(self) -> HttpResponse:
        """The library-neutral response to serve."""
        if "json_body" in self.model_fields_set:
            return HttpResponse.of_json(self.status, self.json_body, self.headers)
        headers = dict(self.headers)
        if self.body is not None and not any(k.lower() == "content-type" for k in headers):
            headers["content-type"] = "text/plain; charset=utf-8"
        return HttpResponse(self.status, tuple(headers.items()), (self.body or "").encode())


class ApprovalField(_Spec):
    """Where an approval argument lands in the request body, and its unit factor."""

    field: str = Field(min_length=1, max_length=MAX_NAME)
    factor: float = Field(1.0, gt=0, le=MAX_PARAM_NUMBER, allow_inf_nan=False)


# The spec as the file states it; the runner builds the world's runtime service from it
# (harness.world.services.ToolService), and the names keep the two apart.
class ToolServiceSpec(_Spec):
    """A fake tool service: which requests it answers and how.

    Exactly one of ``path`` / ``path_regex`` says which requests it answers (with ``method``);
    exactly one of ``respond`` (the same answer every time), ``sequence`` (one answer per call,
    the last one repeating once used up) or ``ledger`` (a stateful side effect recorded with
    its idempotency key; a replayed key gets the first answer again and commits nothing).
    """

    method: HttpMethod = "GET"
    path: str | None = Field(None, pattern=r"^/", max_length=MAX_NAME)
    path_regex: str | None = Field(None, max_length=MAX_NAME)
    respond: ResponseSpec | None = None
    sequence: tuple[ResponseSpec, ...] | None = Field(None, min_length=1, max_length=MAX_STEPS)
    ledger: ResponseSpec | None = None
    gated: bool = False
    """Its effects need a human approval first; the harness checks each one had a matching,
    unconsumed approval bound to its arguments. Only a ledger service has effects to gate."""
    vary: tuple[Annotated[str, Field(max_length=MAX_NAME)], ...] = Field((), max_length=MAX_ENTRIES)
    """Body fields of its effects that legitimately differ between runs (generated ids,
    timestamps): ignored when effects are compared with the fault-free run and when an
    approval's arguments must cover the body."""
    approval_map: dict[str, ApprovalField | Annotated[str, Field(max_length=MAX_NAME)]] = Field(
        default_factory=dict, max_length=MAX_ENTRIES
    )
    """Approval argument -> body field, where the agent's approval names or scales an argument
    differently from the request body (``amount: {field: amount_cents, factor: 100}``)."""

    @field_validator("path_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            # a repeat count over the engine's limit raises OverflowError, deep groups recurse
            except (re.error, OverflowError, RecursionError) as exc:
                raise PydanticCustomError(
                    "bad_regex",
                    "path_regex {regex!r} is not a valid regular expression: {why}",
                    {"regex": value, "why": str(exc), "hint": "fix the regular expression"},
                ) from None
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ToolServiceSpec:
        _one_of(self, ("path", "path_regex"))
        _one_of(self, ("respond", "sequence", "ledger"))
        if self.gated and self.ledger is None:
            raise _fail(
                RuleProblem(
                    ("gated",),
                    "only a ledger service has effects an approval can gate, but this service "
                    f"answers with '{self.kind}'",
                    "answer it with 'ledger: {status: ..., json: ...}' or remove 'gated: true'",
                )
            )
        return self

    def approval_fields(self) -> dict[str, tuple[str, float]]:
        """Approval argument -> (body field, factor), from ``approval_map``."""
        out: dict[str, tuple[str, float]] = {}
        for name, target in self.approval_map.items():
            if isinstance(target, str):
                out[name] = (target, 1.0)
            else:
                out[name] = (target.field, target.factor)
        return out

    @property
    def kind(self) -> Literal["respond", "sequence", "ledger"]:
        """How the service answers."""
        if self.ledger is not None:
            return "ledger"
        return "sequence" if self.sequence is not None else "respond"

    def matches(self, method: str, path: str) -> bool:
        """Whether this service answers ``method path`` (path without query)."""
        if method.upper() != self.method:
            return False
        if self.path is not None:
            return path == self.path
        return re.fullmatch(self.path_regex or "", path) is not None

    def responses(self) -> tuple[HttpResponse, ...]:
        """The answers in order (one for ``respond`` and ``ledger``)."""
        specs = self.sequence or (self.ledger or self.respond,)
        return tuple(s.to_http() for s in specs if s is not None)


class ToolsConfig(_Spec):
    """Where the tools live and the fake services answering them, keyed by tool name."""

    base_url: str = Field(DEFAULT_TOOLS_BASE_URL, pattern=r"^https?://[^/]+", max_length=MAX_NAME)
    services: dict[str, ToolServiceSpec] = Field(default_factory=dict, max_length=MAX_ENTRIES)


# --------------------------------------------------------------------------- model turns


def _arguments_form(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return "mapping"
    return "raw json text" if isinstance(value, str) else None


Arguments = Annotated[
    Annotated[dict[str, Any], Tag("mapping")] | Annotated[str, Tag("raw json text")],
    Discriminator(
        _arguments_form,
        custom_error_type="arguments_form",
        custom_error_message="tool call arguments must be a mapping or raw JSON text",
        custom_error_context={
            "hint": "write arguments as a mapping, e.g. {order_id: O-1001}, or as a quoted "
            "string to serve raw (possibly invalid) JSON text"
        },
    ),
]


class ToolCall(_Spec):
    """One tool call in a model turn. ``arguments`` as a string is served verbatim.

    Without ``id`` the call gets ``call_<n>`` (n counts tool calls across the whole script);
    ``id: null`` serves a call without an id.
    """

    name: str = Field(min_length=1, max_length=MAX_NAME)
    arguments: Arguments = Field(default_factory=dict)
    id: str | None = Field(None, max_length=MAX_NAME)

    def to_spec(self, n: int) -> _ToolCallSpec:
        """The wire-neutral tool call, ``n`` being its 1-based index in the script."""
        args = self.arguments
        text = args if isinstance(args, str) else json.dumps(args, separators=(",", ":"))
        ident = self.id if "id" in self.model_fields_set else f"call_{n}"
        return _ToolCallSpec(self.name, text, ident)


class FullAnswer(_Spec):
    """The full form of a model answer (every field of ``faults.surfaces.ModelAnswer``)."""

    text: str | None = Field(None, max_length=MAX_TEXT)
    tool_calls: tuple[ToolCall, ...] = Field((), max_length=MAX_ENTRIES)
    finish: FinishReason | None = None
    refusal: str | None = Field(None, max_length=MAX_TEXT)
    empty: bool = False


class ToolCallTurn(_Spec):
    """Short form: one tool call."""

    tool_call: ToolCall

    def to_answer(self, ids: Iterator[int]) -> ModelAnswer:
        """The answer to serve."""
        return ModelAnswer(tool_calls=(self.tool_call.to_spec(next(ids)),))


class ToolCallsTurn(_Spec):
    """Short form: several tool calls in one answer."""

    tool_calls: tuple[ToolCall, ...] = Field(min_length=1, max_length=MAX_ENTRIES)

    def to_answer(self, ids: Iterator[int]) -> ModelAnswer:
        """The answer to serve."""
        return ModelAnswer(tool_calls=tuple(c.to_spec(next(ids)) for c in self.tool_calls))


class TextTurn(_Spec):
    """Short form: a plain text answer."""

    text: str = Field(max_length=MAX_TEXT)

    def to_answer(self, ids: Iterator[int]) -> ModelAnswer:
        """The answer to serve."""
        return ModelAnswer(text=self.text)


class RefusalTurn(_Spec):
    """Short form: the provider's refusal form."""

    refusal: str = Field(max_length=MAX_TEXT)

    def to_answer(self, ids: Iterator[int]) -> ModelAnswer:
        """The answer to serve."""
        return ModelAnswer(refusal=self.refusal)


class AnswerTurn(_Spec):
    """Full form: ``answer: {text, tool_calls, finish, refusal, empty}``."""

    answer: FullAnswer

    def to_answer(self, ids: Iterator[int]) -> ModelAnswer:
        """The answer to serve."""
        a = self.answer
        calls = tuple(c.to_spec(next(ids)) for c in a.tool_calls)
        return ModelAnswer(a.text, calls, a.finish, a.refusal, a.empty)


# Adding a turn form: a model with one field, its key here, and a member in ``Turn``.
_TURN_FORMS = ("tool_call", "tool_calls", "text", "refusal", "answer")


def _turn_form(value: Any) -> str | None:
    if isinstance(value, Mapping):
        for key in _TURN_FORMS:
            if key in value:
                return key
    return None


Turn = Annotated[
    Annotated[ToolCallTurn, Tag("tool_call")]
    | Annotated[ToolCallsTurn, Tag("tool_calls")]
    | Annotated[TextTurn, Tag("text")]
    | Annotated[RefusalTurn, Tag("refusal")]
    | Annotated[AnswerTurn, Tag("answer")],
    Discriminator(
        _turn_form,
        custom_error_type="turn_form",
        custom_error_message="a model turn must be a mapping with one of: "
        + ", ".join(_TURN_FORMS),
        custom_error_context={
            "hint": "write e.g. '- tool_call: {name: classify_request, arguments: {...}}' or "
            "'- text: Hello'"
        },
    ),
]


class ModelConfig(_Spec):
    """The scripted model: wire format, streaming, base URL and one turn per model request."""

    format: WireFormat = "openai_chat"
    stream: bool = False
    base_url: str = Field(DEFAULT_MODEL_BASE_URL, pattern=r"^https?://[^/]+", max_length=MAX_NAME)
    turns: tuple[Turn, ...] = Field((), max_length=MAX_STEPS)
    on_tool_error: OnToolError | None = None
    """How the model answers a request that hands it a failed tool call: ``retry`` the same
    call, ``proceed`` with the script, ``give_up`` with a final text; unset: the script,
    whatever the request carries (see the README's "The scripted model")."""


# --------------------------------------------------------------------------- reviewer


class ReviewStep(_Spec):
    """Full form of a reviewer entry (the fields of ``faults.surfaces.ReviewAction``)."""

    verdict: ReviewVerdict
    delay_s: float = Field(1.0, ge=0, le=MAX_FAKE_S)
    arguments: dict[str, Any] | None = None
    times: PositiveInt = Field(1, le=MAX_REVIEW_TIMES)
    after_restart: bool = False

    def to_action(self) -> ReviewAction:
        """The reviewer action."""
        return ReviewAction(
            self.verdict, self.arguments, self.times, self.after_restart, self.delay_s
        )


def _review_form(value: Any) -> str | None:
    if isinstance(value, str):
        return "verdict"
    return "full form" if isinstance(value, Mapping) else None


ReviewEntry = Annotated[
    Annotated[ReviewVerdict, Tag("verdict")] | Annotated[ReviewStep, Tag("full form")],
    Discriminator(
        _review_form,
        custom_error_type="review_form",
        custom_error_message="a reviewer entry must be approve, deny, never or a mapping",
        custom_error_context={
            "hint": "write e.g. '- approve' or '- {verdict: approve, delay_s: 60}'"
        },
    ),
]
