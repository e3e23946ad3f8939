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


DESK_FAULTS = frozenset(
    {
        "crash_before_step",
        "crash_after_checkpoint",
        "crash_after_effect",
        "crash_while_parked",
        "crash_terminal_write",
        "approval_deny",
        "approval_never",
        "approval_late",
        "approval_changed_args",
        "tool_http_503",
        "tool_http_404",
        "tool_timeout_after_commit",
    }
)
"""The faults the refund desk's matrices must really fire (crash points, approvals, tools)."""


def planted_bug_variants(prefix: str) -> tuple[Variant, Variant]:
    """The refund desk's two planted bugs, built by ``swallowed_tool_error`` and
    ``skipped_approval`` in the test's ``planted_bugs`` module: a tool failure turned into made-up
    data, and a refund issued without asking for approval."""
    swallowed = Variant(
        f"{prefix}_bug_swallowed_tool_error",
        "planted_bugs:swallowed_tool_error",
        faults=[{"tool_http_404": {"target": "lookup_order"}}],
        expect={"state": "failed", "category": "tool"},
    )
    return swallowed, Variant(f"{prefix}_bug_skipped_approval", "planted_bugs:skipped_approval")


def assert_desk_caught(session: Session, scenario: str, bugs: tuple[Variant, Variant]) -> None:
    """The refund desk example passed its full fault and crash matrices (every fault in
    ``DESK_FAULTS`` fired), its clean run committed one keyed refund after one approval, and both
    planted bugs failed the checks that stand for them."""
    example = session.of(scenario)
    fired = {f["key"] for i in example for f in i["faults_fired"]}
    assert fired >= DESK_FAULTS, sorted(DESK_FAULTS - fired)
    assert len(example) > 60
    bad = {i["nodeid"]: sorted(Session.failed_checks(i)) for i in example if i["verdict"] != "pass"}
    assert not bad, session.stdout[-6000:]
    # the fault-free run committed one refund, with a key, after one approval
    (clean,) = [i for i in example if i["variant"] == "base"]
    assert [e["tool"] for e in clean["effects"]] == ["issue_refund"]
    assert clean["effects"][0]["idempotency_key"].startswith("run-")
    assert [a["decision"] for a in clean["approvals"]] == ["approve"]
    assert all(c["passed"] is not False for c in clean["checks"])
    assert "network_contained" in {c["name"] for c in clean["checks"] if c["passed"]}
    swallowed, skipped = bugs
    (found,) = session.of(swallowed.name)
    assert found["verdict"] == "fail"
    assert {"expected_state", "stopped_after_failure"} <= Session.failed_checks(found)
    (found,) = session.of(skipped.name)
    assert found["verdict"] == "fail"
    assert {"unapproved_effects", "expected_approvals"} <= Session.failed_checks(found)
    assert session.ret == 1
