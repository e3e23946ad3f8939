"""The package surface: exports, settings/config errors, build_adapter, the demo command."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import reference_agent
from reference_agent import ConfigError, RefundDeskAdapter, RunOptions, build_adapter, errors


def test_all_is_complete_and_sorted() -> None:
    public = {
        name
        for name in dir(reference_agent)
        if not name.startswith("_")
        and getattr(getattr(reference_agent, name), "__module__", "").startswith("reference_agent")
    }
    assert public <= set(reference_agent.__all__)
    assert reference_agent.__all__ == sorted(reference_agent.__all__)


def test_every_run_error_declares_category_and_transience() -> None:
    classes = [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, errors.RunError) and c is not errors.RunError
    ]
    assert len(classes) >= 20
    for cls in classes:
        assert cls.category in ("model", "tool", "logic", "input"), cls
        doc = (cls.__doc__ or "").lower()
        exempt = cls in (errors.ModelError, errors.ToolError)
        assert exempt or "transient" in doc or "permanent" in doc, cls


def test_config_errors_name_the_key_and_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"trace_sample_rate.*Valid keys are: api,"):
        RunOptions.from_config({"trace_sample_rate": 2})


@dataclass(frozen=True)
class Endpoints:
    model_base_url: str = "http://model.test/v1"
    tools_base_url: str = "http://tools.test"
    api_key: str = "sk-x"
    model: str = "made-up-model"


def test_build_adapter_reads_endpoints_structurally(tmp_path: Path) -> None:
    adapter = build_adapter(Endpoints())
    assert isinstance(adapter, RefundDeskAdapter)
    assert adapter.desk.settings.model == "made-up-model"
    for method in ("begin", "start", "resume", "trace"):
        assert callable(getattr(adapter, method))
    adapter.desk.close()


def test_demo_runs_end_to_end() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reference_agent", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("terminal: completed")
    assert "tool   act       POST http://tools.demo/refunds -> 200" in done.stdout
