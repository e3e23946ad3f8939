"""The dependency rules of DESIGN.md, checked on every import statement of the packages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTEST_FACING = {"plugin.py", "collect.py", "report.py"}


def imported(path: Path) -> set[str]:
    """Top-level module names a file imports (anywhere in it, lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", files("reference_agent"), ids=lambda p: p.name)
def test_the_reference_agent_is_ordinary_application_code(path: Path) -> None:
    assert not imported(path) & {"harness", "faults", "pytest", "_pytest"}, path


@pytest.mark.parametrize("path", files("harness") + files("faults"), ids=lambda p: p.name)
def test_the_harness_and_faults_never_import_the_reference_agent(path: Path) -> None:
    assert "reference_agent" not in imported(path), path


@pytest.mark.parametrize("path", files("faults"), ids=lambda p: p.name)
def test_faults_never_import_the_harness(path: Path) -> None:
    assert not imported(path) & {"harness", "pytest"}, path


@pytest.mark.parametrize("path", files("harness"), ids=lambda p: p.name)
def test_only_the_pytest_facing_modules_import_pytest(path: Path) -> None:
    if path.name not in PYTEST_FACING:
        assert not imported(path) & {"pytest", "_pytest"}, path
