"""Each fault-free probe run once per session, shared by the xdist workers through a directory.

Every xdist worker collects every scenario file, and collecting a matrix scenario runs its
fault-free probe (the run that aims the matrix). Without sharing, ``-n 2`` ran each probe twice.
The controller makes one directory per session and hands it to the workers. Before a worker
collects the first file of a directory, it is given the probe jobs of that directory's files
(:meth:`ProbeCache.prepare`) and runs its share of them, in file order: worker ``k`` of ``n``
runs the ``k``-th, ``k+n``-th, ... job, so the workers probe in parallel instead of taking turns
(one ran a probe while the other waited for it). A worker claims a probe by creating its claim
file (``O_EXCL``), runs it and writes the outcome; a worker that needs a probe of another
worker's share, or one claimed by another, waits for that outcome. Which probes a worker's
agent sees, and in which order, depends only on the files' positions, never on timing: all of
them before any item, in file order (an agent that keeps state between runs answers the same
in every session). The outcome is keyed by the scenario's content, the agent factory, the seed,
the wall limit and the agent config, so the same probe is never taken for a different one.

Without xdist the cache is in memory only (the directory is never made) and each probe runs
when its file is collected.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.scenario.variant import Probe

WORKERINPUT_KEY = "shakeout_probe_dir"
PROBES_KEY = pytest.StashKey["ProbeCache"]()
_POLL_S = 0.01
# A claim whose outcome never comes (its worker died) is run again after the probe's own wall
# limit plus this much.
_GRACE_S = 30.0


class ProbeFailed(Exception):
    """The probe run raised: carries ``TypeName: message`` as the worker that ran it saw it."""


@dataclass(frozen=True)
class ProbeJob:
    """One probe to run: its cache key, its wall limit and how to run it."""

    key: str
    wall_s: float
    run: Callable[[], Probe]


def probe_key(
    scenario_json: str, factory: str, seed: int, wall_s: float, config: Mapping[str, Any] | None
) -> str:
    """The cache key of a probe: everything its outcome depends on."""
    parts = json.dumps(
        [scenario_json, factory, seed, wall_s, dict(config or {})], sort_keys=True, default=str
    )
    return hashlib.sha256(parts.encode()).hexdigest()


class ProbeCache:
    """The session's probe outcomes: in memory, and in ``directory`` when workers share it."""

    def __init__(self, directory: Path | None, worker: int = 0, workers: int = 1) -> None:
        self.directory = directory
        self.worker = worker  # this worker's index among ``workers`` sharing the directory
        self.workers = max(1, workers)
        self.ran = 0  # probes this process ran itself (the rest came from the cache)
        self._memo: dict[str, Probe | ProbeFailed] = {}
        self._others: set[str] = set()  # keys of prepared jobs in another worker's share
        self._owned_dir: Path | None = None

    @classmethod
    def for_config(cls, config: pytest.Config) -> ProbeCache:
        """The worker's shared cache (its directory from the controller), else an in-memory one."""
        workerinput = getattr(config, "workerinput", None)
        if workerinput is not None and workerinput.get(WORKERINPUT_KEY):
            workers = int(workerinput.get("workercount", 1))
            worker_id = str(workerinput.get("workerid", "gw0"))
            # A worker that replaces a crashed one (gw2 of 2) takes the share of its index mod n;
            # what the crashed one left unrun is run by whichever worker needs it first.
            index = int(worker_id[2:]) if worker_id[2:].isdigit() else 0
            return cls(Path(workerinput[WORKERINPUT_KEY]), index % max(1, workers), workers)
        return cls(None)

    # ------------------------------------------------------------------ pytest hooks

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist controller: one directory for the session, handed to every worker."""
        if self._owned_dir is None:
            self._owned_dir = Path(tempfile.mkdtemp(prefix="shakeout-probes-"))
        node.workerinput[WORKERINPUT_KEY] = str(self._owned_dir)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None

    # ------------------------------------------------------------------ probes

    def prepare(self, jobs: Iterable[ProbeJob]) -> None:
        """Run this worker's share of the probes about to be collected, in their order.

        Every worker is given the same jobs (the probe jobs of the files it is about to
        collect, in collection order); worker ``k`` of ``n`` runs the jobs at positions ``k``,
        ``k+n``, ... (distinct keys counted once) and later waits for the others' outcomes.
        Without a shared directory it does nothing: each probe runs when its file is
        collected.

        Args:
            jobs: the probe jobs, in collection order.
        """
        if self.directory is None:
            return
        position = 0
        for job in jobs:
            if job.key in self._memo or job.key in self._others:
                continue
            mine = position % self.workers == self.worker
            position += 1
            if not mine:
                self._others.add(job.key)
            elif self._claim(job.key):
                self._run_and_share(job)

    def obtain(self, job: ProbeJob) -> Probe:
        """The job's probe: from the cache, or run here (once per session).

        Args:
            job: the probe wanted now.

        Raises:
            ProbeFailed: the probe run raised (here or in the worker that ran it).
        """
        found = self._memo.get(job.key)
        if found is None and self.directory is None:
            found = self._run(job)
        elif found is None and job.key not in self._others and self._claim(job.key):
            found = self._run_and_share(job)
        elif found is None:
            found = self._wait(job)
        if isinstance(found, ProbeFailed):
            raise found
        return found

    def _run(self, job: ProbeJob) -> Probe | ProbeFailed:
        self.ran += 1
        outcome: Probe | ProbeFailed
        try:
            outcome = job.run()
        except Exception as exc:  # the collector turns it into the file's ERROR item
            outcome = ProbeFailed(f"{type(exc).__name__}: {exc}")
        self._memo[job.key] = outcome
        return outcome

    def _run_and_share(self, job: ProbeJob) -> Probe | ProbeFailed:
        outcome = self._run(job)
        assert self.directory is not None
        if isinstance(outcome, ProbeFailed):
            data = pickle.dumps(("failed", str(outcome)))
        else:
            try:
                data = pickle.dumps(("ok", outcome))
            except Exception as exc:  # an agent's unpicklable detail in the record
                data = pickle.dumps(("unshareable", f"{type(exc).__name__}: {exc}"))
        tmp = self.directory / f"{job.key}.tmp-{os.getpid()}"
        tmp.write_bytes(data)
        os.replace(tmp, self.directory / f"{job.key}.probe")
        return outcome

    def _claim(self, key: str) -> bool:
        assert self.directory is not None
        try:
            fd = os.open(self.directory / f"{key}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.close(fd)
        return True

    def _wait(self, job: ProbeJob) -> Probe | ProbeFailed:
        assert self.directory is not None
        path = self.directory / f"{job.key}.probe"
        deadline = time.monotonic() + job.wall_s + _GRACE_S
        while not path.exists():
            if time.monotonic() > deadline:
                return self._run(job)  # the claiming worker died: run it here
            time.sleep(_POLL_S)
        kind, value = pickle.loads(path.read_bytes())
        if kind == "unshareable":
            return self._run(job)
        outcome: Probe | ProbeFailed = value if kind == "ok" else ProbeFailed(value)
        self._memo[job.key] = outcome
        return outcome
