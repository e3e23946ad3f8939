"""End to end: every check holds on a correct agent and catches the faulty mini agent's defect."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest
import yaml
from library import SEED, scenario_data, without_matrices
from toy_agents.mini import LOOP_CAP, MAX_MODEL_CALLS, MiniAgent, Outcome

from faults.approval import ApprovalDeny
from faults.base import Fault, Schedule
from faults.model import ModelMissingArgument
from faults.tool import ToolHttp404, ToolHttp500, ToolHttp503, ToolTimeoutAfterCommit
from harness.adapter import AgentAdapter
from harness.plugin.session import RunResult, judge
from harness.run.runner import AdapterCache, endpoints_of, probe, run_variant
from harness.scenario.expect import derive
from harness.scenario.matrix import base_variant, crash_cells
from harness.scenario.spec import Scenario
from harness.scenario.variant import Variant
from harness.verdict.base import Verdict
from harness.world import netguard

HAPPY = scenario_data("refund_happy")
CRASH = scenario_data("crash_resume_refund")


scenario = without_matrices


HAPPY_SC = scenario(HAPPY)


@pytest.fixture(scope="module")
def reference() -> AgentAdapter:
    return AdapterCache().get("reference_agent:build_adapter", endpoints_of(HAPPY_SC))


def run(variant: Variant, agent: AgentAdapter, *defects: str, wall_s: float = 10.0) -> RunResult:
    config = {"defects": list(defects)} if isinstance(agent, MiniAgent) else None
    record = run_variant(variant, agent, seed=SEED, wall_s=wall_s, config=config)
    return judge(variant, record, f"pytest ... --chaos-seed={SEED}")


def cell(sc: Scenario, fault: Fault) -> Variant:
    """A fault-matrix cell, its expectation derived from the fault's class as expand() does."""
    label = fault.label()
    return Variant(sc, label, (*sc.build_faults(), fault), derive(sc, fault, label), "fault")


def verdict(result: RunResult, name: str) -> Verdict:
    return next(v for v in result.verdicts if v.name == name)


def broken(result: RunResult, name: str, *words: str, outcome: str = "fail") -> str:
    """Assert the run's verdict and that check ``name`` failed naming ``words``; its text."""
    v = verdict(result, name)
    assert result.verdict == outcome, result.explain()
    assert v.passed is False, result.explain()
    for w in words:
        assert w in v.reason, v.reason
    return result.explain()


def holds(result: RunResult, *names: str) -> None:
    assert result.verdict == "pass", result.explain()
    for name in names:
        assert verdict(result, name).passed is True, name


# --------------------------------------------------------------------------- correct agents


def test_the_reference_agent_keeps_every_check_on_the_happy_path(reference: AgentAdapter) -> None:
    result = run(base_variant(HAPPY_SC), reference)
    holds(result, "terminal_state", "unapproved_effects", "duplicate_effects", "trace_complete")


def test_the_correct_mini_agent_keeps_every_check_on_the_happy_path(mini: MiniAgent) -> None:
    result = run(base_variant(HAPPY_SC), mini)
    holds(
        result,
        "harness_ran",
        "terminal_state",
        "single_category",
        "unapproved_effects",
        "duplicate_effects",
        "requests_routed",
        "model_turns",
        "trace_complete",
        "trace_retention",
        "expected_state",
        "expected_effects",
        "expected_approvals",
        "expected_calls",
        "budget",
    )


# --------------------------------------------------------------------------- harness-side: ERROR


def test_a_declared_fault_that_never_fires_is_an_error(mini: MiniAgent) -> None:
    fault = ToolHttp503(target="get_order", at=Schedule(nth=5))
    variant = Variant(HAPPY_SC, fault.label(), (fault,), base_variant(HAPPY_SC).expect, "fault")
    result = run(variant, mini)
    broken(result, "faults_fired", "never fired: tool_http_503@get_order#5", outcome="error")
    assert result.explain().startswith("ERROR (scenario or harness)")


def test_a_fired_fault_keeps_faults_fired(mini: MiniAgent) -> None:
    result = run(cell(HAPPY_SC, ToolHttp503(target="get_order")), mini)
    holds(result, "faults_fired")


