"""Scenario files as pytest collectors, and one pytest item per scenario variant.

An item runs its variant in ``setup`` and judges it there: a verdict of ERROR (the scenario is
invalid, or the harness could not run it) is raised from setup, so pytest reports it as an
error; a FAIL (the agent broke a rule) is raised from the call phase, so pytest reports a
failure. The two never mix.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.adapter import AgentAdapter
from harness.load import run_load
from harness.plugin.probe_cache import PROBES_KEY, ProbeFailed, ProbeJob, probe_key
from harness.plugin.session import RunResult, judge, report_item, reproduce_command
from harness.plugin.settings import OUTCOMES_KEY, REDACTOR_KEY, ChaosSettings, adapter_cache
from harness.record import RunRecord
from harness.report.model import CheckOutcome
from harness.report.spool import PROPERTY
from harness.run.runner import AgentLoadError, endpoints_of, probe, run_variant
from harness.scenario.loader import load_scenario
from harness.scenario.matrix import base_variant, expand
from harness.scenario.reading import ScenarioError
from harness.scenario.spec import Scenario
from harness.scenario.variant import Probe, Variant

# --------------------------------------------------------------------------- which files

NAMED_KEY = pytest.StashKey[tuple[tuple[Path, tuple[str, ...]], ...]]()
SKIPPED_KEY = pytest.StashKey[list[Path]]()


def named_arguments(config: pytest.Config) -> tuple[tuple[Path, tuple[str, ...]], ...]:
    """The command line's collection arguments as (resolved path, ``::`` name parts)."""
    cached = config.stash.get(NAMED_KEY, None)
    if cached is not None:
        return cached
    base = config.invocation_params.dir
    out: list[tuple[Path, tuple[str, ...]]] = []
    for arg in config.args:
        head, *parts = str(arg).split("::")
        out.append(((base / head).resolve(), tuple(parts)))
    config.stash[NAMED_KEY] = found = tuple(out)
    return found


def is_scenario_file(config: pytest.Config, path: Path) -> bool:
    """Whether a YAML file is collected as a scenario.

    The rule: a ``.yaml`` / ``.yml`` file named on the command line is always a scenario; a file
    found by walking a directory is one when its path relative to the rootdir matches one of the
    ``chaos_scenarios`` globs (default ``scenarios/*.yaml`` and ``scenarios/**/*.yaml``).
    """
    if path.suffix not in (".yaml", ".yml"):
        return False
    resolved = path.resolve()
    if any(named == resolved for named, _ in named_arguments(config)):
        return True
    try:
        rel = path.relative_to(config.rootpath).as_posix()
    except ValueError:
        rel = None
    patterns = config.getini("chaos_scenarios")
    if rel is not None and any(fnmatch.fnmatch(rel, p) for p in patterns):
        return True
    config.stash.setdefault(SKIPPED_KEY, []).append(path)
    return False


def skipped_note(config: pytest.Config, collected: int) -> str | None:
    """When a session collected no scenario but walked past YAML files, say why and what to do."""
    skipped = config.stash.get(SKIPPED_KEY, [])
    if collected or not skipped:
        return None
    shown = ", ".join(_display(p, config) for p in skipped[:3])
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    globs = ", ".join(config.getini("chaos_scenarios"))
    return (
        f"shakeout: {len(skipped)} YAML file(s) were not collected as scenarios ({shown}{more}): "
        f"a file found in a directory is a scenario only when its path from the rootdir matches "
        f"a chaos_scenarios glob ({globs}); name the file on the command line, or add a glob to "
        "the chaos_scenarios ini key"
    )


def exact_selection(config: pytest.Config, items: list[pytest.Item]) -> list[pytest.Item]:
    """The scenario variants selected only because a ``file.yaml::name`` argument names their
    base item (pytest also matches ``name[...]`` for a bare name): a base item's node id selects
    that one item, as a reproduce command promises."""
    named = named_arguments(config)
    drop: list[pytest.Item] = []
    for item in items:
        if not isinstance(item, ScenarioItem) or "[" not in item.name:
            continue
        path = item.path.resolve()
        reasons = [parts for p, parts in named if p == path or p in path.parents]
        base = item.name.split("[", 1)[0]
        exact = any(parts in ((), (item.name,)) for parts in reasons)
        if not exact and (base,) in reasons:
            drop.append(item)
    return drop


