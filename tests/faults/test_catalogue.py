from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from faults.base import Category, FaultDefinitionError, Surface, registry
from faults.catalogue import catalogue, families, faults_main
from faults.injection import FAMILIES
from faults.inputs import INPUT_STRATEGIES
from faults.surfaces import ToolCallContext, ToolFault, ToolResult, TransportError, TransportFailure

ROW_KEYS = {
    "key",
    "surface",
    "category",
    "transient",
    "expected_state",
    "outcomes",
    "summary",
    "parameters",
}


def test_at_least_45_faults_with_unique_keys() -> None:
    rows = catalogue()
    keys = [r["key"] for r in rows]
    assert len(keys) >= 45
    assert len(set(keys)) == len(keys)
    assert set(keys) == set(registry())


@pytest.mark.parametrize("key", sorted(registry()))
def test_every_fault_is_fully_declared(key: str) -> None:
    cls = registry()[key]
    assert cls.key == key
    assert key.split("_", 1)[0] == cls.surface.value, "keys start with their surface"
    summary = cls.summary()
    assert summary.endswith("."), f"{key} needs a one-line docstring sentence"
    assert "\n" not in summary
    assert cls.category is None or isinstance(cls.category, Category)
    assert isinstance(cls.transient, bool)
    cls()  # every parameter has a default, so a scenario can name the key alone


def test_every_surface_but_input_and_injection_is_covered() -> None:
    # input and injection are families of payloads (listed by families()), not faults
    surfaces = {r["surface"] for r in catalogue()}
    assert surfaces == {s.value for s in Surface} - {"input", "injection"}
    assert {r["surface"] for r in families()} == {"input", "injection"}


def test_rows_are_json_and_ordered() -> None:
    rows = catalogue()
    assert json.loads(json.dumps(rows)) == rows
    assert rows == sorted(rows, key=lambda r: (r["surface"], r["key"]))
    assert all(set(r) == ROW_KEYS for r in rows)
    by_key = {r["key"]: r for r in rows}
    assert by_key["tool_http_503"] == {
        "key": "tool_http_503",
        "surface": "tool",
        "category": "tool",
        "transient": True,
        "expected_state": None,
        "outcomes": ["recover"],
        "summary": "The tool answers 503 Service Unavailable.",
        "parameters": {},
    }
    assert by_key["crash_after_effect"]["parameters"] == {"mode": "in_process"}
    assert by_key["approval_deny"]["expected_state"] == "rejected"
    assert by_key["approval_deny"]["outcomes"] == ["reject"]
    assert by_key["tool_http_503"]["outcomes"] == ["recover"]
    assert by_key["tool_http_404"]["outcomes"] == ["fail"]


def test_faults_main_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert faults_main(as_json=True) == 0
    assert json.loads(capsys.readouterr().out) == [*catalogue(), *families()]


def test_faults_main_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert faults_main(as_json=False) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["key", "surface", "accepts", "parameters", "summary"]
    latency = next(line for line in lines if line.startswith("tool_latency "))
    assert latency.split()[2] == "recover"
    not_found = next(line for line in lines if line.startswith("tool_http_404 "))
    assert not_found.split()[2] == "fail:tool"
    assert any(
        line.startswith("accepts: how a run may end once the fault fires.") for line in lines
    )
    assert "seconds=5.0" in latency
    assert any(line.startswith(f"{len(registry())} faults;") for line in lines)
    assert "injection families (matrix.surfaces: [injection])" in lines
    assert any(line.split()[:1] == ["approval_spoofing"] and "payloads" in line for line in lines)
    assert any(line.split()[:1] == ["very_long"] for line in lines)


def test_families_list_the_input_and_injection_families() -> None:
    rows = families()
    assert {r["key"] for r in rows if r["surface"] == "input"} == set(INPUT_STRATEGIES)
    injection = [r for r in rows if r["surface"] == "injection"]
    assert [r["key"] for r in injection] == list(FAMILIES)
    assert sum(r["parameters"]["payloads"] for r in injection) >= 100


@pytest.mark.usefixtures("scratch_registry")
def test_a_user_subclass_registers_itself_and_is_listed() -> None:
    @dataclass(frozen=True)
    class TeapotFault(ToolFault):
        """The tool answers that it is a teapot."""

        key = "user_teapot"
        category = Category.TOOL
        transient = False
        shade: str = "green"

        def apply(self, ctx: ToolCallContext) -> ToolResult:
            return TransportError(TransportFailure.CONNECT_ERROR)

    assert registry()["user_teapot"] is TeapotFault
    row = next(r for r in catalogue() if r["key"] == "user_teapot")
    assert row["parameters"] == {"shade": "green"}
    assert row["summary"] == "The tool answers that it is a teapot."


@pytest.mark.usefixtures("scratch_registry")
def test_a_duplicate_key_is_refused_naming_the_owner() -> None:
    with pytest.raises(FaultDefinitionError, match=r"'tool_http_503'.*faults\.tool\.ToolHttp503"):

        class Again(ToolFault):
            key = "tool_http_503"
            category = Category.TOOL
            transient = True

    assert registry()["tool_http_503"].__module__ == "faults.tool"


@pytest.mark.usefixtures("scratch_registry")
def test_a_fault_without_transient_is_refused() -> None:
    with pytest.raises(FaultDefinitionError, match="'transient'"):

        class Vague(ToolFault):
            key = "user_vague"
            category = Category.TOOL


def test_registry_is_read_only() -> None:
    reg: Any = registry()
    with pytest.raises(TypeError):
        reg["x"] = ToolFault