def test_an_unrouted_request_is_an_error_naming_it(mini: MiniAgent) -> None:
    services = {k: v for k, v in HAPPY["tools"]["services"].items() if k != "get_refund_policy"}
    sc = scenario(
        HAPPY,
        tools={"services": services},
        expect={**HAPPY["expect"], "calls_made": ["get_order"]},
    )
    result = run(base_variant(sc), mini)
    broken(
        result,
        "requests_routed",
        "first: GET http://tools.shakeout.test/policy/refunds",
        outcome="error",
    )


class _BadState:
    """Wraps an adapter and reports a state outside the contract."""

    def __init__(self, inner: MiniAgent) -> None:
        self.inner = inner

    def begin(self, world: Any) -> None:
        self.inner.begin(world)

    def start(self, payload: Mapping[str, Any]) -> Outcome:
        return Outcome(self.inner.start(payload).run_id, "done")

    def resume(self, run_id: str, decision: Any = None) -> Outcome:
        return self.inner.resume(run_id, decision)

    def trace(self, run_id: str) -> Any:
        return self.inner.trace(run_id)


def test_an_adapter_outside_the_contract_is_a_harness_error(mini: MiniAgent) -> None:
    result = run(base_variant(HAPPY_SC), _BadState(mini))
    broken(result, "harness_ran", "adapter contract", "state 'done'", outcome="error")


# --------------------------------------------------------------------------- terminal state


def test_a_hanging_agent_fails_terminal_state_within_the_wall_clock(mini: MiniAgent) -> None:
    result = run(base_variant(HAPPY_SC), mini, "never_terminates", wall_s=1.5)
    # The abandoned call outlives the world: the process refuses the network from now on.
    assert netguard._SEALED
    mini.release.set()
    for thread in threading.enumerate():
        if thread.name == "shakeout-agent-call":
            thread.join(timeout=5)
            assert not thread.is_alive(), "the released agent thread is still running"
    mini.release.clear()
    text = broken(result, "terminal_state", "no terminal state within 1.5 s", "made 2 request(s)")
    assert "get_order" in text
    assert "/orders/O-1001" in text


def test_an_exception_escaping_the_agent_fails_with_its_text(mini: MiniAgent) -> None:
    result = run(base_variant(HAPPY_SC), mini, "raises")
    broken(
        result,
        "terminal_state",
        "the agent raised instead of ending in a terminal state: RuntimeError: mini agent "
        "defect: order lookup returned an unexpected shape (at mini.py:",
    )


# --------------------------------------------------------------------------- network containment


def test_an_agent_phoning_home_fails_network_contained_though_it_swallowed_the_errors(
    mini: MiniAgent,
) -> None:
    result = run(base_variant(HAPPY_SC), mini, "phones_home")
    text = broken(
        result,
        "network_contained",
        "2 time(s)",
        "connect 203.0.113.50:443",
        "getaddrinfo telemetry.mini-agent.example",
    )
    assert [(b.what, b.target) for b in result.record.blocked] == [
        ("connect", "203.0.113.50:443"),
        ("getaddrinfo", "telemetry.mini-agent.example"),
    ]
    shown = [
        line.split("(blocked)")[1].strip() for line in text.splitlines() if "(blocked)" in line
    ]
    assert shown == ["connect 203.0.113.50:443", "getaddrinfo telemetry.mini-agent.example"]
    assert verdict(result, "terminal_state").passed is True  # the run itself went on


def test_a_subprocess_fails_network_contained_unless_the_scenario_allows_it(
    mini: MiniAgent,
) -> None:
    refused = run(base_variant(HAPPY_SC), mini, "runs_subprocess")
    broken(refused, "network_contained", "subprocess sh -c 'echo subprocess ran'")
    assert refused.record.trace is not None
    assert any(
        "shakeout blocked a subprocess" in r.get("error", "") for r in refused.record.trace.records
    )

    allowed = run(base_variant(scenario(HAPPY, allow_subprocess=True)), mini, "runs_subprocess")
    holds(allowed, "network_contained")
    assert allowed.record.blocked == ()
    assert allowed.record.trace is not None
    ran = [r for r in allowed.record.trace.records if r.get("kind") == "subprocess"]
    assert [r.get("stdout") for r in ran] == ["subprocess ran"]  # it really ran


