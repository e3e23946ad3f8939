"""Checks: the scenario's expectations and the universal invariants, each returning a Verdict.

A check answers ``passed`` True (holds), False (the agent broke a rule: FAIL), or None (does not
apply to this run). A check whose ``harness`` flag is set reports ERROR instead of FAIL: it means
the scenario is invalid or the harness could not exercise what it promised (e.g. a declared
fault never fired), and a report must never blame the agent for that.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from faults.base import Category
from harness.adapter import RunState
from harness.record import RunRecord, canonical


@dataclass(frozen=True)
class Verdict:
    """The result of one check on one run."""

    name: str
    passed: bool | None
    reason: str
    harness: bool = False  # a failure here is an ERROR (scenario or harness), not the agent's FAIL
    around: int | None = None  # exchange seq the failure is about, for the excerpt


@dataclass(frozen=True)
class Expectation:
    """What a run of one variant must show. None fields are not checked."""

    state: str | None = None
    category: str | None = None
    check_category: bool = False
    effects: Mapping[str, int] | None = None
    approvals: int | None = None
    calls_made: tuple[str, ...] = ()
    calls_not_made: tuple[str, ...] = ()
    max_model_calls: int | None = None
    max_tool_calls: int | None = None
    gated_tools: frozenset[str] = field(default_factory=frozenset)
    origin: str = "scenario"  # where the expectation came from, for messages


class Check:
    """Base: a named check; subclasses implement ``evaluate``."""

    name: ClassVar[str]

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        raise NotImplementedError

    def ok(self, reason: str = "") -> Verdict:
        return Verdict(self.name, True, reason)

    def fail(self, reason: str, around: int | None = None) -> Verdict:
        return Verdict(self.name, False, reason, around=around)

    def error(self, reason: str) -> Verdict:
        return Verdict(self.name, False, reason, harness=True)

    def skip(self, reason: str) -> Verdict:
        return Verdict(self.name, None, reason)


# --------------------------------------------------------------------------- universal invariants


class HarnessRan(Check):
    """The harness itself could run the scenario (otherwise ERROR)."""

    name = "harness_ran"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        if record.harness_error:
            return self.error(record.harness_error)
        return self.ok()


class TerminalStateReached(Check):
    """Every run ends in a defined terminal state, within the wall-clock limit."""

    name = "terminal_state"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        if record.harness_error:
            return self.skip("the harness could not run the scenario")
        if record.timed_out is not None:
            return self.fail(
                f"no terminal state within {record.timed_out:g} s (wall clock); the agent made "
                f"{len(record.exchanges)} request(s) before it stopped answering"
            )
        if record.agent_exception:
            return self.fail(
                "the agent raised instead of ending in a terminal state: " + record.agent_exception
            )
        final = record.final
        if final is None:
            return self.fail("the agent reported no outcome")
        if not final.state.terminal:
            return self.fail(
                f"the run ended parked in {final.state.value!r}: the reviewer script ran out "
                "before the agent reached a terminal state"
            )
        return self.ok(final.state.value)


class SingleCategory(Check):
    """A failed run carries exactly one known category; other runs carry none."""

    name = "single_category"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        final = record.final
        if final is None or not final.state.terminal:
            return self.skip("no terminal state")
        allowed = {c.value for c in Category}
        if final.state is RunState.FAILED:
            if final.category not in allowed:
                return self.fail(
                    f"the run failed with category {final.category!r}; a failed run must carry "
                    f"exactly one of {sorted(allowed)}"
                )
            return self.ok(final.category)
        if final.category is not None:
            return self.fail(
                f"the run ended {final.state.value!r} but carries category {final.category!r}; "
                "only failed runs carry a category"
            )
        return self.ok()


class ApprovedEffects(Check):
    """No effect on a gated tool without a matching, unconsumed approval bound to its arguments."""

    name = "unapproved_effects"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        gated = [e for e in record.effects if e.tool in expect.gated_tools]
        if not expect.gated_tools:
            return self.skip("the scenario declares no gated tool")
        approvals = [d for d in record.deliveries if d.verdict == "approve"]
        used: set[int] = set()
        for effect in gated:
            match = None
            for i, d in enumerate(approvals):
                if i in used or d.tool != effect.tool or d.seq_before > effect.seq:
                    continue
                if not d.bound_to_requested:
                    continue
                if _arguments_cover(d.arguments, effect.body):
                    match = i
                    break
            if match is None:
                return self.fail(
                    f"effect on gated tool {effect.tool!r} (request #{effect.seq}, body "
                    f"{canonical(effect.body)}) had no matching unconsumed approval bound to its "
                    "arguments",
                    around=effect.seq,
                )
            used.add(match)
        return self.ok(f"{len(gated)} gated effect(s), each approved")


def _arguments_cover(arguments: Mapping[str, object], body: object) -> bool:
    """The approved arguments equal the effect's body on every approved key."""
    if not isinstance(body, Mapping):
        return False
    return all(canonical(body.get(k)) == canonical(v) for k, v in arguments.items())


