"""The pytest plugin: seed, precedence (command line > marker > fixture > ini), shards, fixtures."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.plugin import NO_KEYWORDS, PropertyReleaser, shard_of
from harness.report.merge import merge_main
from harness.report.model import load_report

SHOW_SETTINGS = """
import pytest

def test_show(chaos_settings):
    print(f"SETTINGS seed={chaos_settings.seed} agent={chaos_settings.agent} "
          f"wall={chaos_settings.wall_s:g}")
"""


def settings_line(result: pytest.RunResult) -> str:
    return next(ln.split("SETTINGS", 1)[1] for ln in result.outlines if "SETTINGS" in ln)


def test_seed_comes_from_ini_and_is_printed(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nchaos_seed = 42\n")
    pytester.makepyfile(SHOW_SETTINGS)
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["shakeout: seed 42 (rerun with --chaos-seed=42), agent (none set)"]
    )
    assert "seed=42 " in settings_line(result)


def test_without_a_seed_a_random_one_is_drawn_and_printed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SHOW_SETTINGS)
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    header = re.search(r"shakeout: seed (\d+)", result.stdout.str())
    assert header is not None
    assert f"seed={header.group(1)} " in settings_line(result)


def test_precedence_command_line_over_marker_over_fixture_over_ini(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nchaos_seed = 1\nchaos_agent = ini:agent\nchaos_wall_s = 9\n")
    pytester.makeconftest(
        """
import pytest

@pytest.fixture
def chaos_config():
    return {"seed": 2, "agent": "fixture:agent", "wall_s": 8}
"""
    )
    pytester.makepyfile(
        """
import pytest

def test_fixture_over_ini(chaos_settings):
    assert (chaos_settings.seed, chaos_settings.agent, chaos_settings.wall_s) == (
        2, "fixture:agent", 8)

@pytest.mark.chaos(seed=3, wall_s=7)
def test_marker_over_fixture(chaos_settings):
    assert (chaos_settings.seed, chaos_settings.agent, chaos_settings.wall_s) == (
        3, "fixture:agent", 7)
"""
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)
    pytester.makepyfile(
        test_cli="""
import pytest

@pytest.mark.chaos(seed=3, agent="marker:agent")
def test_cli_over_marker(chaos_settings):
    assert (chaos_settings.seed, chaos_settings.agent, chaos_settings.wall_s) == (
        4, "cli:agent", 5)
"""
    )
    result = pytester.runpytest(
        "test_cli.py",
        "--chaos-seed=4",
        "--chaos-agent=cli:agent",
        "--chaos-wall-s=5",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=1)


def test_marker_with_unknown_option_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.chaos(sed=3)
def test_typo(chaos_settings):
    pass
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.chaos got unknown option(s) sed; allowed: agent, config, seed, wall_s*"]
    )


def test_bad_ini_seed_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nchaos_seed = abc\n")
    pytester.makepyfile(SHOW_SETTINGS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*chaos_seed must be an integer, got 'abc'*"])


def test_shards_partition_the_items(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("\n".join(f"def test_{i}():\n    pass\n" for i in range(12)))
    seen: list[set[str]] = []
    for k in (1, 2, 3):
        result = pytester.runpytest(
            f"--chaos-shard={k}/3", "-q", "--collect-only", "-p", "no:cacheprovider"
        )
        seen.append({ln for ln in result.outlines if "::test_" in ln})
    assert set.union(*seen) == {f"test_shards_partition_the_items.py::test_{i}" for i in range(12)}
    assert sum(len(s) for s in seen) == 12


@pytest.mark.parametrize("bad", ["3", "0/2", "3/2", "a/b"])
def test_bad_shard_is_a_usage_error(pytester: pytest.Pytester, bad: str) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest(f"--chaos-shard={bad}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--chaos-shard*"])


@given(st.text(min_size=1, max_size=40), st.integers(min_value=1, max_value=16))
def test_shard_of_is_stable_and_in_range(nodeid: str, n: int) -> None:
    k = shard_of(nodeid, n)
    assert 1 <= k <= n
    assert shard_of(nodeid, n) == k


def test_xdist_workers_share_the_controller_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "\n".join(
            f"def test_{i}(chaos_settings):\n    assert chaos_settings.seed == 77\n"
            for i in range(4)
        )
    )
    result = pytester.runpytest_subprocess("-n", "2", "--chaos-seed=77", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_chaos_run_fixture_runs_a_scenario_with_a_fault(pytester: pytest.Pytester) -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    pytester.makeini("[pytest]\nchaos_agent = reference_agent:build_adapter\nchaos_seed = 5\n")
    pytester.makepyfile(
        f"""
