"""The run itself: it ran, it ended in one terminal state with at most one category, as the
scenario expects, within its budget, and the scenario's script was enough to play it out
(faults fired, requests routed, model turns sufficient, the trace covers and keeps the run).

May import: ``base``.
"""

from __future__ import annotations

from collections import Counter

from faults.base import Category
from harness.adapter import RunState
from harness.record import Exchange, RunRecord
from harness.scenario.expect import Expectation
from harness.verdict.base import Check, Verdict, _failed

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
        if record.stopped:
            return self.fail(record.stopped)
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


class FaultsFired(Check):
    """Every declared fault fired at least once (otherwise ERROR: the fault tested nothing)."""

    name = "faults_fired"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        if not record.faults:
            return self.skip("no fault declared")
        if record.harness_error and not record.exchanges:
            return self.skip("the run did not happen (see harness_ran)")
        # by label (key, target, schedule): the same key firing elsewhere does not count
        fired = {f.label or f.key for f in record.firings}
        missing = [f.label() for f in record.faults if f.label() not in fired]
        if missing:
            return self.error(
                f"declared fault(s) never fired: {', '.join(missing)}; the run never reached the "
                "call they target, so they tested nothing. Aim them at a call the run makes "
                "(see the request list) or remove them"
            )
        return self.ok(", ".join(f.label() for f in record.faults))


class AllRequestsRouted(Check):
    """Every request matched a scenario route (an unrouted one is refused, never sent)."""

    name = "requests_routed"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        unrouted = record.unrouted()
        if unrouted and expect.routes_proven:
            first = unrouted[0]
            return self.fail(
                f"{len(unrouted)} request(s) matched no scenario route, first: "
                f"{first.request.method} {first.request.url}; the fault-free run made none, so "
                "the agent built this request from what the fault gave it (e.g. a model "
                "argument or an error body it did not validate)",
                around=first.seq,
            )
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
        # A request whose answer a crash fault kept from the agent cannot be in its trace; an
        # SDK's built-in retry of a failed model request (the identical body again) is part of
        # the one call the agent made and traced.
        seen: Counter[tuple[str, str]] = Counter()
        previous: Exchange | None = None
        for e in record.exchanges:
            if e.surface not in ("model", "tool") or e.crashed:
                continue
            sdk_retry = (
                e.surface == "model"
                and previous is not None
                and _failed(previous)
                and previous.identity() == e.identity()
            )
            if not sdk_retry:
                seen[(e.request.method.upper(), e.request.url)] += 1
            if e.surface == "model":
                previous = e
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
