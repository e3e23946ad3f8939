"""The ``shakeout`` command line dispatches to each feature and keeps its exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.cli import main
from harness.report.model import Report, SessionInfo

ROOT = Path(__file__).resolve().parents[2]


def test_validate_passes_the_library(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "scenarios" / "refund_happy.yaml")]) == 0
    assert "ok  " in capsys.readouterr().out


def test_validate_fails_a_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Bad Name\n")
    assert main(["validate", str(bad)]) == 1
    assert f"{bad}:1: field 'name'" in capsys.readouterr().out


def test_validate_reports_every_file_and_never_stops_at_a_hostile_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = (ROOT / "scenarios" / "refund_happy.yaml").read_text()
    hostile = {
        "a_int.yaml": "name: x\nseed: " + "9" * 5000 + "\n",
        "b_deep.yaml": "name: x\ninput: " + "[" * 600 + "]" * 600 + "\n",
        "c_tag.yaml": "name: !!int abc\n",
        "d_nul.yaml": "name: x\x00\n",
        "e_laughs.yaml": "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n"
            for p, c in zip("abcd", "bcde", strict=True)
        ),
        "f_loop.yaml": "input: &l [*l]\n",
        "g_inf.yaml": good.replace("wall_s: 10,", "wall_s: .inf,"),
    }
    for name, text in hostile.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "z_good.yaml").write_text(good)
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(hostile) + 1
    for line, name in zip(out[:-1], sorted(hostile), strict=True):
        assert re.match(rf"{re.escape(str(tmp_path / name))}:\d+(:\d+)?: .+\. Fix: ", line), line
    assert out[-1] == f"ok  {tmp_path / 'z_good.yaml'} (refund_happy)"
    # even a loader bug is reported as that file's problem, and the next file is still checked
    import harness.scenario.loader

    def broken(data: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(harness.scenario.loader.Scenario, "model_validate", broken)
    assert main(["validate", str(tmp_path / "z_good.yaml"), str(tmp_path / "a_int.yaml")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        f"{tmp_path / 'z_good.yaml'}:1: shakeout could not read this file (RuntimeError: 'boom'). "
        "Fix: this is a bug in shakeout, not in your file: please report it with the file attached"
    )
    assert out[1].startswith(f"{tmp_path / 'a_int.yaml'}:2: an integer of 5,000 characters")


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