NOT_A_SCENARIO = (
    "{path} is not a shakeout scenario file: it has no {missing} key; a scenario needs at least "
    "'name', 'description', 'input' and 'model' (`shakeout init` writes a template). A YAML file "
    "named on the command line is always read as a scenario: leave this one out of the command, "
    "or, if it is found in a directory, narrow the chaos_scenarios globs"
)


class ScenarioInvalid(Exception):
    """A scenario file cannot be loaded; carries the loader's located message."""


class HarnessError(Exception):
    """The item's verdict is ERROR: the scenario or the harness, not the agent."""


class ScenarioFailed(Exception):
    """The item's verdict is FAIL: the agent broke a rule."""


_UNPREPARED_KEY = pytest.StashKey[list["ScenarioFile"]]()
"""The scenario files made but not collected yet whose probes the workers have not shared out."""


class ScenarioFile(pytest.File):
    """A YAML scenario file: yields one item per variant (base, fault cells, crash cells)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: Scenario | ScenarioError | None = None
        self.config.stash.setdefault(_UNPREPARED_KEY, []).append(self)

    def _scenario(self) -> Scenario:
        if self._loaded is None:
            try:
                self._loaded = load_scenario(self.path)
            except ScenarioError as exc:
                self._loaded = exc
        if isinstance(self._loaded, ScenarioError):
            raise self._loaded
        return self._loaded

    def _prepare_probes(self) -> None:
        """Under xdist, before the first of the files made so far is collected: hand their
        probe jobs to the probe cache, which runs this worker's share of them."""
        unprepared = self.config.stash.get(_UNPREPARED_KEY, [])
        if self not in unprepared:
            return
        batch = list(unprepared)
        unprepared.clear()
        cache = self.config.stash[PROBES_KEY]
        if cache.directory is None:
            return
        jobs = (job for f in batch if (job := f._probe_job_if_any()) is not None)
        cache.prepare(jobs)

    def _probe_job_if_any(self) -> ProbeJob | None:
        try:
            scenario = self._scenario()
        except ScenarioError:
            return None  # its collection reports it
        if scenario.matrix is None and scenario.crash_matrix is None:
            return None
        settings = ChaosSettings.resolve(self.config)
        try:
            return self._probe_job(scenario, settings, scenario.effective_seed(settings.seed))
        except AgentLoadError:
            return None  # its collection reports it

    def collect(self) -> Iterator[pytest.Item]:
        self._prepare_probes()
        try:
            scenario = self._scenario()
        except ScenarioError as exc:
            problem = str(exc).replace(str(self.path), _display(self.path, self.config))
            missing = [
                i.field
                for i in exc.issues
                if i.field in ("name", "input") and "required" in i.message.lower()
            ]
            if len(missing) == 2:  # neither name nor input: some other YAML file
                shown = _display(self.path, self.config)
                problem = NOT_A_SCENARIO.format(path=shown, missing=" and ".join(missing))
            yield InvalidScenarioItem.from_parent(self, name=self.path.stem, problem=problem)
            return
        settings = ChaosSettings.resolve(self.config)
        seed = scenario.effective_seed(settings.seed)
        found: Probe | None = None
        if scenario.matrix is not None or scenario.crash_matrix is not None:
            try:
                found = self._probe(scenario, settings, seed)
                base = judge(base_variant(scenario), found.record, "")
                if base.verdict != "pass":
                    found.failure = "; ".join(f"{v.name}: {v.reason}" for v in base.failures())
            except Exception as exc:  # reported on the base item, never a collection crash
                why = str(exc) if isinstance(exc, ProbeFailed) else f"{type(exc).__name__}: {exc}"
                yield InvalidScenarioItem.from_parent(
                    self,
                    name=scenario.name,
                    problem=(
                        f"{self.path}: the fault-free probe run that aims the matrix failed: {why}"
                    ),
                )
                return
        try:
            tuning = self.config.stash[OUTCOMES_KEY]
            variants = list(expand(scenario, found, seed, tuning))
        except Exception as exc:  # one file's trouble is its ERROR item, never a session crash
            yield InvalidScenarioItem.from_parent(
                self,
                name=scenario.name,
                problem=f"{self.path}: the scenario cannot be expanded into variants: "
                f"{type(exc).__name__}: {exc}",
            )
            return
        for variant in variants:
            name = scenario.name if variant.label == "base" else f"{scenario.name}[{variant.label}]"
            yield ScenarioItem.from_parent(self, name=name, variant=variant)

    def _probe(self, scenario: Scenario, settings: ChaosSettings, seed: int) -> Probe:
        job = self._probe_job(scenario, settings, seed)
        # A copy of the probe: collection writes its failure on it, and the cache keeps it.
        return copy.copy(self.config.stash[PROBES_KEY].obtain(job))

    def _probe_job(self, scenario: Scenario, settings: ChaosSettings, seed: int) -> ProbeJob:
        factory = scenario.agent or settings.agent
        if not factory:
            raise AgentLoadError(_NO_AGENT)
        wall = scenario.expect.budget.wall_s or settings.wall_s
        config = self.config

        def run() -> Probe:
            adapter = adapter_cache(config).get(factory, endpoints_of(scenario))
            return probe(scenario, adapter, seed=seed, wall_s=wall, config=settings.config)

        key = probe_key(
            scenario.model_dump_json(warnings=False), factory, seed, wall, settings.config
        )
        return ProbeJob(key, wall, run)


