from __future__ import annotations

import subprocess
import sys

import pytest

import faults
from faults.base import registry


def test_every_registered_fault_is_exported_under_its_class_name() -> None:
    for cls in registry().values():
        if cls.__module__.startswith("faults."):
            assert getattr(faults, cls.__name__) is cls
            assert cls.__name__ in faults.__all__


def test_all_names_exist_and_are_unique() -> None:
    assert all(hasattr(faults, name) for name in faults.__all__)
    assert len(set(faults.__all__)) == len(faults.__all__)


def test_public_entry_points_are_exported() -> None:
    for name in ("registry", "catalogue", "faults_main", "INPUT_STRATEGIES", "edge_case_inputs"):
        assert name in faults.__all__


def test_the_input_strategies_are_the_inputs_modules_own() -> None:
    from faults import inputs

    assert faults.INPUT_STRATEGIES is inputs.INPUT_STRATEGIES
    assert faults.edge_case_inputs is inputs.edge_case_inputs
    with pytest.raises(AttributeError, match="no attribute 'NoSuchFault'"):
        _ = faults.NoSuchFault


def test_running_scenarios_does_not_import_hypothesis() -> None:
    # Importing Hypothesis costs every pytest process (each xdist worker) a share of its
    # start-up; only an input item's search needs it.
    code = (
        "import sys\n"
        "import faults, harness.plugin, harness.plugin.collect, harness.run.runner\n"
        "import harness.plugin.session\n"
        "from faults import INPUT_STRATEGIES\n"  # still there, imported on first use...
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'hypothesis'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() != "[]"  # ...which imports Hypothesis: the probe itself works
    lazy = code.replace("from faults import INPUT_STRATEGIES\n", "")
    done = subprocess.run(
        [sys.executable, "-c", lazy], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
