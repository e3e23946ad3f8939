"""The explore command and its output: the minimal failing schedule that
:func:`harness.cli.explore.explore` found, written as a scenario file that reproduces it.

May import :mod:`harness.cli.explore` (the search); the search never imports this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from harness.cli.explore import ExploreError, ExploreResult, Finding, explore
from harness.output import OutputError, check_directory, write_text
from harness.plugin.session import dump_yaml
from harness.project import ProjectConfigError, find_project
from harness.redact import RedactionConfigError, Redactor
from harness.scenario.spec import Scenario

# --------------------------------------------------------------------------- writing it out


def write_scenario(
    result: ExploreResult,
    out: Path,
    *,
    command: str | None = None,
    agent: str | None = None,
    source_data: Mapping[str, Any] | None = None,
    redactor: Redactor | None = None,
) -> Path:
    """Write the finding as a scenario file that reproduces it; return its path.

    The file is the original scenario's data without its matrices (it reproduces one run),
    with the minimal schedule appended to ``faults``, the run seed fixed, and a comment header
    saying which check broke, why, and what found it. Secrets are masked in the data and the
    header; the file is written atomically, never through a symbolic link.

    Args:
        result: an exploration that found a failing schedule.
        out: the directory to write into (created if missing).
        command: the command that ran the exploration, for the header.
        agent: the adapter factory explored, written when the scenario names none.
        source_data: the scenario file's data (default: read from ``result.scenario.source``).
        redactor: masks secrets (default: the built-in lists).

    Raises:
        ExploreError: nothing was found, or there is no file data to copy.
        OutputError: ``out`` or the file in it cannot be written.
    """
    redactor = redactor if redactor is not None else Redactor()
    finding = result.finding
    if finding is None:
        raise ExploreError(f"exploring {result.scenario.name!r} found no failing schedule")
    source = result.scenario.source
    if source_data is None:
        if source is None:
            raise ExploreError(
                f"scenario {result.scenario.name!r} was not loaded from a file; pass "
                "source_data= (the scenario's data as in its YAML file)"
            )
        source_data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data = _explored_data(result, finding, source_data, agent)
    Scenario.model_validate(data)  # a written reproduction must load; fail here if not
    masked = redactor.value(data)
    check_directory(out, "directory for the explored scenario")
    path = out / f"{data['name']}.yaml"
    text = dump_yaml(masked)
    schema_line, _, body = text.partition("\n")
    schema = _schema_ref(source, out)
    if schema is not None:
        schema_line = f"# yaml-language-server: $schema={schema}"
    header = redactor.text(_header(result, finding, path, command, masked != data))
    write_text(path, f"{schema_line}\n{header}{body}", "explored scenario")
    return path


def _explored_data(
    result: ExploreResult,
    finding: Finding,
    source_data: Mapping[str, Any],
    agent: str | None,
) -> dict[str, Any]:
    data = {k: v for k, v in source_data.items() if k not in _MATRICES}
    entries = [p.entry() for p in finding.schedule]
    digest = hashlib.sha1(
        json.dumps([result.scenario.name, entries], sort_keys=True).encode()
    ).hexdigest()[:8]
    checks = ", ".join(v.name for v in finding.failures)
    data["name"] = f"{result.scenario.name}_explored_{digest}"
    data["description"] = (
        f"Explored from {result.scenario.name}: {' + '.join(finding.labels())} breaks {checks}."
    )
    data["tags"] = list(dict.fromkeys([*data.get("tags", ()), "explored"]))
    if agent is not None and not data.get("agent"):
        data["agent"] = agent
    if data.get("seed") is None:
        data["seed"] = result.run_seed
    data["faults"] = [*data.get("faults", ()), *entries]
    return {k: data[k] for k in Scenario.model_fields if k in data}


_MATRICES = ("matrix", "crash_matrix", "input_matrix")


def _schema_ref(source: Path | None, out: Path) -> str | None:
    """The source file's ``$schema`` reference, re-aimed from the output directory."""
    if source is None:
        return None
    first = source.read_text(encoding="utf-8").split("\n", 1)[0]
    marker = "$schema="
    if marker not in first:
        return None
    ref = first.split(marker, 1)[1].strip()
    if "://" in ref:
        return ref
    target = (source.parent / ref).resolve()
    return Path(os.path.relpath(target, out.resolve())).as_posix()