# --------------------------------------------------------------------------- categories


def test_a_permanent_fault_ends_failed_with_one_category(mini: MiniAgent) -> None:
    holds(run(cell(HAPPY_SC, ToolHttp404(target="get_order")), mini), "single_category")


@pytest.mark.parametrize(
    ("defect", "words"),
    [
        ("two_categories", "the run failed with category 'tool+logic'"),
        ("failed_without_category", "the run failed with category None"),
    ],
)
def test_a_failed_run_without_exactly_one_category_fails(
    mini: MiniAgent, defect: str, words: str
) -> None:
    result = run(cell(HAPPY_SC, ToolHttp404(target="get_order")), mini, defect)
    broken(result, "single_category", words)


# --------------------------------------------------------------------------- approvals


def test_skipping_the_approval_is_an_unapproved_effect(mini: MiniAgent) -> None:
    result = run(base_variant(HAPPY_SC), mini, "skip_approval")
    broken(
        result,
        "unapproved_effects",
        "effect on gated tool 'issue_refund'",
        "had no matching approval: no approval was delivered for it",
    )
    broken(result, "expected_approvals", "expected 1 approval request(s), got 0")


def test_a_denied_refund_stays_unissued(mini: MiniAgent) -> None:
    holds(run(cell(HAPPY_SC, ApprovalDeny()), mini), "expected_state", "expected_effects")


def test_acting_on_a_denial_is_an_unapproved_effect(mini: MiniAgent) -> None:
    result = run(cell(HAPPY_SC, ApprovalDeny()), mini, "ignore_denial")
    broken(result, "unapproved_effects", "'issue_refund'", '"order_id":"O-1001"')
    broken(result, "expected_state", "expected state 'rejected'", "got 'completed'")


# --------------------------------------------------------------------------- exactly once

LOST_ANSWER = ToolTimeoutAfterCommit(target="issue_refund")


def test_a_lost_answer_is_retried_under_the_same_key(mini: MiniAgent) -> None:
    result = run(cell(HAPPY_SC, LOST_ANSWER), mini)
    holds(result, "duplicate_effects", "expected_effects")
    assert [e.replays for e in result.record.effects if e.tool == "issue_refund"] == [1]


def test_a_new_key_per_retry_commits_the_refund_twice(mini: MiniAgent) -> None:
    result = run(cell(HAPPY_SC, LOST_ANSWER), mini, "new_key_per_retry")
    text = broken(
        result,
        "duplicate_effects",
        "the same effect on 'issue_refund' was committed 2 times under different idempotency keys",
        '"amount":49.99',
    )
    broken(result, "expected_effects", "issue_refund: expected 1, got 2")
    assert "tool_timeout_after_commit@issue_refund#1" in text


# --------------------------------------------------------------------------- crash cells

CRASH_SC = scenario(CRASH, crash_matrix={"points": ["after_effect", "after_checkpoint"]})
# Twice the turns: an agent that restarts from scratch gets answers instead of an exhausted
# script, so it goes on to repeat its effects (the fault-free run uses only the first two).
CRASH_REPEATS = scenario(
    CRASH,
    crash_matrix={"points": ["after_checkpoint"]},
    model={"turns": CRASH["model"]["turns"] * 2},
)


def crash_cell(sc: Scenario, agent: MiniAgent, label: str) -> Variant:
    found = probe(sc, agent, seed=SEED, wall_s=10.0, config={"defects": []})
    cells = {v.label: v for v in crash_cells(sc, found)}
    return cells[label]


def test_a_correct_agent_resumes_after_a_crash_without_repeating(mini: MiniAgent) -> None:
    for label in ("crash_after_effect@issue_refund#1", "crash_after_checkpoint@act#1"):
        result = run(crash_cell(CRASH_SC, mini, label), mini)
        holds(result, "no_reexecution", "duplicate_effects", "expected_effects")
        assert result.record.restarts == 1


