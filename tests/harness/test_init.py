"""shakeout init: every starter it writes keeps the contract and passes, nothing is clobbered."""

from __future__ import annotations

import ast
import importlib
import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cli import main
from harness.cli.init import ADAPTER_FILE, INI_KEYS, SCENARIO_FILE, WORKFLOW_FILE, init_main
from harness.scenario.loader import load_scenario

WRITTEN = (ADAPTER_FILE, SCENARIO_FILE, "scenarios/schema.json", WORKFLOW_FILE, "pytest.ini")


def init(folder: Path, framework: str) -> tuple[int, str]:
    out = io.StringIO()
    return init_main(str(folder), framework=framework, stream=out), out.getvalue()


FRAMEWORKS = ("tool-loop", "pydantic-ai", "openai-agents", "langgraph", "reference")


def run_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A command in a fresh interpreter, in the generated folder, as a new user runs it."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_starter_keeps_the_contract_under_doctor_and_its_scenario_passes(
    tmp_path: Path, framework: str
) -> None:
    code, out = init(tmp_path, framework)
    assert code == 0, out
    for name in WRITTEN:
        assert (tmp_path / name).is_file(), name
        assert f"wrote {tmp_path / name}" in out
    assert "note:" not in out  # the framework is installed here
    assert out.endswith(
        "next: shakeout doctor  (one fault-free run, then the contract point by "
        "point), then python -m pytest\n"
    )
    load_scenario(tmp_path / SCENARIO_FILE)
    doctor = run_in(tmp_path, "-m", "harness.cli", "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "the adapter keeps the contract on this scenario" in doctor.stdout
    assert "FAIL" not in doctor.stdout
    tests = run_in(tmp_path, "-m", "pytest", "-p", "no:cacheprovider")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert re.search(r"^=+ 1 passed in ", tests.stdout, re.M), tests.stdout


def test_a_starter_whose_refund_skips_the_approval_fails_doctor_and_its_scenario(
    tmp_path: Path,
) -> None:
    # the same harness that passes the starters above catches a starter broken on purpose
    assert init(tmp_path, "tool-loop")[0] == 0
    agent = tmp_path / ADAPTER_FILE
    text = agent.read_text()
    assert text.count("gated=True") == 1
    agent.write_text(text.replace("gated=True", "gated=False"))
    doctor = run_in(tmp_path, "-m", "harness.cli", "doctor")
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert re.search(r"^  FAIL  approvals: ", doctor.stdout, re.M), doctor.stdout
    tests = run_in(tmp_path, "-m", "pytest", "-p", "no:cacheprovider")
    assert tests.returncode == 1, tests.stdout + tests.stderr
    assert re.search(r"^=+ 1 failed in ", tests.stdout, re.M), tests.stdout
    assert "unapproved_effects" in tests.stdout


def test_a_missing_framework_is_named_with_the_extra_that_installs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.import_module

    def without_langgraph(name: str, package: str | None = None) -> Any:
        if name == "shakeout_adapters.langgraph":
            raise ModuleNotFoundError("No module named 'langgraph'")
        return real(name, package)

    monkeypatch.setattr("harness.cli.init.importlib.import_module", without_langgraph)
    code, out = init(tmp_path, "langgraph")
    assert code == 0
    assert (
        f"note: {ADAPTER_FILE} cannot be imported here yet: No module named 'langgraph'; "
        "install it with: pip install 'shakeout[langgraph]'\n"
    ) in out
    assert init(tmp_path / "other", "pydantic-ai")[1].count("note:") == 0


def test_an_existing_file_refuses_everything_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / ADAPTER_FILE).write_text("# mine\n")
    code, out = init(tmp_path, "tool-loop")
    assert code == 2
    assert out == (
        f"shakeout init: refused, nothing written: {ADAPTER_FILE} already exist(s) in "
        f"{tmp_path}; move them away or run init in another folder\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [ADAPTER_FILE]
    assert (tmp_path / ADAPTER_FILE).read_text() == "# mine\n"


def test_an_existing_pytest_configuration_is_left_alone_and_the_keys_printed(
    tmp_path: Path,
) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.pytest.ini_options]\naddopts = "-ra"\n')
    code, out = init(tmp_path, "tool-loop")
    assert code == 0
    assert not (tmp_path / "pytest.ini").exists()
    assert pyproject.read_text() == '[tool.pytest.ini_options]\naddopts = "-ra"\n'
    assert f"{pyproject} already configures pytest; add these keys to it" in out
    for key, value in INI_KEYS.items():
        assert f"  {key} = {value}\n" in out


@pytest.mark.parametrize(
    ("framework", "module"),
    [
        ("tool-loop", "tool_loop"),
        ("pydantic-ai", "pydantic_ai"),
        ("openai-agents", "openai_agents"),
        ("langgraph", "langgraph"),
    ],
)
def test_a_starter_imports_only_public_names_of_its_ready_adapter(
    tmp_path: Path, framework: str, module: str
) -> None:
    assert main(["init", str(tmp_path), "--framework", framework]) == 0
    tree = ast.parse((tmp_path / ADAPTER_FILE).read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    used = {n.module: {a.name for a in n.names} for n in imports if n.module}
    assert f"shakeout_adapters.{module}" in used
    for name, names in used.items():
        if name.startswith("shakeout_adapters."):
            public = set(importlib.import_module(name).__all__)
            assert names <= public, f"{name} does not export {sorted(names - public)}"
    assert any(isinstance(n, ast.FunctionDef) and n.name == "build_adapter" for n in tree.body)


def test_the_workflow_shards_merges_gates_and_writes_the_step_summary(tmp_path: Path) -> None:
    assert init(tmp_path, "tool-loop")[0] == 0
    workflow = yaml.safe_load((tmp_path / WORKFLOW_FILE).read_text())
    shard, gate = workflow["jobs"]["shard"], workflow["jobs"]["gate"]
    assert shard["strategy"]["matrix"]["shard"] == [1, 2]
    runs = " ".join(step.get("run", "") for step in shard["steps"])
    assert "-n 2 --chaos-shard=${{ matrix.shard }}/2" in runs
    gates = [step.get("run", "") for step in gate["steps"]]
    assert "shakeout merge shard-1.json shard-2.json -o shakeout.json" in gates
    assert any(g.startswith("shakeout gate shakeout.json --session ") for g in gates)
    assert any("GITHUB_STEP_SUMMARY" in g for g in gates)
    assert 'pip install "shakeout" pytest-xdist' in runs


@pytest.mark.parametrize(
    ("framework", "install"),
    [("langgraph", "shakeout[langgraph]"), ("pydantic-ai", "shakeout[pydantic-ai]")],
)
def test_the_workflow_installs_the_framework_extra(
    tmp_path: Path, framework: str, install: str
) -> None:
    assert init(tmp_path, framework)[0] == 0
    workflow = yaml.safe_load((tmp_path / WORKFLOW_FILE).read_text())
    runs = [step.get("run", "") for step in workflow["jobs"]["shard"]["steps"]]
    assert f'pip install "{install}" pytest-xdist' in runs
