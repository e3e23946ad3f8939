"""Tests for harness.run.runner: loading agents, the adapter cache, run_variant and probe."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from toy_agents.mini import MiniAgent

from faults.tool import ToolHttp503
from harness.adapter import Endpoints
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
