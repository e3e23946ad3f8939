"""The layout rules: DESIGN.md's dependency rules, no import circles, no module over 600 lines,
the hard-kill layers, and one stated public surface.

The checks are plain functions (:func:`import_graph`, :func:`circles`, :func:`oversized`,
:func:`layer_breaches`, :func:`readme_imports`) run here over the real packages and, in the
tests at the end, over small broken packages written to ``tmp_path`` to show each one fails.
"""

from __future__ import annotations

import ast
import graphlib
import importlib
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "faults", "reference_agent")
PYTEST_FACING = {
    "harness/plugin/__init__.py",
    "harness/plugin/collect.py",
    "harness/plugin/settings.py",
    "harness/plugin/probe_cache.py",
    "harness/report/reporter.py",
}

MAX_LINES = 600
"""A module longer than this holds more than one thing: split it along what it owns."""

OVERSIZED: dict[str, int] = {
    # Modules allowed over the limit, each with the line count it may not exceed. Empty since
    # issue 15 split the last one (harness/world/intercept.py); it stays empty: split a module
    # that grows past 600 lines instead of listing it.
}

KNOWN_CIRCLES: set[frozenset[str]] = set()
"""Import circles tolerated for now; empty since issue 15 broke the last (``plugin`` <->
``collect``: both now read the settings and stash keys from ``harness.plugin.settings``). A new
circle fails the test: break it, do not list it."""


HARDKILL_LAYERS: dict[str, set[str]] = {
    # module of harness.run.hardkill -> the modules of the package it may import (its docstring says
    # why); the parent side (processes, proxy) and the child side (child) never meet.
    "errors": set(),
    "messages": set(),
    "processes": {"errors", "messages"},
    "proxy": {"errors", "messages", "processes"},
    "child": {"errors", "messages", "processes"},
    "__main__": {"child"},
    "__init__": {"errors", "proxy"},
}

SUBPACKAGE_LAYERS: dict[str, dict[str, set[str]]] = {
    "harness.cli": {
        # the commands users type; nothing else in the harness imports this package
        "doctor": set(),
        "init": set(),
        "explore": set(),
        "explored": {"explore"},
        "__main__": set(),
        "__init__": {"doctor", "explored", "init"},
    },
    # The split report page, load scenario and report model: each module's docstring says what
    # it owns and which of its siblings it may import; only the package's __init__ imports all.
    "harness.report.html": {
        "assets": set(),
        "markup": set(),
        "index": set(),
        "heatmaps": {"index", "markup"},
        "figures": {"index", "markup"},
        "timeline": {"markup"},
        "items": {"index", "markup", "timeline"},
        "page": {"assets", "figures", "heatmaps", "index", "items", "markup"},
        "__init__": {"heatmaps", "index", "items", "markup", "page", "timeline"},
    },
    "harness.load": {
        "record": set(),
        "evidence": {"record"},
        "driver": {"record"},
        "checks": {"evidence", "record"},
        "__init__": {"checks", "driver", "evidence", "record"},
    },
    "harness.scenario": {
        "base": set(),
        "script": {"base"},
        "fault_specs": {"base"},
        "expect": {"base", "fault_specs"},
        "spec": {"base", "expect", "fault_specs", "script"},
        "reading": {"base"},
        "loader": {"base", "reading", "spec"},
        "variant": {"base", "expect", "spec"},
        "injection": {"expect", "spec", "variant"},
        "matrix": {"expect", "fault_specs", "injection", "spec", "variant"},
        "__init__": set(),
    },
    # The stages along the path, each split by what it owns. A nested subpackage (``wire``,
    # ``hardkill``, ``html``, ``model``) is one row: its modules' imports of each other are its
    # own business (``hardkill`` has its own table above).
    "harness.world": {
        "clock": set(),
        "netguard": set(),
        "bridge": set(),
        "intercept": {"bridge", "netguard"},
        "wire": set(),
        "services": set(),
        "routing": {"bridge"},
        "model": {"bridge", "clock", "wire"},
        "world": {"clock", "intercept", "model", "routing", "services"},
        "__init__": set(),
    },
    "harness.run": {
        "agent_factory": set(),
        "driver": set(),
        "hardkill": {"agent_factory", "driver"},
        "runner": {"agent_factory", "driver", "hardkill"},
        "__init__": set(),
    },
    "harness.report": {
        "model": set(),
        "spool": {"model"},
        "gate_policy": {"model"},
        "gate": {"gate_policy", "model"},
        "merge": {"model"},
        "markdown": {"model"},
        "html": {"model"},
        "reporter": {"gate", "gate_policy", "html", "markdown", "model", "spool"},
        "__init__": set(),
    },
    "harness.plugin": {
        "settings": set(),
        "probe_cache": set(),
        "session": {"settings"},
        "collect": {"probe_cache", "session", "settings"},
        "__init__": {"collect", "probe_cache", "session", "settings"},
    },
    "harness.recording": {
        "cassette": set(),
        "recorder": set(),
        "cassette_import": {"cassette"},
        "__init__": set(),
    },
    "harness.verdict": {
        "base": set(),
        "terminal": {"base"},
        "effects": {"base"},
        "recovery": {"base"},
        "attack": {"base", "effects"},
        "suites": {"attack", "base", "effects", "recovery", "terminal"},
        "__init__": set(),
    },
    "harness.report.model": {
        "entries": set(),
        "atomic": set(),
        "collector": set(),
        "summary": {"entries"},
        "document": {"atomic", "collector", "entries", "summary"},
        "writer": {"atomic", "document", "entries", "summary"},
        "reading": {"collector", "document", "entries", "summary"},
        "__init__": {"atomic", "document", "entries", "reading", "summary", "writer"},
    },
}

