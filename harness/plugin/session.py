"""Judging a run and shaping what the plugin shows: verdicts, failure text, the report item."""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from faults.base import Fault, registry
from harness.adapter import AgentAdapter
from harness.load import figures, judge_load, run_load
from harness.record import Commit, Crash, Delivery, Exchange, Restart, RunRecord, canonical
from harness.report.model import CheckOutcome, ReportItem
from harness.report.model import Verdict as ItemVerdict
from harness.run.runner import AdapterCache, AgentLoadError, endpoints_of, run_variant
from harness.scenario.expect import derive
from harness.scenario.fault_specs import import_catalogue
from harness.scenario.loader import load_scenario
from harness.scenario.matrix import base_variant
from harness.scenario.spec import Scenario
from harness.scenario.variant import Variant
from harness.verdict.attack import InjectionContained, InputHandled
from harness.verdict.base import Check, Verdict
from harness.verdict.recovery import NoReexecution, ToolErrorReaction, after_give_up, reexecuted
from harness.verdict.suites import INJECTION_UNIVERSAL, INPUT_UNIVERSAL, evaluate, overall

if TYPE_CHECKING:
    from harness.plugin.settings import ChaosSettings


@dataclass(frozen=True)
class RunResult:
    """A judged run: its record, every check's verdict, and the overall verdict."""

    variant: Variant
    record: RunRecord
    verdicts: tuple[Verdict, ...]
    verdict: str  # pass | fail | error
    reproduce: str
    outcome: str | None = None  # the accepted outcome a fault cell ended in, if it passed

    def failures(self) -> tuple[Verdict, ...]:
        """The checks that did not hold."""
        return tuple(v for v in self.verdicts if v.passed is False)

    def explain(self) -> str:
        """Failure output: each failed check, the request excerpt, seed and reproduce command."""
        lines = []
        record = self.record
        head = "ERROR (scenario or harness)" if self.verdict == "error" else "FAIL"
        lines.append(f"{head}: scenario {record.scenario!r}, variant {record.variant!r}")
        for v in self.failures():
            lines.append(f"  check {v.name}: {v.reason}")
        around = next((v.around for v in self.failures() if v.around is not None), None)
        final = record.final
        if final is not None:
            extra = f", category {final.category}" if final.category else ""
            why = f" ({final.error})" if final.error else ""
            lines.append(f"  agent ended: {final.state.value}{extra}{why}")
        if record.faults:
            lines.append("  faults: " + ", ".join(f.label() for f in record.faults))
        acceptance = self.variant.acceptance
        if acceptance is not None:
            lines.append(f"  accepted outcomes: {acceptance.describe()}")
        if record.crashes:
            lines.append(f"  crashes: {', '.join(record.crashes)}; restarts: {record.restarts}")
        lines.append("  requests:")
        lines.append(record.excerpt(around))
        lines.append(f"  seed: {record.seed}")
        lines.append(f"  reproduce: {self.reproduce}")
        return "\n".join(lines)


def extra_checks(variant: Variant) -> tuple[Check, ...]:
    """Checks a variant adds to the universal ones (crash cells check re-execution; a model
    that reacts to failed tool calls adds ``tool_error_reaction``)."""
    out: list[Check] = []
    if variant.kind == "crash" and variant.baseline_requests is not None:
        out.append(NoReexecution(variant.baseline_requests, variant.allowed_extra))
    reaction = variant.on_tool_error or variant.scenario.model.on_tool_error
    if reaction is not None:
        out.append(ToolErrorReaction(reaction))
    return tuple(out)


def judge(variant: Variant, record: RunRecord, reproduce: str) -> RunResult:
    """Evaluate every check on a record (an input or injection cell keeps only the invariants
    that apply, plus its own check)."""
    if variant.kind == "load":
        verdicts = judge_load(record, variant.expect)
    elif variant.kind == "input":
        checks = (
            *INPUT_UNIVERSAL,
            InputHandled(variant.input_family or "edge-case", variant.must_reject),
        )
        verdicts = tuple(c.evaluate(record, variant.expect) for c in checks)
    elif variant.kind == "injection" and variant.injection is not None:
        contained = InjectionContained(variant.injection, variant.injection_point or "?")
        checks = (*INJECTION_UNIVERSAL, contained)
        verdicts = tuple(c.evaluate(record, variant.expect) for c in checks)
    else:
        return _judge_outcomes(variant, record, reproduce)
    return RunResult(variant, record, verdicts, overall(verdicts), reproduce)


