from __future__ import annotations

import json
from typing import Any

import pytest

from faults.base import Category, FaultNotApplicableError, registry
from faults.model import (
    PROSE_INSTEAD_OF_CALL,
    ModelArgsNotJson,
    ModelArgsNotObject,
    ModelContentFilter,
    ModelEmpty,
    ModelExtraArgument,
    ModelMissingArgument,
    ModelNoToolUse,
    ModelOverloaded,
    ModelQuotaExhausted,
    ModelRateLimit,
    ModelRefusal,
    ModelRepeatCall,
    ModelServerError,
    ModelToolCallWithoutId,
    ModelTruncated,
    ModelUnknownTool,
    ModelWrongArgumentType,
)
from faults.surfaces import ModelAnswer, ModelFault, ProviderError, ToolCallSpec

ARGS = {"amount": 25.0, "reason": "damaged on arrival"}
BREAKERS = [
    "model_args_not_json",
    "model_args_not_object",
    "model_unknown_tool",
    "model_missing_argument",
    "model_wrong_argument_type",
    "model_extra_argument",
    "model_tool_call_without_id",
]


def _first(answer: ModelAnswer | ProviderError) -> ToolCallSpec:
    assert isinstance(answer, ModelAnswer)
    assert answer.tool_calls
    return answer.tool_calls[0]


def _args(answer: ModelAnswer | ProviderError) -> Any:
    return json.loads(_first(answer).arguments)


def test_args_not_json_serves_a_python_literal(model_ctx: Any) -> None:
    call = _first(ModelArgsNotJson().answer(model_ctx))
    assert call.arguments == repr(ARGS)
    with pytest.raises(json.JSONDecodeError):
        json.loads(call.arguments)


def test_args_not_json_breaks_an_empty_object_too(make_model_ctx: Any) -> None:
    ctx = make_model_ctx(scripted=ModelAnswer(tool_calls=(ToolCallSpec("noop", "{}"),)))
    with pytest.raises(json.JSONDecodeError):
        json.loads(_first(ModelArgsNotJson().answer(ctx)).arguments)


def test_args_not_object_is_json_but_an_array(model_ctx: Any) -> None:
    assert _args(ModelArgsNotObject().answer(model_ctx)) == [25.0, "damaged on arrival"]


def test_unknown_tool_keeps_the_arguments_under_another_name(make_model_ctx: Any) -> None:
    ctx = make_model_ctx()
    call = _first(ModelUnknownTool().answer(ctx))
    assert (call.name, json.loads(call.arguments)) == ("web_search", ARGS)
    ctx = make_model_ctx(scripted=ModelAnswer(tool_calls=(ToolCallSpec("web_search", "{}"),)))
    assert _first(ModelUnknownTool().answer(ctx)).name == "web_search_v2"
    assert ModelUnknownTool(name="rm").label() == "model_unknown_tool-rm#1"


def test_missing_argument_drops_the_first_or_the_chosen_one(model_ctx: Any) -> None:
    assert _args(ModelMissingArgument().answer(model_ctx)) == {"reason": ARGS["reason"]}
    assert _args(ModelMissingArgument(argument="reason").answer(model_ctx)) == {"amount": 25.0}


def test_wrong_argument_type(model_ctx: Any) -> None:
    assert _args(ModelWrongArgumentType().answer(model_ctx))["amount"] == [25.0]


def test_argument_breaker_on_an_absent_argument_names_the_ones_there(model_ctx: Any) -> None:
    with pytest.raises(FaultNotApplicableError, match=r"'order_id'.*\['amount', 'reason'\]"):
        ModelMissingArgument(argument="order_id").answer(model_ctx)


def test_extra_argument(model_ctx: Any) -> None:
    assert _args(ModelExtraArgument().answer(model_ctx)) == {**ARGS, "override_policy": True}


def test_tool_call_without_id(model_ctx: Any) -> None:
    assert _first(ModelToolCallWithoutId().answer(model_ctx)).id is None


