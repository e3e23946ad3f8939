"""Each fault-free probe runs once per session: in memory, and shared by xdist workers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from harness.plugin import probe_cache
from harness.plugin.probe_cache import ProbeCache, ProbeFailed, ProbeJob, probe_key
from harness.record import RunRecord
from harness.scenario.variant import Probe

ROOT = Path(__file__).resolve().parents[3]
HAPPY = yaml.safe_load((ROOT / "scenarios" / "refund_happy.yaml").read_text())


def _probe(name: str) -> Probe:
    record = RunRecord(
        scenario=name,
        variant="probe",
        seed=1,
        faults=(),
        exchanges=(),
        firings=(),
        effects=(),
        outcomes=(),
    )
    return Probe(Counter({"get_order": 1}), 2, 0, [("before_step", "intake")], Counter(), record)


class Counted:
    """A probe job's run that counts its calls (and can fail)."""

    def __init__(self, name: str, fail: bool = False) -> None:
        self.name, self.fail, self.calls = name, fail, 0

    def __call__(self) -> Probe:
        self.calls += 1
        if self.fail:
            raise RuntimeError(f"{self.name} broke")
        return _probe(self.name)


def job(run: Counted, wall_s: float = 5.0) -> ProbeJob:
    return ProbeJob(probe_key(run.name, "agent:build", 1, wall_s, None), wall_s, run)


def test_in_memory_cache_runs_a_probe_once() -> None:
    cache, run = ProbeCache(None), Counted("a")
    first = cache.obtain(job(run))
    assert cache.obtain(job(run)) is first
    assert run.calls == 1
    assert cache.ran == 1


def test_two_workers_over_one_directory_run_each_probe_once(tmp_path: Path) -> None:
    one, two = ProbeCache(tmp_path), ProbeCache(tmp_path)
    run = Counted("a")
    got_one = one.obtain(job(run))
    got_two = two.obtain(job(run))
    assert run.calls == 1
    assert (one.ran, two.ran) == (1, 0)
    assert got_two.record == got_one.record
    assert got_two.tool_calls == got_one.tool_calls


def test_a_failed_probe_is_shared_with_its_message(tmp_path: Path) -> None:
    one, two = ProbeCache(tmp_path), ProbeCache(tmp_path)
    run = Counted("a", fail=True)
    with pytest.raises(ProbeFailed, match=r"^RuntimeError: a broke$"):
        one.obtain(job(run))
    with pytest.raises(ProbeFailed, match=r"^RuntimeError: a broke$"):
        two.obtain(job(run))
    assert run.calls == 1


def test_a_probe_whose_claimer_died_is_run_by_the_waiting_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(probe_cache, "_GRACE_S", 0.0)
    run = Counted("a")
    claimer, waiter = ProbeCache(tmp_path), ProbeCache(tmp_path)
    assert claimer._claim(job(run, 0.0).key)  # another worker took "a" and died on it
    waiter.obtain(job(run, 0.0))
    assert run.calls == 1
    assert waiter.ran == 1


