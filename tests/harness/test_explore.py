"""Exploration: schedules searched, the faulty mini agent caught, the finding written and rerun."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import yaml
from hypothesis import strategies as st
from toy_agents.mini import MiniAgent

from faults.base import Surface, registry
from harness.adapter import AgentAdapter
from harness.cli import main
from harness.cli.explore import (
    DEFAULT_SURFACES,
    ExploreError,
    ExploreResult,
    Point,
    TransientRecovered,
    eligible_points,
    explore,
    schedules,
)
from harness.cli.explored import write_scenario
from harness.plugin.session import judge
from harness.record import RunRecord
from harness.run.runner import AdapterCache, endpoints_of, probe, run_variant
from harness.scenario.expect import Expectation
from harness.scenario.loader import load_scenario
from harness.scenario.matrix import base_variant
from harness.scenario.spec import Scenario
from harness.scenario.variant import Probe

ROOT = Path(__file__).resolve().parents[2]
HAPPY_FILE = ROOT / "scenarios" / "refund_happy.yaml"
HAPPY = yaml.safe_load(HAPPY_FILE.read_text())
SEED = 20261124
MINI = "toy_agents.mini:build_adapter"
TOOL_ONLY = (Surface.TOOL,)
CAUGHT_SEED = 2  # any seed works given enough examples; this one finds it in few runs


def scenario_data(*defects: str, **changes: Any) -> dict[str, Any]:
    """refund_happy's data for the mini agent with ``defects`` switched on."""
    data = {
        **HAPPY,
        "name": "mini_happy",
        "agent": MINI,
        "agent_config": {"defects": list(defects)},
    }
    return {**data, **changes}


def write(path: Path, data: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(data), sort_keys=False))
    return path


@pytest.fixture(scope="module")
def cache() -> AdapterCache:
    return AdapterCache()


@pytest.fixture(scope="module")
def happy() -> Scenario:
    return load_scenario(HAPPY_FILE)


@pytest.fixture(scope="module")
def reference(cache: AdapterCache, happy: Scenario) -> AgentAdapter:
    return cache.get("reference_agent:build_adapter", endpoints_of(happy))


@pytest.fixture(scope="module")
def mini(cache: AdapterCache, happy: Scenario) -> Iterator[AgentAdapter]:
    agent = cache.get(MINI, endpoints_of(happy))
    yield agent
    assert isinstance(agent, MiniAgent)
    agent.release.set()


@pytest.fixture(scope="module")
def happy_probe(happy: Scenario, reference: AgentAdapter) -> Probe:
    return probe(happy, reference, seed=SEED, wall_s=10)


@pytest.fixture(scope="module")
def caught(tmp_path_factory: pytest.TempPathFactory, cache: AdapterCache) -> ExploreResult:
    """The mini agent that sends each retry of an effect under a new key, explored on tools."""
    path = write(
        tmp_path_factory.mktemp("src") / "mini_happy.yaml", scenario_data("new_key_per_retry")
    )
    sc = load_scenario(path)
    agent = cache.get(MINI, endpoints_of(sc))
    return explore(sc, agent, seed=CAUGHT_SEED, examples=60, surfaces=TOOL_ONLY)


# --------------------------------------------------------------------------- the search


def test_the_reference_agent_keeps_every_invariant_on_refund_happy(
    happy: Scenario, reference: AgentAdapter
) -> None:
    result = explore(happy, reference, seed=SEED, examples=15)
    assert result.finding is None
    assert result.runs == 15
    assert result.rejected == 0
    assert result.baseline_state() == "completed"
    surfaces = {registry()[p.key].surface for p in result.points}
    assert surfaces == {Surface.TOOL, Surface.MODEL, Surface.APPROVAL}  # it does not stream


def test_an_agent_that_keeps_its_runs_in_memory_is_caught_by_a_restart_while_parked(
    happy: Scenario, reference: AgentAdapter
) -> None:
    result = explore(
        happy,
        reference,
        seed=SEED,
        examples=10,
        surfaces=(Surface.APPROVAL,),
        config={"persist": False},
    )
    assert result.finding is not None
    assert result.finding.schedule == (Point("approval_after_restart", None, 1),)
    (failure,) = result.finding.failures
    assert failure.name == "terminal_state"
    assert "the agent raised" in failure.reason


