"""Tests of the scenario model: short forms, accessors, fault building and cross-field rules."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from faults.base import _REGISTRY, Category, Schedule, Surface
from faults.surfaces import ModelAnswer, ReviewAction, ToolCallSpec, ToolFault, ToolResult
from harness.scenario.base import RuleProblem, explain_error
from harness.scenario.expect import Expect, ExpectOverride, override_for
from harness.scenario.fault_specs import build_fault
from harness.scenario.script import ToolServiceSpec
from harness.scenario.spec import Scenario


@pytest.fixture
def status_fault() -> Iterator[Any]:
    """A test-local tool fault, registered for one test only so other tests never see it."""

    @dataclass(frozen=True)
    class ScnStatusFault(ToolFault):
        """Test-local: the tool answers ``status``."""

        key: ClassVar[str] = "scn_test_status"
        category: ClassVar[Category | None] = Category.TOOL
        transient: ClassVar[bool] = True
        status: int = 503

        def apply(self, ctx: Any) -> ToolResult:
            raise NotImplementedError

    yield ScnStatusFault
    # the registry is global: leave it as other tests (and matrix expansions) expect it
    _REGISTRY.pop("scn_test_status", None)


SERVICES: dict[str, Any] = {
    "get_order": {"path": "/orders/O-1", "respond": {"json": {"order_id": "O-1"}}},
    "issue_refund": {"method": "POST", "path": "/refunds", "ledger": {"status": 201}},
}


def scenario(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "s",
        "description": "d",
        "input": {"ticket_id": "T-1"},
        "tools": {"services": SERVICES},
        "expect": {"state": "completed"},
    }
    return {**base, **overrides}


def problems(exc: ValidationError) -> list[RuleProblem]:
    out: list[RuleProblem] = []
    for err in exc.errors():
        assert err["type"] == "scenario_rule", err
        out += err["ctx"]["problems"]
    return out


def rule_messages(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as info:
        Scenario.model_validate(data)
    return [(p.at, p.message) for p in problems(info.value)]


def test_defaults_of_a_minimal_scenario() -> None:
    s = Scenario.model_validate(scenario(tools={}))
    assert s.model.format == "openai_chat"
    assert s.model.base_url == "http://model.shakeout.test/v1"
    assert s.tools.base_url == "http://tools.shakeout.test"
    assert s.model_answers() == ()
    assert s.build_faults() == ()
    assert s.effective_seed(7) == 7
    assert Scenario.model_validate(scenario(seed=3)).effective_seed(7) == 3


def test_scenario_is_frozen() -> None:
    s = Scenario.model_validate(scenario())
    with pytest.raises(ValidationError, match="frozen"):
        s.name = "other"  # type: ignore[misc]


def test_turn_short_forms_become_model_answers_with_ids_counted_across_the_script() -> None:
    turns = [
        {"tool_call": {"name": "classify", "arguments": {"intent": "refund", "n": 1}}},
        {"tool_calls": [{"name": "a"}, {"name": "b", "id": "mine"}, {"name": "c", "id": None}]},
        {"text": "Hello"},
        {"refusal": "I can't help with that"},
        {"answer": {"tool_calls": [{"name": "d", "arguments": "{'bad'"}], "finish": "length"}},
        {"answer": {"empty": True}},
    ]
    s = Scenario.model_validate(scenario(model={"turns": turns}))
    assert s.model_answers() == (
        ModelAnswer(tool_calls=(ToolCallSpec("classify", '{"intent":"refund","n":1}', "call_1"),)),
        ModelAnswer(
            tool_calls=(
                ToolCallSpec("a", "{}", "call_2"),
                ToolCallSpec("b", "{}", "mine"),
                ToolCallSpec("c", "{}", None),
            )
        ),
        ModelAnswer(text="Hello"),
        ModelAnswer(refusal="I can't help with that"),
        ModelAnswer(tool_calls=(ToolCallSpec("d", "{'bad'", "call_5"),), finish="length"),
        ModelAnswer(empty=True),
    )


def test_a_turn_without_a_known_form_says_which_forms_exist() -> None:
    with pytest.raises(ValidationError) as info:
        Scenario.model_validate(scenario(model={"turns": [{"txt": "hi"}]}))
    (err,) = info.value.errors()
    assert err["type"] == "turn_form"
    assert err["loc"] == ("model", "turns", 0)
    assert "tool_call, tool_calls, text, refusal, answer" in err["msg"]


argument_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


@given(st.lists(st.dictionaries(st.text(max_size=6), argument_values, max_size=4), max_size=6))
def test_arguments_round_trip_and_ids_are_unique(calls: list[dict[str, Any]]) -> None:
    turns = [{"tool_call": {"name": "t", "arguments": args}} for args in calls]
    answers = Scenario.model_validate(scenario(model={"turns": turns})).model_answers()
    specs = [spec for a in answers for spec in a.tool_calls]
    assert [json.loads(spec.arguments) for spec in specs] == calls
    assert [spec.id for spec in specs] == [f"call_{i}" for i in range(1, len(calls) + 1)]
    assert [s.arguments for s in specs] == [json.dumps(c, separators=(",", ":")) for c in calls]


def test_reviewer_entries_become_review_actions_and_missing_ones_never_decide() -> None:
    s = Scenario.model_validate(
        scenario(reviewer=["approve", {"verdict": "deny", "delay_s": 60, "times": 2}])
    )
    assert s.review_actions() == (
        ReviewAction("approve"),
        ReviewAction("deny", times=2, delay_s=60.0),
    )
    assert s.review_action(1).verdict == "deny"
    assert s.review_action(2) == ReviewAction("never")


def test_fault_entries_build_registered_faults_with_schedules(status_fault: Any) -> None:
    s = Scenario.model_validate(
        scenario(
            faults=[
                "scn_test_status",
                {"scn_test_status": {"target": "get_order", "status": 404, "at": {"nth": 2}}},
                {"scn_test_status": None},
            ]
        )
    )
    assert s.fault_keys() == ("scn_test_status",) * 3
    assert s.build_faults() == (
        status_fault(),
        status_fault(target="get_order", at=Schedule(nth=2), status=404),
        status_fault(),
    )
    assert s.build_faults()[0] is not s.build_faults()[0]


@pytest.mark.usefixtures("status_fault")
def test_unknown_fault_key_suggests_a_close_one_and_the_faults_command() -> None:
    ((at, message),) = rule_messages(scenario(faults=["scn_test_statos"]))
    assert at == ("faults", 0)
    assert message == "unknown fault 'scn_test_statos'"
    result = build_fault("scn_test_statos", {})
    assert isinstance(result, list)
    assert (
        result[0].hint == "did you mean 'scn_test_status'? run `shakeout faults` to list them all"
    )


@pytest.mark.usefixtures("status_fault")
def test_fault_parameters_are_checked_by_name_type_and_schedule() -> None:
    found = rule_messages(
        scenario(
            faults=[
                {"scn_test_status": {"stauts": 404}},
                {"scn_test_status": {"status": "many"}},
                {"scn_test_status": {"at": {"nth": 1, "every": True}}},
                {"scn_test_status": [1]},
            ]
        )
    )
    assert found[0] == (
        ("faults", 0, "scn_test_status", "stauts"),
        "unknown parameter 'stauts' for fault 'scn_test_status'",
    )
    assert found[1] == (
        ("faults", 1, "scn_test_status", "status"),
        "Input should be a valid integer, got 'many'",
    )
    assert found[2][0] == ("faults", 2, "scn_test_status", "at")
    assert "'nth' and 'every' are both set" in found[2][1]
    assert found[3][1].startswith("the parameters of fault 'scn_test_status' must be a mapping")
    hint = build_fault("scn_test_status", {"stauts": 1})
    assert isinstance(hint, list)
    assert (
        hint[0].hint
        == "did you mean 'status'? remove 'stauts' (allowed here: target, at, times, status)"
    )


@pytest.mark.usefixtures("status_fault")
def test_tool_fault_target_must_be_a_service() -> None:
    found = rule_messages(scenario(faults=[{"scn_test_status": {"target": "get_ordr"}}]))
    assert found == [
        (
            ("faults", 0, "scn_test_status", "target"),
            "fault target 'get_ordr' is not a service of this scenario",
        )
    ]


def test_tool_service_needs_one_route_and_one_behaviour() -> None:
    with pytest.raises(ValidationError, match="none of path / path_regex is set"):
        ToolServiceSpec.model_validate({"respond": {}})
    with pytest.raises(ValidationError, match="'respond' and 'ledger' are both set"):
        ToolServiceSpec.model_validate({"path": "/a", "respond": {}, "ledger": {}})
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        ToolServiceSpec.model_validate({"path_regex": "/orders/(", "respond": {}})
    with pytest.raises(ValidationError, match="'json' and 'body' are both set"):
        ToolServiceSpec.model_validate({"path": "/a", "respond": {"json": {}, "body": "x"}})


def test_tool_service_matching_and_responses() -> None:
    svc = ToolServiceSpec.model_validate(
        {
            "method": "PATCH",
            "path_regex": r"/tickets/T-\d+",
            "sequence": [{"status": 503}, {"json": None}, {"body": "hi", "headers": {"x": "1"}}],
        }
    )
    assert svc.kind == "sequence"
    assert svc.matches("patch", "/tickets/T-12")
    assert not svc.matches("PATCH", "/tickets/T-12/x")
    assert not svc.matches("GET", "/tickets/T-12")
    first, second, third = svc.responses()
    assert (first.status, first.body, first.headers) == (503, b"", ())
    assert (second.body, second.header("content-type")) == (b"null", "application/json")
    assert third.header("content-type") == "text/plain; charset=utf-8"
    assert third.header("X") == "1"


def test_two_services_on_one_route_are_rejected() -> None:
    services = {**SERVICES, "lookup": {"path": "/orders/O-1", "respond": {}}}
    assert rule_messages(scenario(tools={"services": services})) == [
        (
            ("tools", "services", "lookup", "path"),
            "'GET /orders/O-1' is already answered by service 'get_order'",
        )
    ]


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        ({"state": "failed"}, "a failed run must name its category"),
        (
            {"state": "completed", "category": "tool"},
            "only a failed run has a category, but state is 'completed'",
        ),
    ],
)
def test_category_goes_with_failed_state_only(expect: dict[str, Any], message: str) -> None:
    assert rule_messages(scenario(expect=expect)) == [(("category",), message)]


def test_expectations_must_name_services_and_effects_must_be_ledgers() -> None:
    found = rule_messages(
        scenario(
            expect={
                "state": "completed",
                "effects": {"get_order": 1, "send_mail": 1},
                "calls_made": ["issue_refund"],
                "calls_not_made": ["issue_refund"],
            }
        )
    )
    assert [at for at, _ in found] == [
        ("expect", "effects", "get_order"),
        ("expect", "effects", "send_mail"),
        ("expect", "calls_not_made", 0),
    ]
    assert "ledger services only" in found[0][1]


@pytest.mark.usefixtures("status_fault")
def test_matrix_needs_something_to_expand_and_known_references() -> None:
    assert rule_messages(scenario(matrix={"calls": [1]})) == [
        ((), "the matrix names no faults and no surfaces")
    ]
    found = rule_messages(
        scenario(
            matrix={
                "faults": ["scn_test_status", "nope"],
                "targets": ["get_order", "refund"],
                "overrides": {
                    "scn_test_status@get_order": {"state": "failed"},
                    "scn_test_status@nowhere": {"state": "failed", "category": "tool"},
                },
            }
        )
    )
    assert [at for at, _ in found] == [
        ("matrix", "faults", 1),
        ("matrix", "targets", 1),
        ("matrix", "overrides", "scn_test_status@get_order", "category"),
        ("matrix", "overrides", "scn_test_status@nowhere"),
    ]


@pytest.mark.usefixtures("status_fault")
def test_matrix_fault_keys_expand_surfaces_and_overrides_apply() -> None:
    s = Scenario.model_validate(
        scenario(
            matrix={
                "faults": ["scn_test_status"],
                "surfaces": ["tool"],
                "overrides": {"scn_test_status": {"state": "failed", "category": "tool"}},
            }
        )
    )
    assert s.matrix is not None
    keys = s.matrix.fault_keys()
    assert keys[0] == "scn_test_status"
    assert keys.count("scn_test_status") == 1
    assert s.matrix.surfaces == (Surface.TOOL,)
    found, label = override_for(s, "scn_test_status@get_order", "scn_test_status")
    assert (found.category, found.state, label) == ("tool", "failed", "scn_test_status")
    assert override_for(s, "other") == (s.expect, None)


def test_override_with_a_non_failed_state_clears_the_category() -> None:
    base = Expect(state="failed", category="tool", approvals=1)
    merged = base.merged(ExpectOverride(state="completed"))
    assert (merged.state, merged.category, merged.approvals) == ("completed", None, 1)


def test_service_lookup_names_the_known_services() -> None:
    s = Scenario.model_validate(scenario())
    assert s.service("get_order").path == "/orders/O-1"
    assert s.ledger_tools() == ("issue_refund",)
    with pytest.raises(KeyError, match="known: get_order, issue_refund"):
        s.service("nope")


def errors(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str, str]]:
    """Every error of ``data`` as (location, message, hint), rule problems unpacked."""
    with pytest.raises(ValidationError) as info:
        Scenario.model_validate(data)
    out: list[tuple[tuple[str | int, ...], str, str]] = []
    for err in info.value.errors():
        if err["type"] == "scenario_rule":
            out += [(p.at, p.message, p.hint) for p in err["ctx"]["problems"]]
        else:
            out.append((tuple(err["loc"]), *explain_error(err)))
    return out


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_numbers_must_be_finite_everywhere_a_float_is_accepted(bad: float) -> None:
    # fault parameters are checked once the fields are valid, so in a scenario of their own
    fields = scenario(
        expect={"state": "completed", "budget": {"wall_s": bad}},
        reviewer=[{"verdict": "approve", "delay_s": bad}],
    )
    faults = scenario(
        faults=[
            {"tool_latency": {"seconds": bad, "at": {"probability": bad}}},
            {"stream_trickle": {"delay_per_event": bad}},
            {"approval_changed_args": {"factor": bad}},
        ]
    )
    found = errors(fields) + errors(faults)
    assert sorted(str(loc) for loc, _, _ in found) == sorted(
        str(loc)
        for loc in [
            ("reviewer", 0, "full form", "delay_s"),
            ("expect", "budget", "wall_s"),
            ("faults", 0, "tool_latency", "seconds"),
            ("faults", 0, "tool_latency", "at", "probability"),
            ("faults", 1, "stream_trickle", "delay_per_event"),
            ("faults", 2, "approval_changed_args", "factor"),
        ]
    )
    for _, message, hint in found:
        assert message.startswith("Input should be a finite number, got ")
        assert hint == "write a finite number, e.g. 2.5 (.inf and .nan are not allowed)"


@pytest.mark.parametrize(
    ("changes", "loc", "message", "hint"),
    [
        (
            {"expect": {"state": "completed", "budget": {"wall_s": 3601}}},
            ("expect", "budget", "wall_s"),
            "Input should be less than or equal to 3600, got 3601",
            "use a value of at most 3600",
        ),
        (
            {"expect": {"state": "completed", "budget": {"model_calls": 10_001}}},
            ("expect", "budget", "model_calls"),
            "Input should be less than or equal to 10000, got 10001",
            "use a value of at most 10000",
        ),
        (
            {"reviewer": [{"verdict": "approve", "delay_s": 86_401}]},
            ("reviewer", 0, "full form", "delay_s"),
            "Input should be less than or equal to 86400, got 86401",
            "use a value of at most 86400",
        ),
        (
            {"reviewer": [{"verdict": "approve", "times": 10**9}]},
            ("reviewer", 0, "full form", "times"),
            "Input should be less than or equal to 100, got 1000000000",
            "use a value of at most 100",
        ),
        (
            {"faults": [{"tool_http_503": {"at": {"nth": 10**12}}}]},
            ("faults", 0, "tool_http_503", "at", "nth"),
            "Input should be less than or equal to 10000, got 1000000000000",
            "use a value of at most 10000",
        ),
        (
            {"faults": [{"tool_rate_limit": {"seconds": 10**10}}]},
            ("faults", 0, "tool_rate_limit", "seconds"),
            "Input should be less than or equal to 86400, got 10000000000",
            "use a value of at most 86400",
        ),
        (
            {"faults": [{"tool_latency": {"seconds": -1}}]},
            ("faults", 0, "tool_latency", "seconds"),
            "Input should be greater than or equal to 0, got -1",
            "use a value of at least 0",
        ),
        (
            {"faults": [{"tool_oversize_body": {"size_bytes": 2**40}}]},
            ("faults", 0, "tool_oversize_body", "size_bytes"),
            "Input should be less than or equal to 16777216, got 1099511627776",
            "use a value of at most 16777216",
        ),
        (
            {"faults": [{"model_unknown_tool": {"name": "x" * 201}}]},
            ("faults", 0, "model_unknown_tool", "name"),
            "String should have at most 200 characters",
            "shorten it to at most 200 characters",
        ),
        (
            {"matrix": {"faults": ["tool_http_503"], "calls": [1, 10_001]}},
            ("matrix", "calls", 1),
            "Input should be less than or equal to 10000, got 10001",
            "use a value of at most 10000",
        ),
        (
            {"matrix": {"faults": ["tool_http_503"], "calls": list(range(1, 300))}},
            ("matrix", "calls"),
            "Tuple should have at most 200 items after validation, not 299",
            "keep at most 200 items here",
        ),
        (
            {"model": {"turns": [{"text": "hi"}] * 1001}},
            ("model", "turns"),
            "Tuple should have at most 1000 items after validation, not 1001",
            "keep at most 1000 items here",
        ),
        (
            {"seed": -1},
            ("seed",),
            "Input should be greater than or equal to 0, got -1",
            "use a value of at least 0",
        ),
        (
            {"seed": 2**64},
            ("seed",),
            "Input should be less than or equal to 18446744073709551615, got 18446744073709551616",
            "use a value of at most 18446744073709551615",
        ),
        (
            {"input_matrix": {"examples": 501}},
            ("input_matrix", "examples"),
            "Input should be less than or equal to 500, got 501",
            "use a value of at most 500",
        ),
    ],
)
def test_times_counts_and_sizes_are_bounded(
    changes: dict[str, Any], loc: tuple[str | int, ...], message: str, hint: str
) -> None:
    assert errors(scenario(**changes)) == [(loc, message, hint)]


def test_a_body_over_the_size_limit_is_refused() -> None:
    services = {"get_order": {"path": "/o", "respond": {"body": "x" * (256 * 1024 + 1)}}}
    ((loc, message, hint),) = errors(scenario(tools={"services": services}))
    assert loc == ("tools", "services", "get_order", "respond", "body")
    assert message == "String should have at most 262144 characters"
    assert hint == "shorten it to at most 262144 characters"


@pytest.mark.parametrize("regex", ["a{99999999999}", "(" * 2000 + ")" * 2000])
def test_a_regex_the_engine_cannot_compile_is_a_scenario_error(regex: str) -> None:
    services = {"get_order": {"path_regex": regex[:200], "respond": {}}}
    ((loc, message, _),) = errors(scenario(tools={"services": services}))
    assert loc == ("tools", "services", "get_order", "path_regex")
    assert "is not a valid regular expression" in message