SUBPACKAGE_REACH: dict[str, set[str]] = {
    # subpackage -> the modules of the harness outside it that it may import (``faults`` is open
    # to all); what is not listed is out of reach, e.g. the scenario never imports the world or
    # the runner, the world never imports the runner, and the checks never import the report or
    # the plugin. Each subpackage's docstring says the same in words.
    "harness.scenario": {"harness.record"},
    "harness.world": {"harness.adapter", "harness.record", "harness.scenario.base"},
    "harness.run": {
        "harness.adapter",
        "harness.record",
        "harness.scenario.expect",
        "harness.scenario.spec",
        "harness.scenario.variant",
        "harness.world.bridge",
        "harness.world.clock",
        "harness.world.intercept",
        "harness.world.model",
        "harness.world.services",
        "harness.world.world",
    },
    "harness.verdict": {
        "harness.adapter",
        "harness.world.model",
        "harness.record",
        "harness.scenario.expect",
    },
    "harness.report": {"harness.output", "harness.redact", "harness.verdict.suites"},
    "harness.recording": {
        "harness.output",
        "harness.project",
        "harness.redact",
        "harness.scenario.base",
        "harness.scenario.loader",
        "harness.scenario.reading",
        "harness.scenario.spec",
        "harness.world.wire",
    },
}

PATH = (
    "harness.scenario",
    "harness.world",
    "harness.run",
    "harness.verdict",
    "harness.load",
    "harness.report",
    "harness.recording",
    "harness.plugin",
    "harness.cli",
)
"""The data path, in order: a stage imports only the stages before it (and the shared modules
``adapter``, ``record``, ``redact``, ``output`` and ``project``, which import no stage)."""

SHARED = (
    "harness.adapter",
    "harness.output",
    "harness.project",
    "harness.record",
    "harness.redact",
)
SHARED_EXEMPT = {"harness"}
"""The public surface (``harness/__init__``) loads names from every stage on first use."""


REFERENCE_AGENT_WORKFLOW = {"workflow", "policy"}
"""The part of the reference agent a team copies and rewrites: the stages and their rules."""

