"""The ``shakeout`` command line dispatches to each feature and keeps its exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.report_model import Report, SessionInfo

ROOT = Path(__file__).resolve().parents[2]


def test_validate_passes_the_library(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "scenarios" / "refund_happy.yaml")]) == 0
    assert "ok  " in capsys.readouterr().out


def test_validate_fails_a_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Bad Name\n")
    assert main(["validate", str(bad)]) == 1
    assert f"{bad}:1: field 'name'" in capsys.readouterr().out


@pytest.mark.parametrize("which", ["scenario", "report"])
def test_schema_prints_a_json_schema(which: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", which]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["type"] == "object"
    assert "properties" in schema


def test_the_scenario_schema_printed_is_the_committed_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["schema", "scenario"])
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((ROOT / "scenarios" / "schema.json").read_text())


def test_faults_json_lists_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["faults", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) >= 45
    assert {"key", "surface", "category", "transient"} <= set(rows[0])


def test_gate_and_merge_report_unusable_input_as_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "missing.json")
    assert main(["gate", missing]) == 2
    assert main(["merge", missing, "-o", str(tmp_path / "out.json")]) == 2
    out = capsys.readouterr()
    assert "missing.json" in out.out + out.err


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["explode"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_gate_and_merge_errors_are_one_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gate", "/dev/zero"]) == 2
    assert main(["merge", "/dev/zero", "-o", str(tmp_path / "m.json")]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.splitlines() == [
        "shakeout gate: ERROR report /dev/zero is a character device, not a regular file; give "
        "the file's path; rerun pytest with --chaos-report=PATH to write it again",
        "shakeout merge: ERROR report /dev/zero is a character device, not a regular file; give "
        "the file's path; rerun pytest with --chaos-report=PATH to write it again",
    ]


def test_gate_session_refuses_another_session_s_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checks = [{"name": "terminal_state", "passed": True, "reason": ""}]
    items = [{"nodeid": "s.yaml::a", "scenario": "s", "verdict": "pass", "checks": checks}]
    path = str(Report.build(items, seed=1, session=SessionInfo.new("mine")).write(tmp_path / "r"))
    (tmp_path / "pyproject.toml").write_text("[tool.shakeout.gate]\nmax_failures = 0\n")
    assert (
        main(["gate", path, "--session", "mine", "--policy", str(tmp_path / "pyproject.toml")]) == 0
    )
    assert main(["gate", path, "--session", "theirs"]) == 2
    assert "not by the session just run ('theirs')" in capsys.readouterr().err


def test_schema_report_prints_version_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "report"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["properties"]["schema_version"]["const"] == "2"