@pytest.mark.parametrize("key", BREAKERS)
def test_breakers_leave_the_other_calls_and_text_alone(model_ctx: Any, key: str) -> None:
    fault = registry()[key]()
    assert isinstance(fault, ModelFault)
    answer = fault.answer(model_ctx)
    assert isinstance(answer, ModelAnswer)
    assert answer.tool_calls[1:] == model_ctx.scripted.tool_calls[1:]
    assert answer.tool_calls[0] != model_ctx.scripted.tool_calls[0]
    assert fault.category is Category.MODEL
    assert fault.transient


@pytest.mark.parametrize("key", BREAKERS)
@pytest.mark.parametrize("scripted", [None, ModelAnswer(text="All done.")])
def test_breakers_serve_prose_without_a_call_to_break(
    make_model_ctx: Any, key: str, scripted: ModelAnswer | None
) -> None:
    fault = registry()[key]()
    assert isinstance(fault, ModelFault)
    answer = fault.answer(make_model_ctx(scripted=scripted))
    assert answer == ModelAnswer(text=PROSE_INSTEAD_OF_CALL)


def test_argument_breakers_serve_prose_when_there_are_no_arguments(make_model_ctx: Any) -> None:
    ctx = make_model_ctx(scripted=ModelAnswer(tool_calls=(ToolCallSpec("noop", "{}"),)))
    assert ModelMissingArgument().answer(ctx) == ModelAnswer(text=PROSE_INSTEAD_OF_CALL)


def test_refusal_empty_filter_and_prose(model_ctx: Any) -> None:
    refusal = ModelRefusal().answer(model_ctx)
    assert isinstance(refusal, ModelAnswer)
    assert refusal.refusal
    assert not refusal.tool_calls
    assert ModelEmpty().answer(model_ctx) == ModelAnswer(empty=True)
    filtered = ModelContentFilter().answer(model_ctx)
    assert isinstance(filtered, ModelAnswer)
    assert filtered.finish_reason() == "content_filter"
    assert not filtered.tool_calls
    prose = ModelNoToolUse().answer(model_ctx)
    assert isinstance(prose, ModelAnswer)
    assert prose.finish_reason() == "stop"
    assert prose.text
    assert not prose.tool_calls


def test_truncated_cuts_the_arguments_in_half(model_ctx: Any) -> None:
    answer = ModelTruncated().answer(model_ctx)
    assert isinstance(answer, ModelAnswer)
    assert answer.finish_reason() == "length"
    full = model_ctx.scripted.tool_calls[0].arguments
    assert _first(answer).arguments == full[: len(full) // 2]
    with pytest.raises(json.JSONDecodeError):
        json.loads(_first(answer).arguments)


def test_truncated_text_answer(make_model_ctx: Any) -> None:
    answer = ModelTruncated().answer(make_model_ctx(scripted=ModelAnswer(text="abcdefgh")))
    assert answer == ModelAnswer(text="abcd", finish="length")


def test_repeat_call_serves_the_previous_answer_and_is_a_logic_error(
    make_model_ctx: Any,
) -> None:
    previous = ModelAnswer(tool_calls=(ToolCallSpec("lookup_order", '{"order_id":"O-1"}'),))
    fault = ModelRepeatCall()
    assert fault.answer(make_model_ctx(previous=previous, call_index=3)) == previous
    assert (fault.category, fault.transient) == (Category.LOGIC, False)
    assert not fault.eligible(1)
    assert fault.eligible(2)
    with pytest.raises(FaultNotApplicableError, match="nth: 2"):
        fault.answer(make_model_ctx(previous=None))


@pytest.mark.parametrize(
    ("fault", "expected", "transient"),
    [
        (ModelRateLimit(), ProviderError("rate_limit", retry_after="1"), True),
        (ModelQuotaExhausted(), ProviderError("quota"), False),
        (ModelServerError(), ProviderError("server"), True),
        (ModelOverloaded(), ProviderError("overloaded"), True),
    ],
)
def test_provider_errors(
    model_ctx: Any, fault: ModelFault, expected: ProviderError, transient: bool
) -> None:
    assert fault.answer(model_ctx) == expected
    assert fault.transient is transient
    assert fault.category is Category.MODEL