REFERENCE_AGENT_LAYERS: dict[str, set[str]] = {
    # The reference agent: infrastructure (store and lock, queue, approval gate, calls with
    # retries and Idempotency-Keys, model conversation, trace policy) never imports the workflow,
    # the engine or the desk; the workflow imports infrastructure only; the engine carries runs
    # along the workflow; the desk binds it all to a world. Each module's docstring says the same.
    "errors": set(),
    "schemas": set(),
    "store": set(),
    "lock": set(),
    "fakes": set(),
    "settings": {"errors"},
    "gate": {"errors"},
    "contract": {"gate"},
    "queue": {"store"},
    "trace": {"store"},
    "tls": set(),
    "tools": {"errors", "schemas", "tls"},
    "replies": {"errors", "tools"},
    "model": {"errors", "replies", "settings", "tls"},
    "approvals": {"contract", "gate", "settings", "store"},
    "calls": {"contract", "errors", "gate", "model", "schemas", "settings", "store", "tools"},
    "policy": {"errors", "schemas"},
    "workflow": {"calls", "errors", "gate", "model", "policy", "schemas", "store"},
    "engine": {
        "approvals",
        "calls",
        "contract",
        "errors",
        "gate",
        "queue",
        "schemas",
        "settings",
        "store",
        "trace",
        "workflow",
    },
    "desk": {
        "calls",
        "contract",
        "engine",
        "lock",
        "model",
        "queue",
        "settings",
        "store",
        "tools",
        "trace",
        "workflow",
    },
    "adapter": {"contract", "desk", "settings", "trace"},
    "__main__": {"desk", "fakes", "settings"},
    "__init__": {"adapter", "contract", "desk", "errors", "gate", "queue", "settings", "trace"},
}


# --------------------------------------------------------------------------- the checks


@dataclass(frozen=True)
class Edge:
    """One import of a module by another: where it is, and whether it runs at import time."""

    source: str
    target: str
    line: int
    deferred: bool

    def __str__(self) -> str:
        how = " (deferred: inside a function)" if self.deferred else ""
        return f"{self.source} -> {self.target} at line {self.line}{how}"


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement with whether it is deferred (in a function body), skipping
    ``if TYPE_CHECKING:`` blocks: those never run."""

    def walk(node: ast.AST, deferred: bool) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool]]:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from walk(child, deferred)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, deferred
            return
        inner = deferred or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            yield from walk(child, inner)

    yield from walk(tree, False)


def import_graph(root: Path, packages: Iterable[str]) -> dict[str, list[Edge]]:
    """The packages' modules and, for each, its imports of the packages' modules.

    Module-level and deferred (function-level) imports both count: a deferred import hides a
    circle from the interpreter, not from the reader. ``if TYPE_CHECKING:`` imports do not.
    Importing a package's submodule is an edge to that submodule, not to the package.
    """
    paths = {
        module_name(root, p): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))
    }

    def resolve(name: str) -> str | None:
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, list[Edge]] = {}
    for name, path in paths.items():
        edges: list[Edge] = []
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node, deferred in _imports(ast.parse(path.read_text(), str(path))):
            targets: list[str | None] = []
            if isinstance(node, ast.Import):
                targets = [resolve(a.name) for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in paths else resolve(base))
            for target in dict.fromkeys(targets):  # one edge per imported module and line
                if target is not None and target != name:
                    edges.append(Edge(name, target, node.lineno, deferred))
        graph[name] = edges
    return graph


def circles(graph: Mapping[str, Iterable[Edge]]) -> list[frozenset[str]]:
    """The import circles: strongly connected groups of two or more modules (Tarjan)."""
    succ = {m: sorted({e.target for e in edges if e.target in graph}) for m, edges in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group: set[str] = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(frozenset(group))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(succ) + 100))
    try:
        for v in sorted(succ):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(found, key=sorted)


def describe(circle: frozenset[str], graph: Mapping[str, Iterable[Edge]]) -> str:
    edges = [e for m in sorted(circle) for e in graph[m] if e.target in circle]
    return f"import circle {' <-> '.join(sorted(circle))}:\n" + "\n".join(f"  {e}" for e in edges)


def oversized(root: Path, packages: Iterable[str], allowed: Mapping[str, int]) -> list[str]:
    """What breaks the line rule: a module over the limit and not listed, a listed one that
    grew, a listed one now under the limit (its entry is stale), a listed one that is gone."""
    problems: list[str] = []
    seen: set[str] = set()
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            lines = len(path.read_text().splitlines())
            cap = allowed.get(rel)
            seen.add(rel)
            if cap is None and lines > MAX_LINES:
                problems.append(
                    f"{rel} has {lines} lines, over the {MAX_LINES}-line limit: split it into "
                    "modules that each own one thing (see the Layout section of the README)"
                )
            elif cap is not None and lines > cap:
                problems.append(
                    f"{rel} grew to {lines} lines; it may not exceed {cap} (tests/test_layout.py "
                    "OVERSIZED): move what you added, or more, into a module of its own"
                )
            elif cap is not None and lines <= MAX_LINES:
                problems.append(
                    f"{rel} is down to {lines} lines, within the limit: delete its entry from "
                    "OVERSIZED in tests/test_layout.py so that it stays there"
                )
    for rel in sorted(set(allowed) - seen):
        problems.append(f"{rel} is listed in OVERSIZED but does not exist: delete its entry")
    return problems


def layer_breaches(
    graph: Mapping[str, Iterable[Edge]], package: str, layers: Mapping[str, set[str]]
) -> list[str]:
    """Imports between a package's modules that its layer table does not allow."""
    problems: list[str] = []
    for module, edges in graph.items():
        if module != package and not module.startswith(package + "."):
            continue
        short = module.removeprefix(package).lstrip(".").split(".")[0] or "__init__"
        for edge in edges:
            if not edge.target.startswith(package + "."):
                continue
            target = edge.target.removeprefix(package + ".").split(".")[0]
            if target == short and module != package:
                continue  # inside one nested subpackage: that package's own business
            if target not in layers.get(short, set()):
                problems.append(f"{edge}: {short} may import only {sorted(layers.get(short, ()))}")
    return problems