def test_a_retry_under_a_new_idempotency_key_is_caught_and_shrunk_to_one_fault(
    caught: ExploreResult,
) -> None:
    finding = caught.finding
    assert finding is not None
    (point,) = finding.schedule
    assert point.target in ("issue_refund", "send_email", "close_ticket")
    assert registry()[point.key].transient
    names = {v.name for v in finding.failures}
    assert {"duplicate_effects", "transient_recovered"} <= names
    assert caught.runs > 1


def test_a_5xx_taken_as_data_breaks_transient_recovery(tmp_path: Path, cache: AdapterCache) -> None:
    sc = load_scenario(write(tmp_path / "m.yaml", scenario_data("treat_500_as_success")))
    result = explore(sc, cache.get(MINI, endpoints_of(sc)), seed=1, examples=30, surfaces=TOOL_ONLY)
    assert result.finding is not None
    (point,) = result.finding.schedule
    assert point.key.startswith("tool_http_5")
    (failure,) = result.finding.failures
    assert failure.name == "transient_recovered"
    assert "every fault of the schedule" in failure.reason
    assert "is transient, so" in failure.reason

    # Re-running the written scenario fails: its expectation is the fault-free outcome.
    written = load_scenario(write_scenario(result, tmp_path / "out"))
    variant = base_variant(written)
    record = run_variant(variant, cache.get(MINI, endpoints_of(written)), seed=1, wall_s=10)
    judged = judge(variant, record, "rerun")
    assert judged.verdict == "fail", judged.explain()
    assert "expected_effects" in {v.name for v in judged.failures()}


def test_the_same_seed_explores_the_same_schedules(
    tmp_path: Path, cache: AdapterCache, caught: ExploreResult
) -> None:
    again = explore(
        caught.scenario,
        cache.get(MINI, endpoints_of(caught.scenario)),
        seed=CAUGHT_SEED,
        examples=60,
        surfaces=TOOL_ONLY,
    )
    assert again.finding is not None
    assert caught.finding is not None
    assert again.finding.schedule == caught.finding.schedule
    assert again.runs == caught.runs


# --------------------------------------------------------------------------- the written file


def test_the_written_scenario_validates_and_carries_the_schedule(
    tmp_path: Path, caught: ExploreResult
) -> None:
    assert caught.finding is not None
    path = write_scenario(caught, tmp_path, command="shakeout explore mini_happy.yaml --seed 1")
    written = load_scenario(path)
    assert path.name == f"{written.name}.yaml"
    assert written.name.startswith("mini_happy_explored_")
    assert written.seed == caught.run_seed == CAUGHT_SEED
    assert written.matrix is None
    assert written.crash_matrix is None
    assert written.input_matrix is None
    assert "explored" in written.tags
    assert [f.label() for f in written.build_faults()] == list(caught.finding.labels())
    assert written.agent_config == {"defects": ["new_key_per_retry"]}
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    assert "#   check duplicate_effects: " in text
    assert "#   found with: shakeout explore mini_happy.yaml --seed 1" in text
    assert "\n#       " in text  # long reasons wrap onto indented comment lines
    data = yaml.safe_load(text)
    point = caught.finding.schedule[0]
    assert data["faults"] == [{point.key: {"target": point.target, "at": {"nth": point.nth}}}]


def test_the_written_scenario_fails_the_same_check_under_pytest(
    pytester: pytest.Pytester, caught: ExploreResult
) -> None:
    pytester.makeini(f"[pytest]\npythonpath = {ROOT / 'tests'}\n")
    path = write_scenario(caught, pytester.path / "scenarios")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*scenario '{path.stem}'*", "*check duplicate_effects:*"])


def test_the_schema_line_is_aimed_from_the_output_directory(
    tmp_path: Path, happy: Scenario, reference: AgentAdapter
) -> None:
    result = explore(
        happy,
        reference,
        seed=SEED,
        examples=5,
        surfaces=(Surface.APPROVAL,),
        config={"persist": False},
    )
    path = write_scenario(result, tmp_path / "deep" / "dir")
    first = path.read_text().split("\n", 1)[0]
    ref = first.split("$schema=", 1)[1]
    assert (path.parent / ref).resolve() == ROOT / "scenarios" / "schema.json"
    assert "agent" not in yaml.safe_load(path.read_text())  # the ini's agent, as the original