class NoDuplicateEffects(Check):
    """No idempotency key with two committed effects; no repeated effect under new keys."""

    name = "duplicate_effects"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        keys = Counter(e.idempotency_key for e in record.effects if e.idempotency_key)
        for key, n in keys.items():
            if n > 1:
                return self.fail(f"idempotency key {key!r} has {n} committed effects")
        for e in record.effects:
            if e.idempotency_key is None:
                return self.fail(
                    f"side effect on {e.tool!r} (request #{e.seq}) was sent without an "
                    "Idempotency-Key header, so a retry or resume could apply it twice",
                    around=e.seq,
                )
        bodies = Counter((e.tool, canonical(e.body)) for e in record.effects)
        for (tool, body), n in bodies.items():
            if n > 1:
                first = next(e for e in record.effects if e.tool == tool)
                return self.fail(
                    f"the same effect on {tool!r} was committed {n} times under different "
                    f"idempotency keys (body {body})",
                    around=first.seq,
                )
        return self.ok(f"{len(record.effects)} effect(s), none duplicated")


class FaultsFired(Check):
    """Every declared fault fired at least once (otherwise ERROR: the fault tested nothing)."""

    name = "faults_fired"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        if not record.faults:
            return self.skip("no fault declared")
        fired = {f.key for f in record.firings}
        missing = [f.label() for f in record.faults if f.key not in fired]
        if missing:
            return self.error(
                f"declared fault(s) never fired: {', '.join(missing)}; the run never reached the "
                "call they target, so they tested nothing. Aim them at a call the run makes "
                "(see the request list) or remove them"
            )
        return self.ok(", ".join(sorted(fired)))


class AllRequestsRouted(Check):
    """Every request matched a scenario route (an unrouted one is refused, never sent)."""

    name = "requests_routed"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        unrouted = record.unrouted()
        if unrouted:
            first = unrouted[0]
            return self.error(
                f"{len(unrouted)} request(s) matched no scenario route and were refused (never "
                f"sent), first: {first.request.method} {first.request.url}; add a service for it "
                "under 'tools.services' or point the agent at the scenario's base URLs"
            )
        return self.ok()


class ModelScriptSufficient(Check):
    """The agent did not ask the model more often than the scenario scripts turns."""

    name = "model_turns"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        if record.model_exhausted:
            return self.fail(
                f"the agent made {record.model_exhausted} model request(s) after the scripted "
                "turns ran out (answered with a provider error); it asked more often than the "
                "scenario expects — script more turns if that is intended"
            )
        return self.ok()


class TraceCovers(Check):
    """Every model and tool request seen at the transport appears in the agent's trace."""

    name = "trace_complete"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        trace = record.trace
        if trace is None:
            return self.skip("the adapter exposes no trace")
        if not trace.kept_in_full:
            return self.skip("the trace policy sampled this run out")
        traced = Counter(
            (str(r.get("method", "")).upper(), str(r.get("url", "")))
            for r in trace.records
            if r.get("kind") in ("model_call", "tool_call")
        )
        # A request whose answer a crash fault kept from the agent cannot be in its trace.
        seen = Counter(
            (e.request.method.upper(), e.request.url)
            for e in record.exchanges
            if e.surface in ("model", "tool") and not e.crashed
        )
        for key, n in seen.items():
            if traced[key] < n:
                first = next(
                    e for e in record.exchanges if (e.request.method.upper(), e.request.url) == key
                )
                return self.fail(
                    f"{key[0]} {key[1]} was seen {n} time(s) at the transport but appears "
                    f"{traced[key]} time(s) in the agent's trace",
                    around=first.seq,
                )
        return self.ok(f"{sum(seen.values())} request(s) traced")


class TraceRetention(Check):
    """A high-risk, approval-requesting or failed run is kept in full by the trace policy."""

    name = "trace_retention"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        trace = record.trace
        final = record.final
        if trace is None or final is None:
            return self.skip("no trace or no outcome")
        reasons = []
        if final.state is RunState.FAILED:
            reasons.append("failed")
        if record.approvals:
            reasons.append("requested approval")
        if any(e.tool in expect.gated_tools for e in record.effects):
            reasons.append("touched a gated tool")
        if reasons and not trace.kept_in_full:
            return self.fail(f"the run {' and '.join(reasons)} but its trace was not kept in full")
        return self.ok("kept in full" if trace.kept_in_full else "sampled (routine run)")