def reach_breaches(
    graph: Mapping[str, Iterable[Edge]], package: str, reach: set[str], home: str
) -> list[str]:
    """Imports by a subpackage's modules of ``home``'s modules outside it and outside ``reach``."""
    inside = (package, package + ".")
    problems: list[str] = []
    for module, edges in graph.items():
        if not module.startswith(inside) and module != package:
            continue
        for edge in edges:
            target = edge.target
            if target.startswith(inside) or not target.startswith(home + "."):
                continue
            if target not in reach:
                problems.append(f"{edge}: {package} may import only {sorted(reach)} of {home}")
    return problems


def readme_imports(text: str) -> list[str]:
    """The modules imported by the README's Python code blocks (some are sketches, not
    programs, so the import lines are read, not the whole block parsed)."""
    found: list[str] = []
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        for line in block.splitlines():
            match = re.match(r"\s*(?:from\s+([\w.]+)\s+import\b|import\s+([\w.]+))", line)
            if match:
                found.append(match.group(1) or match.group(2))
    return found


def imported(path: Path) -> set[str]:
    """Top-level module names a file imports (anywhere in it, lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


# --------------------------------------------------------------------------- DESIGN.md's rules


@pytest.mark.parametrize("path", files("reference_agent"), ids=lambda p: p.name)
def test_the_reference_agent_is_ordinary_application_code(path: Path) -> None:
    assert not imported(path) & {"harness", "faults", "pytest", "_pytest"}, path


@pytest.mark.parametrize("path", files("harness") + files("faults"), ids=lambda p: p.name)
def test_the_harness_and_faults_never_import_the_reference_agent(path: Path) -> None:
    assert "reference_agent" not in imported(path), path


@pytest.mark.parametrize("path", files("faults"), ids=lambda p: p.name)
def test_faults_never_import_the_harness(path: Path) -> None:
    assert not imported(path) & {"harness", "pytest"}, path


@pytest.mark.parametrize("path", files("harness"), ids=lambda p: p.name)
def test_only_the_pytest_facing_modules_import_pytest(path: Path) -> None:
    if path.relative_to(ROOT).as_posix() not in PYTEST_FACING:
        assert not imported(path) & {"pytest", "_pytest"}, path


# --------------------------------------------------------------------------- circles, sizes


def test_there_is_no_import_circle_but_the_known_ones() -> None:
    graph = import_graph(ROOT, PACKAGES)
    found = circles(graph)
    new = [describe(c, graph) for c in found if c not in KNOWN_CIRCLES]
    assert not new, (
        "\n".join(new) + "\nbreak it: move what both sides need into a lower module, or pass "
        "a callable or value in from the caller"
    )
    gone = [" <-> ".join(sorted(c)) for c in KNOWN_CIRCLES if c not in found]
    assert not gone, f"known circles no longer found: {gone}; delete them from KNOWN_CIRCLES"


def test_no_module_is_over_600_lines_but_the_shrinking_list() -> None:
    problems = oversized(ROOT, PACKAGES, OVERSIZED)
    assert not problems, "\n".join(problems)


def test_the_hard_kill_layers_import_only_downwards() -> None:
    graph = import_graph(ROOT, PACKAGES)
    inside = "harness.run.hardkill."
    modules = {m.removeprefix(inside) for m in graph if m.startswith(inside)}
    assert modules | {"__init__"} == set(HARDKILL_LAYERS), "a new module needs its row in the table"
    problems = layer_breaches(graph, "harness.run.hardkill", HARDKILL_LAYERS)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("package", sorted(SUBPACKAGE_LAYERS))
def test_the_split_subpackages_import_only_what_their_table_allows(package: str) -> None:
    graph = import_graph(ROOT, PACKAGES)
    layers = SUBPACKAGE_LAYERS[package]
    modules = {
        m.removeprefix(package + ".").split(".")[0] for m in graph if m.startswith(package + ".")
    }
    assert modules | {"__init__"} == set(layers), "a new module needs its row in the table"
    problems = layer_breaches(graph, package, layers)
    assert not problems, "\n".join(problems)


def test_nothing_below_the_command_line_imports_it() -> None:
    # harness.cli sits at the end of the data path: the plugin, the world, the checks and the
    # report never reach up into a command
    graph = import_graph(ROOT, PACKAGES)
    up = [
        str(e)
        for m, edges in graph.items()
        if not (m == "harness.cli" or m.startswith("harness.cli."))
        for e in edges
        if e.target == "harness.cli" or e.target.startswith("harness.cli.")
    ]
    assert not up, "\n".join(up)


@pytest.mark.parametrize("package", sorted(SUBPACKAGE_REACH))
def test_the_subpackages_along_the_path_import_only_what_they_may(package: str) -> None:
    graph = import_graph(ROOT, PACKAGES)
    problems = reach_breaches(graph, package, SUBPACKAGE_REACH[package], "harness")
    assert not problems, "\n".join(problems)


def path_breaches(graph: Mapping[str, Iterable[Edge]], path: Sequence[str]) -> list[str]:
    """Imports that run against the data path: a stage importing a later stage, or a shared
    module (outside every stage) importing a stage. ``TYPE_CHECKING`` imports do not count."""

    def stage(module: str) -> int | None:
        for i, pkg in enumerate(path):
            if module == pkg or module.startswith(pkg + "."):
                return i
        return None

    problems: list[str] = []
    for module, edges in graph.items():
        if not module.startswith("harness.") or module in SHARED_EXEMPT:
            continue
        here = stage(module)
        for edge in edges:
            there = stage(edge.target)
            if there is None:
                continue
            if here is None:
                problems.append(f"{edge}: a shared module may import no stage of the path")
            elif there > here:
                problems.append(f"{edge}: {path[here]} comes before {path[there]} on the path")
    return problems


def test_every_stage_imports_only_the_stages_before_it() -> None:
    graph = import_graph(ROOT, PACKAGES)
    stages = {m for m in graph if m.startswith("harness.") and m.count(".") >= 1}
    shared = {m for m in stages if not any(m == p or m.startswith(p + ".") for p in PATH)}
    assert shared == set(SHARED), f"modules outside every stage: {sorted(shared)}"
    problems = path_breaches(graph, PATH)
    assert not problems, "\n".join(problems)


def readme_stages(text: str) -> dict[str, set[str]]:
    """The README Layout block's stages (``scenario/  base script ...``) and the names listed."""
    block = text.split("Inside `harness/`", 1)[1].split("```", 2)[1]
    stages: dict[str, set[str]] = {}
    current = None
    for line in block.splitlines():
        match = re.match(r"(\w+)/\s", line)
        if match:
            current = match.group(1)
            stages[current] = set()
        elif not line.startswith(" "):
            current = None
        if current:
            stages[current] |= set(re.findall(r"\b(\w+)/?(?=\s|$)", line.split("  ", 1)[-1]))
    return stages