def _display(path: Path, config: pytest.Config) -> str:
    """The path as users typed it: relative to the rootdir when inside it."""
    try:
        return path.relative_to(config.rootpath).as_posix()
    except ValueError:
        return str(path)


def located_failure(item: pytest.Item, excinfo: pytest.ExceptionInfo[BaseException]) -> str | None:
    """The plain-text failure of a scenario item (no traceback), or None for other errors."""
    if isinstance(excinfo.value, ScenarioInvalid):
        return f"invalid scenario file:\n{excinfo.value}"
    if isinstance(excinfo.value, HarnessError | ScenarioFailed):
        return str(excinfo.value)
    return None


_NO_AGENT = (
    "no agent to run this scenario: set the chaos_agent ini key (module:factory), pass "
    "--chaos-agent, or give the scenario an 'agent' field"
)


class InvalidScenarioItem(pytest.Item):
    """Stands for a scenario file that cannot be loaded: reported as an ERROR with the reason."""

    def __init__(self, *, problem: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problem = problem

    def setup(self) -> None:
        raise ScenarioInvalid(self.problem)

    def runtest(self) -> None:  # pragma: no cover - setup always raises
        raise ScenarioInvalid(self.problem)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioInvalid):
            return f"invalid scenario file:\n{excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario file {self.path.name} (invalid)"


def _unrunnable(variant: Variant, seed: int) -> RunRecord:
    """The record of a cell that cannot run as asked: its reason as the harness error."""
    return RunRecord(
        scenario=variant.scenario.name,
        variant=variant.label,
        seed=seed,
        faults=variant.faults,
        exchanges=(),
        firings=(),
        effects=(),
        outcomes=(),
        harness_error=variant.error,
    )


