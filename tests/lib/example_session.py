"""Running an example agent's scenarios, and planted-bug variants of them, in a pytester session.

Each session runs in a subprocess, so the frameworks' imports and event loops stay out of the
test process.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Session:
    """What one pytester session of scenarios produced."""

    items: Mapping[str, Mapping[str, Any]]
    stdout: str
    ret: int
    path: Path

    def of(self, scenario: str) -> list[Mapping[str, Any]]:
        """The items of one scenario."""
        return [i for i in self.items.values() if i["scenario"] == scenario]

    @staticmethod
    def failed_checks(item: Mapping[str, Any]) -> set[str]:
        """The names of the checks that failed on an item."""
        return {c["name"] for c in item["checks"] if c["passed"] is False}


@dataclass(frozen=True)
class Variant:
    """A scenario derived from the example's: another agent factory, its own faults."""

    name: str
    agent: str
    faults: Sequence[Mapping[str, Any]] = ()
    expect: Mapping[str, Any] | None = None


def derive(base: Mapping[str, Any], variant: Variant) -> dict[str, Any]:
    """The example scenario with the variant's name, agent and faults, matrices dropped."""
    data = {k: v for k, v in base.items() if k not in ("matrix", "crash_matrix")}
    data.update(name=variant.name, agent=variant.agent, description=f"planted bug: {variant.name}")
    if variant.faults:
        data["faults"] = [dict(f) for f in variant.faults]
    if variant.expect is not None:
        data["expect"] = dict(variant.expect)
    return data


def example_runner(pytester: pytest.Pytester) -> Callable[..., Session]:
    """Run an example's scenario file plus variants (with a module of planted bugs) and read
    the JSON report back."""

    def run(
        scenario: Path,
        *,
        bugs_module: str,
        variants: Sequence[Variant],
        conftest: str | None = None,
        args: Sequence[str] = (),
    ) -> Session:
        base = yaml.safe_load(scenario.read_text())
        folder = pytester.mkdir("scenarios")
        (folder / scenario.name).write_text(scenario.read_text())
        for variant in variants:
            (folder / f"{variant.name}.yaml").write_text(yaml.safe_dump(derive(base, variant)))
        pytester.makepyfile(planted_bugs=bugs_module)
        if conftest is not None:
            pytester.makeconftest(conftest)
        pytester.makeini(
            "[pytest]\n"
            "chaos_scenarios = scenarios/*.yaml\n"
            f"pythonpath = . {ROOT}\n"
            "filterwarnings = error\n"
            "chaos_wall_s = 60\n"
        )
        report = pytester.path / "report.json"
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "-q", f"--chaos-report={report}", *args
        )
        stdout = result.stdout.str()
        assert report.exists(), stdout[-4000:]
        items = {i["nodeid"]: i for i in json.loads(report.read_text())["items"]}
        return Session(items, stdout, int(result.ret), pytester.path)

    return run
