"""shakeout's pytest plugin: the ``chaos`` options, ini keys, marker, fixtures and session seed.

The package binds the path to pytest: scenario files become items (``collect``), each item's
variant is run and judged (``session``), the fault-free probes are shared by the xdist workers
(``probe_cache``), and the settings and stash keys are read in one place (``settings``). This
``__init__`` is the ``pytest11`` entry point (``harness.plugin``) and the only module that
imports all of them. May import every stage before it (scenario, world, run, verdict, load,
report); nothing below it imports this package except ``harness.cli``.

Precedence (stated and applied in :mod:`harness.plugin.settings`, ``ChaosSettings.resolve``):
**command line > ``chaos`` marker > ``chaos_config`` fixture > ini key > built-in default.**
"""

from __future__ import annotations

import gc
import hashlib
import random
from collections.abc import Callable, Generator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pytest

from harness.output import OutputError, check_file
from harness.plugin.probe_cache import PROBES_KEY, ProbeCache
from harness.plugin.settings import (
    DEFAULT_WALL_S,
    OUTCOMES_KEY,
    REDACTOR_KEY,
    SEED_KEY,
    ChaosSettings,
    adapter_cache,
)
from harness.redact import RedactionConfigError, Redactor, redactor_for
from harness.report.model import nodeids_digest
from harness.report.model.collector import collector_paused
from harness.report.reporter import SELECTION_KEY, SHARD_KEY, ReportPlugin
from harness.report.spool import PROPERTY, is_scenario_nodeid

if TYPE_CHECKING:
    # What runs a scenario (the runner, the world, the verdicts, the scenario models) is
    # imported where a scenario is collected or run, never at start-up: an xdist controller
    # only reports, and every worker it starts waits for its start-up.
    from harness.adapter import AgentAdapter
    from harness.plugin.session import RunResult

DEFAULT_SCENARIO_GLOBS = ("scenarios/*.yaml", "scenarios/**/*.yaml")


# --------------------------------------------------------------------------- options and setup


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos", "shakeout: chaos harness for agent workflows")
    group.addoption(
        "--chaos-seed",
        type=int,
        default=None,
        metavar="N",
        help="seed for every random choice (default: ini chaos_seed, else random)",
    )
    group.addoption(
        "--chaos-agent",
        default=None,
        metavar="MODULE:FACTORY",
        help="adapter factory for scenarios that name none (default: ini chaos_agent)",
    )
    group.addoption(
        "--chaos-wall-s",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"real-time limit per run (default: ini chaos_wall_s, else {DEFAULT_WALL_S:g})",
    )
    group.addoption(
        "--chaos-report",
        default=None,
        metavar="PATH",
        help="write the JSON fault-injection report here",
    )
    group.addoption(
        "--chaos-markdown",
        default=None,
        metavar="PATH",
        help="write a Markdown summary here (also appended to $GITHUB_STEP_SUMMARY)",
    )
    group.addoption(
        "--chaos-html", default=None, metavar="PATH", help="write a self-contained HTML report here"
    )
    group.addoption(
        "--chaos-policy",
        default=None,
        metavar="FILE",
        help="gate policy for the terminal summary (default: [tool.shakeout.gate])",
    )
    group.addoption(
        "--chaos-shard",
        default=None,
        metavar="K/N",
        help="run only shard K of N (a deterministic 1/N of the items)",
    )
    group.addoption(
        "--chaos-session-id",
        default=None,
        metavar="ID",
        help="the session id stamped in the JSON report, for `shakeout gate --session ID` "
        "to tell this run's report from a stale one (default: a random UUID)",
    )
    parser.addini("chaos_agent", "adapter factory, module:callable", default="")
    parser.addini("chaos_seed", "session seed (default: random, printed in the header)", default="")
    parser.addini("chaos_wall_s", "real-time limit per run in seconds", default="")
    parser.addini(
        "chaos_redact_query",
        "more URL query parameter names whose values are masked in every output "
        "(also [tool.shakeout] redact_query)",
        type="linelist",
        default=[],
    )
    parser.addini(
        "chaos_redact_fields",
        "more JSON field / header names whose values are masked in every output "
        "(also [tool.shakeout] redact_fields)",
        type="linelist",
        default=[],
    )
    parser.addini(
        "chaos_scenarios",
        "glob patterns of scenario files, relative to rootdir",
        type="linelist",
        default=list(DEFAULT_SCENARIO_GLOBS),
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "chaos(seed=None, agent=None, wall_s=None, config=None): shakeout settings for a test "
        "using the chaos_run fixture (command line > marker > fixture > ini).",
    )
    config.stash[SEED_KEY] = _session_seed(config)
    config.stash[PROBES_KEY] = probes = ProbeCache.for_config(config)
    config.pluginmanager.register(probes, "shakeout-probe-cache")
    shard = config.getoption("chaos_shard")
    if shard is not None:
        k, n = _parse_shard(shard)
        config.stash[SHARD_KEY] = f"{k}/{n}"
    config.stash[REDACTOR_KEY] = redactor = _redactor(config)
    config.stash[OUTCOMES_KEY] = _outcome_rules(config)
    outputs = {
        "JSON report": config.getoption("chaos_report"),
        "Markdown summary": config.getoption("chaos_markdown"),
        "HTML report": config.getoption("chaos_html"),
    }
    if not hasattr(config, "workerinput"):
        _check_outputs(outputs)
    session_id = config.getoption("chaos_session_id")
    if session_id is not None and not (0 < len(session_id) <= 200 and session_id.isprintable()):
        raise pytest.UsageError(
            f"--chaos-session-id must be 1 to 200 printable characters, got {session_id!r}; "
            "use e.g. a UUID"
        )
    config.pluginmanager.register(
        ReportPlugin(
            config,
            seed=config.stash[SEED_KEY],
            json_path=outputs["JSON report"],
            markdown_path=outputs["Markdown summary"],
            html_path=outputs["HTML report"],
            policy_path=config.getoption("chaos_policy"),
            session_id=session_id,
            redactor=redactor,
        ),
        "shakeout-report",
    )
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(PropertyReleaser(), "shakeout-release-properties")