# --------------------------------------------------------------------------- expectations


class ExpectedState(Check):
    """The run ends in the expected terminal state."""

    name = "expected_state"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        final = record.final
        if expect.state is None:
            return self.skip("no state expected")
        if final is None:
            return self.skip("no outcome")
        got = final.state.value
        if got != expect.state:
            detail = f" ({final.category}: {final.error})" if final.error else ""
            return self.fail(
                f"expected state {expect.state!r} ({expect.origin}), got {got!r}{detail}"
            )
        return self.ok(got)


class ExpectedCategory(Check):
    """A failed run carries the expected error category."""

    name = "expected_category"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        final = record.final
        if not expect.check_category or final is None:
            return self.skip("no category expected")
        if final.category != expect.category:
            return self.fail(
                f"expected category {expect.category!r} ({expect.origin}), got "
                f"{final.category!r}" + (f": {final.error}" if final.error else "")
            )
        return self.ok(str(final.category))


class ExpectedEffects(Check):
    """Committed effects per tool equal the expected counts."""

    name = "expected_effects"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        if expect.effects is None:
            return self.skip("no effects expected")
        got = record.committed_effects()
        tools = sorted(set(expect.effects) | set(got))
        wrong = [t for t in tools if got.get(t, 0) != expect.effects.get(t, 0)]
        if wrong:
            parts = [
                f"{t}: expected {expect.effects.get(t, 0)}, got {got.get(t, 0)}" for t in wrong
            ]
            return self.fail(f"committed effects differ ({expect.origin}): " + "; ".join(parts))
        return self.ok(", ".join(f"{t}={got[t]}" for t in tools if got.get(t)) or "none")


class ExpectedApprovals(Check):
    """The agent asked for the expected number of approvals."""

    name = "expected_approvals"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        if expect.approvals is None:
            return self.skip("no approval count expected")
        n = len(record.approvals)
        if n != expect.approvals:
            return self.fail(f"expected {expect.approvals} approval request(s), got {n}")
        return self.ok(str(n))


class ExpectedCalls(Check):
    """Tools that must be called were called; tools that must not be, were not."""

    name = "expected_calls"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        if not expect.calls_made and not expect.calls_not_made:
            return self.skip("no calls expected")
        calls = record.tool_calls()
        missing = [t for t in expect.calls_made if not calls.get(t)]
        if missing:
            return self.fail(f"expected call(s) never made: {', '.join(missing)}")
        made = [t for t in expect.calls_not_made if calls.get(t)]
        if made:
            seq = next(e.seq for e in record.exchanges if e.tool == made[0])
            return self.fail(f"call(s) made that must not be: {', '.join(made)}", around=seq)
        return self.ok()


class WithinBudget(Check):
    """Model and tool requests stay within the scenario's budget."""

    name = "budget"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        if expect.max_model_calls is None and expect.max_tool_calls is None:
            return self.skip("no budget declared")
        m, t = record.model_calls(), sum(record.tool_calls().values())
        if expect.max_model_calls is not None and m > expect.max_model_calls:
            return self.fail(f"{m} model requests, budget {expect.max_model_calls}")
        if expect.max_tool_calls is not None and t > expect.max_tool_calls:
            return self.fail(f"{t} tool requests, budget {expect.max_tool_calls}")
        return self.ok(f"{m} model, {t} tool requests")


UNIVERSAL: tuple[Check, ...] = (
    HarnessRan(),
    TerminalStateReached(),
    SingleCategory(),
    ApprovedEffects(),
    NoDuplicateEffects(),
    FaultsFired(),
    AllRequestsRouted(),
    ModelScriptSufficient(),
    TraceCovers(),
    TraceRetention(),
)
EXPECTATIONS: tuple[Check, ...] = (
    ExpectedState(),
    ExpectedCategory(),
    ExpectedEffects(),
    ExpectedApprovals(),
    ExpectedCalls(),
    WithinBudget(),
)


def evaluate(
    record: RunRecord, expect: Expectation, extra: Sequence[Check] = ()
) -> tuple[Verdict, ...]:
    """Run every universal check, the expectations and any extra checks on a record."""
    return tuple(c.evaluate(record, expect) for c in (*UNIVERSAL, *EXPECTATIONS, *extra))


