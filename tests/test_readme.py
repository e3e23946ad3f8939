"""The README shows what really works: its scenario example validates, its commands exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from harness.scenario.spec import Scenario

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_the_scenario_example_is_a_valid_scenario() -> None:
    block = re.search(r"```yaml\n(.*?)```", README, re.S)
    assert block is not None
    scenario = Scenario.model_validate(yaml.safe_load(block.group(1)))
    assert scenario.name == "refund_happy"
    assert scenario.tools.services["issue_refund"].gated


def test_the_quickstart_has_exactly_the_two_commands_and_they_exist() -> None:
    quick = README.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [ln.split("#")[0].strip() for ln in quick.strip().splitlines()]
    assert commands == ["bash scripts/suite.sh", "bash scripts/test.sh"]
    for command in commands:
        assert (ROOT / command.split()[1]).is_file()
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_every_shakeout_subcommand_is_shown_and_every_one_shown_runs() -> None:
    from harness.cli import _parser

    blocks = "\n".join(re.findall(r"```bash\n(.*?)```", README, re.S))
    shown = set(re.findall(r"^shakeout ([\w-]+)", blocks, re.M))
    actions = [a for a in _parser()._actions if a.dest == "command"]
    commands = set(actions[0].choices or ())
    assert shown == commands
    for command in sorted(shown):
        done = subprocess.run(
            [sys.executable, "-m", "harness.cli", command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
