"""Tests for harness.run.hardkill: the agent in a child process, SIGKILLed at each crash point."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from faults.surfaces import CrashFault, CrashMode, CrashPoint, HttpRequest, HttpResponse, StreamPlan
from harness.adapter import Endpoints, Outcome, WorldContext
from harness.plugin.session import judge
from harness.record import RunRecord
from harness.run.hardkill import AgentProcessDied, HardKillAdapter, Kill, close_all, hard_adapter
from harness.run.hardkill.messages import (
    answer_from_wire,
    answer_to_wire,
    request_from_wire,
    request_to_wire,
)
from harness.run.runner import AdapterCache, endpoints_of, probe, run_variant
from harness.scenario.expect import Expectation
from harness.scenario.loader import load_scenario
from harness.scenario.matrix import base_variant, crash_cells
from harness.scenario.spec import CrashMatrix, Scenario
from harness.scenario.variant import Variant
from harness.world.clock import FakeClock
from harness.world.intercept import StreamedResponse

LIBRARY = Path(__file__).resolve().parents[3] / "scenarios"
AGENT = "reference_agent:build_adapter"
SEED = 20261124
WALL_S = 30.0  # generous: a loaded CI machine forks slower, and a bound is all this is


@pytest.fixture(scope="module")
def happy() -> Scenario:
    scenario = load_scenario(LIBRARY / "refund_happy.yaml")
    points = tuple(CrashPoint)
    return scenario.model_copy(
        update={"crash_matrix": CrashMatrix(points=points, mode=CrashMode.HARD), "matrix": None}
    )


@pytest.fixture(scope="module")
def cache() -> Iterator[AdapterCache]:
    yield AdapterCache()
    close_all()


@pytest.fixture(scope="module")
def cells(happy: Scenario, cache: AdapterCache) -> dict[CrashPoint, Variant]:
    """The first hard crash cell the matrix builds for each crash point."""
    adapter = cache.get(AGENT, endpoints_of(happy))
    found = probe(happy, adapter, seed=SEED, wall_s=WALL_S)
    out: dict[CrashPoint, Variant] = {}
    for variant in crash_cells(happy, found):
        fault = variant.faults[-1]
        assert isinstance(fault, CrashFault)
        out.setdefault(fault.point, variant)
    return out


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _killed_pids(record: RunRecord) -> list[int]:
    return [int(note.split("agent process ")[1].split()[0]) for note in record.notes]


@pytest.mark.parametrize("point", list(CrashPoint), ids=lambda p: p.value)
def test_hard_kill_at_each_crash_point_resumes_without_repeating_work(
    point: CrashPoint,
    happy: Scenario,
    cache: AdapterCache,
    cells: dict[CrashPoint, Variant],
) -> None:
    variant = cells[point]
    fault = variant.faults[-1]
    assert isinstance(fault, CrashFault)
    assert fault.mode is CrashMode.HARD
    assert variant.label.startswith(f"crash_{point.value}-hard")
    adapter = cache.get(AGENT, endpoints_of(happy))  # in-process; the runner swaps in a child

    record = run_variant(variant, adapter, seed=SEED, wall_s=WALL_S)
    result = judge(variant, record, "test")

    assert result.verdict == "pass", result.explain()
    assert record.final is not None
    assert record.final.state.value == "completed"
    assert record.committed_effects() == {"issue_refund": 1, "send_email": 1, "close_ticket": 1}
    verdicts = {v.name: v for v in result.verdicts}
    assert verdicts["no_reexecution"].passed is True, verdicts["no_reexecution"].reason
    assert record.restarts >= 1
    assert record.crashes
    assert record.crashes[0].startswith(point.value)
    # the child really died of SIGKILL, and was reaped (no zombie left behind)
    assert record.notes, "a hard run records each kill"
    assert all(n.endswith("died with signal 9 (SIGKILL)") for n in record.notes), record.notes
    assert all(_gone(pid) for pid in _killed_pids(record))
    assert hard_adapter(AGENT, endpoints_of(happy)).pid is None  # the last child went too


def test_spawn_start_method_also_kills_and_resumes(
    happy: Scenario, cells: dict[CrashPoint, Variant]
) -> None:
    # the fallback without fork: a fresh interpreter per process, a spare kept warm
    adapter = HardKillAdapter(AGENT, endpoints_of(happy), start_method="spawn")
    try:
        variant = cells[CrashPoint.AFTER_CHECKPOINT]
        record = run_variant(variant, adapter, seed=SEED, wall_s=WALL_S)
        result = judge(variant, record, "test")
        assert result.verdict == "pass", result.explain()
        assert record.notes
        assert "signal 9 (SIGKILL)" in record.notes[0]
    finally:
        adapter.close()
    assert adapter.pid is None


def test_the_runner_refuses_hard_mode_without_a_factory_path(
    happy: Scenario, cells: dict[CrashPoint, Variant]
) -> None:
    built_by_hand = object()  # not from an AdapterCache: nothing to start a child from
    record = run_variant(
        cells[CrashPoint.BEFORE_STEP],
        built_by_hand,  # type: ignore[arg-type]
        seed=SEED,
        wall_s=WALL_S,
    )
    assert record.harness_error is not None
    assert "factory path" in record.harness_error


# --------------------------------------------------------------------------- network guard


@pytest.mark.parametrize(
    ("defect", "allow", "blocked"),
    [
        (
            "phones_home",
            False,
            [("connect", "203.0.113.50:443"), ("getaddrinfo", "telemetry.mini-agent.example")],
        ),
        ("runs_subprocess", False, [("subprocess", "sh -c 'echo subprocess ran'")]),
        ("runs_subprocess", True, []),
    ],
)
def test_the_agent_process_guard_reports_to_the_parents_world(
    happy: Scenario, defect: str, allow: bool, blocked: list[tuple[str, str]]
) -> None:
    # the agent runs in a child process: its guard refuses, the parent's record has the attempt
    scenario = happy.model_copy(
        update={
            "agent_config": {"defects": [defect]},
            "crash_matrix": None,
            "allow_subprocess": allow,
        }
    )
    variant = base_variant(scenario)
    adapter = HardKillAdapter("toy_agents.mini:build_adapter", endpoints_of(happy))
    try:
        record = run_variant(variant, adapter, seed=SEED, wall_s=WALL_S)
    finally:
        adapter.close()
    result = judge(variant, record, "test")
    assert [(b.what, b.target) for b in record.blocked] == blocked
    contained = next(v for v in result.verdicts if v.name == "network_contained")
    assert contained.passed is (not blocked), result.explain()
    if allow:
        assert record.trace is not None
        ran = [r.get("stdout") for r in record.trace.records if r.get("kind") == "subprocess"]
        assert ran == ["subprocess ran"]  # it really ran, in the agent's process


# --------------------------------------------------------------------------- children that die


class _DyingAgent:
    """An agent whose process ends on its own in ``start`` (how: the world config says)."""

    def __init__(self, endpoints: Any) -> None:
        self.how = "exit"

    def begin(self, world: Any) -> None:
        self.how = str(world.config.get("how", "exit"))

    def start(self, payload: Mapping[str, Any]) -> Outcome:
        print(f"dying agent: about to {self.how}", file=sys.stderr, flush=True)
        if self.how == "exit":
            os._exit(3)
        if self.how == "signal":
            os.kill(os.getpid(), signal.SIGTERM)
        if self.how == "hang":
            threading.Event().wait()
        if self.how == "raise":
            raise ValueError("the dying agent refuses this ticket")
        raise AssertionError(self.how)

    def resume(self, run_id: str, decision: Any = None) -> Outcome:
        raise AssertionError("never resumed")

    def trace(self, run_id: str) -> None:
        return None


def build_dying(endpoints: Any) -> _DyingAgent:
    """Factory of the dying test agent (imported by path in the child)."""
    return _DyingAgent(endpoints)


@pytest.fixture(scope="module")
def dying(happy: Scenario) -> Iterator[HardKillAdapter]:
    adapter = HardKillAdapter(f"{__name__}:build_dying", endpoints_of(happy))
    yield adapter
    adapter.close()


def _run_dying(happy: Scenario, adapter: HardKillAdapter, how: str, wall_s: float) -> RunRecord:
    scenario = happy.model_copy(update={"agent_config": {"how": how}, "crash_matrix": None})
    variant = Variant(scenario, f"dying-{how}", (), Expectation())
    return run_variant(variant, adapter, seed=SEED, wall_s=wall_s)


@pytest.mark.parametrize(
    ("how", "reported"),
    [("exit", "exited with exit code 3"), ("signal", "died with signal 15 (SIGTERM)")],
)
def test_a_child_that_dies_on_its_own_is_reported_with_its_stderr(
    happy: Scenario, dying: HardKillAdapter, how: str, reported: str
) -> None:
    record = _run_dying(happy, dying, how, WALL_S)
    assert record.timed_out is None
    assert record.agent_exception is not None
    assert reported in record.agent_exception
    assert "during start()" in record.agent_exception
    assert f"dying agent: about to {how}" in record.agent_exception  # the stderr tail
    assert dying.pid is None


def test_an_exception_in_the_child_is_summarised_like_in_process(
    happy: Scenario, dying: HardKillAdapter
) -> None:
    record = _run_dying(happy, dying, "raise", WALL_S)
    assert record.agent_exception is not None
    assert record.agent_exception.startswith("ValueError: the dying agent refuses this ticket")
    in_process = _run_dying(happy, _DyingAgent(None), "raise", WALL_S)  # type: ignore[arg-type]
    assert record.agent_exception == in_process.agent_exception


def test_a_hung_child_times_out_and_is_killed_and_reaped(
    happy: Scenario, dying: HardKillAdapter
) -> None:
    record = _run_dying(happy, dying, "hang", 0.5)
    assert record.timed_out == 0.5
    assert dying.pid is None


def test_a_factory_that_cannot_load_is_reported(happy: Scenario) -> None:
    adapter = HardKillAdapter("no_such_module_here:build", endpoints_of(happy))
    try:
        with pytest.raises(AgentProcessDied, match="could not load its factory"):
            adapter._new_child()
    finally:
        adapter.close()


def test_warm_readies_the_process_the_next_begin_uses(happy: Scenario, tmp_path: Path) -> None:
    adapter = HardKillAdapter(AGENT, endpoints_of(happy))
    try:
        adapter.warm()
        spare = adapter._spare
        assert spare is not None
        assert spare.ready  # started and imported outside any run's wall-clock limit
        adapter.attach(lambda request: HttpResponse(200), deadline=None)
        adapter.begin(WorldContext(tmp_path, FakeClock(), {}, 1, lambda point, step: None))
        assert adapter.pid == spare.pid
        adapter.warm()  # a process is running: nothing more to start
        assert adapter._spare is None
    finally:
        adapter.release()
        adapter.close()


def test_warm_leaves_a_factory_that_cannot_load_to_begin(happy: Scenario) -> None:
    adapter = HardKillAdapter("no_such_module_here:build", endpoints_of(happy))
    try:
        adapter.warm()  # no exception here: the run's begin() meets and reports it
        assert adapter._spare is None
    finally:
        adapter.close()


# --------------------------------------------------------------------------- the wire


def test_requests_and_answers_cross_the_wire_unchanged() -> None:
    request = HttpRequest("POST", "http://t/refunds", {"Idempotency-Key": "k"}, b"\x00{}", "httpx2")
    assert request_from_wire(request_to_wire(request)) == request
    response = HttpResponse(201, (("content-type", "application/json"),), b'{"a":1}')
    assert answer_from_wire(answer_to_wire(response, 1), lambda s, i: None) == response
    seen: list[tuple[int, int]] = []
    plan = StreamPlan((b"data: 1\n\n", b"data: 2\n\n"), b"data: [DONE]\n\n", 12, 0.5)
    streamed = StreamedResponse(200, (("content-type", "text/event-stream"),), plan, print)
    back = answer_from_wire(answer_to_wire(streamed, 7), lambda s, i: seen.append((s, i)))
    assert isinstance(back, StreamedResponse)
    assert back.plan == plan
    assert back.on_event is not None
    back.on_event(1)
    assert seen == [(7, 1)]


@pytest.mark.parametrize(
    ("code", "text"),
    [(-9, "died with signal 9 (SIGKILL)"), (2, "exited with exit code 2"), (None, "not reaped")],
)
def test_kill_notes_name_how_the_process_ended(code: int | None, text: str) -> None:
    assert Kill(42, "before_step:gather", code).note() == (
        f"hard kill: agent process 42 at before_step:gather: {text}"
        if code is not None
        else "hard kill: agent process 42 at before_step:gather: still running after SIGKILL "
        "(not reaped)"
    )


def test_unknown_start_method_is_refused() -> None:
    with pytest.raises(ValueError, match="'fork' or 'spawn'"):
        HardKillAdapter(AGENT, Endpoints("http://m/v1", "http://t"), start_method="thread")