def test_writing_needs_a_finding_and_the_file_data(
    tmp_path: Path, happy: Scenario, reference: AgentAdapter
) -> None:
    nothing = explore(happy, reference, seed=SEED, examples=2, surfaces=(Surface.MODEL,))
    with pytest.raises(ExploreError, match="found no failing schedule"):
        write_scenario(nothing, tmp_path)
    bare = Scenario.model_validate(HAPPY)
    result = explore(
        bare,
        reference,
        seed=SEED,
        examples=5,
        surfaces=(Surface.APPROVAL,),
        config={"persist": False},
    )
    with pytest.raises(ExploreError, match="pass source_data="):
        write_scenario(result, tmp_path)
    path = write_scenario(
        result, tmp_path, source_data=HAPPY, agent="reference_agent:build_adapter"
    )
    assert load_scenario(path).agent == "reference_agent:build_adapter"
    assert path.read_text().startswith("# yaml-language-server: $schema=schema.json\n")


# --------------------------------------------------------------------------- what is searched


def test_points_are_every_fault_of_the_surfaces_at_every_call_the_run_made(
    happy: Scenario, happy_probe: Probe
) -> None:
    points = eligible_points(happy, happy_probe)
    by_surface = Counter(registry()[p.key].surface for p in points)
    assert set(by_surface) == {Surface.TOOL, Surface.MODEL, Surface.APPROVAL}
    tools = {p.target for p in points if registry()[p.key].surface is Surface.TOOL}
    assert tools == set(happy.tools.services)
    assert {p.nth for p in points if p.target is not None} == {1}  # each tool called once
    model = {p.nth for p in points if registry()[p.key].surface is Surface.MODEL}
    assert model == {1, 2}
    assert Point("model_repeat_call", None, 1) not in points  # nothing to repeat yet
    assert Point("model_repeat_call", None, 2) in points
    assert points == tuple(sorted(points, key=lambda p: (_order(p), p.key)))


def _order(p: Point) -> int:
    return DEFAULT_SURFACES.index(registry()[p.key].surface)


def test_stream_points_only_when_the_model_streams(happy: Scenario, happy_probe: Probe) -> None:
    streaming = Scenario.model_validate({**HAPPY, "model": {**HAPPY["model"], "stream": True}})
    stream = [
        p
        for p in eligible_points(streaming, happy_probe)
        if registry()[p.key].surface is Surface.STREAM
    ]
    assert {p.nth for p in stream} == {1, 2}
    assert not eligible_points(happy, happy_probe, (Surface.STREAM,))


@hypothesis.given(st.data())
@hypothesis.settings(max_examples=50, deadline=None)
def test_schedules_are_one_to_four_distinct_points(data: st.DataObject) -> None:
    points = [Point(f"k{i}", None, 1) for i in range(data.draw(st.integers(1, 8)))]
    drawn = data.draw(schedules(points))
    assert 1 <= len(drawn) <= 4
    assert len(set(drawn)) == len(drawn)
    assert set(drawn) <= set(points)


def test_a_point_builds_its_fault_and_its_file_entry() -> None:
    point = Point("tool_http_503", "get_order", 2)
    assert point.label() == "tool_http_503@get_order#2"
    assert point.entry() == {"tool_http_503": {"target": "get_order", "at": {"nth": 2}}}
    assert Point("model_refusal", None, 1).entry() == {"model_refusal": {"at": {"nth": 1}}}


# --------------------------------------------------------------------------- transient recovery


def _recovered(record: RunRecord, *points: Point, **kw: Any) -> TransientRecovered:
    effects = dict(record.committed_effects())
    return TransientRecovered("completed", effects, tuple(p.build() for p in points), **kw)


def test_transient_recovery_judges_only_transient_faults_one_per_target(
    happy_probe: Probe,
) -> None:
    record, expect = happy_probe.record, Expectation()
    t503 = Point("tool_http_503", "get_order", 1)
    assert _recovered(record, t503).evaluate(record, expect).passed is True
    permanent = _recovered(record, Point("tool_http_404", "get_order", 1))
    assert permanent.evaluate(record, expect).passed is None
    twice = _recovered(record, t503, Point("tool_connect_timeout", "get_order", 1))
    assert twice.evaluate(record, expect).passed is None
    model_and_stream = _recovered(
        record, Point("model_refusal", None, 1), Point("stream_cut_mid_event", None, 2)
    )
    assert model_and_stream.evaluate(record, expect).passed is None
    overridden = _recovered(record, t503, overridden=frozenset({"tool_http_503@get_order"}))
    assert overridden.evaluate(record, expect).passed is None
    own = _recovered(record, t503, own=(Point("tool_http_502", "get_order", 1).build(),))
    assert own.evaluate(record, expect).passed is None


