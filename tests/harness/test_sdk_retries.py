"""End to end: an agent that leaves model-error retries to the real openai / anthropic SDK passes
the provider-error cells of the fault matrix, and the same cells fail an agent that does not
retry, or that retries at once.

The cells are expanded and judged as the plugin does: a fault-free probe, ``fault_cells``,
``run_variant`` and ``judge``, with the agents built from their factory paths.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from toy_agents.sdk_retry import PROVIDER_ERRORS, Provider, SdkRetryAgent, scenario

from faults.base import Schedule
from faults.model import ModelOverloaded, ModelRateLimit, ModelServerError
from harness.plugin.session import RunResult, judge
from harness.record import Exchange, RunRecord
from harness.run.runner import AdapterCache, endpoints_of, probe, run_variant
from harness.scenario.expect import derive
from harness.scenario.matrix import base_variant, fault_cells
from harness.scenario.spec import Scenario
from harness.scenario.variant import Variant
from harness.verdict.base import Verdict

SEED = 20261125
T = TypeVar("T")
TRANSIENT_CLASSES = {
    "model_rate_limit": ModelRateLimit,
    "model_overloaded": ModelOverloaded,
    "model_server_error": ModelServerError,
}
TRANSIENT = tuple(TRANSIENT_CLASSES)
SDK_ERRORS = {
    ("openai", "model_rate_limit"): "RateLimitError",
    ("openai", "model_overloaded"): "InternalServerError",
    ("openai", "model_server_error"): "InternalServerError",
    ("anthropic", "model_rate_limit"): "RateLimitError",
    ("anthropic", "model_overloaded"): "OverloadedError",
    ("anthropic", "model_server_error"): "InternalServerError",
}
NO_SDK_RETRIES = {"max_retries": 0}
AT_ONCE = {"max_retries": 0, "retry_at_once": 2}


@dataclass(frozen=True)
class Setup:
    provider: Provider
    scenario: Scenario
    agent: SdkRetryAgent
    cells: Mapping[str, Variant]


@pytest.fixture(scope="module", params=["openai", "anthropic"])
def setup(request: pytest.FixtureRequest) -> Setup:
    provider = request.param
    sc = Scenario.model_validate(scenario(provider))
    assert sc.agent is not None
    agent = AdapterCache().get(sc.agent, endpoints_of(sc))
    assert isinstance(agent, SdkRetryAgent)
    found = probe(sc, agent, seed=SEED, wall_s=10.0)
    assert found.model_requests == 2, found.record.excerpt(None)
    cells = {v.label: v for v in fault_cells(sc, found)}
    assert sorted(cells) == sorted(f"{k}#{n}" for k in PROVIDER_ERRORS for n in (1, 2))
    return Setup(provider, sc, agent, cells)


def run(setup: Setup, label: str, config: Mapping[str, Any] | None = None) -> RunResult:
    variant = setup.cells[label]
    record = run_variant(variant, setup.agent, seed=SEED, wall_s=10.0, config=config)
    return judge(variant, record, f"pytest ... --chaos-seed={SEED}")


def verdict(result: RunResult, name: str) -> Verdict:
    return next(v for v in result.verdicts if v.name == name)


def attempts(record: RunRecord, label: str) -> list[Exchange]:
    """The faulted model request and every later request with its identity (its retries)."""
    first = next(e for e in record.exchanges if label in e.faults)
    return [e for e in record.exchanges if e.identity() == first.identity()]


# --------------------------------------------------------------------------- the SDK retries


@pytest.mark.parametrize("call", [1, 2])
@pytest.mark.parametrize("key", TRANSIENT)
def test_an_agent_relying_on_its_sdks_retries_recovers_from_a_transient_provider_error(
    setup: Setup, key: str, call: int
) -> None:
    label = f"{key}#{call}"
    result = run(setup, label)
    assert result.verdict == "pass", result.explain()
    record = result.record
    assert record.final is not None
    assert (record.final.state.value, record.final.category) == ("completed", None)
    sent = attempts(record, label)
    # the world saw the SDK's own retry: the identical request again, answered for real
    assert len(sent) == 2, record.excerpt(None)
    assert (sent[0].faults, sent[1].faults) == ((label,), ())
    assert sent[1].status == 200
    assert sent[1].mono - sent[0].mono >= 0.019  # slept retry-after-ms (20 ms) of real time
    assert sent[1].t == sent[0].t  # ... and nothing on the fake clock
    assert record.model_calls() == 3
    for name in ("recovered", "retry_timing", "trace_complete", "same_effects"):
        assert verdict(result, name).passed is True, (name, result.explain())


@pytest.mark.parametrize("call", [1, 2])
def test_a_sticky_quota_error_ends_the_run_failed_model_after_the_sdks_retries(
    setup: Setup, call: int
) -> None:
    label = f"model_quota_exhausted#{call}"
    result = run(setup, label)
    assert result.verdict == "pass", result.explain()
    final = result.record.final
    assert final is not None
    assert (final.state.value, final.category) == ("failed", "model")
    sent = attempts(result.record, label)
    if setup.provider == "openai":
        # a 429 insufficient_quota: the SDK retries it twice, the permanent fault answers each
        # identical retry, and the SDK raises RateLimitError
        assert [e.faults for e in sent] == [(label,)] * 3
        assert [e.status for e in sent] == [429] * 3
        assert "RateLimitError" in (final.error or "")
    else:
        # Anthropic's quota error is 402 billing_error, which the SDK does not retry
        assert [(e.faults, e.status) for e in sent] == [((label,), 402)]
        assert "PaymentRequiredError" in (final.error or "")
    assert verdict(result, "stopped_after_failure").passed is True


# --------------------------------------------------------------------------- the cells can fail


@pytest.mark.parametrize("key", TRANSIENT)
def test_without_the_sdks_retries_and_no_own_retry_the_transient_cells_fail(
    setup: Setup, key: str
) -> None:
    label = f"{key}#1"
    result = run(setup, label, NO_SDK_RETRIES)
    assert result.verdict == "fail"
    assert len(attempts(result.record, label)) == 1
    state = verdict(result, "expected_state")
    assert state.passed is False
    error = SDK_ERRORS[(setup.provider, key)]
    for words in ("expected state 'completed'", f"transient {key}", "got 'failed'", error):
        assert words in state.reason, state.reason
    assert verdict(result, "expected_category").passed is False


def test_without_the_sdks_retries_the_quota_cell_still_passes(setup: Setup) -> None:
    label = "model_quota_exhausted#1"
    result = run(setup, label, NO_SDK_RETRIES)
    assert result.verdict == "pass", result.explain()
    assert len(attempts(result.record, label)) == 1


@pytest.mark.parametrize("key", TRANSIENT)
def test_an_agent_that_retries_at_once_fails_retry_timing(setup: Setup, key: str) -> None:
    # The fault answers two attempts in a row, and the agent retries each at once itself.
    fault = TRANSIENT_CLASSES[key](at=Schedule(nth=1), times=2)
    label = fault.label()
    sc = setup.scenario
    variant = Variant(sc, label, (*sc.build_faults(), fault), derive(sc, fault, label), "fault")
    # The check reads the real clock as well (an SDK sleeps for real), so a machine that
    # stalls 20 ms between each failed request and its at-once retry makes the retries look
    # like waits: run again until one retry came fast enough to be judged.
    for _ in range(5):
        record = run_variant(variant, setup.agent, seed=SEED, wall_s=10.0, config=AT_ONCE)
        result = judge(variant, record, f"pytest ... --chaos-seed={SEED}")
        sent = attempts(record, label)
        assert [e.faults for e in sent] == [(label,), (label,), ()]
        assert {e.t for e in sent} == {sent[0].t}  # no wait on the fake clock
        if min(b.mono - a.mono for a, b in itertools.pairwise(sent)) < 0.018:
            break
    else:
        pytest.fail("in five runs, every at-once retry took 18 ms or more of real time")
    timing = verdict(result, "retry_timing")
    assert result.verdict == "fail", result.explain()
    assert timing.passed is False, result.explain()
    for words in ("asking to retry after 0.02 s", "0 s later on the fake clock", "ignored"):
        assert words in timing.reason, timing.reason
    # the run itself recovered: retry_timing is what says it was done wrong
    assert verdict(result, "expected_state").passed is True


def test_an_over_ask_is_one_exhausted_request_not_retried_by_the_sdk(setup: Setup) -> None:
    data = scenario(setup.provider)
    data["model"]["turns"] = data["model"]["turns"][:1]  # the final answer is not scripted
    sc = Scenario.model_validate({k: v for k, v in data.items() if k != "matrix"})
    variant = base_variant(sc)
    result = judge(variant, run_variant(variant, setup.agent, seed=SEED, wall_s=10.0), "x")
    assert result.record.model_calls() == 2  # no SDK retry of the harness's own 500
    turns = verdict(result, "model_turns")
    assert turns.passed is False
    assert "made 1 model request(s) after the scripted turns ran out" in turns.reason


# --------------------------------------------------------------------------- known harness gap


class _TracesSdkCalls(SdkRetryAgent):
    """Traces one ``model_call`` per SDK call (as most agents do), not per HTTP attempt."""

    def _traced(self, request: Any) -> None:
        return

    def _ask(self, call: Callable[[], T], errors: type[Exception]) -> T:
        url = "http://model.shakeout.test/v1/chat/completions"
        if self.provider == "anthropic":
            url = "http://model.shakeout.test/v1/messages"
        self._note({"kind": "model_call", "method": "POST", "url": url})
        return super()._ask(call, errors)


def test_a_trace_with_one_record_per_sdk_call_is_complete(setup: Setup) -> None:
    agent = _TracesSdkCalls(endpoints_of(setup.scenario), setup.provider)
    variant = setup.cells["model_rate_limit#1"]
    result = judge(variant, run_variant(variant, agent, seed=SEED, wall_s=10.0), "x")
    assert verdict(result, "trace_complete").passed is True, result.explain()
