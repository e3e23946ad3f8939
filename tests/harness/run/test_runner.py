"""Tests for harness.run.runner: loading agents, the adapter cache, run_variant and probe."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from toy_agents.mini import MiniAgent
from toy_agents.sdk_retry import scenario as sdk_retry_scenario

from faults.surfaces import HttpResponse
from faults.tool import ToolHttp503
from harness.adapter import Endpoints, WorldContext
from harness.run.runner import (
    AdapterCache,
    AgentLoadError,
    build_services,
    endpoints_of,
    load_factory,
    probe,
    run_variant,
)
from harness.scenario.matrix import base_variant
from harness.scenario.spec import Scenario
from harness.scenario.variant import Variant
from harness.world.clock import FakeClock
from harness.world.services import Ledger, Sequence, Static

ROOT = Path(__file__).resolve().parents[3]
HAPPY = yaml.safe_load((ROOT / "scenarios" / "refund_happy.yaml").read_text())


def scenario(**changes: Any) -> Scenario:
    drop = ("matrix", "input_matrix", "crash_matrix")
    return Scenario.model_validate({**{k: v for k, v in HAPPY.items() if k not in drop}, **changes})


SC = scenario()
NO_DEFECTS: dict[str, Any] = {"defects": []}


@pytest.fixture(scope="module")
def mini() -> Iterator[MiniAgent]:
    cache = AdapterCache()
    agent = cache.get("toy_agents.mini:build_adapter", endpoints_of(SC))
    assert isinstance(agent, MiniAgent)
    yield agent
    agent.release.set()


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("toy_agents.mini", "must be 'module:callable'"),
        ("toy_agents.nowhere:build", "cannot import module 'toy_agents.nowhere'"),
        (
            "toy_agents.mini:build_nothing",
            "module 'toy_agents.mini' has no attribute 'build_nothing'",
        ),
        ("toy_agents.mini:DEFECTS", "agent 'toy_agents.mini:DEFECTS' is not callable"),
    ],
)
def test_load_factory_says_what_is_wrong(path: str, words: str) -> None:
    with pytest.raises(AgentLoadError) as info:
        load_factory(path)
    assert words in str(info.value)


def test_adapter_cache_builds_once_per_factory_and_endpoints() -> None:
    cache = AdapterCache()
    here = Endpoints("http://model.a.test/v1", "http://tools.a.test")
    there = Endpoints("http://model.b.test/v1", "http://tools.a.test")
    first = cache.get("toy_agents.mini:build_adapter", here)
    assert cache.get("toy_agents.mini:build_adapter", here) is first
    assert cache.get("toy_agents.mini:build_adapter", there) is not first


def test_build_services_gives_each_run_fresh_behaviours() -> None:
    customer = {
        "path": "/customers/C-42",
        "sequence": [{"status": 503}, {"json": {"customer_id": "C-42"}}],
    }
    sc = scenario(tools={"services": {**HAPPY["tools"]["services"], "get_customer": customer}})
    services = {s.name: s for s in build_services(sc)}
    assert isinstance(services["get_order"].behaviour, Static)
    assert isinstance(services["get_customer"].behaviour, Sequence)
    assert isinstance(services["issue_refund"].behaviour, Ledger)
    again = {s.name: s for s in build_services(sc)}
    assert again["issue_refund"].behaviour is not services["issue_refund"].behaviour


def _order_answer(sc: Scenario) -> HttpResponse:
    behaviour = {s.name: s for s in build_services(sc)}["get_order"].behaviour
    assert isinstance(behaviour, Static)
    return behaviour.response


def test_build_services_serves_each_scenario_its_own_responses() -> None:
    """The responses derived from a scenario are shared by its runs, never served to another
    scenario (a copy with other answers, or one built after the first was dropped)."""
    first = _order_answer(SC)
    assert _order_answer(SC) is first
    services = HAPPY["tools"]["services"]
    changed = {**services["get_order"], "respond": {"json": {"changed": True}}}
    other = _order_answer(scenario(tools={"services": {**services, "get_order": changed}}))
    assert json.loads(other.body) == {"changed": True}
    assert json.loads(first.body) == services["get_order"]["respond"]["json"]
    # More scenarios than the memo keeps, each answering its own body: one dropped and
    # collected frees its id for the next, whose run must not be served the old answers.
    for n in range(300):
        own = {**services["get_order"], "respond": {"json": {"n": n}}}
        made = scenario(tools={"services": {**services, "get_order": own}})
        assert json.loads(_order_answer(made).body) == {"n": n}


def test_run_variant_records_requests_effects_and_boundaries(mini: MiniAgent) -> None:
    record = run_variant(base_variant(SC), mini, seed=5, wall_s=10.0, config=NO_DEFECTS)
    assert [e.tool or e.surface for e in record.exchanges] == [
        "model",
        "get_order",
        "get_customer",
        "get_refund_policy",
        "model",
        "issue_refund",
        "send_email",
        "close_ticket",
    ]
    # one numbering for every event: the delivery (6) falls between the model's proposal (5)
    # and the refund (7), each commit right after the request that made it
    assert [e.seq for e in record.exchanges] == [1, 2, 3, 4, 5, 7, 9, 11]
    assert [(e.tool, e.request_seq, e.seq, e.idempotency_key) for e in record.effects] == [
        ("issue_refund", 7, 8, f"{record.final.run_id}:act" if record.final else None),
        ("send_email", 9, 10, f"{record.final.run_id}:notify" if record.final else None),
        ("close_ticket", 11, 12, f"{record.final.run_id}:close" if record.final else None),
    ]
    assert [d.verdict for d in record.deliveries] == ["approve"]
    assert record.deliveries[0].seq == 6
    assert [e.seq for e in record.events] == list(range(1, 13))
    assert record.boundaries[0] == ("before_step", "intake")
    assert record.boundaries[-1] == ("terminal_write", "completed")
    assert (record.scenario, record.variant, record.seed) == ("refund_happy", "base", 5)
    assert record.trace is not None
    assert record.trace.kept_in_full


def test_run_variant_is_deterministic_under_a_seed(mini: MiniAgent) -> None:
    fault = ToolHttp503(target="get_order")
    variant = Variant(SC, fault.label(), (fault,), base_variant(SC).expect, "fault")

    def shape() -> list[tuple[Any, ...]]:
        record = run_variant(variant, mini, seed=9, wall_s=10.0, config=NO_DEFECTS)
        return [(e.surface, e.tool, e.status, e.faults, e.t) for e in record.exchanges]

    assert shape() == shape()


def test_run_variant_keeps_state_under_the_given_root(mini: MiniAgent, tmp_path: Path) -> None:
    run_variant(base_variant(SC), mini, seed=5, wall_s=10.0, state_root=tmp_path, config=NO_DEFECTS)
    (state,) = tmp_path.iterdir()
    assert state.name.startswith("refund_happy-")
    assert (state / "mini.json").exists()


def test_run_variant_makes_no_state_dir_for_an_agent_that_never_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sc = Scenario.model_validate(sdk_retry_scenario("openai"))
    assert sc.agent is not None
    agent = AdapterCache().get(sc.agent, endpoints_of(sc))
    kept, temp = tmp_path / "kept", tmp_path / "temp"
    kept.mkdir()
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    record = run_variant(base_variant(sc), agent, seed=5, wall_s=10.0, state_root=kept)
    assert record.final is not None
    assert record.final.state.value == "completed"
    record = run_variant(base_variant(sc), agent, seed=5, wall_s=10.0)
    assert record.final is not None
    assert record.final.state.value == "completed"
    assert list(kept.iterdir()) == []
    assert list(temp.iterdir()) == []


def test_run_variant_makes_the_state_dir_on_first_read_and_removes_its_own(
    mini: MiniAgent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen: list[Path] = []
    begin = mini.begin

    def watched(world: WorldContext) -> None:
        seen.append(world.state_dir)
        assert world.state_dir.is_dir()
        assert not any(world.state_dir.iterdir())
        begin(world)

    monkeypatch.setattr(mini, "begin", watched)
    record = run_variant(base_variant(SC), mini, seed=5, wall_s=10.0, config=NO_DEFECTS)
    assert record.final is not None
    assert record.final.state.value == "completed"
    assert seen
    assert seen[0].parent == tmp_path
    assert list(tmp_path.iterdir()) == []  # removed after the run


def test_a_world_context_and_its_copies_make_one_directory_and_none_after_close(
    tmp_path: Path,
) -> None:
    world = WorldContext(
        tmp_path / "state", FakeClock(), {}, 1, lambda point, step: None, make_state_dir=True
    )
    assert not (tmp_path / "state").exists()
    copy = world.with_boundary(lambda point, step: None)
    assert copy.state_dir == tmp_path / "state"
    assert (tmp_path / "state").is_dir()
    (tmp_path / "state").rmdir()
    assert world.state_dir == tmp_path / "state"
    assert not (tmp_path / "state").exists()  # made once, by whichever copy read it first
    late = WorldContext(
        tmp_path / "late", FakeClock(), {}, 1, lambda point, step: None, make_state_dir=True
    )
    late.close()
    assert late.state_dir == tmp_path / "late"
    assert not (tmp_path / "late").exists()


def test_run_variant_passes_config_to_the_agent(mini: MiniAgent) -> None:
    record = run_variant(
        base_variant(SC), mini, seed=5, wall_s=10.0, config={"defects": ["no_such_defect"]}
    )
    assert record.agent_exception is not None
    assert "unknown mini-agent defect(s) ['no_such_defect']" in record.agent_exception


def test_probe_runs_the_scenario_as_written_and_counts_what_was_reached(mini: MiniAgent) -> None:
    sc = scenario(faults=[{"tool_http_503": {"target": "get_order"}}])
    found = probe(sc, mini, seed=5, wall_s=10.0, config=NO_DEFECTS)
    assert found.record.final is not None
    assert found.record.final.state.value == "completed"
    assert found.model_requests == 2
    assert found.approval_rounds == 1
    # the scenario's own fault is part of every cell, so the probe runs with it: one retry
    assert dict(found.tool_calls) == {
        **dict.fromkeys(HAPPY["tools"]["services"], 1),
        "get_order": 2,
    }
    assert set(found.ledger_calls) == {"issue_refund", "send_email", "close_ticket"}
    assert ("after_checkpoint", "gather") in found.boundaries


# ------------------------------------------------------------------ instances a run builds


def _open_databases() -> int:
    """Open SQLite database files of this process (not their -wal and -shm companions)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}").removesuffix(" (deleted)")
            if target.endswith((".sqlite3", ".sqlite", ".db")):
                count += 1
    return count