def test_transient_recovery_fails_on_another_state_or_other_effects(happy_probe: Probe) -> None:
    record, expect = happy_probe.record, Expectation()
    faults = (Point("tool_http_503", "get_order", 1).build(),)
    state = TransientRecovered("failed", dict(record.committed_effects()), faults)
    verdict = state.evaluate(record, expect)
    assert verdict.passed is False
    assert "must end like the fault-free run, 'failed'; it ended 'completed'" in verdict.reason
    effects = TransientRecovered("completed", {"issue_refund": 2}, faults)
    verdict = effects.evaluate(record, expect)
    assert verdict.passed is False
    assert (
        "must equal the fault-free run's {issue_refund: 2}; got {close_ticket: 1" in verdict.reason
    )


# --------------------------------------------------------------------------- refusals


def test_surfaces_without_a_schedule_to_search_are_refused(
    happy: Scenario, reference: AgentAdapter
) -> None:
    with pytest.raises(ExploreError, match="crash points have their own matrix"):
        explore(happy, reference, seed=1, examples=1, surfaces=(Surface.CRASH,))
    with pytest.raises(ExploreError, match="examples must be at least 1, got 0"):
        explore(happy, reference, seed=1, examples=0)


def test_a_scenario_that_fails_without_faults_is_refused(
    tmp_path: Path, mini: AgentAdapter
) -> None:
    sc = load_scenario(write(tmp_path / "m.yaml", scenario_data("skip_approval")))
    with pytest.raises(ExploreError, match=r"fails before any fault is added \(unapproved_effects"):
        explore(sc, mini, seed=1, examples=1)


def test_a_run_with_no_call_to_break_is_refused(reference: AgentAdapter) -> None:
    sc = load_scenario(ROOT / "scenarios" / "invalid_input.yaml")
    with pytest.raises(ExploreError, match="made no call a fault of tool, model"):
        explore(sc, reference, seed=1, examples=1)


# --------------------------------------------------------------------------- command line