def test_refund_survives_a_503(chaos_run):
    result = chaos_run({str(root / "scenarios" / "refund_happy.yaml")!r},
                       faults=["tool_http_503"])
    assert result.verdict == "pass", result.explain()
    # No target: the first call of every tool gets a 503, and each is retried.
    assert {{f.key for f in result.record.firings}} == {{"tool_http_503"}}
    assert len(result.record.firings) == 6
    assert result.record.final.state.value == "completed"

def test_permanent_fault_is_expected_to_fail_with_its_category(chaos_run):
    result = chaos_run({str(root / "scenarios" / "refund_happy.yaml")!r},
                       faults=["tool_http_404"])
    assert result.verdict == "pass", result.explain()
    assert result.record.final.state.value == "failed"
    assert result.record.final.category == "tool"
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


# Items from .yaml files that append a passing shakeout entry, standing in for scenario items so
# the real plugin's plan, shard and session handling run without an agent.
PLAIN_YAML_ITEMS = """
import pytest


class File(pytest.File):
    def collect(self):
        for n in range(int(self.path.read_text())):
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


def test_shards_record_their_selection_and_the_session_id(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nchaos_scenarios = none/*\n")
    pytester.makeconftest(PLAIN_YAML_ITEMS)
    (pytester.path / "items.yaml").write_text("10")
    paths = []
    for k in (1, 2):
        out = pytester.path / f"shard{k}.json"
        result = pytester.runpytest(
            f"--chaos-shard={k}/2",
            "--chaos-session-id=ci-run-7",
            f"--chaos-report={out}",
            "--chaos-seed=1",
            "-p",
            "no:cacheprovider",
        )
        assert result.ret == 0
        report = load_report(out)
        assert report.session is not None
        assert report.session.id == "ci-run-7"
        assert report.plan.shard == f"{k}/2"
        assert report.plan.selection_items == 10
        assert report.plan.nodeids == sorted(i.nodeid for i in report.items)
        paths.append(str(out))
    merged = pytester.path / "merged.json"
    assert merge_main(paths, str(merged), stream=io.StringIO()) == 0
    whole = load_report(merged)
    assert whole.plan.items == len(whole.items) == 10
    assert whole.session is not None
    assert whole.session.id == "ci-run-7"


def test_a_bad_session_id_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--chaos-session-id=a\nb", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--chaos-session-id must be 1 to 200 printable characters*"])


def test_finished_scenario_reports_release_their_entry_and_keywords(
    pytester: pytest.Pytester,
) -> None:
    # pytest keeps every report to the session's end: a scenario item's reports must not keep
    # its entry or its keyword map, while other tests' reports and skipped ones keep theirs.
    pytester.makeini("[pytest]\nchaos_scenarios = none/*\n")
    pytester.makeconftest(PLAIN_YAML_ITEMS)
    (pytester.path / "items.yaml").write_text("3")
    pytester.makepyfile(
        "import pytest\n\ndef test_plain():\n    pass\n\n"
        "@pytest.mark.skip(reason='not today')\ndef test_skipped():\n    pass\n"
    )
    out = pytester.path / "r.json"
    rec = pytester.inline_run(f"--chaos-report={out}", "--chaos-seed=1", "-p", "no:cacheprovider")
    rec.assertoutcome(passed=4, skipped=1)
    reports = rec.getreports("pytest_runtest_logreport")
    scenario = [r for r in reports if r.nodeid.startswith("items.yaml")]
    assert len(scenario) == 9, "setup, call and teardown of three items"
    assert all(r.keywords == {} for r in scenario)
    # One shared read-only map, not an empty dict per report (3 per item, all session long).
    assert all(r.keywords is NO_KEYWORDS for r in scenario)
    assert not any(n.startswith("shakeout") for r in scenario for n, _ in r.user_properties)
    plain = next(r for r in reports if r.nodeid.endswith("test_plain") and r.when == "call")
    assert "test_plain" in plain.keywords
    skipped = next(r for r in reports if r.skipped)
    assert "skip" in skipped.keywords
    # The entries reached the report before they were released.
    assert [i.verdict for i in load_report(out).items] == ["pass", "pass", "pass"]


def test_the_releaser_empties_a_reports_properties_in_place_and_keeps_foreign_ones() -> None:
    # In place: a new list per report would cost as much as the released entry saved.
    props: list[tuple[str, object]] = [
        ("shakeout", '{"verdict": "pass"}'),
        ("shakeout.verdict", "pass"),
        ("mine", 1),
    ]
    report = pytest.TestReport(
        "s.yaml::walk[x]",
        ("s.yaml", 0, "walk[x]"),
        {"walk": 1, "chaos": 1},
        "passed",
        None,
        "call",
        user_properties=props,
    )
    held = report.user_properties
    PropertyReleaser().pytest_runtest_logreport(report)
    assert report.user_properties is held
    assert report.user_properties == [("mine", 1)]
    assert report.keywords is NO_KEYWORDS
    with pytest.raises(TypeError):
        report.keywords["x"] = 1  # type: ignore[index]


def _happy_project(pytester: pytest.Pytester, conftest: str) -> None:
    """refund_happy without its matrices, the reference agent, and ``conftest``."""

    import yaml

    root = Path(__file__).resolve().parents[3]
    pytester.makeini("[pytest]\nchaos_agent = reference_agent:build_adapter\nchaos_seed = 5\n")
    happy = yaml.safe_load((root / "scenarios" / "refund_happy.yaml").read_text())
    for key in ("matrix", "input_matrix", "crash_matrix"):
        del happy[key]
    pytester.makefile(".yaml", happy=yaml.safe_dump(happy))
    pytester.makeconftest(conftest)


def _each_process_writes(out: Path, module: str, values: str) -> str:
    """A conftest by which each process of the session appends ``<who> <values...>`` to ``out``
    at its session's end (``who``: main or worker; ``values``: a tuple expression or one)."""
    return f"""
import {module}

def pytest_sessionfinish(session):
    who = "worker" if hasattr(session.config, "workerinput") else "main"
    values = {values}
    values = values if isinstance(values, tuple) else (values,)
    with open({str(out)!r}, "a") as f:
        f.write(" ".join([who, *map(str, values)]) + "\\n")
"""


