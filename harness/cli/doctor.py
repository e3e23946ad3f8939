"""``shakeout doctor``: one fault-free run and a few contract probes, each problem said in plain
words (what the harness saw, what the adapter must do instead).

What it checks, in order: the adapter loads and the fault-free run passes; every side effect
carries an ``Idempotency-Key``; every gated effect is covered by an approval whose arguments
equal its body; the agent announces its crash boundaries (``world.boundary``); a crashed run
resumes in a fresh adapter over the same ``state_dir`` (nothing kept only in memory); an approval
that is never decided ends the run ``expired``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from faults.approval import ApprovalNever
from faults.surfaces import CrashPoint
from harness.adapter import AgentAdapter
from harness.plugin.session import RunResult, judge
from harness.project import ProjectConfig, ProjectConfigError, find_project
from harness.record import Baseline, RunRecord
from harness.run.runner import AdapterCache, AgentLoadError, endpoints_of, probe, run_variant
from harness.scenario.expect import accepted
from harness.scenario.matrix import base_variant, crash_cells
from harness.scenario.spec import CrashMatrix, Scenario
from harness.scenario.variant import Probe, Variant
from harness.verdict.base import Verdict

ANNOUNCED_POINTS = (
    CrashPoint.BEFORE_STEP.value,
    CrashPoint.AFTER_CHECKPOINT.value,
    CrashPoint.TERMINAL_WRITE.value,
)
DEFAULT_WALL_S = 20.0


@dataclass(frozen=True)
class Finding:
    """One contract point: held (True), broken (False) or not checkable here (None)."""

    name: str
    ok: bool | None
    text: str


def diagnose(
    scenario: Scenario, adapter: AgentAdapter, *, seed: int, wall_s: float = DEFAULT_WALL_S
) -> list[Finding]:
    """Run the scenario without faults, then the contract probes; every finding, in order.

    Args:
        scenario: the scenario (its faults and matrices are dropped: the run is fault-free).
        adapter: the adapter, built by its factory (``AdapterCache.get``), so a crash probe can
            build a fresh one.
        seed: the run seed.
        wall_s: the real-time limit per run.
    """
    plain = scenario.model_copy(
        update={"faults": (), "matrix": None, "crash_matrix": None, "input_matrix": None}
    )
    found = probe(plain, adapter, seed=seed, wall_s=wall_s)
    record = found.record
    base = judge(base_variant(plain), record, "")
    out = [_runs(record, base)]
    if out[0].ok is False and (record.final is None or record.harness_error):
        return out  # nothing else can be read from a run that did not end
    out.append(_idempotency(plain, record))
    out.append(_approvals(plain, record, base))
    out.append(_boundaries(found))
    out.append(_persistence(plain, found, adapter, seed, wall_s, base))
    out.append(_expiry(plain, found, adapter, seed, wall_s, base))
    return out


OWNED = {"unapproved_effects": "approvals", "duplicate_effects": "idempotency keys"}
"""Checks another finding explains in its own words: the fault-free run does not repeat them."""


def _failures(result: RunResult, skip: frozenset[str] = frozenset()) -> str:
    return "; ".join(f"{v.name}: {v.reason}" for v in result.failures() if v.name not in skip)


def _new_failures(result: RunResult, base: RunResult) -> frozenset[str]:
    """The checks a probe cell fails that the fault-free run did not already fail."""
    known = {v.name for v in base.failures()}
    return frozenset(v.name for v in result.failures() if v.name not in known)


def _runs(record: RunRecord, base: RunResult) -> Finding:
    name = "fault-free run"
    if record.harness_error:
        return Finding(
            name,
            False,
            f"the harness could not run the agent: {record.harness_error}",
        )
    if record.timed_out is not None:
        return Finding(
            name,
            False,
            f"start/resume did not return within {record.timed_out:g} s: they must return once "
            "the run is terminal or parked in 'awaiting_approval', never block on a human",
        )
    if record.agent_exception:
        return Finding(
            name,
            False,
            f"the agent raised instead of returning an outcome: {record.agent_exception}; "
            "start/resume must catch the agent's errors and report state 'failed' with a "
            "category (model, tool, logic or input)",
        )
    if record.stopped:
        return Finding(name, False, record.stopped)
    final = record.final
    if final is None or not final.state.terminal:
        return Finding(
            name,
            False,
            "start/resume returned no terminal outcome: return state completed, failed, "
            "rejected, expired, escalated or throttled, or awaiting_approval with a "
            "pending_approval",
        )
    own = _failures(base, frozenset(OWNED))
    if own:
        return Finding(
            name,
            False,
            f"the run ended {final.state.value!r} but the scenario's checks do not hold: {own}",
        )
    return Finding(
        name,
        True,
        f"ended {final.state.value!r} after {len(record.exchanges)} request(s), "
        f"{len(record.effects)} effect(s)",
    )


def _idempotency(scenario: Scenario, record: RunRecord) -> Finding:
    name = "idempotency keys"
    ledgers = set(scenario.ledger_tools())
    sent = [e for e in record.exchanges if e.tool in ledgers]
    if not sent:
        return Finding(name, None, "the run sent no request to a ledger service: not checked")
    bare = [e for e in sent if not e.request.header("idempotency-key")]
    if bare:
        tools = sorted({str(e.tool) for e in bare})
        return Finding(
            name,
            False,
            f"{len(bare)} effect request(s) to {', '.join(tools)} carried no Idempotency-Key "
            "header: send one on every side effect, derived from the run and step (the same on "
            "every retry and after a crash), so a replay commits nothing twice",
        )
    return Finding(name, True, f"{len(sent)} effect request(s), each with an Idempotency-Key")


def _approvals(scenario: Scenario, record: RunRecord, base: RunResult) -> Finding:
    name = "approvals"
    gated = {n for n, s in scenario.tools.services.items() if getattr(s, "gated", False)}
    if not gated:
        return Finding(name, None, "the scenario gates no tool (gated: true): not checked")
    verdict: Verdict | None = next(
        (v for v in base.verdicts if v.name == "unapproved_effects"), None
    )
    if verdict is not None and verdict.passed is False:
        return Finding(
            name,
            False,
            f"{verdict.reason}. The approval the agent asks for (pending_approval.arguments) "
            "must equal the JSON body of the gated request key by key; name a field that "
            "differs between runs under the service's vary, a renamed or scaled one under "
            "approval_map",
        )
    committed = [c for c in record.effects if c.tool in gated]
    if not committed:
        return Finding(name, None, "no gated effect was committed in this run: not checked")
    return Finding(name, True, f"{len(committed)} gated effect(s), each covered by its approval")


def _boundaries(found: Probe) -> Finding:
    name = "crash boundaries"
    announced = {p for p, _ in found.boundaries}
    missing = [p for p in ANNOUNCED_POINTS if p not in announced]
    if len(missing) == len(ANNOUNCED_POINTS):
        return Finding(
            name,
            False,
            "no boundaries announced: world.boundary(point, step) was never called, so the "
            "crash matrix has no cells for before_step, after_checkpoint and terminal_write; "
            "call it before each step, after each step's checkpoint is written, and before the "
            "terminal state is written",
        )
    if missing:
        return Finding(
            name,
            False,
            f"the agent never announced {', '.join(missing)} (it did: "
            f"{', '.join(sorted(announced))}); call world.boundary({missing[0]!r}, step) there",
        )
    steps = sorted({s for _, s in found.boundaries})
    return Finding(name, True, f"all three announced, over {len(steps)} step(s)")


def _persistence(
    scenario: Scenario,
    found: Probe,
    adapter: AgentAdapter,
    seed: int,
    wall_s: float,
    base: RunResult,
) -> Finding:
    name = "state on disk"
    if found.approval_rounds:
        point, where = CrashPoint.WHILE_PARKED, "while the run was parked for approval"
        how = "resume(run_id, decision)"
    elif any(p == CrashPoint.AFTER_CHECKPOINT.value for p, _ in found.boundaries):
        point, where = CrashPoint.AFTER_CHECKPOINT, "after the first step's checkpoint"
        how = "start(payload) again (the redelivered input)"
    elif found.ledger_calls:
        point, where = CrashPoint.AFTER_EFFECT, "right after its first effect committed"
        how = "start(payload) again (the redelivered input)"
    else:
        return Finding(
            name,
            None,
            "the run never parked, committed no effect and announced no after_checkpoint "
            "boundary: no crash to resume from, not checked",
        )
    crashing = scenario.model_copy(update={"crash_matrix": CrashMatrix(points=(point,))})
    cell = next(iter(crash_cells(crashing, found)))
    record = run_variant(cell, adapter, seed=seed, wall_s=wall_s)
    result = judge(cell, record, "")
    new = _new_failures(result, base)  # what the fault-free run already broke is said above
    if not new:
        return Finding(name, True, f"a fresh adapter resumed the run crashed {where}")
    return Finding(
        name,
        False,
        f"the harness crashed the run {where}, built a fresh adapter with the factory and "
        f"called begin(world) over the same state_dir, then {how}; the run did not continue "
        f"like the fault-free one ({_failures(result, frozenset(result_names(result) - new))}). "
        "Keep every run's progress under "
        "world.state_dir (a file or SQLite database), not in the adapter's memory, and look "
        "the run up there on resume",
    )


def result_names(result: RunResult) -> frozenset[str]:
    """The names of the checks a result failed."""
    return frozenset(v.name for v in result.failures())


def _expiry(
    scenario: Scenario,
    found: Probe,
    adapter: AgentAdapter,
    seed: int,
    wall_s: float,
    base: RunResult,
) -> Finding:
    name = "approval expiry"
    if not found.approval_rounds:
        return Finding(name, None, "the run never parked for approval: not checked")
    fault = ApprovalNever()
    expect, acceptance = accepted(scenario, fault, fault.label(), Baseline.of(found.record))
    cell = Variant(scenario, fault.label(), (fault,), expect, "fault", acceptance=acceptance)
    result = judge(cell, run_variant(cell, adapter, seed=seed, wall_s=wall_s), "")
    new = _new_failures(result, base)
    if not new:
        return Finding(name, True, "an approval never decided ended the run 'expired'")
    return Finding(
        name,
        False,
        "the reviewer never decided: the harness moved the clock past expires_at and called "
        f"resume(run_id, None); the run must end 'expired' with no gated effect "
        f"({_failures(result, result_names(result) - new)}). Compare world.clock.now() with "
        "the approval's expires_at on "
        "resume",
    )


# --------------------------------------------------------------------------- command line


def _default_scenario(project: ProjectConfig) -> Path | None:
    """The first scenario the ini's chaos_scenarios globs (or the default ones) find."""
    globs = project.lines("chaos_scenarios") or ["scenarios/*.yaml", "scenarios/**/*.yaml"]
    for pattern in globs:
        found = sorted(p for p in project.rootdir.glob(pattern) if p.is_file())
        if found:
            return found[0]
    return None


