"""The review queue under load (harness.load): the reference agent passes, faulty queues fail."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from library import ROOT, SEED, scenario_data
from toy_agents.mini import MiniAgent, build_adapter

from harness.adapter import AgentAdapter
from harness.load import (
    LoadRecord,
    Parked,
    max_queue_length,
    percentile,
    queue_lengths,
    run_load,
)
from harness.plugin.session import RunResult, judge, report_item
from harness.record import RunRecord
from harness.report.html import render_html
from harness.report.model import Report, ReportItem
from harness.run.runner import AdapterCache, endpoints_of
from harness.scenario.loader import load_scenario
from harness.scenario.matrix import expand
from harness.scenario.reading import ScenarioError
from harness.scenario.spec import Scenario

FILE = ROOT / "scenarios" / "review_queue_load.yaml"


def small_load(**load: Any) -> Scenario:
    """The library's load scenario cut to 12 runs (the queue still fills at t=40 s)."""
    data = scenario_data("review_queue_load")
    return Scenario.model_validate({**data, "load": {**data["load"], "runs": 12, **load}})


def judged(
    scenario: Scenario, adapter: AgentAdapter, wall_s: float = 60, **config: Any
) -> RunResult:
    (variant,) = expand(scenario, None)
    record = run_load(scenario, adapter, seed=SEED, wall_s=wall_s, config=config)
    return judge(variant, record, "(test)")


def verdicts(result: RunResult) -> dict[str, bool | None]:
    return {v.name: v.passed for v in result.verdicts}


def reason(result: RunResult, name: str) -> str:
    return next(v.reason for v in result.verdicts if v.name == name)


@pytest.fixture(scope="module")
def reference() -> AgentAdapter:
    return AdapterCache().get("reference_agent:build_adapter", endpoints_of(small_load()))


@pytest.fixture(scope="module")
def queue_mini() -> Iterator[MiniAgent]:
    agent = build_adapter(endpoints_of(small_load()))
    yield agent
    agent.release.set()


# --------------------------------------------------------------------------- correct agents pass


def test_the_library_scenario_passes_with_the_reference_agent(reference: AgentAdapter) -> None:
    scenario = load_scenario(FILE)
    result = judged(scenario, reference)
    assert result.verdict == "pass", result.explain()
    load = result.record.load
    assert load is not None
    assert len(load.runs) == 50
    assert max_queue_length(load.parked) == 5
    # every run parked once and was decided; the ones throttled at intake got in after a drain
    assert all(r.queued for r in load.runs)
    assert any(r.throttles for r in load.runs)
    assert len({d.approval_id for d in result.record.deliveries}) == 50


def test_a_small_load_passes_with_the_reference_agent(reference: AgentAdapter) -> None:
    result = judged(small_load(), reference)
    assert result.verdict == "pass", result.explain()
    assert all(v.passed is True for v in result.verdicts), result.explain()
    assert "held in each of 12 run(s)" in reason(result, "unapproved_effects")
    item = report_item("scenarios/review_queue_load.yaml::review_queue_load", result)
    queue = item.model_dump(mode="json")["queue"]
    assert queue["runs"] == 12
    assert queue["max_queue_length"] == 5
    assert queue["silent_drops"] == 0
    assert queue["spurious_throttles"] == 0
    assert queue["throttled"] == queue["resumed_after_drain"] > 0
    assert queue["sla_met"] is True
    assert set(queue["latency_s"]) == {"p50", "p90", "p99"}


def test_the_mini_agent_with_a_bounded_queue_passes(queue_mini: MiniAgent) -> None:
    result = judged(small_load(), queue_mini)
    assert result.verdict == "pass", result.explain()


# --------------------------------------------------------------------------- faulty queues fail