def test_cli_exit_0_when_every_invariant_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["explore", str(HAPPY_FILE), "--examples", "3", "--seed", "1", "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "explored 'refund_happy' with reference_agent:build_adapter: 3 run(s)" in out
    assert out.rstrip().endswith("seed 1: every invariant held")
    assert not list(tmp_path.iterdir())


def test_cli_exit_1_writes_the_failing_schedule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = scenario_data("treat_500_as_success")
    del data["agent"]
    path = write(tmp_path / "src" / "mini_happy.yaml", data)
    args = ["explore", str(path), "--examples", "30", "--seed", "1", "--agent", MINI]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "a failing schedule was found" in out
    assert "  check transient_recovered: " in out
    (written,) = (tmp_path / "src").glob("mini_happy_explored_*.yaml")
    assert f"  written: {written}" in out
    assert load_scenario(written).agent == MINI
    assert "#   found with: shakeout explore" in written.read_text()


def test_cli_exit_2_on_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    assert main(["explore", str(bad)]) == 2
    assert "bad.yaml" in capsys.readouterr().out
    args = ["explore", str(HAPPY_FILE), "--agent", "no_such_module:f", "--examples", "1"]
    assert main(args) == 2
    assert "cannot import module 'no_such_module'" in capsys.readouterr().out
    invalid = ROOT / "scenarios" / "invalid_input.yaml"
    assert main(["explore", str(invalid), "--examples", "1"]) == 2
    assert "shakeout explore: the fault-free run" in capsys.readouterr().out


def test_cli_without_an_agent_anywhere_says_where_to_set_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ini file here or above the copy, so no chaos_agent
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    copy = tmp_path / "happy.yaml"
    copy.write_text(HAPPY_FILE.read_text())
    assert main(["explore", str(copy), "--examples", "1"]) == 2
    out = capsys.readouterr().out
    assert "pass --agent module:callable" in out
    assert f"set the chaos_agent ini key (read from {tmp_path / 'pyproject.toml'})" in out


def test_cli_reads_agent_and_seed_from_the_pyproject_ini_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ini = '[tool.pytest.ini_options]\nchaos_agent = "reference_agent:build_adapter"\n'
    (tmp_path / "pyproject.toml").write_text(ini + 'chaos_seed = "7"\n')
    happy = tmp_path / "happy.yaml"
    happy.write_text(HAPPY_FILE.read_text())
    assert main(["explore", str(happy), "--examples", "1"]) == 0
    out = capsys.readouterr().out
    assert "with reference_agent:build_adapter: 1 run(s)" in out
    assert "seed 7: every invariant held" in out
    (tmp_path / "pyproject.toml").write_text(ini + 'chaos_seed = "seven"\n')
    assert main(["explore", str(happy), "--examples", "1"]) == 2
    assert "chaos_seed ini key must be an integer, got 'seven'" in capsys.readouterr().out


def test_cli_reads_the_ini_file_pytest_reads_and_imports_from_its_pythonpath(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The user's agent package lives under src/, importable only through the ini's pythonpath;
    # the ini is a pytest.ini two directories above the scenario, the command runs from elsewhere.
    package = tmp_path / "src" / "explore_users_agent"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from reference_agent import build_adapter\n")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\npythonpath = src\nchaos_agent = explore_users_agent:build_adapter\n"
        "chaos_seed = 3\n"
    )
    checks = tmp_path / "checks" / "deep"
    checks.mkdir(parents=True)
    (checks / "happy.yaml").write_text(HAPPY_FILE.read_text())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    assert main(["explore", "../checks/deep/happy.yaml", "--examples", "1"]) == 0
    out = capsys.readouterr().out
    assert "with explore_users_agent:build_adapter: 1 run(s)" in out
    assert "seed 3: every invariant held" in out


@pytest.mark.parametrize("kind", ["symlink", "file", "under_a_file"])
def test_cli_refuses_a_bad_out_before_the_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    out = tmp_path / "out"
    if kind == "symlink":
        out.symlink_to(target, target_is_directory=True)
    elif kind == "file":
        out.write_text("precious\n")
    else:
        (tmp_path / "file").write_text("precious\n")
        out = tmp_path / "file" / "out"
    started = time.perf_counter()
    args = ["explore", str(HAPPY_FILE), "--examples", "50", "--seed", "1", "--out", str(out)]
    assert main(args) == 2
    assert time.perf_counter() - started < 5, "refused before the search, not after it"
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("shakeout explore: ")
    assert {"symlink": "symbolic link", "file": "it is a file", "under_a_file": "is a file"}[
        kind
    ] in line
    assert not list(target.iterdir())


def test_cli_refuses_a_link_planted_at_the_written_file_and_still_prints_the_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.cli.explored as explore_module

    data = scenario_data("treat_500_as_success")
    del data["agent"]
    path = write(tmp_path / "src" / "mini_happy.yaml", data)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    real_write = explore_module.write_text

    def plant_then_write(dest: Path, text: str, what: str = "file") -> Path:
        dest.symlink_to(victim)  # a link appears at the very file the search found
        return real_write(dest, text, what)

    monkeypatch.setattr(explore_module, "write_text", plant_then_write)
    args = ["explore", str(path), "--examples", "30", "--seed", "1", "--agent", MINI]
    assert main(args) == 2
    out = capsys.readouterr().out
    assert "a failing schedule was found" in out
    assert "  check transient_recovered: " in out
    assert "refusing to write the explored scenario" in out
    assert "symbolic link" in out
    assert victim.read_text() == "precious\n"


def test_secrets_are_masked_in_the_written_scenario(tmp_path: Path) -> None:
    from harness.cli.explored import write_scenario

    cache = AdapterCache()
    data = scenario_data("treat_500_as_success")
    data["input"] = {**data["input"], "api_token": "x", "password": "hunter2-hunter2"}
    path = write(tmp_path / "src" / "mini_happy.yaml", data)
    sc = load_scenario(path)
    adapter = cache.get(MINI, endpoints_of(sc))
    result = explore(sc, adapter, seed=1, examples=30, surfaces=TOOL_ONLY)
    assert result.finding is not None
    written = write_scenario(result, tmp_path / "out")
    text = written.read_text()
    assert "hunter2-hunter2" not in text
    assert "password: '[redacted]'" in text
    assert "# Secret-looking values were replaced by [redacted]" in text
