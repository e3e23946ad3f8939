"""The ground every scenario model stands on: the bounds, the rule errors and the base model.

Every number is finite and every time, count and size is bounded (the ``MAX_*`` constants): a
scenario file is untrusted input, and a value the run cannot honour (``wall_s: .inf``, a review
repeated a billion times, a 10 GiB body) is refused, with its line, instead of hanging or
crashing the run later.

Rules that span fields raise one ``scenario_rule`` error whose context lists every problem as a
:class:`RuleProblem` with its location, so the loader can point at each line; :func:`explain_error`
turns any pydantic error into a message and a hint.

Imports nothing of the harness (the bottom of ``harness.scenario``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
)
from pydantic_core import ErrorDetails, PydanticCustomError

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
OnToolError = Literal["retry", "proceed", "give_up"]  # the scripted model's ToolErrorReaction

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