def _judge_outcomes(variant: Variant, record: RunRecord, reproduce: str) -> RunResult:
    """A cell that accepts several outcomes passes when the run shows any one of them; when none
    holds, the failures shown are those of the outcome whose terminal state the run reached (the
    first accepted one otherwise)."""
    extra = extra_checks(variant)
    primary = after_give_up(record, variant.expect)
    verdicts = evaluate(record, primary, extra)
    acceptance = variant.acceptance
    if acceptance is None or primary is not variant.expect:
        # a model that gave up fixes the outcome (failed, category tool): no alternatives
        return RunResult(variant, record, verdicts, overall(verdicts), reproduce)
    first = acceptance.outcomes[0].value
    if overall(verdicts) != "fail" or not acceptance.alternatives:
        return RunResult(variant, record, verdicts, overall(verdicts), reproduce, first)
    final = record.final
    closest = None
    for outcome, expect in acceptance.alternatives:
        tried = evaluate(record, expect, extra)
        if overall(tried) == "pass":
            return RunResult(variant, record, tried, "pass", reproduce, outcome.value)
        if closest is None and final is not None and expect.state == final.state.value:
            closest = tried
    if closest is not None and variant.expect.state != (final.state.value if final else None):
        verdicts = closest
    return RunResult(variant, record, verdicts, overall(verdicts), reproduce)


def reproduce_command(nodeid: str, seed: int) -> str:
    """One command that reruns exactly this item."""
    return f"python -m pytest {shlex.quote(nodeid)} --chaos-seed={seed} -p no:randomly"


def report_item(
    nodeid: str,
    result: RunResult,
    *,
    verdict: ItemVerdict | None = None,
    more_checks: Sequence[CheckOutcome] = (),
    duration_s: float | None = None,
) -> ReportItem:
    """The report item of one run: every kind of variant's item is built here, typed.

    Args:
        nodeid: the item's node id.
        result: the judged run.
        verdict: the item's verdict when it is not the run's own (an input search's last run
            stands for the whole search).
        more_checks: checks that judge more than this run (the input search's count).
        duration_s: the item's run time when it is not this run's (an input search's is the sum
            of all its payloads' runs).

    Returns:
        The item, validated against the report schema; it travels to the controller as
        ``item.model_dump(mode="json")``.
    """
    record = result.record
    final = record.final
    seen = dict(record.tool_calls())
    seen["(model)"] = record.model_calls()
    variant = result.variant
    reexec = (
        sum(reexecuted(variant.baseline_requests, seen, variant.allowed_extra).values())
        if variant.baseline_requests is not None
        else 0
    )
    keys: dict[str, int] = {}
    for e in record.effects:
        if e.idempotency_key:
            keys[e.idempotency_key] = keys.get(e.idempotency_key, 0) + 1
    duplicates = sum(n - 1 for n in keys.values() if n > 1)
    return ReportItem.model_validate(
        {
            "nodeid": nodeid,
            "scenario": record.scenario,
            "variant": record.variant,
            "faults_fired": [
                {
                    "key": f.key,
                    "surface": f.surface.value,
                    "where": f.where,
                    "call_index": f.call_index,
                    "label": f.label,
                }
                for f in record.firings
            ],
            "faults_injected": [
                {
                    "key": f.key,
                    "surface": f.surface.value,
                    "category": None if f.category is None else f.category.value,
                    "transient": f.transient,
                }
                for f in record.faults
            ],
            "terminal_state": None if final is None else final.state.value,
            "category": None if final is None else final.category,
            "verdict": result.verdict if verdict is None else verdict,
            "checks": [
                *(
                    CheckOutcome(name=v.name, passed=v.passed, reason=v.reason, harness=v.harness)
                    for v in result.verdicts
                ),
                *more_checks,
            ],
            "effects": [
                {"tool": e.tool, "idempotency_key": e.idempotency_key, "replays": e.replays}
                for e in record.effects
            ],
            "approvals": [
                {
                    "approval_id": a.approval_id,
                    "tool": a.tool,
                    "decision": _decision(record, a.approval_id),
                }
                for a in record.approvals
            ],
            "restarts": record.restarts,
            "reexecuted_steps": reexec,
            "duplicate_effects": duplicates,
            "crash": variant.kind == "crash",
            "duration_s": round(record.duration_s if duration_s is None else duration_s, 6),
            "seed": record.seed,
            "reproduce": result.reproduce,
            "outcomes": _outcomes(result),
            # The request timeline of a run that did not pass (what the HTML shows); a passing
            # run's is left out, so report size and session memory stay flat per item.
            "requests": [] if result.verdict == "pass" else _requests(record),
            "events": events_of(record),
            **({} if record.load is None else {"queue": figures(record.load)}),
        }
    )


def _outcomes(result: RunResult) -> dict[str, Any] | None:
    """A fault cell's accepted outcomes for the report: which, which one held, and any rule."""
    acceptance = result.variant.acceptance
    if acceptance is None:
        return None
    return {
        "accept": [o.value for o in acceptance.outcomes],
        "declared": [o.value for o in acceptance.declared],
        "held": result.outcome if result.verdict == "pass" else None,
        "reason": acceptance.reason,
        "source": acceptance.source,
    }


_BODY_LIMIT = 240


