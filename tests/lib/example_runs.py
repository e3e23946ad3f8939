"""Run an example agent of examples/ through the shakeout plugin in a pytester project."""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CHECK = re.compile(r"^  check (\w+):", re.MULTILINE)
FAILED_ITEM = re.compile(r"^FAIL: scenario '([^']+)', variant '([^']+)'", re.MULTILINE)


@dataclass(frozen=True)
class ExampleRun:
    """What one pytest session over an example's scenarios reported."""

    result: pytest.RunResult
    output: str

    @property
    def failed_checks(self) -> set[str]:
        """The names of every check that failed in the session."""
        return set(CHECK.findall(self.output))

    @property
    def failed_items(self) -> list[tuple[str, str]]:
        """(scenario, variant) of every failing item."""
        return FAILED_ITEM.findall(self.output)


def run_example(
    pytester: pytest.Pytester,
    example: str,
    factory: str,
    *args: str,
    defects: Sequence[str] = (),
) -> ExampleRun:
    """Run ``examples/<example>``'s scenarios with ``factory`` as the ``chaos_agent``.

    With ``defects``, the factory is wrapped so the example's agent runs with those planted
    bugs (its ``build_*`` factories take ``defects=``); each scenario's own ``agent`` key is
    then dropped so the wrapped factory runs every scenario selected.
    """
    source = EXAMPLES / example
    shutil.copytree(source / "scenarios", pytester.path / "scenarios")
    agent = factory
    if defects:
        module, name = factory.split(":")
        pytester.makepyfile(
            planted=(
                f"from {module} import {name} as _build\n\n\n"
                "def build_adapter(endpoints):\n"
                f"    return _build(endpoints, defects={tuple(defects)!r})\n"
            )
        )
        agent = "planted:build_adapter"
        for path in (pytester.path / "scenarios").glob("*.yaml"):
            text = re.sub(r"^agent: .*\n", "", path.read_text(), flags=re.MULTILINE)
            path.write_text(text)
    pytester.makeini(
        "[pytest]\n"
        f"pythonpath = {source} .\n"
        f"chaos_agent = {agent}\n"
        "chaos_seed = 20261127\n"
        "filterwarnings = error\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    return ExampleRun(result, result.stdout.str())