def test_the_readme_layout_shows_every_stage_and_its_modules() -> None:
    graph = import_graph(ROOT, PACKAGES)
    listed = readme_stages((ROOT / "README.md").read_text())
    assert list(listed) == [p.removeprefix("harness.") for p in PATH], "stages out of order"
    for pkg in PATH:
        modules = {
            m.removeprefix(pkg + ".").split(".")[0] for m in graph if m.startswith(pkg + ".")
        }
        missing = modules - {"__main__"} - listed[pkg.removeprefix("harness.")]
        assert not missing, f"README's Layout section leaves out {sorted(missing)} of {pkg}"


def test_a_readme_layout_leaving_out_a_module_is_caught() -> None:
    text = (ROOT / "README.md").read_text()
    assert "runner" in readme_stages(text)["run"]
    assert "runner" not in readme_stages(text.replace("hardkill/ runner ", "hardkill/ "))["run"]


def test_a_stage_importing_a_later_one_is_reported(tmp_path: Path) -> None:
    pkg = tmp_path / "harness"
    for sub in ("scenario", "world"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "record.py").write_text("import harness.world.intercept\n")
    (pkg / "scenario" / "spec.py").write_text("from harness.world import intercept\n")
    (pkg / "world" / "intercept.py").write_text("from harness.scenario import spec\n")
    graph = import_graph(tmp_path, ["harness"])
    problems = path_breaches(graph, ("harness.scenario", "harness.world"))
    assert len(problems) == 2, problems
    assert any("harness.scenario comes before harness.world" in p for p in problems)
    assert any("a shared module may import no stage" in p for p in problems)