@given(
    st.text(max_size=20),
    st.text(max_size=20),
    st.integers(0, 2**31),
    st.floats(0.1, 600),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
def test_the_key_changes_with_everything_the_probe_depends_on(
    scenario: str, factory: str, seed: int, wall: float, config: dict[str, Any]
) -> None:
    key = probe_key(scenario, factory, seed, wall, config)
    assert key == probe_key(scenario, factory, seed, wall, dict(config))
    assert key != probe_key(scenario + "x", factory, seed, wall, config)
    assert key != probe_key(scenario, factory + "x", seed, wall, config)
    assert key != probe_key(scenario, factory, seed + 1, wall, config)
    assert key != probe_key(scenario, factory, seed, wall + 1, config)
    assert key != probe_key(scenario, factory, seed, wall, {**config, "extra": 1})


RECORDING_AGENT = '''
import os
from pathlib import Path

from reference_agent import build_adapter as _build

STARTS = Path(__file__).parent / "starts.txt"


class Logging:
    """The reference agent, logging each started run's worker and message to starts.txt."""

    def __init__(self, inner):
        self._inner = inner

    def begin(self, world):
        return self._inner.begin(world)

    def start(self, payload):
        with STARTS.open("a") as f:
            f.write(f"{os.environ.get('PYTEST_XDIST_WORKER')} {payload['message']}\\n")
        return self._inner.start(payload)

    def resume(self, run_id, decision=None):
        return self._inner.resume(run_id, decision)

    def trace(self, run_id):
        return self._inner.trace(run_id)


def build_adapter(endpoints):
    return Logging(_build(endpoints))
'''


def test_a_session_without_workers_runs_each_probe_once(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nchaos_agent = recording_agent:build_adapter\nchaos_seed = 5\n"
        "filterwarnings = error\n"
    )
    pytester.makepyfile(recording_agent=RECORDING_AGENT)
    (pytester.path / "scenarios").mkdir()
    base = {k: v for k, v in HAPPY.items() if k not in ("matrix", "input_matrix", "crash_matrix")}
    for k in range(3):
        data = {
            **base,
            "name": f"happy_{k}",
            "matrix": {"faults": ["tool_http_503"], "targets": ["get_order"]},
        }
        (pytester.path / "scenarios" / f"happy_{k}.yaml").write_text(yaml.safe_dump(data))
    result = pytester.runpytest_subprocess("-n", "0", "-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=9)
    starts = (pytester.path / "starts.txt").read_text().splitlines()
    # 9 items, each started once, and one probe per matrix file (-n 2: the test below)
    assert len(starts) == 9 + 3


def test_workers_share_out_the_prepared_probes_by_position(tmp_path: Path) -> None:
    one, two = ProbeCache(tmp_path, 0, 2), ProbeCache(tmp_path, 1, 2)
    runs = [Counted(name) for name in "abcde"]
    jobs = [job(run) for run in runs]
    one.prepare(jobs)
    two.prepare(jobs)
    # each worker ran its share (positions 0, 2, 4 and 1, 3) before collecting anything
    assert [run.calls for run in runs] == [1, 1, 1, 1, 1]
    assert (one.ran, two.ran) == (3, 2)
    for cache in (one, two):
        assert [cache.obtain(j).record.scenario for j in jobs] == list("abcde")
    assert [run.calls for run in runs] == [1, 1, 1, 1, 1]
    assert (one.ran, two.ran) == (3, 2)


def test_a_repeated_job_counts_once_in_the_share(tmp_path: Path) -> None:
    one, two = ProbeCache(tmp_path, 0, 2), ProbeCache(tmp_path, 1, 2)
    a, b = Counted("a"), Counted("b")
    jobs = [job(a), job(a), job(b)]
    one.prepare(jobs)
    two.prepare(jobs)
    assert (a.calls, b.calls, one.ran, two.ran) == (1, 1, 1, 1)


def test_a_probe_of_another_share_is_waited_for_and_run_when_its_worker_never_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(probe_cache, "_GRACE_S", 0.0)
    runs = [Counted("a"), Counted("b")]
    jobs = [job(run, 0.0) for run in runs]
    alone = ProbeCache(tmp_path, 0, 2)
    alone.prepare(jobs)
    assert [run.calls for run in runs] == [1, 0]  # "b" is worker 1's, which never came
    assert alone.obtain(jobs[1]).record.scenario == "b"
    assert [run.calls for run in runs] == [1, 1]


def test_without_a_directory_prepare_runs_nothing(tmp_path: Path) -> None:
    cache, run = ProbeCache(None), Counted("a")
    cache.prepare([job(run)])
    assert run.calls == 0
    cache.obtain(job(run))
    assert run.calls == 1


SPLIT_CONFTEST = """
import os
from pathlib import Path


def pytest_collection_finish(session):
    with (Path(__file__).parent / "starts.txt").open("a") as f:
        f.write(f"{os.environ.get('PYTEST_XDIST_WORKER')} collected\\n")
"""


def test_under_two_workers_each_runs_its_share_of_the_probes_before_any_item(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(
        "[pytest]\nchaos_agent = recording_agent:build_adapter\nchaos_seed = 5\n"
        "filterwarnings = error\n"
    )
    pytester.makepyfile(recording_agent=RECORDING_AGENT)
    pytester.makeconftest(SPLIT_CONFTEST)
    (pytester.path / "scenarios").mkdir()
    base = {k: v for k, v in HAPPY.items() if k not in ("matrix", "input_matrix", "crash_matrix")}
    for k in range(4):
        data = {
            **base,
            "name": f"happy_{k}",
            "input": {**base["input"], "message": f"{base['input']['message']} (file {k})"},
            "matrix": {"faults": ["tool_http_503"], "targets": ["get_order"]},
        }
        (pytester.path / "scenarios" / f"happy_{k}.yaml").write_text(yaml.safe_dump(data))
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=12)
    probed: dict[str, list[str]] = {"gw0": [], "gw1": []}
    collected: set[str] = set()
    lines = (pytester.path / "starts.txt").read_text().splitlines()
    # 12 items, each started once, and one probe per matrix file; without sharing, -n 2 ran
    # every probe in both workers (20 starts).
    assert len([ln for ln in lines if not ln.endswith(" collected")]) == 12 + 4
    for line in lines:
        worker, text = line.split(" ", 1)
        if text == "collected":
            collected.add(worker)
        elif worker not in collected:
            probed[worker].append(text.rsplit("(", 1)[-1].rstrip(")"))
    # Runs before a worker's collection ended are its probes: by position, in file order, each
    # once; taking turns (one probing while the other waits) would give a timing-made split.
    assert probed == {"gw0": ["file 0", "file 2"], "gw1": ["file 1", "file 3"]}
