"""scripts/suite.sh, the main job: it never gates a stale report or a run pytest did not finish.

Each case runs the real script in a scratch project: its ``env.sh`` is replaced by one that puts
this interpreter's environment on PATH (instead of creating a virtual environment), and the
project's conftest decides how pytest behaves. A stale, passing report from an earlier run sits
at the report path each time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.report.model import Report

ROOT = Path(__file__).resolve().parents[1]
QUIET_PLUGINS = ("-p", "no:respx", "-p", "no:httpx2", "-p", "no:anyio", "-p", "no:cov")

ENV_SH = f"""set -euo pipefail
export PATH="{Path(sys.executable).parent}:$PATH"
cd "$(dirname "${{BASH_SOURCE[0]}}")/.."
"""

# Items from .yaml files under scenarios/ that each append a passing shakeout entry.
PASSING_ITEMS = """
import pytest


class File(pytest.File):
    def collect(self):
        for n in range(3):
            yield Item.from_parent(self, name=f"t{n}")


class Item(pytest.Item):
    def runtest(self):
        self.user_properties.append(("shakeout", {
            "nodeid": self.nodeid, "scenario": "s", "verdict": "pass",
            "checks": [{"name": "terminal_state", "passed": True, "reason": ""}],
        }))


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".yaml":
        return File.from_parent(parent, path=file_path)
"""


def stale_passing_report() -> str:
    checks = [{"name": "terminal_state", "passed": True, "reason": ""}]
    items = [
        {"nodeid": "scenarios/s.yaml::old", "scenario": "s", "verdict": "pass", "checks": checks}
    ]
    return Report.build(items, seed=1).to_json()


def run_suite(
    tmp_path: Path, conftest: str, files: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "suite.sh", tmp_path / "scripts" / "suite.sh")
    (tmp_path / "scripts" / "env.sh").write_text(ENV_SH)
    (tmp_path / "pytest.ini").write_text("[pytest]\nchaos_scenarios = none/*\n")
    (tmp_path / "conftest.py").write_text(conftest)
    (tmp_path / "scenarios").mkdir()
    for name, text in files.items():
        (tmp_path / "scenarios" / name).write_text(text)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "shakeout.json").write_text(stale_passing_report())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GITHUB_"))}
    return subprocess.run(
        # -n 0 after the script's -n 2: xdist start-up would dominate, and the logic under
        # test is the script's.
        ["bash", str(tmp_path / "scripts" / "suite.sh"), "-n", "0", *QUIET_PLUGINS],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_a_crashed_pytest_exits_2_and_gates_nothing(tmp_path: Path) -> None:
    result = run_suite(tmp_path, "import os\nos._exit(139)\n", {"s.yaml": ""})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "PASS" not in result.stdout + result.stderr
    assert "pytest did not finish (exit 139" in result.stderr
    assert not (tmp_path / "reports" / "shakeout.json").exists(), "the stale report survived"


def test_a_run_without_items_is_refused_by_the_gate(tmp_path: Path) -> None:
    failing = "def test_plain():\n    assert False\n"
    result = run_suite(tmp_path, "", {"test_plain.py": failing})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "PASS" not in result.stdout + result.stderr
    assert "holds no items (0 planned): nothing was tested" in result.stderr


@pytest.mark.parametrize("fresh", [True, False], ids=["this-run", "stale"])
def test_only_this_run_s_report_is_gated(tmp_path: Path, fresh: bool) -> None:
    # A conftest that rewrites the report after the session stands for any way a file other
    # than this run's could end up at the path: the session id tells them apart.
    restore = (
        ""
        if fresh
        else (
            "\n\ndef pytest_unconfigure(config):\n"
            f"    open('reports/shakeout.json', 'w').write({stale_passing_report()!r})\n"
        )
    )
    result = run_suite(tmp_path, PASSING_ITEMS + restore, {"s.yaml": ""})
    if fresh:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "shakeout gate: PASS (2 rules, 3 items, reports/shakeout.json)" in result.stdout
    else:
        assert result.returncode == 2, result.stdout + result.stderr
        assert "PASS" not in result.stdout
        assert "not by the session just run" in result.stderr