def test_an_xdist_worker_freezes_what_collection_built_and_no_other_process_does(
    pytester: pytest.Pytester,
) -> None:
    import gc

    out = pytester.path / "frozen.txt"
    _happy_project(pytester, _each_process_writes(out, "gc", "gc.get_freeze_count()"))
    result = pytester.runpytest_subprocess("happy.yaml", "-n", "1", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    counts = dict(line.split() for line in out.read_text().splitlines())
    assert int(counts["worker"]) > 1000  # the worker froze its collection
    assert int(counts["main"]) == 0  # the controller did not
    out.unlink()
    before = gc.get_freeze_count()
    pytester.runpytest("happy.yaml", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert gc.get_freeze_count() == before  # nor did an in-process session


def test_the_cyclic_collector_waits_while_a_session_collects_and_runs_again_for_its_items(
    pytester: pytest.Pytester,
) -> None:
    import gc

    out = pytester.path / "collector.txt"
    _happy_project(
        pytester,
        f"""
import gc

def _write(what):
    with open({str(out)!r}, "a") as f:
        f.write(f"{{what}} {{gc.isenabled()}}\\n")

def pytest_itemcollected(item):
    _write("collect")

def pytest_runtest_setup(item):
    _write("run")
""",
    )
    assert gc.isenabled()
    pytester.runpytest("happy.yaml", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert out.read_text().splitlines() == ["collect False", "run True"]
    assert gc.isenabled()  # the session left this process's collector as it found it


# What runs a scenario: an xdist controller, which only reports, must never import it.
RUN_STAGES = (
    "harness.run",
    "harness.world",
    "harness.verdict",
    "harness.load",
    "harness.plugin.session",
)


def test_an_xdist_controller_never_imports_what_runs_a_scenario(
    pytester: pytest.Pytester,
) -> None:
    out = pytester.path / "loaded.txt"
    loaded = f"sorted(m for m in sys.modules if m.startswith({RUN_STAGES!r}))"
    _happy_project(pytester, _each_process_writes(out, "sys", f"len({loaded}), ','.join({loaded})"))
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "happy.yaml", "-n", "1", "-p", "no:cacheprovider", f"--chaos-report={report}"
    )
    result.assert_outcomes(passed=1)
    loaded = {
        who: (int(n), names) for who, n, *names in map(str.split, out.read_text().splitlines())
    }
    assert loaded["main"] == (0, [])  # the controller wrote the report without them
    assert loaded["worker"][0] > 10  # the worker ran the scenario with them
    assert load_report(report).summary.total == 1
