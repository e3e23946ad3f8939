"""``shakeout init``: a starter adapter, one scenario, the pytest ini keys and a CI workflow.

Nothing that exists is overwritten: a folder that already holds any file ``init`` would write is
refused before anything is written, with the list. The pytest keys go into a new ``pytest.ini``
when the folder has no pytest configuration; otherwise they are printed for you to add.
"""

from __future__ import annotations

import importlib
import json
import sys
from importlib import resources
from pathlib import Path
from typing import TextIO

from harness.project import ProjectConfigError, find_project

ADAPTER_FILE = "shakeout_agent.py"
SCENARIO_FILE = "scenarios/first.yaml"
SCHEMA_FILE = "scenarios/schema.json"
WORKFLOW_FILE = ".github/workflows/shakeout.yml"

# framework -> (the template's file stem, the optional extra that installs the framework)
FRAMEWORKS: dict[str, tuple[str, str | None]] = {
    "tool-loop": ("tool_loop", None),
    "pydantic-ai": ("pydantic_ai", "pydantic-ai"),
    "openai-agents": ("openai_agents", "openai-agents"),
    "langgraph": ("langgraph", "langgraph"),
}

INI_KEYS = {
    "pythonpath": ".",
    "chaos_agent": "shakeout_agent:build_adapter",
    "chaos_seed": "20261127",
    "filterwarnings": "error",
}

WORKFLOW = """\
# shakeout in CI (from `shakeout init`): the scenario suite in shards, merged, gated.
name: shakeout
on: [push, pull_request]
jobs:
  shard:
    runs-on: ubuntu-latest
    strategy:
      matrix: {shard: [1, 2]}
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with: {python-version: "3.11"}
      # shakeout with your framework's extra; add your agent's own dependencies here
      # (e.g. pip install -e . or -r requirements.txt)
      - run: pip install "SHAKEOUT" pytest-xdist
      # one session id for every shard of this run, so the gate tells it from a stale report
      - run: >-
          python -m pytest scenarios -n 2 --chaos-shard=${{ matrix.shard }}/2
          --chaos-session-id=${{ github.run_id }}-${{ github.run_attempt }}
          --chaos-report=shard-${{ matrix.shard }}.json
        continue-on-error: true  # the gate below decides
      - uses: actions/upload-artifact@v4
        with: {name: "shard-${{ matrix.shard }}", path: "shard-${{ matrix.shard }}.json"}
  gate:
    needs: shard
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with: {python-version: "3.11"}
      - run: pip install shakeout
      - uses: actions/download-artifact@v4
        with: {merge-multiple: true}
      - run: shakeout merge shard-1.json shard-2.json -o shakeout.json
      # exit 0 pass, 1 fail, 2 refused (a missing shard, an interrupted or stale session)
      - run: shakeout gate shakeout.json --session ${{ github.run_id }}-${{ github.run_attempt }}
      - if: always()
        run: |
          python - <<'PY' >> "$GITHUB_STEP_SUMMARY"
          from harness.report.markdown import render_markdown
          from harness.report.model import load_report
          print(render_markdown(load_report("shakeout.json")))
          PY
"""


def _template(name: str) -> str:
    return resources.files("harness.cli").joinpath("templates", name).read_text(encoding="utf-8")


def _adapter(framework: str) -> str:
    if framework == "reference":
        return (
            '"""The adapter shakeout drives: the reference agent, shakeout\'s refund desk (from\n'
            "`shakeout init --framework reference`). Read reference_agent/ in the shakeout\n"
            'repository as the example to copy; put your own agent\'s factory here."""\n\n'
            "from reference_agent import build_adapter\n\n"
            '__all__ = ["build_adapter"]\n'
        )
    return _template(f"{FRAMEWORKS[framework][0]}_agent.py.txt")


def _scenario(framework: str) -> str:
    if framework == "reference":
        return _template("reference_scenario.yaml.txt")
    return _template(f"{FRAMEWORKS[framework][0]}_scenario.yaml.txt")


def missing_framework(framework: str) -> str | None:
    """What to install when the framework's extra is missing from this environment, else None."""
    if framework == "reference":
        return None
    stem, extra = FRAMEWORKS[framework]
    try:
        importlib.import_module(f"shakeout_adapters.{stem}")
    except ImportError as exc:
        fix = "reinstall shakeout" if extra is None else f"pip install 'shakeout[{extra}]'"
        return f"{exc}; install it with: {fix}"
    return None


def _requirement(framework: str) -> str:
    extra = FRAMEWORKS[framework][1] if framework in FRAMEWORKS else None
    return "shakeout" if extra is None else f"shakeout[{extra}]"


def _ini() -> str:
    body = "".join(f"{k} = {v}\n" for k, v in INI_KEYS.items())
    return f"[pytest]\n# shakeout (from `shakeout init`)\n{body}"


def init_main(folder: str, *, framework: str, stream: TextIO | None = None) -> int:
    """``shakeout init``: 0 written, 2 refused (a file exists, or the folder is unusable).

    Args:
        folder: where to write (created if missing).
        framework: reference | tool-loop | pydantic-ai | openai-agents | langgraph.
        stream: where to print (default: stdout).
    """
    from harness.scenario.loader import scenario_schema

    out = stream or sys.stdout
    root = Path(folder)
    if root.exists() and not root.is_dir():
        out.write(f"shakeout init: {root} is not a directory; name a folder\n")
        return 2
    try:
        project = find_project([], cwd=root.resolve()) if root.exists() else None
    except ProjectConfigError as exc:
        out.write(f"shakeout init: {exc}\n")
        return 2
    has_ini = project is not None and project.inifile is not None and project.ini != {}
    files = {
        ADAPTER_FILE: _adapter(framework),
        SCENARIO_FILE: _scenario(framework),
        SCHEMA_FILE: json.dumps(scenario_schema(), indent=2) + "\n",
        WORKFLOW_FILE: WORKFLOW.replace("SHAKEOUT", _requirement(framework)),
    }
    if not has_ini:
        files["pytest.ini"] = _ini()
    taken = [name for name in files if (root / name).exists() or (root / name).is_symlink()]
    if taken:
        out.write(
            f"shakeout init: refused, nothing written: {', '.join(taken)} already exist(s) in "
            f"{root}; move them away or run init in another folder\n"
        )
        return 2
    try:
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as handle:  # never clobber, even in a race
                handle.write(text)
    except OSError as exc:
        out.write(f"shakeout init: cannot write into {root}: {exc}\n")
        return 2
    for name in files:
        out.write(f"wrote {root / name}\n")
    if has_ini:
        assert project is not None
        out.write(
            f"{project.inifile} already configures pytest; add these keys to it (paths are "
            f"relative to it, so point pythonpath at {root}):\n"
        )
        for key, value in INI_KEYS.items():
            out.write(f"  {key} = {value}\n")
    missing = missing_framework(framework)
    if missing is not None:
        out.write(f"note: {ADAPTER_FILE} cannot be imported here yet: {missing}\n")
    out.write(
        "next: shakeout doctor  (one fault-free run, then the contract point by point), then "
        "python -m pytest\n"
    )
    return 0
