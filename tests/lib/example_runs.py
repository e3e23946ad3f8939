"""Run an example agent of examples/ through the shakeout plugin in a pytester project.

One session runs the example's own scenarios (with their fault and crash matrices) and, beside
them, planted-bug copies of some of its scenarios, so the framework is imported once per
example rather than once per bug.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from example_session import Session, Variant, derive

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@dataclass(frozen=True)
class Planted:
    """A copy of one of the example's scenarios, named ``name``, run by ``factory`` built with
    the planted ``defects`` (the examples' ``build_*`` factories take ``defects=``); its
    matrices are dropped, so it is one item."""

    name: str
    scenario: str
    factory: str
    defects: Sequence[str]


@dataclass(frozen=True)
class ExampleRun:
    """What one pytest session over an example's scenarios reported."""

    result: pytest.RunResult
    output: str
    items: Mapping[str, Mapping[str, Any]]

    def of(self, scenario: str) -> list[Mapping[str, Any]]:
        """The report items of one scenario."""
        return [i for i in self.items.values() if i["scenario"] == scenario]

    def failing(self, *, but: Sequence[str] = ()) -> dict[str, list[str]]:
        """nodeid -> failed checks of every item that did not pass, leaving out the scenarios
        named in ``but``."""
        return {
            nodeid: sorted(Session.failed_checks(item))
            for nodeid, item in self.items.items()
            if item["verdict"] != "pass" and item["scenario"] not in but
        }

    def failed_checks(self, scenario: str) -> set[str]:
        """The checks that failed on the one item of a planted scenario, which must fail."""
        (item,) = self.of(scenario)
        assert item["verdict"] == "fail", item
        return Session.failed_checks(item)


def run_example(
    pytester: pytest.Pytester,
    example: str,
    factory: str,
    *args: str,
    planted: Sequence[Planted] = (),
) -> ExampleRun:
    """Run ``examples/<example>``'s scenarios with ``factory`` as the ``chaos_agent``, plus the
    ``planted`` scenarios, in one subprocess session, and read its JSON report back."""
    source = EXAMPLES / example
    shutil.copytree(source / "scenarios", pytester.path / "scenarios")
    factories = []
    for n, bug in enumerate(planted):
        module, name = bug.factory.split(":")
        factories.append(
            f"from {module} import {name} as _build_{n}\n\n\n"
            f"def build_{n}(endpoints):\n"
            f"    return _build_{n}(endpoints, defects={tuple(bug.defects)!r})\n"
        )
        base = yaml.safe_load((source / "scenarios" / f"{bug.scenario}.yaml").read_text())
        data = derive(base, Variant(bug.name, f"planted:build_{n}"))
        (pytester.path / "scenarios" / f"{bug.name}.yaml").write_text(yaml.safe_dump(data))
    if factories:
        pytester.makepyfile(planted="\n\n".join(factories))
    pytester.makeini(
        "[pytest]\n"
        f"pythonpath = {source} .\n"
        f"chaos_agent = {factory}\n"
        "chaos_seed = 20261127\n"
        "filterwarnings = error\n"
    )
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--chaos-report={report}", *args
    )
    output = result.stdout.str()
    assert report.exists(), output[-4000:]
    items = {i["nodeid"]: i for i in json.loads(report.read_text())["items"]}
    return ExampleRun(result, output, items)


def passed_cells(run: ExampleRun, scenario_file: str, name: str, cells: Sequence[str]) -> None:
    """Each named matrix cell of a scenario was collected and passed."""
    for cell in cells:
        line = f"PASSED scenarios/{scenario_file}.yaml::{name}[{cell}]"
        assert line in run.output, line


__all__ = ["ExampleRun", "Planted", "passed_cells", "run_example"]