def events_of(record: RunRecord) -> list[dict[str, Any]]:
    """The run's event log as report entries (the evidence the checks read), bodies shortened."""
    out: list[dict[str, Any]] = []
    for e in record.events:
        entry: dict[str, Any] = {"seq": e.seq, "kind": e.kind, "t": round(e.t, 6)}
        if isinstance(e, Exchange):
            entry.update(
                surface=e.surface,
                tool=e.tool,
                method=e.request.method,
                url=e.request.url,
                status=e.status,
                error=e.error,
                faults=list(e.faults),
            )
        elif isinstance(e, Commit):
            entry.update(
                tool=e.tool,
                request_seq=e.request_seq,
                idempotency_key=e.idempotency_key,
                body=canonical(e.body)[:_BODY_LIMIT],
            )
        elif isinstance(e, Delivery):
            entry.update(
                approval_id=e.approval_id,
                tool=e.tool,
                verdict=e.verdict,
                arguments=canonical(e.arguments)[:_BODY_LIMIT],
                expires_at=e.expires_at,
            )
        elif isinstance(e, Crash):
            entry.update(point=e.point, where=e.where)
        elif isinstance(e, Restart):
            entry.update(fresh=e.fresh)
        else:
            entry.update(what=e.what, target=e.target)
        out.append({k: v for k, v in entry.items() if v is not None and v != []})
    return out


def _requests(record: RunRecord) -> list[dict[str, Any]]:
    return [
        {
            "seq": e.seq,
            "surface": e.surface,
            "tool": e.tool,
            "method": e.request.method,
            "url": e.request.url,
            "status": e.status,
            "error": e.error,
            "faults": list(e.faults),
        }
        for e in record.exchanges
    ]


def _decision(record: RunRecord, approval_id: str) -> str | None:
    verdicts = [d.verdict for d in record.deliveries if d.approval_id == approval_id]
    return verdicts[-1] if verdicts else None


# --------------------------------------------------------------------------- programmatic runs


def coerce_scenario(scenario: Scenario | Mapping[str, Any] | str | Path) -> Scenario:
    """A Scenario from a loaded one, a mapping in the file format, or a file path."""
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, Mapping):
        return Scenario.model_validate(dict(scenario))
    return load_scenario(Path(scenario))


def coerce_fault(fault: Fault | str) -> Fault:
    """A Fault instance from an instance or a registry key (defaults)."""
    if isinstance(fault, Fault):
        return fault
    import_catalogue()
    try:
        return registry()[fault]()
    except KeyError:
        raise KeyError(f"unknown fault key {fault!r}; `shakeout faults` lists them") from None


def run_scenario(
    scenario: Scenario | Mapping[str, Any] | str | Path,
    *,
    settings: ChaosSettings,
    cache: AdapterCache,
    extra_faults: tuple[Fault | str, ...] = (),
    adapter: AgentAdapter | None = None,
    state_root: Path | None = None,
    variant: str = "fixture",
) -> RunResult:
    """Load (if needed), run and judge a scenario; what the ``chaos_run`` fixture calls."""
    sc = coerce_scenario(scenario)
    base = base_variant(sc)
    faults = tuple(coerce_fault(f) for f in extra_faults)
    v = base
    if faults:
        label = "+".join(f.label() for f in faults)
        # no fault-free run here to compare effects with: the base expectation's bodies hold
        expect = derive(sc, faults[-1], label) if len(faults) == 1 else base.expect
        v = Variant(sc, label, (*base.faults, *faults), expect, "fault")
    elif variant != "fixture":
        v = Variant(sc, variant, base.faults, base.expect)
    if adapter is None:
        factory = sc.agent or settings.agent
        if not factory:
            raise AgentLoadError(
                "no agent to run: set the chaos_agent ini key, --chaos-agent, the chaos "
                "marker/fixture 'agent', or the scenario's 'agent' field"
            )
        adapter = cache.get(factory, endpoints_of(sc))
    seed = sc.effective_seed(settings.seed)
    wall = sc.expect.budget.wall_s or settings.wall_s
    if sc.load is not None:
        if faults:
            raise ValueError(
                f"scenario {sc.name!r} is a load scenario, which injects no faults; drop "
                "'faults=' or run a scenario without 'load'"
            )
        load = dataclasses.replace(v, kind="load")
        record = run_load(
            sc, adapter, seed=seed, wall_s=wall, config=settings.config, variant=v.label
        )
        return judge(load, record, f"(programmatic run) --chaos-seed={seed}")
    record = run_variant(
        v, adapter, seed=seed, wall_s=wall, state_root=state_root, config=settings.config
    )
    return judge(v, record, f"(programmatic run) --chaos-seed={seed}")


def dump_yaml(data: Mapping[str, Any]) -> str:
    """A mapping as scenario-file YAML with the schema line (for written-out reproductions)."""
    return "# yaml-language-server: $schema=schema.json\n" + yaml.safe_dump(
        dict(data), sort_keys=False, allow_unicode=True
    )
