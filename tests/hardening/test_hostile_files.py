"""Hostile scenario files: the loader answers each with a scenario or a located error, quickly.

Hypothesis writes 500+ files per run (tests/lib/hostile_scenarios.py has the attacks and how
many of each); every one must load or raise ``ScenarioError`` (any other exception fails the
test), every refusal must name the file and a line and say how to fix it, and no load may take
longer than a generous bound (the loader's bounds are structural: size, values after alias
expansion, depth; the clock only catches a bound that stopped working).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
from hostile_scenarios import ATTACKS, Case
from hypothesis import HealthCheck, given, settings

from harness.scenario.loader import BUG_HINT, load_scenario
from harness.scenario.reading import ScenarioError

SECONDS_PER_FILE = 5.0


def check(case: Case, directory: Path, number: int) -> None:
    """Load one generated file and check the loader's promises."""
    path = directory / f"{case.kind}_{number}.yaml"
    path.write_bytes(case.data)
    started = time.monotonic()
    try:
        load_scenario(path)
    except ScenarioError as exc:
        elapsed = time.monotonic() - started
        for issue in exc.issues:
            assert issue.path == str(path)
            assert issue.line is not None, str(issue)
            assert issue.line >= 1, str(issue)
            text = str(issue)
            assert text.startswith(f"{path}:{issue.line}"), text
            assert ". Fix: " in text, text
            assert BUG_HINT not in text, text
    else:
        elapsed = time.monotonic() - started
        assert not case.must_fail, f"a {case.kind} file was accepted:\n{case.data[:500]!r}"
    assert elapsed < SECONDS_PER_FILE, f"{case.kind} took {elapsed:.1f}s: {case.data[:200]!r}"


def test_the_attacks_write_at_least_500_files_per_run() -> None:
    assert sum(examples for _, examples in ATTACKS.values()) >= 500


@pytest.mark.parametrize("kind", sorted(ATTACKS))
def test_every_hostile_file_is_a_scenario_or_a_located_error(kind: str) -> None:
    strategy, examples = ATTACKS[kind]
    written: list[Case] = []

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(strategy)
    def one(case: Case) -> None:
        written.append(case)
        check(case, Path(directory), len(written))

    with tempfile.TemporaryDirectory() as directory:
        one()
    assert len(written) >= examples, f"only {len(written)} {kind} files were written"