def _redactor(config: pytest.Config) -> Redactor:
    """Built-in lists + ``[tool.shakeout]`` redact_* + ``chaos_redact_*`` ini keys + env values."""
    try:
        return redactor_for(
            config.rootpath / "pyproject.toml",
            query=config.getini("chaos_redact_query"),
            fields=config.getini("chaos_redact_fields"),
        )
    except RedactionConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _outcome_rules(config: pytest.Config) -> dict[str, Any]:
    """``[tool.shakeout.outcomes]`` of the rootdir's pyproject.toml: per fault, the outcomes its
    cells accept, with a reason."""
    from harness.scenario.expect import OutcomeConfigError, project_outcomes

    try:
        return dict(project_outcomes(config.rootpath / "pyproject.toml"))
    except OutcomeConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _check_outputs(outputs: Mapping[str, str | None]) -> None:
    # Before any item runs: a long session must not end by failing to write its report. The
    # files are checked again when written (a link may be planted in between).
    for what, path in outputs.items():
        if path is not None:
            try:
                check_file(path, what)
            except OutputError as exc:
                raise pytest.UsageError(str(exc)) from None


def _session_seed(config: pytest.Config) -> int:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "chaos_seed" in workerinput:
        return int(workerinput["chaos_seed"])
    cli = config.getoption("chaos_seed")
    if cli is not None:
        return int(cli)
    ini = config.getini("chaos_seed")
    if ini:
        try:
            return int(ini)
        except ValueError:
            raise pytest.UsageError(f"ini key chaos_seed must be an integer, got {ini!r}") from None
    return random.SystemRandom().randrange(2**31)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker gets the controller's seed, so -n 2 equals -n 0."""
    node.workerinput["chaos_seed"] = node.config.stash[SEED_KEY]


def pytest_report_header(config: pytest.Config) -> str:
    agent = config.getoption("chaos_agent") or config.getini("chaos_agent") or "(none set)"
    seed = config.stash[SEED_KEY]
    return f"shakeout: seed {seed} (rerun with --chaos-seed={seed}), agent {agent}"


# --------------------------------------------------------------------------- collection


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    from harness.plugin.collect import ScenarioFile, is_scenario_file

    if not is_scenario_file(parent.config, file_path):
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


