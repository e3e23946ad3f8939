"""Two workers deliver one approval at once: the gated effect must be executed exactly once."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from faults.approval import ApprovalConcurrentDuplicate
from faults.base import registry
from faults.surfaces import ReviewAction, ReviewContext
from harness.adapter import Endpoints
from harness.plugin.session import RunResult, judge
from harness.run.runner import AdapterCache, endpoints_of, run_variant
from harness.scenario.expect import derive
from harness.scenario.loader import load_scenario
from harness.scenario.matrix import base_variant
from harness.scenario.spec import Scenario
from harness.scenario.variant import Variant

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios"
SEED = 20261124


@pytest.fixture(scope="module")
def happy() -> Scenario:
    return load_scenario(LIBRARY / "refund_happy.yaml")


def _concurrent_run(scenario: Scenario, factory: str) -> RunResult:
    fault = ApprovalConcurrentDuplicate()
    label = fault.label()
    variant = Variant(
        scenario, label, (*base_variant(scenario).faults, fault), derive(scenario, fault, label)
    )
    adapter = AdapterCache().get(factory, endpoints_of(scenario))
    record = run_variant(variant, adapter, seed=SEED, wall_s=30.0)
    return judge(variant, record, "test")


def test_the_fault_asks_for_a_concurrent_delivery_of_the_scripted_decision() -> None:
    assert registry()["approval_concurrent_duplicate"] is ApprovalConcurrentDuplicate
    scripted = ReviewAction("approve", delay_s=5.0)
    action = ApprovalConcurrentDuplicate().review(ReviewContext("issue_refund", {}, scripted, 1))
    assert action == ReviewAction("approve", delay_s=5.0, concurrent=True)
    assert ApprovalConcurrentDuplicate.transient  # expected: same as the fault-free run


def test_the_reference_agent_executes_the_gated_effect_once(happy: Scenario) -> None:
    result = _concurrent_run(happy, "reference_agent:build_adapter")
    record = result.record
    assert result.verdict == "pass", result.explain()
    assert record.committed_effects()["issue_refund"] == 1
    assert record.tool_calls()["issue_refund"] == 1
    assert [d.verdict for d in record.deliveries] == ["approve", "approve"]
    final = record.final
    assert final is not None
    assert final.state.value == "completed"
    # the second delivery was refused (which refusal depends on how far the first one got)
    assert any(o.error and o.error.startswith("refused") for o in record.outcomes)


# --------------------------------------------------------------------------- a racy agent


class RacyAgent:
    """Checks that the approval is unused, then acts: no atomic claim between the two.

    Both workers pass the check before either records the use (a barrier forces the
    interleaving), and each sends the refund with an idempotency key of its own attempt, so
    the ledger cannot dedupe them.
    """

    barrier = threading.Barrier(2)

    def __init__(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints
        self.state: Path | None = None

    def begin(self, world: Any) -> None:
        self.state = Path(world.state_dir) / "racy.json"

    def _load(self) -> dict[str, Any]:
        assert self.state is not None
        loaded: dict[str, Any] = json.loads(self.state.read_text())
        return loaded

    def _save(self, data: Mapping[str, Any]) -> None:
        assert self.state is not None
        self.state.write_text(json.dumps(data))

    def start(self, payload: Mapping[str, Any]) -> Any:
        approval = {
            "approval_id": "apr-1",
            "tool": "issue_refund",
            "arguments": {"order_id": "O-1001", "amount": 49.99},
            "summary": "refund 49.99 EUR for order O-1001 (arrived broken)",
            "expires_at": 1e12,
        }
        self._save({"state": "awaiting_approval", "approval": approval, "used": False})
        return self._outcome()

    def resume(self, run_id: str, decision: Any = None) -> Any:
        data = self._load()
        if data["used"] or decision is None:
            return self._outcome(error="refused: approval already used")
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait(timeout=5.0)  # both workers have checked; now both act
        with httpx.Client() as client:
            client.post(
                f"{self.endpoints.tools_base_url}/refunds",
                json=dict(decision.arguments),
                headers={"Idempotency-Key": f"refund-{uuid.uuid4()}"},
            )
        for tool, method, path in (
            ("send_email", "POST", "/emails"),
            ("close_ticket", "PATCH", "/tickets/T-1001"),
        ):
            with httpx.Client() as client:
                client.request(
                    method,
                    f"{self.endpoints.tools_base_url}{path}",
                    json={},
                    headers={"Idempotency-Key": f"{tool}-run-1"},
                )
        self._save({**data, "state": "completed", "used": True})
        return self._outcome()

    def _outcome(self, error: str | None = None) -> Any:
        data = self._load()
        approval = _Approval(**data["approval"])
        state = data["state"]
        return _Outcome(
            run_id="run-1",
            state=state,
            category=None,
            error=error,
            pending_approval=approval if state == "awaiting_approval" else None,
            approvals=(approval,),
        )

    def trace(self, run_id: str) -> None:
        return None


class _Approval:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


class _Outcome:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


def build_racy(endpoints: Endpoints) -> RacyAgent:
    """Factory of the racy agent (a fresh instance per call: the twin is a second worker)."""
    return RacyAgent(endpoints)


@pytest.fixture
def racy_scenario(happy: Scenario) -> Iterator[Scenario]:
    # the racy agent never asks the model; its script is the scenario's, unused
    yield happy.model_copy(update={"matrix": None})
    RacyAgent.barrier.reset()


def test_a_racy_agent_is_caught_executing_the_gated_effect_twice(
    racy_scenario: Scenario,
) -> None:
    result = _concurrent_run(racy_scenario, f"{__name__}:build_racy")
    record = result.record
    assert record.committed_effects()["issue_refund"] == 2
    assert result.verdict == "fail"
    failed = {v.name: v.reason for v in result.failures()}
    assert "expected_effects" in failed, result.explain()
    assert "issue_refund: expected 1, got 2" in failed["expected_effects"]
    assert "duplicate_effects" in failed, result.explain()
    assert "'issue_refund' was committed 2 times" in failed["duplicate_effects"]
    assert "issue_refund" in result.explain()


def test_without_a_twin_the_run_is_a_harness_error(happy: Scenario) -> None:
    from reference_agent import build_adapter

    fault = ApprovalConcurrentDuplicate()
    variant = Variant(happy, fault.label(), (fault,), base_variant(happy).expect)
    adapter = build_adapter(endpoints_of(happy))  # built by hand: no factory to build a twin
    try:
        record = run_variant(variant, adapter, seed=SEED, wall_s=30.0)
    finally:
        adapter.desk.close()
    assert record.harness_error is not None
    assert "second instance" in record.harness_error