def test_an_unbounded_queue_fails_queue_bounded(queue_mini: MiniAgent) -> None:
    result = judged(small_load(), queue_mini, defects=["unbounded_queue"])
    assert result.verdict == "fail"
    assert verdicts(result)["queue_bounded"] is False
    assert "(capacity 5)" in reason(result, "queue_bounded")
    assert "Throttle intake while 5 approvals are pending" in reason(result, "queue_bounded")
    # a longer queue means longer waits: the declared SLA is missed too
    assert verdicts(result)["review_sla"] is False


def test_counting_consumed_approvals_as_pending_fails_and_intake_never_resumes(
    queue_mini: MiniAgent,
) -> None:
    result = judged(small_load(), queue_mini, defects=["counts_consumed_approvals"])
    assert result.verdict == "fail"
    got = verdicts(result)
    assert got["throttle_justified"] is False
    assert got["intake_resumes"] is False
    assert got["queue_bounded"] is True  # it throttles too much, never too little
    assert "approvals pending" in reason(result, "throttle_justified")
    assert "never got into the queue after it drained" in reason(result, "intake_resumes")


def test_a_silently_dropped_ticket_fails_runs_accounted(queue_mini: MiniAgent) -> None:
    result = judged(small_load(), queue_mini, defects=["silent_drop"])
    assert result.verdict == "fail"
    assert verdicts(result)["runs_accounted"] is False
    why = reason(result, "runs_accounted")
    assert "silently dropped" in why
    assert "ended 'completed'" in why
    assert "without parking for a review" in why


def test_a_throttle_without_a_reason_is_a_silent_drop(queue_mini: MiniAgent) -> None:
    # no resubmission, so the reasonless throttle is how those runs end
    result = judged(small_load(resubmit=False), queue_mini, defects=["throttle_without_reason"])
    assert result.verdict == "fail"
    assert "without a reason in 'error'" in reason(result, "runs_accounted")
    assert verdicts(result)["intake_resumes"] is None  # not asked for


def test_throttled_with_a_reason_and_no_resubmission_is_accounted_for(
    reference: AgentAdapter,
) -> None:
    result = judged(small_load(resubmit=False), reference)
    assert result.verdict == "pass", result.explain()
    load = result.record.load
    assert load is not None
    assert any(r.final is not None and r.final.state == "throttled" for r in load.runs)
    assert "ended throttled with a reason" in reason(result, "runs_accounted")


def test_an_approved_run_that_does_not_complete_fails(reference: AgentAdapter) -> None:
    data = scenario_data("review_queue_load")
    close = data["tools"]["services"]["close_ticket"]
    close["ledger"] = {"json": {"status": "closed"}}  # no ticket_id: the agent's check fails
    scenario = Scenario.model_validate({**data, "load": {**data["load"], "runs": 12}})
    result = judged(scenario, reference)
    assert verdicts(result)["approved_runs_end"] is False
    assert "ended 'failed'" in reason(result, "approved_runs_end")


def test_a_refund_after_a_denial_fails_unapproved_effects_for_that_run(
    queue_mini: MiniAgent,
) -> None:
    result = judged(small_load(), queue_mini, defects=["ignore_denial"])
    assert result.verdict == "fail"
    assert verdicts(result)["unapproved_effects"] is False
    # the fourth review is the first denial (the script cycles approve, approve, approve, deny)
    assert reason(result, "unapproved_effects").startswith("run 4: ")
    assert verdicts(result)["queue_bounded"] is True


def test_approvals_that_expire_in_the_queue_miss_the_sla_but_drop_nothing(
    reference: AgentAdapter,
) -> None:
    # approvals live 100 s; one reviewer at 60 s each cannot reach the later ones in time
    data = scenario_data("review_queue_load")
    load = {**data["load"], "runs": 12, "reviewers": 1}
    scenario = Scenario.model_validate(
        {**data, "load": load, "agent_config": {"approval_sla_s": 100}}
    )
    result = judged(scenario, reference)
    got = verdicts(result)
    assert got["review_sla"] is False
    assert "expired in the queue before a reviewer took them" in reason(result, "review_sla")
    # the harness and the agent agree on when an approval stops counting: no spurious throttle
    assert got["throttle_justified"] is True, reason(result, "throttle_justified")
    assert got["runs_accounted"] is True, reason(result, "runs_accounted")
    assert got["queue_bounded"] is True
    load_record = result.record.load
    assert load_record is not None
    expired = [p for p in load_record.parked if p.verdict == "expired"]
    assert expired
    ends = {r.number: r.final.state for r in load_record.runs if r.final is not None}
    assert {ends[p.run] for p in expired} == {"expired"}