def unlisted_packages(root: Path, tops: Iterable[str], listed: Iterable[str]) -> list[str]:
    """The packages (directories with an ``__init__.py``) under ``tops`` that a wheel built
    from ``listed`` (pyproject's ``[tool.setuptools] packages``, naming each one) leaves out."""
    found = {
        module_name(root, init)
        for top in tops
        for init in sorted((root / top).rglob("__init__.py"))
    }
    return sorted(found - set(listed))


def test_the_reference_agents_infrastructure_never_imports_its_workflow() -> None:
    graph = import_graph(ROOT, ["reference_agent"])
    modules = {m.removeprefix("reference_agent.") for m in graph if m != "reference_agent"}
    assert modules | {"__init__"} == set(REFERENCE_AGENT_LAYERS), "a new module needs its row"
    upper = REFERENCE_AGENT_WORKFLOW | {"engine", "desk", "adapter", "__main__", "__init__"}
    for module, allowed in REFERENCE_AGENT_LAYERS.items():
        if module not in upper:
            assert not allowed & upper, f"infrastructure module {module} may import {allowed}"
    problems = layer_breaches(graph, "reference_agent", REFERENCE_AGENT_LAYERS)
    assert not problems, "\n".join(problems)


def test_every_package_is_in_the_wheel() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    missing = unlisted_packages(ROOT, [*PACKAGES, "shakeout_adapters"], setuptools["packages"])
    assert not missing, (
        f"{missing} would be left out of an installed shakeout: add them to [tool.setuptools] "
        "packages in pyproject.toml"
    )


# --------------------------------------------------------------------------- the public surface


