"""The scenario file format as frozen pydantic models, with the short forms YAML authors write.

A scenario scripts one agent run: the input, the model's turns, the tool services, the reviewer,
the faults to inject and what must hold at the end. Every model forbids unknown fields, so a typo
is an error instead of a silently ignored key; ``harness.scenario.loader`` maps each error to its
YAML line.

Rules that span fields (a fault key must be registered, a fault target must be a service, a failed
run must name its category, ...) raise one ``scenario_rule`` error whose context lists every
problem as a :class:`RuleProblem` with its location, so the loader can point at each line.

Every number is finite and every time, count and size is bounded (the ``MAX_*`` constants): a
scenario file is untrusted input, and a value the run cannot honour (``wall_s: .inf``, a review
repeated a billion times, a 10 GiB body) is refused here, with its line, instead of hanging or
crashing the run later.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    NonNegativeInt,
    PositiveInt,
    PrivateAttr,
    Tag,
    ValidationError,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from faults.base import Fault, Outcome, Schedule, Surface, registry
from faults.surfaces import CrashMode, CrashPoint, HttpResponse, ModelAnswer, ReviewAction
from faults.surfaces import ToolCallSpec as _ToolCallSpec
from faults.surfaces import ToolFault as _ToolFault

Loc = tuple[str | int, ...]

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
DEFAULT_MODEL_BASE_URL = "http://model.shakeout.test/v1"
DEFAULT_TOOLS_BASE_URL = "http://tools.shakeout.test"

TerminalState = Literal["completed", "failed", "rejected", "expired", "escalated", "throttled"]
CategoryName = Literal["model", "tool", "logic", "input"]
WireFormat = Literal["openai_chat", "openai_responses", "anthropic_messages"]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
ReviewVerdict = Literal["approve", "deny", "never"]
FinishReason = Literal["stop", "tool_calls", "length", "content_filter"]
OnToolError = Literal["retry", "proceed", "give_up"]  # harness.model.ToolErrorReaction

# Bounds on scenario values: far above what any scenario needs, low enough that no value can
# hang a run, overflow a timer (Event.wait(inf) raises) or exhaust memory.
MAX_WALL_S = 3600  # real seconds per run: a CI item that needs an hour is a hang
MAX_FAKE_S = 86_400  # one day of fake time: review delays, Retry-After, latency, trickles
MAX_CALLS = 10_000  # a call index (nth, first, matrix calls) or a budget of calls per run
MAX_REVIEW_TIMES = 100  # deliveries of one review decision
MAX_STEPS = 1_000  # model turns, sequence answers, reviewer entries
MAX_ENTRIES = 200  # services, faults, tags, tool calls in one turn, matrix calls, headers
MAX_TEXT = 256 * 1024  # one body, text answer or refusal, in characters
MAX_NAME = 200  # a name, path, regex, id or description, in characters
MAX_SEED = 2**64 - 1
MAX_PARAM_NUMBER = 1_000_000_000  # a fault parameter with no unit of its own
MAX_PARAM_BYTES = 16 * 1024 * 1024  # a fault parameter counting bytes (``*_bytes``)


# --------------------------------------------------------------------------- rule errors


@dataclass(frozen=True)
class RuleProblem:
    """One broken cross-field rule: where (relative to the model that checks it), what, the fix.

    ``error`` carries a nested pydantic error (from a fault's parameters) for the loader to word
    like any other; ``message`` and ``hint`` are then its plain-text fallback.
    """

    at: Loc
    message: str
    hint: str
    error: ErrorDetails | None = None


def _fail(*problems: RuleProblem) -> PydanticCustomError:
    text = "; ".join(
        f"{_dotted(p.at) or 'top level'}: {p.message} (fix: {p.hint})" for p in problems
    )
    return PydanticCustomError(
        "scenario_rule", "{summary}", {"summary": text, "problems": problems}
    )


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


def explain_error(err: ErrorDetails) -> tuple[str, str]:
    """Word a pydantic error for a scenario author: ``(message, hint)``.

    Structural errors (missing or unknown fields) get their hint from the loader, which knows
    the surrounding fields; this covers types, enums, bounds and the scenario's own rules.
    """
    kind = err["type"]
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    got = f", got {_short_repr(err.get('input'))}"
    base = err["msg"].rstrip(".")
    if kind == "scenario_rule":
        problems = ctx.get("problems") or ()
        if problems:
            return problems[0].message, problems[0].hint
        return base, "see scenarios/schema.json for the allowed shape"
    if kind in _TYPE_HINTS:
        return base.split(",")[0] + got, _TYPE_HINTS[kind]
    if kind in ("literal_error", "enum"):
        allowed = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        value = err.get("input")
        exact = [
            a for a in allowed.split(", ") if isinstance(value, str) and a.lower() == value.lower()
        ]
        if exact:
            return base + got, f"write '{exact[0]}' (values are case-sensitive)"
        return base + got, f"use one of: {allowed}"
    if kind in _BOUND_HINTS:
        # pydantic keeps a float field's bound as a float: show 3600, not 3600.0
        plain = {
            k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in ctx.items()
        }
        return base + got, _BOUND_HINTS[kind].format(**plain)
    if kind == "string_pattern_mismatch":
        return base + got, f"write a value matching {ctx.get('pattern')}"
    if kind == "too_long":
        return base, f"keep at most {ctx.get('max_length')} items here"
    if kind == "too_short":
        return base, "check how many items this field may hold"
    if kind == "string_too_long":
        return base, f"shorten it to at most {ctx.get('max_length')} characters"
    if kind == "finite_number":
        return base + got, "write a finite number, e.g. 2.5 (.inf and .nan are not allowed)"
    if "hint" in ctx:
        return base, str(ctx["hint"])
    if kind == "value_error":
        return base.removeprefix("Value error, "), "correct the value as the message says"
    return base + got, "see scenarios/schema.json for the allowed shape"


_TYPE_HINTS = {
    "int_type": "write a whole number without quotes, e.g. 200",
    "int_parsing": "write a whole number without quotes, e.g. 200",
    "int_from_float": "write a whole number without a fractional part",
    "float_type": "write a number without quotes, e.g. 2.5",
    "float_parsing": "write a number without quotes, e.g. 2.5",
    "bool_type": "write true or false",
    "bool_parsing": "write true or false",
    "string_type": "write text; quote it if YAML reads it as a number, boolean or null",
    "dict_type": "write a mapping (indented 'key: value' lines or {key: value})",
    "model_type": "write a mapping (indented 'key: value' lines or {key: value})",
    "model_attributes_type": "write a mapping (indented 'key: value' lines or {key: value})",
    "list_type": "write a list ('- item' lines or [a, b])",
    "tuple_type": "write a list ('- item' lines or [a, b])",
}

_BOUND_HINTS = {
    "greater_than": "use a value greater than {gt}",
    "greater_than_equal": "use a value of at least {ge}",
    "less_than": "use a value less than {lt}",
    "less_than_equal": "use a value of at most {le}",
}


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------- base


class _Spec(BaseModel):
    """Base of every scenario model: unknown fields are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _one_of(model: BaseModel, names: Sequence[str], *, required: bool = True) -> None:
    chosen = [n for n in names if getattr(model, n) not in (None, False)]
    listed = " / ".join(names)
    if len(chosen) > 1:
        raise _fail(
            RuleProblem(
                (chosen[1],),
                f"'{chosen[0]}' and '{chosen[1]}' are both set; only one of {listed} may be",
                f"keep one of {listed} and remove the other",
            )
        )
    if required and not chosen:
        raise _fail(
            RuleProblem((), f"none of {listed} is set", f"add exactly one of {listed} here")
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


class ToolService(_Spec):
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
    def _exactly_one(self) -> ToolService:
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
    services: dict[str, ToolService] = Field(default_factory=dict, max_length=MAX_ENTRIES)


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


# --------------------------------------------------------------------------- faults


class ScheduleSpec(_Spec):
    """Which calls a fault fires on: at most one of nth, first, every, probability."""

    nth: PositiveInt | None = Field(None, le=MAX_CALLS)
    first: PositiveInt | None = Field(None, le=MAX_CALLS)
    every: bool = False
    probability: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _single_form(self) -> ScheduleSpec:
        _one_of(self, ("nth", "first", "every", "probability"), required=False)
        return self

    def to_schedule(self) -> Schedule:
        """The schedule the fault uses."""
        return Schedule(self.nth, self.first, bool(self.every), self.probability)


def _fault_form(value: Any) -> str | None:
    if isinstance(value, str):
        return "key"
    return "key with parameters" if isinstance(value, Mapping) else None


FaultEntry = Annotated[
    Annotated[str, Tag("key")]
    | Annotated[
        dict[str, Annotated[Any, WithJsonSchema({"type": ["object", "null"]})]],
        Tag("key with parameters"),
        Field(min_length=1, max_length=1),
    ],
    Discriminator(
        _fault_form,
        custom_error_type="fault_form",
        custom_error_message="a fault entry must be a fault key or a one-key mapping",
        custom_error_context={
            "hint": "write e.g. '- model_refusal' or '- tool_http_503: {target: get_order}'"
        },
    ),
]


def import_catalogue() -> None:
    """Import ``faults.catalogue`` so its faults are registered, if that module exists yet."""
    try:
        __import__("faults.catalogue")
    except ModuleNotFoundError as exc:
        if exc.name != "faults.catalogue":
            raise


_PARAM_MODELS: dict[type[Fault], type[BaseModel]] = {}


def _params_model(cls: type[Fault]) -> type[BaseModel]:
    """A pydantic model of the fault's dataclass fields (``at`` as a :class:`ScheduleSpec`)."""
    cached = _PARAM_MODELS.get(cls)
    if cached is not None:
        return cached
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # a class defined where its annotations cannot be resolved
        hints = {}
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        annotation: Any = (
            ScheduleSpec if f.name == "at" else _bounded(f.name, hints.get(f.name, Any))
        )
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        # internal names avoid clashes with BaseModel attributes; the alias is what YAML writes
        fields[f"p_{f.name}"] = (annotation, Field(... if required else None, alias=f.name))
    model: type[BaseModel] = create_model(
        f"{cls.__name__}Parameters",
        __config__=ConfigDict(
            extra="forbid", frozen=True, arbitrary_types_allowed=True, allow_inf_nan=False
        ),
        **fields,
    )
    _PARAM_MODELS[cls] = model
    return model


def _is_time(name: str) -> bool:
    return name in ("seconds", "delay_per_event") or name.endswith(("_s", "_seconds"))


def _bounded(name: str, annotation: Any) -> Any:
    """A fault parameter's type with the bounds its name implies (finite numbers always).

    The catalogue's faults are plain dataclasses that know nothing of YAML; their parameters are
    bounded here by unit, read from the name: seconds of fake time (``seconds``, ``*_s``, ...),
    bytes (``*_bytes``), or a plain number; text by length.
    """
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.Union[tuple(_bounded(name, a) for a in typing.get_args(annotation))]  # noqa: UP007
    if annotation is int and name == "times":
        return Annotated[int, Field(ge=1, le=MAX_CALLS)]  # attempts in a row a fault answers
    if annotation in (int, float):
        if _is_time(name):
            low, high = 0, MAX_FAKE_S
        elif name.endswith("_bytes"):
            low, high = 0, MAX_PARAM_BYTES
        else:
            low, high = -MAX_PARAM_NUMBER, MAX_PARAM_NUMBER
        return Annotated[annotation, Field(ge=low, le=high)]
    if annotation is str:
        return Annotated[str, Field(max_length=MAX_NAME)]
    return annotation


def _fault_ref(entry: str | Mapping[str, Any]) -> tuple[str, Any]:
    if isinstance(entry, str):
        return entry, {}
    ((key, params),) = entry.items()
    return key, {} if params is None else params


def _unknown_fault(key: str, at: Loc) -> RuleProblem:
    return RuleProblem(
        at,
        f"unknown fault '{key}'",
        f"{_did_you_mean(key, sorted(registry()))}run `shakeout faults` to list them all",
    )


def build_fault(key: str, params: Any, at: Loc = ()) -> Fault | list[RuleProblem]:
    """Build a registered fault from its key and parameters, or say what is wrong.

    Args:
        key: the fault key.
        params: the parameter mapping (the fault's dataclass fields; ``at`` a schedule).
        at: where the entry sits, for the problems' locations.

    Returns:
        The fault instance, or the problems found (unknown key, unknown or ill-typed parameter).
    """
    import_catalogue()
    cls = registry().get(key)
    if cls is None:
        return [_unknown_fault(key, at)]
    if not isinstance(params, Mapping):
        return [
            RuleProblem(
                (*at, key),
                f"the parameters of fault '{key}' must be a mapping, got {_short_repr(params)}",
                f"write '- {key}: {{param: value}}', or just '- {key}' for the defaults",
            )
        ]
    model = _params_model(cls)
    try:
        validated = model.model_validate(params)
    except ValidationError as exc:
        allowed = ", ".join(f.alias or n for n, f in model.model_fields.items())
        problems = []
        for err in exc.errors():
            loc = (*at, key, *err["loc"])
            if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
                name = str(err["loc"][0])
                problems.append(
                    RuleProblem(
                        loc,
                        f"unknown parameter '{name}' for fault '{key}'",
                        f"{_did_you_mean(name, allowed.split(', '))}"
                        f"remove '{name}' (allowed here: {allowed})",
                    )
                )
            else:
                message, hint = explain_error(err)
                problems.append(RuleProblem(loc, message, hint, err))
        return problems
    kwargs: dict[str, Any] = {}
    for name in validated.model_fields_set:
        value = getattr(validated, name)
        kwargs[name.removeprefix("p_")] = (
            value.to_schedule() if isinstance(value, ScheduleSpec) else value
        )
    return cls(**kwargs)


# --------------------------------------------------------------------------- matrices


class Budget(_Spec):
    """Upper bounds on one run: model and tool requests, and real seconds (``wall_s``)."""

    model_calls: NonNegativeInt | None = Field(None, le=MAX_CALLS)
    tool_calls: NonNegativeInt | None = Field(None, le=MAX_CALLS)
    wall_s: float | None = Field(None, gt=0, le=MAX_WALL_S)
    attempts: PositiveInt | None = Field(None, le=MAX_CALLS)
    """Attempts per identical request (the first try and its retries, SDK retries included);
    the matrix adds cells whose transient fault outlasts them."""


EffectsSpec = (
    Annotated[int, Field(ge=0, le=MAX_CALLS)]
    | Annotated[list[dict[str, Any]], Field(max_length=MAX_ENTRIES)]
)
"""Per tool: how many effects commit, or their bodies in commit order (each a subset match:
``issue_refund: [{amount: 49.99, order_id: O-1001}]`` means one effect with those fields)."""


def effect_counts(effects: Mapping[str, EffectsSpec] | None) -> dict[str, int] | None:
    """Effects per tool from an ``effects`` expectation."""
    if effects is None:
        return None
    return {t: v if isinstance(v, int) else len(v) for t, v in effects.items()}


def effect_bodies(effects: Mapping[str, EffectsSpec] | None) -> dict[str, tuple[Any, ...]]:
    """The expected bodies per tool, where an ``effects`` expectation states them."""
    return {t: tuple(v) for t, v in (effects or {}).items() if not isinstance(v, int)}


class ExpectOverride(_Spec):
    """Replaces some expectations for one matrix cell (the fields given replace the base)."""

    state: TerminalState | None = None
    category: CategoryName | None = None
    effects: dict[str, EffectsSpec] | None = None
    approvals: NonNegativeInt | None = None
    calls_made: tuple[str, ...] | None = None
    calls_not_made: tuple[str, ...] | None = None
    budget: Budget | None = None


class OutcomeRule(_Spec):
    """The outcomes a fault's cells accept instead of the fault's own, and why.

    ``accept`` lists outcomes (``recover``, ``fail``, ``escalate``, ``complete``, ``reject``,
    ``expire``; ``shakeout faults`` shows each fault's own): a cell passes when the run ends in
    any of them, all other checks holding. ``reason`` is required and shown in the report.
    """

    accept: tuple[Outcome, ...] = Field(min_length=1, max_length=len(Outcome))
    reason: str = Field(min_length=1, max_length=MAX_NAME * 5)

    @model_validator(mode="after")
    def _reason_says_something(self) -> OutcomeRule:
        if not self.reason.strip():
            raise _fail(
                RuleProblem(
                    ("reason",),
                    "the reason is blank",
                    "say why this agent may end this way, e.g. 'a free-form loop takes a text "
                    "answer as its final answer'",
                )
            )
        return self


class Matrix(_Spec):
    """Expands a scenario into one variant per (fault x eligible call).

    ``faults`` names fault keys, ``surfaces`` takes every registered fault of those surfaces (at
    least one of the two). Tool faults are aimed at each of ``targets`` (default: every service).
    ``overrides`` replace expectations per cell label (``key@target``) or per fault key.
    """

    faults: tuple[str, ...] = ()
    surfaces: tuple[Surface, ...] = ()
    targets: tuple[str, ...] | None = None
    calls: tuple[Annotated[PositiveInt, Field(le=MAX_CALLS)], ...] = Field(
        (1,), min_length=1, max_length=MAX_ENTRIES
    )
    overrides: dict[str, ExpectOverride] = Field(default_factory=dict)
    outcomes: dict[str, OutcomeRule] = Field(default_factory=dict)
    """Per fault key or cell label (``key@target``), the outcomes its cells accept, with a
    reason (wins over ``[tool.shakeout.outcomes]``; ``overrides`` wins over both)."""
    allow_after_failure: tuple[str, ...] = Field((), max_length=MAX_ENTRIES)
    """Gated tools whose effects a run may still commit after a permanent failure."""
    exhaust: bool = True
    """With ``expect.budget.attempts`` set, add a cell per transient tool fault that fails as
    many attempts in a row, so the agent's retry budget runs out (it must end failed)."""
    on_tool_error: tuple[OnToolError, ...] = Field((), max_length=3)
    """Play every tool fault cell once more per reaction listed, the model reacting so to a
    failed tool call handed to it (cell ``<label>+<reaction>``)."""

    @field_validator("on_tool_error")
    @classmethod
    def _once_each(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        twice = sorted({v for v in value if value.count(v) > 1})
        if twice:
            raise PydanticCustomError(
                "reaction_twice",
                "reaction {twice} is listed more than once",
                {"twice": ", ".join(twice), "hint": "list each of retry, proceed, give_up once"},
            )
        return value

    @model_validator(mode="after")
    def _something_to_expand(self) -> Matrix:
        if not self.faults and not self.surfaces:
            raise _fail(
                RuleProblem(
                    (),
                    "the matrix names no faults and no surfaces",
                    "add 'faults: [key, ...]' or 'surfaces: [tool, model]'",
                )
            )
        return self

    def fault_keys(self) -> tuple[str, ...]:
        """The fault keys to expand: those named, then those of the surfaces, without repeats."""
        import_catalogue()
        keys = list(self.faults)
        for key, cls in sorted(registry().items()):
            if cls.surface in self.surfaces and key not in keys:
                keys.append(key)
        return tuple(keys)


class CrashMatrix(_Spec):
    """Expands a scenario into one variant per crash point (and boundary the agent reports)."""

    points: tuple[CrashPoint, ...] = Field(min_length=1)
    mode: CrashMode = CrashMode.IN_PROCESS


def _input_family(name: str) -> str:
    from faults.inputs import INPUT_STRATEGIES

    if name not in INPUT_STRATEGIES:
        raise PydanticCustomError(
            "input_family",
            "unknown input family {name!r}",
            {
                "name": name,
                "hint": f"{_did_you_mean(name, sorted(INPUT_STRATEGIES))}use one of: "
                + ", ".join(sorted(INPUT_STRATEGIES)),
            },
        )
    return name


InputFamily = Annotated[str, AfterValidator(_input_family)]


class InputMatrix(_Spec):
    """Runs Hypothesis edge-case input families through the agent's intake, one item per family.

    Every generated payload must end in a terminal state without crashing the agent, and keep
    the safety invariants; a payload of a ``must_reject`` family must be rejected at intake
    (failed, category input, no request made). ``families`` defaults to every family.
    """

    families: tuple[InputFamily, ...] = ()
    must_reject: tuple[InputFamily, ...] = ()
    examples: PositiveInt = Field(20, le=500)


# --------------------------------------------------------------------------- load


RUN_NUMBER = "{n}"
"""Written in a string of ``input``, replaced by each load run's number (1, 2, ...)."""
MAX_LOAD_RUNS = 1_000


class LoadReview(_Spec):
    """What a reviewer does with one approval it takes from the queue (cycled over approvals)."""

    verdict: Literal["approve", "deny"]
    delay_s: float = Field(60.0, ge=0, le=MAX_FAKE_S)


class LoadSla(_Spec):
    """The declared time-to-decision target, per percentile, in fake-clock seconds."""

    p50: float | None = Field(None, gt=0, le=MAX_FAKE_S)
    p90: float | None = Field(None, gt=0, le=MAX_FAKE_S)
    p99: float | None = Field(None, gt=0, le=MAX_FAKE_S)

    @model_validator(mode="after")
    def _one_target(self) -> LoadSla:
        if self.p50 is None and self.p90 is None and self.p99 is None:
            raise _fail(
                RuleProblem((), "the SLA names no percentile", "write e.g. '{p90: 600, p99: 900}'")
            )
        return self

    def targets(self) -> dict[str, float]:
        """The declared percentiles, ``{"p50": s, ...}``."""
        return {k: v for k, v in (("p50", self.p50), ("p90", self.p90), ("p99", self.p99)) if v}


def _fill_run_number(value: Any, number: int) -> Any:
    if isinstance(value, str):
        return value.replace(RUN_NUMBER, str(number))
    if isinstance(value, list | tuple):
        return [_fill_run_number(v, number) for v in value]
    if isinstance(value, dict):
        return {k: _fill_run_number(v, number) for k, v in value.items()}
    return value


class Load(_Spec):
    """The review queue under load: many runs against one agent state (see ``harness/load/``).

    Attributes:
        runs: how many runs to start; ``{n}`` in any string of the scenario (input, paths,
            answers) becomes each run's number.
        arrival_s: fake-clock seconds between two starts.
        capacity: the review queue's capacity the harness judges against.
        capacity_key: the ``agent_config`` key through which the harness tells the agent its
            capacity (None: configure the agent in ``agent_config`` yourself).
        reviewers: reviewers working the queue at once, oldest approval first.
        review: what a reviewer does with each approval, cycled.
        sla: the time-to-decision target per percentile.
        resubmit: a throttled run is started again once the harness sees a free slot.
    """

    runs: PositiveInt = Field(le=MAX_LOAD_RUNS)
    arrival_s: float = Field(1.0, ge=0, le=MAX_FAKE_S)
    capacity: PositiveInt = Field(le=MAX_CALLS)
    capacity_key: str | None = Field(None, min_length=1, max_length=MAX_NAME)
    reviewers: PositiveInt = Field(1, le=MAX_ENTRIES)
    review: tuple[LoadReview, ...] = Field(min_length=1, max_length=MAX_STEPS)
    sla: LoadSla
    resubmit: bool = True


# --------------------------------------------------------------------------- expectations


class Expect(_Spec):
    """What must hold at the end of the run.

    ``effects`` counts committed ledger effects per tool exactly (tools not listed are not
    checked); ``approvals`` counts approval requests exactly; ``calls_made`` tools must be called
    at least once, ``calls_not_made`` never; ``budget`` bounds the run.
    """

    state: TerminalState
    category: CategoryName | None = None
    effects: dict[str, EffectsSpec] | None = None
    approvals: NonNegativeInt | None = None
    calls_made: tuple[str, ...] = ()
    calls_not_made: tuple[str, ...] = ()
    budget: Budget = Field(default_factory=Budget)

    @model_validator(mode="after")
    def _category_matches_state(self) -> Expect:
        problem = _category_problem(self.state, self.category)
        if problem is not None:
            raise _fail(problem)
        return self

    def merged(self, override: ExpectOverride) -> Expect:
        """This expectation with the override's fields replacing ours.

        Setting ``state`` without ``category`` clears the category unless the state is failed.
        """
        changes = {n: getattr(override, n) for n in override.model_fields_set}
        if "state" in changes and "category" not in changes and changes["state"] != "failed":
            changes["category"] = None
        return self.model_copy(update=changes)


def _category_problem(state: str, category: str | None) -> RuleProblem | None:
    if state == "failed" and category is None:
        return RuleProblem(
            ("category",),
            "a failed run must name its category",
            "add 'category: model', 'tool', 'logic' or 'input' next to 'state: failed'",
        )
    if state != "failed" and category is not None:
        return RuleProblem(
            ("category",),
            f"only a failed run has a category, but state is '{state}'",
            "remove 'category' or set 'state: failed'",
        )
    return None


# --------------------------------------------------------------------------- the scenario


SUMMARY_MAX_CHARS = 500
"""Default bound on an approval summary's length, in characters."""
SUMMARY_RAW_RUN = 40
"""Default length of a verbatim run of ticket or tool text that counts as raw in a summary."""


class ApprovalSummary(_Spec):
    """How the ``approval_summary`` check reads the summaries the agent shows its reviewer.

    Attributes:
        max_chars: the longest summary allowed, fenced quotes included.
        raw_run: a run of this many characters copied verbatim from the ticket's text fields or
            a tool's response body, outside a fenced quote, is raw text the reviewer could take
            for the agent's own words.
    """

    max_chars: int = Field(SUMMARY_MAX_CHARS, ge=1, le=MAX_TEXT)
    raw_run: int = Field(SUMMARY_RAW_RUN, ge=8, le=MAX_NAME * 5)


class Scenario(_Spec):
    """One scenario file.

    Attributes:
        name: unique in a library, ``^[a-z][a-z0-9_]*$``.
        description: one line saying what the scenario shows.
        tags: free labels for selection.
        agent: the adapter factory ``module:callable``; None uses the ``chaos_agent`` ini key.
        agent_config: passed to the adapter as ``world.config``.
        seed: the run's seed; None uses the session seed.
        input: the payload given to ``adapter.start``.
        model: the scripted model.
        tools: the fake tool services.
        reviewer: one entry per approval request, in order; missing entries never decide.
        faults: faults injected in every run of this scenario.
        matrix: expands the scenario over faults and calls.
        crash_matrix: expands the scenario over crash points.
        input_matrix: runs edge-case input families through the agent's intake.
        expect: what must hold at the end.
        approval_summary: bounds of the reviewer's summary (length, raw text).
        load: run many copies of the input against one agent state through a bounded review
            queue (no matrices, faults or ``reviewer`` beside it).
    """

    name: str = Field(pattern=NAME_PATTERN, max_length=MAX_NAME)
    description: str = Field(min_length=1, max_length=MAX_NAME * 5)
    tags: tuple[Annotated[str, Field(max_length=MAX_NAME)], ...] = Field((), max_length=MAX_ENTRIES)
    agent: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
    agent_config: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    input: dict[str, Any]
    model: ModelConfig = Field(default_factory=ModelConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    reviewer: tuple[ReviewEntry, ...] = Field((), max_length=MAX_STEPS)
    faults: tuple[FaultEntry, ...] = Field((), max_length=MAX_ENTRIES)
    matrix: Matrix | None = None
    crash_matrix: CrashMatrix | None = None
    input_matrix: InputMatrix | None = None
    expect: Expect
    allow_subprocess: bool = False
    approval_summary: ApprovalSummary = Field(default_factory=ApprovalSummary)
    load: Load | None = None
    """The agent may start subprocesses during a run (otherwise one fails network_contained)."""

    _source: Path | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        problems = [
            *self._fault_problems(),
            *self._matrix_problems(),
            *self._expect_problems(),
            *self._load_problems(),
        ]
        routes: dict[tuple[str, str], str] = {}
        for name, svc in self.tools.services.items():
            if svc.path is None:
                continue
            other = routes.setdefault((svc.method, svc.path), name)
            if other != name:
                problems.append(
                    RuleProblem(
                        ("tools", "services", name, "path"),
                        f"'{svc.method} {svc.path}' is already answered by service '{other}'",
                        "give each service its own method and path",
                    )
                )
        if problems:
            raise _fail(*problems)
        return self

    def _service_problem(self, tool: str, at: Loc, what: str) -> list[RuleProblem]:
        services = self.tools.services
        if tool in services:
            return []
        return [
            RuleProblem(
                at,
                f"{what} '{tool}' is not a service of this scenario",
                f"{_did_you_mean(tool, sorted(services))}add it under 'tools.services' or use "
                f"one of: {', '.join(sorted(services)) or '(no services yet)'}",
            )
        ]

    def _fault_problems(self) -> list[RuleProblem]:
        problems: list[RuleProblem] = []
        for i, entry in enumerate(self.faults):
            key, params = _fault_ref(entry)
            built = build_fault(key, params, ("faults", i))
            if isinstance(built, list):
                problems.extend(built)
            elif isinstance(built, _ToolFault) and built.target is not None:
                at: Loc = ("faults", i, key, "target")
                problems += self._service_problem(built.target, at, "fault target")
        return problems

    def _matrix_problems(self) -> list[RuleProblem]:
        if self.matrix is None:
            return []
        import_catalogue()
        problems: list[RuleProblem] = []
        known = registry()
        for i, key in enumerate(self.matrix.faults):
            if key not in known:
                problems.append(_unknown_fault(key, ("matrix", "faults", i)))
        for i, tool in enumerate(self.matrix.targets or ()):
            problems += self._service_problem(tool, ("matrix", "targets", i), "matrix target")
        if self.matrix.on_tool_error and not any(
            known[k].surface is Surface.TOOL for k in self.matrix.fault_keys() if k in known
        ):
            problems.append(
                RuleProblem(
                    ("matrix", "on_tool_error"),
                    "the reactions play against tool fault cells, but the matrix has no tool fault",
                    "add a tool fault (e.g. 'faults: [tool_http_404]' or 'surfaces: [tool]') or "
                    "remove 'on_tool_error'",
                )
            )
        for i, tool in enumerate(self.matrix.allow_after_failure):
            at_tool: Loc = ("matrix", "allow_after_failure", i)
            problems += self._service_problem(tool, at_tool, "allowed tool")
        for label in self.matrix.outcomes:
            at_rule: Loc = ("matrix", "outcomes", label)
            key, _, target = label.partition("@")
            if key not in known:
                problems.append(_unknown_fault(key, at_rule))
            elif target:
                problems += self._service_problem(target, at_rule, "outcome target")
        for label, override in self.matrix.overrides.items():
            at: Loc = ("matrix", "overrides", label)
            key, _, target = label.partition("@")
            if key not in known:
                problems.append(_unknown_fault(key, at))
            elif target:
                problems += self._service_problem(target, at, "override target")
            merged = self.expect.merged(override)
            problem = _category_problem(merged.state, merged.category)
            if problem is not None:
                problems.append(dataclasses.replace(problem, at=(*at, *problem.at)))
        return problems

    def _expect_problems(self) -> list[RuleProblem]:
        problems: list[RuleProblem] = []
        expect = self.expect
        services = self.tools.services
        for tool in expect.effects or {}:
            at: Loc = ("expect", "effects", tool)
            found = self._service_problem(tool, at, "effect tool")
            if not found and services[tool].ledger is None:
                found = [
                    RuleProblem(
                        at,
                        f"effects are counted on ledger services only, and '{tool}' is a "
                        f"'{services[tool].kind}' service",
                        f"answer '{tool}' with 'ledger: {{status: ..., json: ...}}' or drop it "
                        "from 'expect.effects'",
                    )
                ]
            problems += found
        for field in ("calls_made", "calls_not_made"):
            for i, tool in enumerate(getattr(expect, field)):
                problems += self._service_problem(tool, ("expect", field, i), "tool")
        for i, tool in enumerate(expect.calls_not_made):
            if tool in expect.calls_made:
                problems.append(
                    RuleProblem(
                        ("expect", "calls_not_made", i),
                        f"'{tool}' is in both calls_made and calls_not_made",
                        "keep it in one of the two lists",
                    )
                )
        return problems

    def _load_problems(self) -> list[RuleProblem]:
        load = self.load
        if load is None:
            return []
        problems = [
            RuleProblem(
                (name,),
                f"'{name}' cannot be combined with 'load'",
                f"remove '{name}': a load scenario runs its input {load.runs} times with the "
                "reviewers under 'load.review', and nothing else",
            )
            for name in ("faults", "matrix", "crash_matrix", "input_matrix", "reviewer")
            if getattr(self, name)
        ]
        if load.runs > 1 and RUN_NUMBER not in json.dumps(self.input):
            problems.append(
                RuleProblem(
                    ("input",),
                    f"every load run would send the same input, so {load.runs} runs would be "
                    "one ticket",
                    f"write '{RUN_NUMBER}' in an id of the input, e.g. 'ticket_id: T-70{{n}}'",
                )
            )
        key = load.capacity_key
        if key is not None and key in self.agent_config and self.agent_config[key] != load.capacity:
            problems.append(
                RuleProblem(
                    ("agent_config", key),
                    f"'{key}' is {self.agent_config[key]!r} but load.capacity is {load.capacity}",
                    f"drop '{key}' from agent_config: the harness sets it from load.capacity",
                )
            )
        return problems

    # ----------------------------------------------------------------------- accessors

    @property
    def source(self) -> Path | None:
        """The file this scenario was loaded from, if any."""
        return self._source

    def with_source(self, path: Path) -> Scenario:
        """This scenario, remembering the file it came from."""
        self._source = path
        return self

    def effective_seed(self, session_seed: int) -> int:
        """The scenario's own seed, or the session seed when it has none."""
        return session_seed if self.seed is None else self.seed

    def model_answers(self) -> tuple[ModelAnswer, ...]:
        """The scripted model answers in order, tool-call ids filled in."""
        ids = count(1)
        return tuple(turn.to_answer(ids) for turn in self.model.turns)

    def review_actions(self) -> tuple[ReviewAction, ...]:
        """The scripted reviewer's action per approval request, in order."""
        return tuple(
            ReviewAction(entry) if isinstance(entry, str) else entry.to_action()
            for entry in self.reviewer
        )

    def review_action(self, index: int) -> ReviewAction:
        """The action for approval request ``index`` (0-based); ``never`` past the script."""
        actions = self.review_actions()
        return actions[index] if index < len(actions) else ReviewAction("never")

    def load_input(self, number: int) -> dict[str, Any]:
        """The input of load run ``number`` (1-based): ``{n}`` in its strings becomes the number."""
        filled: dict[str, Any] = _fill_run_number(self.input, number)
        return filled

    def for_load_run(self, number: int) -> Scenario:
        """This scenario as load run ``number`` sees it: ``{n}`` in every string (input, paths,
        answers) becomes the number, and the ``load`` section is dropped."""
        data = self.model_dump(
            mode="json", by_alias=True, exclude={"load"}, exclude_unset=True, warnings=False
        )
        return Scenario.model_validate(_fill_run_number(data, number))

    def fault_keys(self) -> tuple[str, ...]:
        """The keys of the scenario's faults, in order."""
        return tuple(_fault_ref(entry)[0] for entry in self.faults)

    def build_faults(self) -> tuple[Fault, ...]:
        """Fresh instances of the scenario's faults, in order."""
        out: list[Fault] = []
        for i, entry in enumerate(self.faults):
            key, params = _fault_ref(entry)
            built = build_fault(key, params, ("faults", i))
            if isinstance(built, list):  # the registry changed since validation
                raise ValueError(_fail(*built).message())
            out.append(built)
        return tuple(out)

    def service(self, tool: str) -> ToolService:
        """The fake service of ``tool`` (``KeyError`` naming the known ones if absent)."""
        try:
            return self.tools.services[tool]
        except KeyError:
            known = ", ".join(sorted(self.tools.services)) or "(none)"
            raise KeyError(
                f"scenario {self.name!r} has no service {tool!r}; known: {known}"
            ) from None

    def ledger_tools(self) -> tuple[str, ...]:
        """Tools answered by a ledger (the side effects the scenario counts)."""
        return tuple(n for n, s in self.tools.services.items() if s.ledger is not None)

    def expect_for(self, *labels: str) -> Expect:
        """The expectation of a matrix cell: the first override found among ``labels``
        (e.g. the cell label, then the fault key) applied to ``expect``."""
        overrides = self.matrix.overrides if self.matrix is not None else {}
        for label in labels:
            if label in overrides:
                return self.expect.merged(overrides[label])
        return self.expect