def _select_exactly(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`file.yaml::name` selects the base item alone (pytest would add every `name[...]`)."""
    from harness.plugin.collect import exact_selection

    drop = exact_selection(config, items)
    if drop:
        dropped = set(map(id, drop))
        config.hook.pytest_deselected(items=drop)
        items[:] = [i for i in items if id(i) not in dropped]


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    from harness.plugin.collect import ScenarioItem, skipped_note

    note = skipped_note(config, sum(isinstance(i, ScenarioItem) for i in items))
    return [note] if note else []


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        k_text, n_text = text.split("/", 1)
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise pytest.UsageError(
            f"--chaos-shard expects K/N with integers, e.g. 1/4; got {text!r}"
        ) from None
    if not 1 <= k <= n:
        raise pytest.UsageError(f"--chaos-shard {text}: K must be between 1 and N")
    return k, n


def shard_of(nodeid: str, n: int) -> int:
    """The 1-based shard a node id belongs to (stable across machines and Python runs)."""
    digest = hashlib.sha256(nodeid.encode()).digest()
    return int.from_bytes(digest[:8], "big") % n + 1


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Generator[None, object, object]:
    # Collection is where a process builds what it keeps: scenario files parsed into items and
    # variants, and the agent's modules imported by the probe runs (the openai and anthropic SDKs
    # are ~300,000 objects, mostly pydantic classes). While they pile up, CPython's cyclic
    # collector runs a full pass each time the survivors grow by a quarter, over everything
    # built so far: six passes, 1.2-1.5 s, in each xdist worker of the scenario suite. Almost
    # nothing of it is cyclic garbage (those passes freed 20-180 objects each), so the collector
    # waits until collection is over; then it runs as before (and a worker freezes what was
    # built, see pytest_collection_finish).
    with collector_paused():
        return (yield)


def pytest_collection_finish(session: pytest.Session) -> None:
    # In an xdist worker (a process that exists only for this session), what collection built
    # (items, scenarios, variants, plugin and SDK modules) lives until the process exits: move
    # it out of the cyclic collector's reach (CPython's gc.freeze), so the collector's full
    # passes during the run and the one at exit scan only what the runs create. Measured on the
    # scenario suite: a worker's last test to its exit 0.7-1.3 s -> 0.15-0.45 s. Never in a
    # process that outlives the session (-n 0, pytester's in-process runs): what it froze and
    # later dropped in a cycle would never be freed.
    if hasattr(session.config, "workerinput") and any(
        is_scenario_nodeid(item.nodeid) for item in session.items
    ):
        gc.collect()
        gc.freeze()


# trylast: the shard is taken from what -k, -m and other plugins left, so every shard of one
# session splits the same selection (whose digest the report records for `shakeout merge`).
@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _select_exactly(config, items)
    shard = config.getoption("chaos_shard")
    if shard is None:
        return
    selected = [i.nodeid for i in items if is_scenario_nodeid(i.nodeid)]
    config.stash[SELECTION_KEY] = (len(set(selected)), nodeids_digest(set(selected)))
    k, n = _parse_shard(shard)
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (keep if shard_of(item.nodeid, n) == k else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Scenario items show their verdict text, never a traceback, in every phase.

    pytest asks ``repr_failure`` only for the call phase; an ERROR is raised from setup, so its
    text is put on the report here. Once the teardown report is made, the report entry leaves
    the item's ``user_properties`` (that report keeps its copy).
    """
    report = yield
    if call.when == "teardown" and item.user_properties:
        # The teardown report holds its own copy of a scenario item's entry now: off the item,
        # which pytest keeps to the session's end.
        item.user_properties[:] = [p for p in item.user_properties if p[0] != PROPERTY]
    if call.excinfo is not None:
        from harness.plugin.collect import located_failure

        text = located_failure(item, call.excinfo)
        if text is not None:
            report.longrepr = item.config.stash[REDACTOR_KEY].text(text)
    return report


NO_KEYWORDS: Mapping[str, Any] = MappingProxyType({})
"""The keyword map of a released scenario report (read-only, shared)."""


class PropertyReleaser:
    """Frees what a scenario item's reports hold once every plugin has read them.

    pytest keeps every report until the session ends (three per item), so without this a
    session's memory grows with each item's report entry and keyword map. By trylast, the report
    plugin and JUnit XML have read the ``shakeout*`` properties, and the terminal reporter has
    counted the report; the keyword map (every keyword of the item, copied into each of its
    reports: about a fifth of what a finished item kept, measured with tracemalloc) is emptied
    for scenario items, except on skipped reports, whose keywords the terminal's summary of
    skips reads at the end. Registered only where reports end (not on xdist workers, which
    still send them on).
    """

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.user_properties:
            # In place: a new list per report would cost what the entry's removal saves.
            report.user_properties[:] = [
                p for p in report.user_properties if not str(p[0]).startswith("shakeout")
            ]
        if report.keywords and not report.skipped and is_scenario_nodeid(report.nodeid):
            # One read-only empty map shared by every released report, not a dict each.
            report.keywords = NO_KEYWORDS


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def chaos_config() -> dict[str, Any]:
    """Override in a conftest to set shakeout settings for tests in its scope.

    Keys: ``seed``, ``agent``, ``wall_s``, ``config``. The command line and the ``chaos`` marker
    win over this fixture; this fixture wins over ini keys.
    """
    return {}


@pytest.fixture
def chaos_settings(request: pytest.FixtureRequest, chaos_config: dict[str, Any]) -> ChaosSettings:
    """The settings for this test after precedence (command line > marker > fixture > ini)."""
    return ChaosSettings.resolve(
        request.config, request.node.get_closest_marker("chaos"), chaos_config
    )


@pytest.fixture
def chaos_run(
    request: pytest.FixtureRequest, chaos_settings: ChaosSettings, tmp_path: Path
) -> Callable[..., RunResult]:
    """Run a scenario programmatically and get its record, verdicts and overall verdict.

    Call it with a scenario file path, a mapping in the scenario file format, or a loaded
    ``Scenario``; ``faults=`` adds faults (instances or keys) and ``adapter=`` uses a given
    adapter instead of the configured factory::

        def test_refund_survives_503(chaos_run):
            result = chaos_run("scenarios/refund_happy.yaml", faults=["tool_http_503"])
            assert result.verdict == "pass", result.explain()
    """
    from harness.plugin.session import run_scenario

    cache = adapter_cache(request.config)

    def run(
        scenario: Any,
        *,
        faults: tuple[Any, ...] | list[Any] = (),
        adapter: AgentAdapter | None = None,
        variant: str = "fixture",
    ) -> RunResult:
        return run_scenario(
            scenario,
            settings=chaos_settings,
            cache=cache,
            extra_faults=tuple(faults),
            adapter=adapter,
            state_root=tmp_path,
            variant=variant,
        )

    return run