@pytest.mark.parametrize("package", ["harness", "faults"])
def test_every_public_name_imports(package: str) -> None:
    module = importlib.import_module(package)
    names = list(module.__all__)
    assert names == sorted(set(names), key=names.index), "duplicates in __all__"
    for name in names:
        assert getattr(module, name) is not None, name
    assert module.__doc__


def test_the_public_surface_names_what_users_import() -> None:
    import harness

    wanted = {"AgentAdapter", "Outcome", "WorldContext", "Decision", "chaos_run", "record_session"}
    assert wanted <= set(harness.__all__)
    import faults

    assert {"ToolFault", "ModelFault", "StreamFault", "ApprovalFault", "CrashFault"} <= set(
        faults.__all__
    )


def test_importing_the_public_surface_loads_neither_pytest_nor_the_plugin() -> None:
    # the agent's own process (hard-kill mode) and plain scripts import harness modules
    code = (
        "import sys, harness, harness.run.runner; "
        "print(sorted(m for m in ('pytest', 'harness.plugin', 'vcr') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


PUBLIC = {"harness", "faults"}
"""What users import from shakeout itself; each ready adapter is a public module of its own."""

OURS = {"harness", "faults", "reference_agent", "shakeout_adapters"}


def private_imports(modules: list[str]) -> list[str]:
    """The imports of shakeout's own code outside its public surface (other libraries and the
    examples' own packages are the user's business)."""
    return [
        m
        for m in modules
        if m.split(".")[0] in OURS
        and m not in PUBLIC
        and not (
            m.startswith("shakeout_adapters.")
            and m.count(".") == 1
            and not m.split(".")[1].startswith("_")
        )
    ]


def test_the_readme_imports_only_from_the_public_surface() -> None:
    modules = readme_imports((ROOT / "README.md").read_text())
    assert any(m.split(".")[0] in OURS for m in modules), "the README imports nothing of ours"
    assert not private_imports(modules), private_imports(modules)


def test_a_private_adapter_module_in_the_readme_is_caught() -> None:
    modules = ["openai", "shakeout_adapters.pydantic_ai", "shakeout_adapters._runs", "harness.cli"]
    assert private_imports(modules) == ["shakeout_adapters._runs", "harness.cli"]


@pytest.mark.parametrize("path", files("shakeout_adapters"), ids=lambda p: p.name)
def test_the_ready_adapters_are_the_agents_code(path: Path) -> None:
    """An adapter reads the harness's world structurally, like any user's agent."""
    assert not imported(path) & {"harness", "faults", "reference_agent", "pytest", "_pytest"}, path


# --------------------------------------------------------------------------- the checks fail


def _package(root: Path, files: Mapping[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_circle_through_a_deferred_import_is_found_and_named(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import x\n",
            "pkg/b.py": "def f():\n    from pkg import c\n",
            "pkg/c.py": "import pkg.a\n",
            "pkg/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n",
            "pkg/e.py": "import pkg.d\n",
            "pkg/__main__.py": "import pkg.e\n",
        },
    )
    graph = import_graph(root, ["pkg"])
    assert circles(graph) == [frozenset({"pkg.a", "pkg.b", "pkg.c"})]
    text = describe(circles(graph)[0], graph)
    assert "pkg.b -> pkg.c at line 2 (deferred: inside a function)" in text
    assert "pkg.a -> pkg.b at line 1" in text


def test_type_checking_imports_and_relative_imports_are_read_right(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "pkg/__init__.py": "from .sub import thing\n",
            "pkg/sub/__init__.py": "from ..low import y\nfrom . import leaf\n",
            "pkg/sub/leaf.py": "import typing\nif typing.TYPE_CHECKING:\n    import pkg\n",
            "pkg/low.py": "",
        },
    )
    graph = import_graph(root, ["pkg"])
    assert {m: sorted(e.target for e in es) for m, es in graph.items()} == {
        "pkg": ["pkg.sub"],
        "pkg.sub": ["pkg.low", "pkg.sub.leaf"],
        "pkg.sub.leaf": [],
        "pkg.low": [],
    }
    assert circles(graph) == []


def test_the_line_rule_fails_on_a_new_long_module_a_grown_one_and_a_stale_entry(
    tmp_path: Path,
) -> None:
    root = _package(
        tmp_path,
        {
            "pkg/new.py": "x = 1\n" * 601,
            "pkg/grown.py": "x = 1\n" * 700,
            "pkg/split.py": "x = 1\n" * 10,
            "pkg/fine.py": "x = 1\n" * 600,
        },
    )
    allowed = {"pkg/grown.py": 650, "pkg/split.py": 900, "pkg/gone.py": 700}
    problems = oversized(root, ["pkg"], allowed)
    assert [p.split(" ", 1)[0] for p in problems] == [
        "pkg/grown.py",
        "pkg/new.py",
        "pkg/split.py",
        "pkg/gone.py",
    ]
    assert "grew to 700 lines; it may not exceed 650" in problems[0]
    assert "has 601 lines, over the 600-line limit: split it" in problems[1]
    assert "is down to 10 lines, within the limit: delete its entry" in problems[2]
    assert "listed in OVERSIZED but does not exist" in problems[3]


def test_a_layer_importing_upwards_is_reported(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low.py": "from pkg.high import x\n",
            "pkg/high.py": "from pkg import low\n",
        },
    )
    graph = import_graph(root, ["pkg"])
    problems = layer_breaches(graph, "pkg", {"low": set(), "high": {"low"}, "__init__": set()})
    assert problems == ["pkg.low -> pkg.high at line 1: low may import only []"]


