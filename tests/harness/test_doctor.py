"""shakeout doctor: the reference agent is clean; each broken mini agent gets its problem named."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cli import main
from harness.cli.doctor import doctor_main

ROOT = Path(__file__).resolve().parents[2]
HAPPY_FILE = ROOT / "scenarios" / "refund_happy.yaml"
MINI = "toy_agents.mini:build_adapter"


def mini_scenario(tmp_path: Path, *defects: str) -> Path:
    data: dict[str, Any] = yaml.safe_load(HAPPY_FILE.read_text())
    data["agent_config"] = {"defects": list(defects)}
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def doctor(path: Path, agent: str) -> tuple[int, str]:
    out = io.StringIO()
    code = doctor_main(str(path), agent=agent, seed=7, stream=out)
    return code, out.getvalue()


def test_the_reference_agent_keeps_the_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", str(HAPPY_FILE), "--agent", "reference_agent:build_adapter"]) == 0
    out = capsys.readouterr().out
    for name in (
        "fault-free run",
        "idempotency keys",
        "approvals",
        "crash boundaries",
        "state on disk",
        "approval expiry",
    ):
        assert f"  ok    {name}: " in out, name
    assert out.rstrip().endswith("the adapter keeps the contract on this scenario")


def test_the_mini_agent_without_defects_keeps_it(tmp_path: Path) -> None:
    code, out = doctor(mini_scenario(tmp_path), MINI)
    assert code == 0, out
    assert "FAIL" not in out


@pytest.mark.parametrize(
    ("defect", "problem", "words"),
    [
        (
            "no_idempotency_key",
            "idempotency keys",
            "effect request(s) to close_ticket, issue_refund, send_email carried no "
            "Idempotency-Key header",
        ),
        (
            "empty_approval_args",
            "approvals",
            "must equal the JSON body of the gated request key by key",
        ),
        (
            "no_boundaries",
            "crash boundaries",
            "no boundaries announced: world.boundary(point, step) was never called",
        ),
        (
            "memory_resume",
            "state on disk",
            "the harness crashed the run while the run was parked for approval, built a fresh "
            "adapter with the factory and called begin(world) over the same state_dir",
        ),
        (
            "never_expires",
            "approval expiry",
            "the reviewer never decided: the harness moved the clock past expires_at and called "
            "resume(run_id, None); the run must end 'expired'",
        ),
        (
            "unknown_state",
            "fault-free run",
            "the agent reported state 'done', which is not one of: completed",
        ),
    ],
)
def test_each_broken_contract_point_is_named(
    tmp_path: Path, defect: str, problem: str, words: str
) -> None:
    code, out = doctor(mini_scenario(tmp_path, defect), MINI)
    assert code == 1, out
    line = next((ln for ln in out.splitlines() if ln.startswith(f"  FAIL  {problem}: ")), None)
    assert line is not None, out
    assert words in line
    broken = [ln for ln in out.splitlines() if ln.startswith("  FAIL  ")]
    if defect == "empty_approval_args":
        # the same defect also leaves the reviewer's summary without the amount: said apart
        (other,) = [ln for ln in broken if ln != line]
        assert other.startswith("  FAIL  fault-free run: ")
        assert "approval_summary" in other
        return
    assert len(broken) == 1, out  # the one defect, nothing else blamed
    assert f"1 problem(s): {problem}." in out


def test_without_an_agent_or_scenario_it_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    out = io.StringIO()
    assert doctor_main(None, agent=None, seed=None, stream=out) == 2
    assert "no scenario file under" in out.getvalue()
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "a.yaml").write_text(HAPPY_FILE.read_text())
    out = io.StringIO()
    assert doctor_main(None, agent=None, seed=None, stream=out) == 2
    assert "no agent to check: pass --agent module:callable" in out.getvalue()


def test_an_agent_that_cannot_be_imported_is_one_line(tmp_path: Path) -> None:
    code, out = doctor(HAPPY_FILE, "no_such_agent_module:build")
    assert code == 1
    assert "  FAIL  adapter: " in out
    assert "no_such_agent_module" in out