def _shown(path: Path) -> str:
    """The path relative to the working directory when it is below it (as a user would type)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _header(
    result: ExploreResult,
    finding: Finding,
    path: Path,
    command: str | None,
    masked: bool = False,
) -> str:
    def one_line(text: str) -> str:
        return " ".join(text.split())

    lines = [
        "Found by shakeout's exploration: a minimal fault schedule that breaks a universal",
        f"invariant of the fault-free run of {result.scenario.name!r} ({result.baseline_state()}).",
    ]
    for v in finding.failures:
        lines.append(f"  check {v.name}: {one_line(v.reason)}")
    lines.append(f"  faults: {', '.join(finding.labels())}")
    lines.append(f"  Hypothesis seed {result.seed}, run seed {result.run_seed}")
    if command:
        lines.append(f"  found with: {command}")
    lines.append(f"  reproduce: python -m pytest {shlex.quote(_shown(path))}")
    lines.append(
        "'expect' is the original scenario's; if a fault above is permanent, set it to the "
        "outcome you want before fixing the agent."
    )
    if masked:
        lines.append(
            "Secret-looking values were replaced by [redacted]; put test values back where the "
            "run needs them (the original scenario file has them)."
        )
    out: list[str] = []
    for line in lines:
        indent = "  " if line.startswith("  ") else ""
        out.extend(
            textwrap.wrap(
                line.strip(),
                width=98,
                initial_indent=f"# {indent}",
                subsequent_indent=f"# {indent}    ",
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return "".join(f"{ln}\n" for ln in out)


# --------------------------------------------------------------------------- command line


def explore_main(
    path: str,
    *,
    examples: int,
    seed: int | None,
    agent: str | None,
    out: str | None,
    argv: Sequence[str] = (),
    stream: TextIO | None = None,
) -> int:
    """``shakeout explore``: 0 nothing found, 1 a failing schedule written, 2 error.

    Args:
        path: the scenario file.
        examples: schedules to try before shrinking.
        seed: Hypothesis's seed (default: the ``chaos_seed`` ini key, else 0).
        agent: the adapter factory ``module:callable`` (default: the scenario's ``agent``, else
            the ``chaos_agent`` ini key). Ini keys and ``pythonpath`` are read from the file
            pytest would read for this scenario (``pytest.ini``, ``pyproject.toml``, ...).
        out: where to write the reproduction (default: the scenario file's directory).
        argv: the command's arguments after ``shakeout``, quoted into the written file's header.
        stream: where to print (default: stdout).
    """
    from harness.run.runner import AdapterCache, AgentLoadError, endpoints_of
    from harness.scenario.loader import load_scenario
    from harness.scenario.reading import ScenarioError

    out_stream = stream or sys.stdout
    source = Path(path)
    try:
        scenario = load_scenario(source)
    except ScenarioError as exc:
        out_stream.write(f"{exc}\n")
        return 2
    if scenario.load is not None:
        out_stream.write(
            f"shakeout explore: {path} is a load scenario (it has 'load:'), which injects no "
            "faults to search; run it with pytest instead, e.g. python -m pytest "
            f"{shlex.quote(path)}\n"
        )
        return 2
    try:
        project = find_project([path])
        redactor = project.redactor()
        ini_seed = project.seed
    except (RedactionConfigError, ProjectConfigError) as exc:
        out_stream.write(f"shakeout explore: {exc}\n")
        return 2

    def write(text: str) -> int:
        # Reasons and check text come from the run: what reaches the terminal is masked.
        return out_stream.write(redactor.text(text))

    factory = agent or scenario.agent or project.agent
    if not factory:
        write(
            f"no agent to explore {path} with: pass --agent module:callable, give the scenario "
            f"an 'agent' field, or set the chaos_agent ini key (read from {project.where()})\n"
        )
        return 2
    hyp_seed = seed if seed is not None else (ini_seed or 0)
    out_dir = Path(out) if out is not None else source.parent
    try:
        # Before the search, which may take minutes: its finding must have somewhere to go.
        check_directory(out_dir, "--out directory")
    except OutputError as exc:
        write(f"shakeout explore: {exc}\n")
        return 2
    try:
        with project.importable():  # the ini's pythonpath, as under pytest
            adapter = AdapterCache().get(factory, endpoints_of(scenario))
            result = explore(scenario, adapter, seed=hyp_seed, examples=examples)
    except (AgentLoadError, ExploreError) as exc:
        write(f"shakeout explore: {exc}\n")
        return 2
    head = (
        f"explored {scenario.name!r} with {factory}: {result.runs} run(s) over "
        f"{len(result.points)} fault point(s), {result.rejected} the harness could not run, "
        f"seed {hyp_seed}"
    )
    finding = result.finding
    if finding is None:
        write(f"{head}: every invariant held\n")
        return 0
    command = shlex.join(["shakeout", *argv]) if argv else None
    write(f"{head}: a failing schedule was found\n")
    for v in finding.failures:
        write(f"  check {v.name}: {v.reason}\n")
    write(f"  faults: {', '.join(finding.labels())}\n")
    try:
        written = write_scenario(
            result,
            out_dir,
            command=command,
            agent=factory if agent is not None else None,
            redactor=redactor,
        )
    except OutputError as exc:
        # The finding is printed above, so it is not lost with the file.
        write(f"shakeout explore: {exc}\n")
        return 2
    write(f"  written: {written}\n")
    return 1