def doctor_main(
    scenario_path: str | None,
    *,
    agent: str | None,
    seed: int | None,
    stream: TextIO | None = None,
) -> int:
    """``shakeout doctor``: 0 the adapter keeps the contract, 1 problems listed, 2 cannot run.

    Args:
        scenario_path: a scenario file (default: the first one the ``chaos_scenarios`` globs
            find under the rootdir).
        agent: the adapter factory (default: the scenario's ``agent``, else ``chaos_agent``).
        seed: the run seed (default: ``chaos_seed``, else 0).
        stream: where to print (default: stdout).
    """
    from harness.scenario.loader import load_scenario
    from harness.scenario.reading import ScenarioError

    out = stream or sys.stdout
    try:
        project = find_project([scenario_path] if scenario_path else [])
        ini_seed, ini_wall = project.seed, project.wall_s
    except ProjectConfigError as exc:
        out.write(f"shakeout doctor: {exc}\n")
        return 2
    path = Path(scenario_path) if scenario_path else _default_scenario(project)
    if path is None:
        out.write(
            f"shakeout doctor: no scenario file under {project.rootdir}: name one "
            "(shakeout doctor path/to/scenario.yaml) or write one with shakeout init\n"
        )
        return 2
    try:
        scenario = load_scenario(path)
    except ScenarioError as exc:
        out.write(f"{exc}\n")
        return 2
    factory = agent or scenario.agent or project.agent
    if not factory:
        out.write(
            f"shakeout doctor: no agent to check: pass --agent module:callable, give {path} an "
            f"'agent' field, or set the chaos_agent ini key (read from {project.where()})\n"
        )
        return 2
    run_seed = seed if seed is not None else scenario.effective_seed(ini_seed or 0)
    shown = path.resolve()
    if shown.is_relative_to(Path.cwd()):
        shown = shown.relative_to(Path.cwd())
    out.write(f"shakeout doctor: agent {factory}, scenario {shown} (seed {run_seed})\n")
    with project.importable():
        try:
            adapter = AdapterCache().get(factory, endpoints_of(scenario))
        except AgentLoadError as exc:
            out.write(f"  FAIL  adapter: {exc}\n")
            return 1
        findings = diagnose(scenario, adapter, seed=run_seed, wall_s=ini_wall or DEFAULT_WALL_S)
    return report(findings, out)


def report(findings: Sequence[Finding], out: TextIO) -> int:
    """Print the findings; 0 when none is broken, else 1."""
    marks = {True: "ok  ", False: "FAIL", None: "skip"}
    for f in findings:
        out.write(f"  {marks[f.ok]}  {f.name}: {f.text}\n")
    broken = [f for f in findings if f.ok is False]
    if broken:
        out.write(
            f"{len(broken)} problem(s): {', '.join(f.name for f in broken)}. The README's "
            "'Putting your own agent under test' has the whole contract.\n"
        )
        return 1
    out.write("the adapter keeps the contract on this scenario\n")
    return 0