def test_a_load_that_never_fills_the_queue_is_an_error_not_a_pass(
    reference: AgentAdapter,
) -> None:
    fast = [{"verdict": "approve", "delay_s": 1}]
    result = judged(small_load(review=fast), reference)
    assert result.verdict == "error"
    assert verdicts(result)["load_exercised"] is False
    assert "never filled" in reason(result, "load_exercised")


def test_an_agent_that_raises_fails_load_finished(queue_mini: MiniAgent) -> None:
    result = judged(small_load(), queue_mini, defects=["raises"])
    assert result.verdict == "fail"
    assert verdicts(result)["load_finished"] is False
    assert "run 1:" in reason(result, "load_finished")


def test_an_agent_that_hangs_fails_load_finished_within_the_wall_limit(
    queue_mini: MiniAgent,
) -> None:
    result = judged(small_load(), queue_mini, wall_s=1.5, defects=["never_terminates"])
    queue_mini.release.set()  # let the hung call end
    assert result.verdict == "fail"
    assert verdicts(result)["load_finished"] is False
    assert "did not finish within 1.5 s" in reason(result, "load_finished")


# --------------------------------------------------------------------------- the scenario kind


def test_load_cannot_be_combined_with_a_matrix(tmp_path: Path) -> None:
    data = scenario_data("review_queue_load")
    data["matrix"] = {"surfaces": ["tool"]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ScenarioError, match="'matrix' cannot be combined with 'load'"):
        load_scenario(path)


def test_load_runs_need_distinct_inputs() -> None:
    data = scenario_data("review_queue_load")
    data["input"]["ticket_id"] = "T-7001"
    with pytest.raises(ValueError, match=r"write '\{n\}' in an id of the input"):
        Scenario.model_validate(data)


def test_the_capacity_given_to_the_agent_must_be_the_judged_one() -> None:
    data = scenario_data("review_queue_load")
    data["agent_config"] = {"review_queue_capacity": 50}
    with pytest.raises(ValueError, match=r"'review_queue_capacity' is 50 but load\.capacity is 5"):
        Scenario.model_validate(data)


def test_the_run_number_fills_every_string_of_a_run() -> None:
    run = load_scenario(FILE).for_load_run(7)
    assert run.input["ticket_id"] == "T-707"
    assert run.tools.services["close_ticket"].path == "/tickets/T-707"
    assert run.load is None


# --------------------------------------------------------------------------- reports


def test_the_figures_reach_the_report_summary_and_the_html(reference: AgentAdapter) -> None:
    result = judged(small_load(), reference)
    nodeid = "scenarios/review_queue_load.yaml::review_queue_load"
    entry = report_item(nodeid, result).model_dump(mode="json")
    item = ReportItem.model_validate(json.loads(json.dumps(entry)))
    report = Report.build([item], seed=SEED)
    assert report.summary.queue[nodeid].max_queue_length == 5
    page = render_html(report)
    assert "<h2>Review queue under load</h2>" in page
    assert "5 / 5" in page


