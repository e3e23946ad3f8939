"""The refund_happy scenario and the reference agent, loaded once and run through the harness."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from harness.adapter import AgentAdapter
from harness.plugin.session import RunResult, judge
from harness.run.runner import endpoints_of, run_variant
from harness.scenario.loader import load_scenario
from harness.scenario.matrix import base_variant
from harness.scenario.spec import Scenario
from harness.scenario.variant import Variant
from reference_agent import build_adapter

REPO = Path(__file__).resolve().parent.parent
SCENARIO_PATH = REPO / "scenarios" / "refund_happy.yaml"
SEED = 20261124
WALL_S = 30.0


@cache
def scenario() -> Scenario:
    """refund_happy, loaded once."""
    return load_scenario(SCENARIO_PATH)


@cache
def adapter() -> AgentAdapter:
    """The reference agent's adapter for refund_happy's endpoints, built once (as per worker)."""
    return build_adapter(endpoints_of(scenario()))


def base() -> Variant:
    """refund_happy's base variant."""
    return base_variant(scenario())


def run_and_judge(
    variant: Variant, agent: AgentAdapter | None = None, config: Mapping[str, Any] | None = None
) -> RunResult:
    """What one scenario item does: run the variant in a fresh world and evaluate every check.

    Raises:
        RuntimeError: the run did not pass, so a timing of it would measure something else.
    """
    record = run_variant(variant, agent or adapter(), seed=SEED, wall_s=WALL_S, config=config)
    result = judge(variant, record, "python -m benchmarks")
    if result.verdict != "pass":
        raise RuntimeError(f"benchmark run did not pass:\n{result.explain()}")
    return result