def _crash_cells() -> list[Variant]:
    from harness.scenario.loader import load_scenario
    from harness.scenario.matrix import expand

    sc = load_scenario(ROOT / "scenarios" / "already_refunded_declined.yaml")
    adapter = AdapterCache().get("reference_agent:build_adapter", endpoints_of(sc))
    found = probe(sc, adapter, seed=7, wall_s=30.0)
    return [v for v in expand(sc, found) if v.kind == "crash"]


@pytest.fixture(scope="module")
def crash_cells() -> list[Variant]:
    return _crash_cells()


def test_the_fresh_instance_a_crashed_run_resumes_in_is_closed_inside_the_world(
    crash_cells: list[Variant], monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.world.intercept import active_interceptor
    from reference_agent.adapter import RefundDeskAdapter

    closed: list[tuple[int, bool]] = []
    real_close = RefundDeskAdapter.close

    def close(self: RefundDeskAdapter) -> None:
        closed.append((id(self), active_interceptor() is not None))
        real_close(self)

    monkeypatch.setattr(RefundDeskAdapter, "close", close)
    cache = AdapterCache()
    cached = cache.get("reference_agent:build_adapter", endpoints_of(crash_cells[0].scenario))
    restarts = 0
    held = []
    for cell in crash_cells:
        record = run_variant(cell, cached, seed=7, wall_s=30.0)
        restarts += record.restarts
        held.append(_open_databases())
    assert restarts > 0, "the crash cells crashed nothing: this test would prove nothing"
    # every fresh instance closed once, while the world still intercepted; never the cached one
    assert len(closed) == restarts
    assert all(inside for _, inside in closed)
    assert id(cached) not in {who for who, _ in closed}
    # and none of them leaves its database open: what the process holds does not grow per cell
    assert len(crash_cells) > 3
    assert held == [held[0]] * len(held), held


def test_an_agent_without_close_or_with_a_failing_one_runs_as_before(
    crash_cells: list[Variant], monkeypatch: pytest.MonkeyPatch
) -> None:
    from reference_agent.adapter import RefundDeskAdapter

    cache = AdapterCache()
    cached = cache.get("reference_agent:build_adapter", endpoints_of(crash_cells[0].scenario))
    cell = crash_cells[0]
    verdicts = []
    monkeypatch.delattr(RefundDeskAdapter, "close")
    verdicts.append(run_variant(cell, cached, seed=7, wall_s=30.0).final)

    def broken(self: RefundDeskAdapter) -> None:
        raise RuntimeError("the agent's own close failed")

    monkeypatch.setattr(RefundDeskAdapter, "close", broken, raising=False)
    verdicts.append(run_variant(cell, cached, seed=7, wall_s=30.0).final)
    assert verdicts[0] is not None
    assert verdicts[1] is not None
    assert verdicts[0].state == verdicts[1].state


def test_a_hanging_close_is_abandoned_at_its_deadline(
    crash_cells: list[Variant], monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from harness.run import runner
    from reference_agent.adapter import RefundDeskAdapter

    release = threading.Event()
    entered = threading.Event()

    def hang(self: RefundDeskAdapter) -> None:
        entered.set()
        release.wait(30)

    monkeypatch.setattr(runner, "CLOSE_DEADLINE_S", 0.2)
    monkeypatch.setattr(RefundDeskAdapter, "close", hang)
    cache = AdapterCache()
    cached = cache.get("reference_agent:build_adapter", endpoints_of(crash_cells[0].scenario))
    try:
        record = run_variant(crash_cells[0], cached, seed=7, wall_s=30.0)
        # the close really ran and was still hanging when the run came back
        assert entered.is_set()
        assert not release.is_set()
    finally:
        release.set()
    assert record.restarts > 0
    assert record.final is not None