def test_a_load_scenario_runs_as_one_pytest_item(pytester: pytest.Pytester) -> None:
    data = scenario_data("review_queue_load")
    data["load"]["runs"] = 12
    broken = {**data, "name": "unbounded", "agent_config": {"defects": ["unbounded_queue"]}}
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "load.yaml").write_text(yaml.safe_dump(data))
    (pytester.path / "scenarios" / "unbounded.yaml").write_text(yaml.safe_dump(broken))
    pytester.makeini(
        "[pytest]\nchaos_agent = toy_agents.mini:build_adapter\nchaos_seed = 3\n"
        "filterwarnings = error\n"
    )
    report = pytester.path / "r.json"
    result = pytester.runpytest(
        "scenarios", f"--chaos-report={report}", "-p", "no:cacheprovider", "--assert=plain"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*FAIL: scenario 'unbounded', variant 'base'*",
            "*check queue_bounded: the review queue held * approvals waiting for a decision at "
            "once (capacity 5)*",
        ]
    )
    figures = json.loads(report.read_text())["summary"]["queue"]
    assert figures["scenarios/load.yaml::review_queue_load"]["throttled"] > 0
    assert figures["scenarios/unbounded.yaml::unbounded"]["max_queue_length"] > 5


# --------------------------------------------------------------------------- properties


def _parked(spans: list[tuple[float, float, float | None]]) -> list[Parked]:
    """Parked approvals from (park, expires after, delivered after) spans, in park order."""
    out = []
    for i, (at, ttl, after) in enumerate(sorted(spans, key=lambda s: s[0])):
        delivered = None if after is None else at + after
        delivered_order = None if delivered is None else 10**6 + i
        out.append(Parked(i, f"a{i}", at, i + 1, at + ttl, delivered, delivered_order))
    return out


_SPANS = st.lists(
    st.tuples(
        st.integers(0, 100).map(float),
        st.integers(1, 60).map(float),
        st.none() | st.integers(0, 80).map(float),
    ),
    max_size=30,
)


@given(_SPANS)
def test_queue_length_is_the_count_of_open_approvals(spans: list[Any]) -> None:
    parked = _parked(spans)
    lengths = queue_lengths(parked)
    assert all(n >= 0 for _, _, n in lengths)
    assert (lengths[-1][2] if lengths else 0) == 0  # every approval leaves (decision or expiry)
    # brute force: at each park, the approvals parked before or then and not yet gone
    brute = 0
    for p in parked:
        here = (p.parked_at, p.parked_order)
        open_ = 0
        for q in parked:
            end = q.end_key()
            if (q.parked_at, q.parked_order) <= here and (end is None or end > here):
                open_ += 1
        brute = max(brute, open_)
    assert max_queue_length(parked) == brute


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1), st.sampled_from([50, 90, 99]))
def test_nearest_rank_percentile(values: list[float], q: int) -> None:
    p = percentile(values, q)
    assert p in values
    below = sum(1 for v in values if v <= p)
    assert below >= math.ceil(q / 100 * len(values))  # at least q% are at or under it
    assert sum(1 for v in values if v < p) < math.ceil(q / 100 * len(values))
    assert percentile(values, 50) <= percentile(values, 90) <= percentile(values, 99)  # type: ignore[operator]


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 99) is None


def test_a_record_without_a_load_section_is_a_harness_error() -> None:
    from harness.load import QueueBounded
    from harness.scenario.expect import Expectation

    record = RunRecord("s", "base", 1, (), (), (), (), ())
    verdict = QueueBounded().evaluate(record, Expectation())
    assert verdict.passed is False
    assert verdict.harness is True
    assert LoadRecord  # the type the check reads


def test_explore_refuses_a_load_scenario_and_says_what_to_run() -> None:
    import io

    from harness.cli.explored import explore_main

    out = io.StringIO()
    code = explore_main(str(FILE), examples=1, seed=0, agent=None, out=None, stream=out)
    assert code == 2
    assert "is a load scenario" in out.getvalue()
    assert "python -m pytest" in out.getvalue()


def test_the_readme_load_example_is_a_valid_load_section() -> None:
    import re

    from harness.scenario.spec import Load

    readme = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "\nload:" in b)
    example = yaml.safe_load(block)
    spec = Load.model_validate(example["load"])
    assert spec == load_scenario(FILE).load.model_copy(update={"review": spec.review})  # type: ignore[union-attr]
    assert "{n}" in example["input"]["ticket_id"]