def test_a_new_key_after_a_crash_duplicates_the_in_flight_effect(mini: MiniAgent) -> None:
    variant = crash_cell(CRASH_SC, mini, "crash_after_effect@issue_refund#1")
    result = run(variant, mini, "new_key_per_retry")
    text = broken(
        result,
        "duplicate_effects",
        "the same effect on 'issue_refund' was committed 2 times under different idempotency keys",
    )
    assert "crashes: after_effect:issue_refund; restarts: 1" in text


def test_rerunning_completed_steps_after_a_crash_fails_no_reexecution(mini: MiniAgent) -> None:
    variant = crash_cell(CRASH_REPEATS, mini, "crash_after_checkpoint@act#1")
    result = run(variant, mini, "rerun_completed_steps")
    text = broken(
        result,
        "no_reexecution",
        "after 1 restart(s) at after_checkpoint:act",
        "beyond the fault-free run: 1 request(s) to 'get_order'",
        "a completed step was executed again; re-executed step(s): ",
    )
    assert "crashes: after_checkpoint:act; restarts: 1" in text


def test_rerunning_completed_steps_names_the_repeated_effect(mini: MiniAgent) -> None:
    variant = crash_cell(CRASH_REPEATS, mini, "crash_after_checkpoint@act#1")
    result = run(variant, mini, "rerun_completed_steps")
    broken(result, "no_reexecution", "'issue_refund'", "re-executed step(s): ")


# --------------------------------------------------------------------------- issue 4: the matrix


@pytest.mark.parametrize(
    ("fault", "defect", "check", "words"),
    [
        pytest.param(
            ToolHttp500(target="get_order"),
            "treat_500_as_success",
            "expected_state",
            "expected state 'completed' (transient tool_http_500: same as the fault-free run), "
            "got 'failed' (logic: ",
            id="treat_500_as_success",
        ),
        pytest.param(
            ToolHttp404(target="get_order"),
            "retry_permanent",
            "stopped_after_failure",
            "a permanent failure, and was sent again 3 time(s)",
            id="retry_permanent",
        ),
        pytest.param(
            ModelMissingArgument(),
            "schema_as_tool_error",
            "expected_category",
            "expected category None (transient model_missing_argument: same as the fault-free "
            "run), got 'tool'",
            id="schema_as_tool_error",
        ),
    ],
)
def test_the_fault_matrix_catches_issue_4s_wrong_agents(
    mini: MiniAgent, fault: Fault, defect: str, check: str, words: str
) -> None:
    variant = cell(HAPPY_SC, fault)
    holds(run(variant, mini), check)
    broken(run(variant, mini, defect), check, words)


def test_a_500_taken_as_data_also_skips_the_rest_of_the_work(mini: MiniAgent) -> None:
    result = run(cell(HAPPY_SC, ToolHttp500(target="get_order")), mini, "treat_500_as_success")
    broken(result, "expected_calls", "expected call(s) never made: get_customer")
    broken(result, "expected_effects", "issue_refund: expected 1, got 0")


def test_a_500_on_an_effect_taken_as_success_loses_the_effect(mini: MiniAgent) -> None:
    result = run(cell(HAPPY_SC, ToolHttp500(target="issue_refund")), mini, "treat_500_as_success")
    broken(result, "expected_effects", "issue_refund: expected 1, got 0")


def test_a_permanent_error_is_not_retried(mini: MiniAgent) -> None:
    result = run(cell(HAPPY_SC, ToolHttp404(target="get_order")), mini)
    assert result.record.tool_calls()["get_order"] == 1
    retried = run(cell(HAPPY_SC, ToolHttp404(target="get_order")), mini, "retry_permanent")
    # the permanent fault answers every retry, so the agent's testimony (failed, tool) is right;
    # the evidence of the retries is what fails it
    assert retried.record.tool_calls()["get_order"] == 4
    broken(retried, "stopped_after_failure", "was sent again 3 time(s)", "must not be retried")


# --------------------------------------------------------------------------- model and budget


def test_a_model_loop_is_ended_by_the_script_and_the_budget(mini: MiniAgent) -> None:
    result = run(base_variant(HAPPY_SC), mini, "loops_forever_on_model")
    broken(result, "model_turns", "model request(s) after the scripted turns ran out")
    broken(result, "budget", "model requests, budget 5")
    assert result.record.model_calls() == LOOP_CAP + MAX_MODEL_CALLS  # the agent's own cap