def test_a_subpackage_reaching_past_its_rules_is_reported(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/record.py": "",
            "pkg/report.py": "",
            "pkg/scenario/__init__.py": "",
            "pkg/scenario/low.py": "",
            "pkg/scenario/spec.py": "from pkg import record\nfrom pkg.scenario import low\n",
            "pkg/scenario/late.py": "def f():\n    import pkg.report\n",
        },
    )
    graph = import_graph(root, ["pkg"])
    problems = reach_breaches(graph, "pkg.scenario", {"pkg.record"}, "pkg")
    assert problems == [
        "pkg.scenario.late -> pkg.report at line 2 (deferred: inside a function): pkg.scenario "
        "may import only ['pkg.record'] of pkg"
    ]


def test_a_subpackage_missing_from_the_wheel_is_caught(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "",
            "pkg/sub/deep/__init__.py": "",
            "pkg/data/notes.txt": "",
        },
    )
    assert unlisted_packages(root, ["pkg"], ["pkg", "pkg.sub"]) == ["pkg.sub.deep"]
    assert unlisted_packages(root, ["pkg"], ["pkg", "pkg.sub", "pkg.sub.deep"]) == []


def test_a_readme_importing_a_private_module_is_caught() -> None:
    text = (
        "```python\nfrom harness.recording.recorder import record_session\nimport faults\n"
        "class Agent:\n    def start(self, payload):   # a sketch\n```\n"
        "```bash\nfrom not.python import x\n```\n"
    )
    assert readme_imports(text) == ["harness.recording.recorder", "faults"]


@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=20))
def test_circles_are_exactly_the_modules_on_a_cycle(pairs: list[tuple[int, int]]) -> None:
    nodes = [f"m{i}" for i in range(8)]
    graph = {
        n: [Edge(n, f"m{b}", 1, False) for a, b in pairs if f"m{a}" == n and a != b] for n in nodes
    }
    succ = {n: {e.target for e in es} for n, es in graph.items()}

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(succ[start])
        while todo:
            v = todo.pop()
            if v not in seen:
                seen.add(v)
                todo.extend(succ[v])
        return seen

    on_cycle = {n for n in nodes if n in reach(n)}
    found = circles(graph)
    assert set().union(*found) == on_cycle
    for group in found:
        assert all(group - {v} <= reach(v) for v in group)
    try:
        tuple(graphlib.TopologicalSorter(succ).static_order())
        acyclic = True
    except graphlib.CycleError:
        acyclic = False
    assert acyclic == (found == [])
