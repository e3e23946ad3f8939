"""The scenario library's files as test data: loaded once, reshaped per test."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from harness.scenario.spec import Scenario

ROOT = Path(__file__).resolve().parents[2]
SEED = 20261124


def scenario_data(name: str) -> dict[str, Any]:
    """A library scenario file's data (``scenarios/NAME.yaml``)."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "scenarios" / f"{name}.yaml").read_text())
    return data


def without_matrices(data: Mapping[str, Any], **changes: Any) -> Scenario:
    """A scenario from file data without its matrices, with top-level ``changes``."""
    drop = ("matrix", "input_matrix", "crash_matrix")
    return Scenario.model_validate({**{k: v for k, v in data.items() if k not in drop}, **changes})