class ScenarioItem(pytest.Item):
    """One scenario variant: run in setup, judged, ERROR raised in setup and FAIL in call.

    Its report entry rides on the teardown report only: pytest makes that report in every
    outcome (passed, failed in call, ERROR in setup), and it is the one JUnit XML reads the
    properties of. One report carrying it, not all three, is one serialization, one masking
    pass and one transfer to the xdist controller per item.
    """

    def __init__(self, *, variant: Variant, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.variant = variant
        self.result: RunResult | None = None
        self.entry: dict[str, Any] | None = None
        self._input_run: tuple[AgentAdapter, int, float, Any] | None = None
        self.add_marker(pytest.mark.chaos)
        for tag in variant.scenario.tags:
            self.extra_keyword_matches.add(tag)

    def setup(self) -> None:
        scenario = self.variant.scenario
        settings = ChaosSettings.resolve(self.config, self.get_closest_marker("chaos"))
        seed = scenario.effective_seed(settings.seed)
        factory = scenario.agent or settings.agent
        if not factory:
            raise HarnessError(_NO_AGENT)
        try:
            adapter = adapter_cache(self.config).get(factory, endpoints_of(scenario))
        except AgentLoadError as exc:
            raise HarnessError(str(exc)) from None
        wall = scenario.expect.budget.wall_s or settings.wall_s
        if self.variant.kind == "input":
            self._input_run = (adapter, seed, wall, settings.config)
            return
        if self.variant.error is not None:
            record = _unrunnable(self.variant, seed)
        elif self.variant.kind == "load":
            record = run_load(
                scenario,
                adapter,
                seed=seed,
                wall_s=wall,
                config=settings.config,
                variant=self.variant.label,
            )
        else:
            record = run_variant(
                self.variant, adapter, seed=seed, wall_s=wall, config=settings.config
            )
        self.result = judge(self.variant, record, reproduce_command(self.nodeid, seed))
        self.entry = report_item(self.nodeid, self.result).model_dump(mode="json")
        if self.result.verdict == "error":
            raise HarnessError(self.result.explain())

    def runtest(self) -> None:
        if self.variant.kind == "input":
            self._run_inputs()
            return
        assert self.result is not None
        if self.result.verdict == "fail":
            raise ScenarioFailed(self.result.explain())

    def teardown(self) -> None:
        # The record (every exchange, bodies included) has served its purpose once the report
        # entry is made: drop it, so a session's memory does not grow with its items.
        self.result = None
        self._input_run = None
        # The teardown report, made next, carries the entry; pytest_runtest_makereport takes
        # it off the item again once that report holds its copy.
        if self.entry is not None:
            self.user_properties.append((PROPERTY, self.entry))
            self.entry = None

    def _run_inputs(self) -> None:
        """Search the input family with Hypothesis; a failing payload is shrunk, then reported."""
        # Imported here, not at module level: only input items search, and importing Hypothesis
        # costs every pytest process (each xdist worker) a noticeable share of its start-up.
        import hypothesis

        from faults.inputs import INPUT_STRATEGIES

        assert self._input_run is not None, "setup() prepares the input search"
        adapter, seed, wall, config = self._input_run
        variant = self.variant
        strategy = INPUT_STRATEGIES[variant.input_family or ""](variant.scenario.input)
        reproduce = reproduce_command(self.nodeid, seed)
        results: list[RunResult] = []

        def one(payload: Any) -> None:
            run = replace(variant, payload=payload)
            record = run_variant(run, adapter, seed=seed, wall_s=wall, config=config)
            result = judge(run, record, reproduce)
            results.append(result)
            if result.verdict != "pass":
                raise ScenarioFailed(f"{result.explain()}\n  input payload: {payload!r}")

        search = hypothesis.seed(seed)(
            hypothesis.settings(
                max_examples=variant.examples,
                deadline=None,
                database=None,
                derandomize=False,
                suppress_health_check=list(hypothesis.HealthCheck),
                phases=[hypothesis.Phase.generate, hypothesis.Phase.shrink],
            )(hypothesis.given(strategy)(one))
        )
        try:
            search()
        finally:
            if results:
                rejected = sum(
                    1
                    for r in results
                    if r.record.final is not None and r.record.final.category == "input"
                )
                searched = CheckOutcome(
                    name="input_search",
                    passed=True,
                    reason=f"{len(results)} generated payload(s), {rejected} rejected at intake",
                )
                item = report_item(
                    self.nodeid,
                    results[-1],
                    verdict="fail" if results[-1].verdict != "pass" else "pass",
                    more_checks=(searched,),
                    # The item ran every generated payload: its run time is all of their runs,
                    # not the last one's (Hypothesis's own generating and shrinking is not).
                    duration_s=sum(r.record.duration_s for r in results),
                )
                self.entry = item.model_dump(mode="json")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        # The terminal and JUnit show this text: secrets in URLs, bodies or reasons are masked.
        if isinstance(excinfo.value, HarnessError | ScenarioFailed):
            return self.config.stash[REDACTOR_KEY].text(str(excinfo.value))
        return self.config.stash[REDACTOR_KEY].text(str(super().repr_failure(excinfo)))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario: {self.name}"