# --------------------------------------------------------------------------- the trace


def test_a_trace_without_tool_calls_fails_trace_complete(mini: MiniAgent) -> None:
    result = run(base_variant(HAPPY_SC), mini, "trace_omits_tool_calls")
    broken(
        result,
        "trace_complete",
        "GET http://tools.shakeout.test/orders/O-1001 was seen 1 time(s) at the transport but "
        "appears 0 time(s) in the agent's trace",
    )


def test_a_dropped_trace_of_an_approval_run_fails_trace_retention(mini: MiniAgent) -> None:
    result = run(base_variant(HAPPY_SC), mini, "trace_never_kept")
    broken(result, "trace_retention", "requested approval", "but its trace was not kept in full")
    assert verdict(result, "trace_complete").passed is None


def test_a_dropped_trace_of_a_failed_run_fails_trace_retention(mini: MiniAgent) -> None:
    result = run(cell(HAPPY_SC, ToolHttp404(target="get_order")), mini, "trace_never_kept")
    broken(result, "trace_retention", "the run failed but its trace was not kept in full")


# --------------------------------------------------------------------------- printed output

INI = """
[pytest]
chaos_agent = toy_agents.mini:build_adapter
chaos_seed = 11
filterwarnings = error
"""


def write(pytester: pytest.Pytester, data: Mapping[str, Any]) -> None:
    path = pytester.path / "scenarios" / "mini.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text("# yaml-language-server: $schema=schema.json\n" + yaml.safe_dump(dict(data)))


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    return pytester


def mini_scenario(defects: list[str], **changes: Any) -> dict[str, Any]:
    data = {k: v for k, v in HAPPY.items() if k not in ("matrix", "input_matrix", "crash_matrix")}
    return {
        **data,
        "agent": "toy_agents.mini:build_adapter",
        "agent_config": {"defects": defects},
        **changes,
    }


def test_pytest_prints_the_matrix_cell_that_caught_a_500_taken_as_data(
    project: pytest.Pytester,
) -> None:
    matrix = {"faults": ["tool_http_500"], "targets": ["get_order"]}
    write(project, mini_scenario(["treat_500_as_success"], matrix=matrix))
    result = project.runpytest("-p", "no:cacheprovider", "--assert=plain")
    # the plain cell and the cell whose 500s outlast the agent's 3 attempts both catch it
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*FAIL: scenario 'refund_happy', variant 'tool_http_500@get_order#1'",
            "*check expected_state: expected state 'completed' (transient tool_http_500: same as "
            "the fault-free run), got 'failed' (logic: logic: order None belongs to customer "
            "None, not to 'C-42')",
            "*faults: tool_http_500@get_order#1",
            "*get_order*GET*/orders/O-1001 -> 500  [[]fault: tool_http_500@get_order#1]",
            "*seed: 11",
        ]
    )


def test_pytest_prints_the_duplicated_effect_of_a_non_idempotent_agent(
    project: pytest.Pytester,
) -> None:
    crash = yaml.safe_load(yaml.safe_dump(CRASH))
    crash["crash_matrix"] = {"points": ["after_effect"]}
    write(
        project,
        {
            **crash,
            "agent": "toy_agents.mini:build_adapter",
            "agent_config": {"defects": ["new_key_per_retry"]},
        },
    )
    result = project.runpytest("-p", "no:cacheprovider", "--assert=plain", "-k", "issue_refund")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*FAIL: scenario 'crash_resume_refund', variant 'crash_after_effect@issue_refund#1'",
            "*check duplicate_effects: the same effect on 'issue_refund' was committed 2 times "
            "under different idempotency keys*",
            "*crashes: after_effect:issue_refund; restarts: 1",
        ]
    )


def test_pytest_prints_an_escaping_exception_without_a_traceback(project: pytest.Pytester) -> None:
    write(project, mini_scenario(["raises"]))
    result = project.runpytest("-p", "no:cacheprovider", "--assert=plain")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*check terminal_state: the agent raised instead of ending in a terminal state: "
            "RuntimeError: mini agent defect: order lookup returned an unexpected shape*",
        ]
    )
    assert "Traceback" not in result.stdout.str()
