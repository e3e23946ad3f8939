"""Model faults: answers a model or its provider can give that break the agent's expectations."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any

from faults.base import Category, FaultNotApplicableError
from faults.surfaces import (
    ModelAnswer,
    ModelCallContext,
    ModelFault,
    ProviderError,
    ToolCallSpec,
)
from faults.tool import mistyped

PROSE_INSTEAD_OF_CALL = (
    "Based on the order details, the customer is eligible for a full refund of the order total."
)
"""The text served where a tool call was required (no tool use, or nothing to break)."""


def _first_call(ctx: ModelCallContext) -> ToolCallSpec | None:
    scripted = ctx.scripted
    if scripted is None or not scripted.tool_calls:
        return None
    return scripted.tool_calls[0]


def _with_first_call(ctx: ModelCallContext, call: ToolCallSpec) -> ModelAnswer:
    scripted = ctx.scripted
    assert scripted is not None  # only reached when _first_call found one
    return dataclasses.replace(scripted, tool_calls=(call, *scripted.tool_calls[1:]))


def _arguments(call: ToolCallSpec) -> dict[str, Any] | None:
    try:
        parsed = json.loads(call.arguments)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class _CallBreaker(ModelFault):
    """Serves the scripted answer with its first tool call broken; without a tool call to
    break, serves prose instead (also a schema violation where a tool call is required)."""

    category = Category.MODEL
    transient = True

    def answer(self, ctx: ModelCallContext) -> ModelAnswer | ProviderError:
        """The scripted answer with its first tool call broken."""
        call = _first_call(ctx)
        if call is None:
            return ModelAnswer(text=PROSE_INSTEAD_OF_CALL)
        broken = self.broken(call)
        if broken is None:
            return ModelAnswer(text=PROSE_INSTEAD_OF_CALL)
        return _with_first_call(ctx, broken)

    def broken(self, call: ToolCallSpec) -> ToolCallSpec | None:
        """The broken call, or None when this call offers nothing to break."""
        raise NotImplementedError


@dataclass(frozen=True)
class ModelArgsNotJson(_CallBreaker):
    """Tool-call arguments are not JSON (a Python-style dict with single quotes)."""

    key = "model_args_not_json"

    def broken(self, call: ToolCallSpec) -> ToolCallSpec | None:
        """The arguments as a Python literal, or with a stray closing brace when that literal
        would happen to be JSON (``{}``)."""
        text = repr(_arguments(call))
        if _parses(text):
            text = call.arguments + "}"
        return dataclasses.replace(call, arguments=text)


@dataclass(frozen=True)
class ModelArgsNotObject(_CallBreaker):
    """Tool-call arguments are valid JSON but not an object (an array of the values)."""

    key = "model_args_not_object"

    def broken(self, call: ToolCallSpec) -> ToolCallSpec | None:
        """The argument values as a JSON array."""
        args = _arguments(call) or {}
        return dataclasses.replace(call, arguments=json.dumps(list(args.values())))


@dataclass(frozen=True)
class ModelUnknownTool(_CallBreaker):
    """The model calls a tool that was not offered.

    Attributes:
        name: the unknown tool's name.
    """

    key = "model_unknown_tool"
    name: str = "web_search"

    def broken(self, call: ToolCallSpec) -> ToolCallSpec | None:
        """The same arguments under an unknown name."""
        name = self.name if self.name != call.name else f"{self.name}_v2"
        return dataclasses.replace(call, name=name)

    def label_detail(self) -> str:
        """The unknown name when it is not the default."""
        return "" if self.name == "web_search" else self.name


@dataclass(frozen=True)
class _ArgumentBreaker(_CallBreaker):
    """Breaks one argument: ``argument`` if set, else the first."""

    argument: str | None = None

    def broken(self, call: ToolCallSpec) -> ToolCallSpec | None:
        """The call with one argument changed; None when there is no argument to change."""
        args = _arguments(call)
        if not args:
            return None
        name = self.argument if self.argument is not None else next(iter(args))
        if name not in args:
            raise FaultNotApplicableError(
                f"{self.key} was told to break argument {name!r} of tool call {call.name!r}, "
                f"which has only {sorted(args)}; set `argument` to one of those"
            )
        return dataclasses.replace(call, arguments=json.dumps(self.change(args, name)))

    def change(self, args: dict[str, Any], name: str) -> dict[str, Any]:
        """The changed arguments."""
        raise NotImplementedError

    def label_detail(self) -> str:
        """The chosen argument, if any."""
        return self.argument or ""


@dataclass(frozen=True)
class ModelMissingArgument(_ArgumentBreaker):
    """A required tool-call argument is missing."""

    key = "model_missing_argument"

    def change(self, args: dict[str, Any], name: str) -> dict[str, Any]:
        """Drop the argument."""
        return {k: v for k, v in args.items() if k != name}


@dataclass(frozen=True)
class ModelWrongArgumentType(_ArgumentBreaker):
    """A tool-call argument has the wrong JSON type (``10.0`` -> ``[10.0]``)."""

    key = "model_wrong_argument_type"

    def change(self, args: dict[str, Any], name: str) -> dict[str, Any]:
        """Give the argument a JSON type no lax validator coerces back."""
        return {**args, name: mistyped(args[name])}


@dataclass(frozen=True)
class ModelExtraArgument(_CallBreaker):
    """A tool call carries an argument the tool's schema does not declare.

    Attributes:
        argument: the extra argument's name (its value is ``true``).
    """

    key = "model_extra_argument"
    argument: str = "override_policy"

    def broken(self, call: ToolCallSpec) -> ToolCallSpec | None:
        """The call with the extra argument added."""
        args = _arguments(call)
        if args is None:
            return None
        return dataclasses.replace(call, arguments=json.dumps({**args, self.argument: True}))


@dataclass(frozen=True)
class ModelRefusal(ModelFault):
    """The model refuses to answer (the provider's refusal form)."""

    key = "model_refusal"
    category = Category.MODEL
    transient = True

    def answer(self, ctx: ModelCallContext) -> ModelAnswer | ProviderError:
        """A refusal with no tool call."""
        return ModelAnswer(refusal="I'm sorry, but I can't help with that request.")


class LengthCut(ModelFault):
    """Base of faults whose answer stopped at the token limit: nothing in it may be acted on.

    The ``incomplete_answer_unused`` check reads this: after such an answer the agent's next
    request must go to the model again (a re-ask), never to a tool built from the cut answer.
    """


@dataclass(frozen=True)
class ModelTruncated(LengthCut):
    """The answer is cut at the token limit (finish ``length``, half the arguments)."""

    key = "model_truncated"
    category = Category.MODEL
    transient = True

    def answer(self, ctx: ModelCallContext) -> ModelAnswer | ProviderError:
        """The scripted answer cut in half with finish reason ``length``."""
        call = _first_call(ctx)
        if call is None:
            text = (ctx.scripted.text if ctx.scripted else None) or PROSE_INSTEAD_OF_CALL
            return ModelAnswer(text=text[: len(text) // 2], finish="length")
        half = dataclasses.replace(call, arguments=call.arguments[: len(call.arguments) // 2])
        return ModelAnswer(tool_calls=(half,), finish="length")


@dataclass(frozen=True)
class ModelEmpty(ModelFault):
    """The answer has no choices / no content blocks at all."""

    key = "model_empty"
    category = Category.MODEL
    transient = True

    def answer(self, ctx: ModelCallContext) -> ModelAnswer | ProviderError:
        """An empty answer."""
        return ModelAnswer(empty=True)


@dataclass(frozen=True)
class ModelContentFilter(ModelFault):
    """The provider's content filter stops the answer (finish ``content_filter``, no call)."""

    key = "model_content_filter"
    category = Category.MODEL
    transient = True

    def answer(self, ctx: ModelCallContext) -> ModelAnswer | ProviderError:
        """A filtered answer with no content."""
        return ModelAnswer(finish="content_filter")


@dataclass(frozen=True)
class ModelToolCallWithoutId(_CallBreaker):
    """A tool call arrives without an id, so its result cannot be attributed."""

    key = "model_tool_call_without_id"

    def broken(self, call: ToolCallSpec) -> ToolCallSpec | None:
        """The call with its id removed."""
        return dataclasses.replace(call, id=None)


@dataclass(frozen=True)
class ModelRepeatCall(ModelFault):
    """The model repeats its previous answer verbatim: no progress, a logic error.

    Only eligible from the second model call on. The repeated call must be one the agent still
    offers (in a tool loop, not the first call of a new stage), or the agent rightly sees an
    unknown tool instead.
    """

    key = "model_repeat_call"
    category = Category.LOGIC
    transient = False

    def eligible(self, call_index: int) -> bool:
        """Only from the second call, when there is a previous answer to repeat."""
        return call_index >= 2

    def answer(self, ctx: ModelCallContext) -> ModelAnswer | ProviderError:
        """The previous answer again."""
        if ctx.previous is None:
            raise FaultNotApplicableError(
                f"{self.key} repeats the previous model answer, but call {ctx.call_index} has "
                f"none; schedule it on a later call (at: {{nth: 2}} or more)"
            )
        return ctx.previous


@dataclass(frozen=True)
class ModelNoToolUse(ModelFault):
    """A plain text final answer where a tool call was required."""

    key = "model_no_tool_use"
    category = Category.MODEL
    transient = True

    def answer(self, ctx: ModelCallContext) -> ModelAnswer | ProviderError:
        """Prose, finish ``stop``."""
        return ModelAnswer(text=PROSE_INSTEAD_OF_CALL, finish="stop")


@dataclass(frozen=True)
class ModelRateLimit(ModelFault):
    """The provider answers 429 rate limited with ``retry-after``.

    Attributes:
        retry_after: the header value, in seconds.
    """

    key = "model_rate_limit"
    category = Category.MODEL
    transient = True
    retry_after: str = "1"

    def answer(self, ctx: ModelCallContext) -> ModelAnswer | ProviderError:
        """The provider's rate-limit error."""
        return ProviderError("rate_limit", retry_after=self.retry_after)


@dataclass(frozen=True)
class ModelQuotaExhausted(ModelFault):
    """The provider answers 429 with an exhausted quota: retrying cannot help."""

    key = "model_quota_exhausted"
    category = Category.MODEL
    transient = False

    def answer(self, ctx: ModelCallContext) -> ModelAnswer | ProviderError:
        """The provider's quota error."""
        return ProviderError("quota")


@dataclass(frozen=True)
class ModelServerError(ModelFault):
    """The provider answers 500."""

    key = "model_server_error"
    category = Category.MODEL
    transient = True

    def answer(self, ctx: ModelCallContext) -> ModelAnswer | ProviderError:
        """The provider's server error."""
        return ProviderError("server")


@dataclass(frozen=True)
class ModelOverloaded(ModelFault):
    """The provider is overloaded (529 Anthropic, 503 OpenAI)."""

    key = "model_overloaded"
    category = Category.MODEL
    transient = True

    def answer(self, ctx: ModelCallContext) -> ModelAnswer | ProviderError:
        """The provider's overloaded error."""
        return ProviderError("overloaded")


@dataclass(frozen=True)
class ModelLengthValidJson(LengthCut):
    """The answer stops at the token limit, yet its tool call is whole, schema-valid JSON.

    Only the finish signal says it is incomplete: ``finish_reason: length`` (OpenAI chat),
    ``status: incomplete`` with ``incomplete_details`` (OpenAI responses), ``stop_reason:
    max_tokens`` (Anthropic), streamed or not. An agent that validates only the arguments uses
    it; a correct one re-asks and gets the scripted turn.
    """

    key = "model_length_valid_json"
    category = Category.MODEL
    transient = True

    def answer(self, ctx: ModelCallContext) -> ModelAnswer | ProviderError:
        """The scripted answer unchanged, with finish reason ``length``."""
        scripted = ctx.scripted
        if scripted is None or (not scripted.tool_calls and not scripted.text):
            return ModelAnswer(text=PROSE_INSTEAD_OF_CALL, finish="length")
        return dataclasses.replace(scripted, finish="length", refusal=None, empty=False)


LOOP_TURNS = 64
"""How many model requests in a row ``model_progress_loop`` answers by default: beyond any
sane per-run model-call budget, so only the agent's budget ends the loop."""

_LOOP_SUFFIX = re.compile(r"-loop\d+$")


@dataclass(frozen=True)
class ModelProgressLoop(ModelFault):
    """The model keeps calling a tool with new arguments every turn: only a call budget stops it.

    Each answer is the previous answer's first tool call (the scripted turn's before any) with
    one argument changed by the request's index: a number grows by one, a text gets a
    ``-loopN`` suffix. No answer repeats an earlier one, so no-progress detection (same call,
    same arguments) cannot stop the loop. It answers ``times`` requests in a row (default
    :data:`LOOP_TURNS`). Only eligible from the second model call: the loop continues the tool
    call the agent just made, which its conversation still offers.

    Attributes:
        argument: the argument to change (default: the first number, else the first text).
    """

    key = "model_progress_loop"
    category = Category.LOGIC
    transient = False
    times: int = LOOP_TURNS
    argument: str | None = None

    def eligible(self, call_index: int) -> bool:
        """Only from the second call, when there is a tool call to continue."""
        return call_index >= 2

    def answer(self, ctx: ModelCallContext) -> ModelAnswer | ProviderError:
        """The last tool call again, with one argument new."""
        base = ctx.previous if ctx.previous is not None and ctx.previous.tool_calls else None
        base = base or ctx.scripted
        call = base.tool_calls[0] if base is not None and base.tool_calls else None
        args = None if call is None else _arguments(call)
        if call is None or not args:
            raise FaultNotApplicableError(
                f"{self.key} continues the last tool call with new arguments, but model call "
                f"{ctx.call_index} follows no tool call with arguments; schedule it after one "
                "(at: {nth: N} on a request that follows a tool call)"
            )
        name = self.argument or _loop_argument(args)
        if name not in args:
            raise FaultNotApplicableError(
                f"{self.key} was told to change argument {name!r} of tool call {call.name!r}, "
                f"which has only {sorted(args)}; set `argument` to one of those"
            )
        value = args[name]
        if isinstance(value, int | float) and not isinstance(value, bool):
            new: Any = value + 1
        else:
            new = f"{_LOOP_SUFFIX.sub('', str(value))}-loop{ctx.call_index}"
        looped = dataclasses.replace(
            call, arguments=json.dumps({**args, name: new}), id=f"call_loop{ctx.call_index}"
        )
        return ModelAnswer(tool_calls=(looped,))

    def label_detail(self) -> str:
        """The chosen argument, if any."""
        return self.argument or ""


def _loop_argument(args: dict[str, Any]) -> str:
    for name, value in args.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            return name
    return next(iter(args))
