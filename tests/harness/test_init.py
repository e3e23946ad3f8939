"""shakeout init: what it writes runs (tool-loop, reference), and nothing is ever clobbered."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.doctor import doctor_main
from harness.init import ADAPTER_FILE, INI_KEYS, SCENARIO_FILE, WORKFLOW_FILE, init_main
from harness.loader import load_scenario

WRITTEN = (ADAPTER_FILE, SCENARIO_FILE, "scenarios/schema.json", WORKFLOW_FILE, "pytest.ini")


def init(folder: Path, framework: str) -> tuple[int, str]:
    out = io.StringIO()
    return init_main(str(folder), framework=framework, stream=out), out.getvalue()


def test_tool_loop_writes_a_project_whose_scenario_passes_under_pytest(
    pytester: pytest.Pytester,
) -> None:
    code, out = init(pytester.path, "tool-loop")
    assert code == 0, out
    for name in WRITTEN:
        assert (pytester.path / name).is_file(), name
        assert f"wrote {pytester.path / name}" in out
    assert "next: shakeout doctor" in out
    load_scenario(pytester.path / SCENARIO_FILE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_tool_loop_and_reference_keep_the_contract_under_doctor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    monkeypatch.delitem(__import__("sys").modules, "shakeout_agent", raising=False)
    for framework in ("tool-loop", "reference"):
        folder = tmp_path / framework
        assert init(folder, framework)[0] == 0
        monkeypatch.chdir(folder)
        monkeypatch.delitem(__import__("sys").modules, "shakeout_agent", raising=False)
        out = io.StringIO()
        assert doctor_main(None, agent=None, seed=None, stream=out) == 0, out.getvalue()
        assert "the adapter keeps the contract on this scenario" in out.getvalue()


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
        ("pydantic-ai", "pydantic_ai"),
        ("openai-agents", "openai_agents"),
        ("langgraph", "langgraph"),
    ],
)
def test_a_ready_adapter_template_imports_its_shakeout_adapters_module(
    tmp_path: Path, framework: str, module: str
) -> None:
    assert main(["init", str(tmp_path), "--framework", framework]) == 0
    tree = ast.parse((tmp_path / ADAPTER_FILE).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert f"shakeout_adapters.{module}" in imported
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