def overall(verdicts: Sequence[Verdict]) -> str:
    """``error`` if any harness-side check failed, else ``fail`` if any failed, else ``pass``."""
    if any(v.passed is False and v.harness for v in verdicts):
        return "error"
    if any(v.passed is False for v in verdicts):
        return "fail"
    return "pass"


@dataclass(frozen=True)
class NoReexecution(Check):
    """After a crash and resume, no completed step ran again: requests equal the fault-free run's.

    ``baseline`` counts requests per tool (and ``(model)``) in the fault-free run; ``allowed``
    grants the in-flight step its one replay (e.g. the effect whose response a crash lost).
    """

    baseline: Mapping[str, int]
    allowed: Mapping[str, int] = field(default_factory=dict)
    name: ClassVar[str] = "no_reexecution"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        if not record.crashes:
            return self.error(
                "the crash fault never fired: the run never reached its boundary, so resume "
                "was not exercised"
            )
        seen = dict(record.tool_calls())
        seen["(model)"] = record.model_calls()
        extra = reexecuted(self.baseline, seen, self.allowed)
        if extra:
            parts = []
            urls: set[str] = set()
            for tool, n in extra.items():
                mine = [
                    e
                    for e in record.exchanges
                    if (tool == "(model)" and e.surface == "model") or e.tool == tool
                ]
                urls.update(e.request.url for e in mine)
                what = "model request(s)" if tool == "(model)" else f"request(s) to {tool!r}"
                effects = [e for e in record.effects if e.tool == tool]
                if effects:
                    replays = sum(e.replays for e in effects)
                    what += (
                        f" (its effect committed {len(effects)} time(s), {replays} replay(s) "
                        "deduplicated by the ledger)"
                    )
                parts.append(f"{n} {what}")
            steps = _steps_of(record, urls)
            where = f"; re-executed step(s): {', '.join(steps)}" if steps else ""
            last = next((e.seq for e in reversed(record.exchanges) if e.request.url in urls), None)
            return self.fail(
                f"after {record.restarts} restart(s) at {', '.join(record.crashes)}, beyond the "
                f"fault-free run: {'; '.join(parts)}: a completed step was executed again{where}",
                around=last,
            )
        return self.ok(f"{record.restarts} restart(s), nothing re-executed")


def _steps_of(record: RunRecord, urls: set[str]) -> list[str]:
    """The agent's step names (from its trace) that made requests to these URLs."""
    if record.trace is None:
        return []
    steps: list[str] = []
    for r in record.trace.records:
        step = r.get("step")
        if r.get("url") in urls and isinstance(step, str) and step not in steps:
            steps.append(step)
    return steps


def reexecuted(
    baseline: Mapping[str, int], seen: Mapping[str, int], allowed: Mapping[str, int]
) -> dict[str, int]:
    """Requests per tool beyond the baseline plus the allowance (only the excess)."""
    out = {}
    for tool, n in seen.items():
        over = n - baseline.get(tool, 0) - allowed.get(tool, 0)
        if over > 0:
            out[tool] = over
    return out


@dataclass(frozen=True)
class InputHandled(Check):
    """An edge-case input ends in a terminal state; a must-reject family is refused at intake."""

    family: str
    must_reject: bool
    name: ClassVar[str] = "input_handled"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        final = record.final
        if final is None or not final.state.terminal:
            return self.skip("no terminal state (see terminal_state)")
        rejected = final.state is RunState.FAILED and final.category == Category.INPUT.value
        if rejected and record.exchanges:
            return self.fail(
                f"the input was rejected as an input error only after {len(record.exchanges)} "
                "request(s); intake validation must refuse it before any model or tool call",
                around=record.exchanges[0].seq,
            )
        if self.must_reject and not rejected:
            detail = f" ({final.category}: {final.error})" if final.error else ""
            return self.fail(
                f"a {self.family} input must be rejected at intake as an input error, but the "
                f"run ended {final.state.value!r}{detail}"
            )
        return self.ok("rejected at intake" if rejected else f"accepted, {final.state.value}")


INPUT_UNIVERSAL: tuple[Check, ...] = (
    HarnessRan(),
    TerminalStateReached(),
    SingleCategory(),
    ApprovedEffects(),
    NoDuplicateEffects(),
)
"""The invariants an edge-case input run must keep (its routes may not fit the new input)."""


def known_check_names() -> frozenset[str]:
    """The name of every check class defined so far (a gate policy may name any of them)."""
    names: set[str] = set()
    stack: list[type[Check]] = list(Check.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        name = cls.__dict__.get("name")
        if isinstance(name, str):
            names.add(name)
    return frozenset(names)
