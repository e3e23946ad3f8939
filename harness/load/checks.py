"""The load checks, each judged from the record and the evidence computed from it, and
:data:`LOAD_CHECKS`, what a load item is judged by.

Imports :mod:`~harness.load.record` and :mod:`~harness.load.evidence`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.load.evidence import (
    PERCENTILES,
    latencies,
    max_queue_length,
    percentile,
    queue_lengths,
    queued_after_throttle,
    silent_drops,
    spurious_throttles,
)
from harness.load.record import LoadRecord
from harness.record import RunRecord
from harness.scenario.expect import Expectation
from harness.verdict.attack import NetworkContained
from harness.verdict.base import Check, Verdict
from harness.verdict.effects import ApprovedEffects, NoDuplicateEffects
from harness.verdict.terminal import AllRequestsRouted, HarnessRan


class _LoadCheck(Check):
    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        load = record.load
        if load is None:
            return self.error("not a load run: the record has no load section")
        return self.judge(load, record)

    def judge(self, load: LoadRecord, record: RunRecord) -> Verdict:
        raise NotImplementedError


class LoadFinished(_LoadCheck):
    """Every run of the load was driven to its end: the agent neither hung nor raised."""

    name: ClassVar[str] = "load_finished"

    def judge(self, load: LoadRecord, record: RunRecord) -> Verdict:
        if record.harness_error:
            return self.skip("the harness could not run the load (see harness_ran)")
        if record.timed_out is not None:
            return self.fail(
                f"the load did not finish within {record.timed_out:g} s (wall clock): the agent "
                "stopped answering; every start and resume must return once the run is parked "
                "or ended"
            )
        if record.agent_exception:
            return self.fail(
                f"the agent raised instead of returning an outcome: {record.agent_exception}"
            )
        started = sum(1 for r in load.runs if r.steps)
        return self.ok(f"{started} run(s) driven to their end")


class QueueBounded(_LoadCheck):
    """Evidence: the approvals parked and not yet decided or expired never exceed the capacity."""

    name: ClassVar[str] = "queue_bounded"

    def judge(self, load: LoadRecord, record: RunRecord) -> Verdict:
        lengths = queue_lengths(load.parked)
        peak = max((n for _, _, n in lengths), default=0)
        if peak > load.capacity:
            t, order, _ = next(x for x in lengths if x[2] > load.capacity)
            who = next((p for p in load.parked if p.parked_order == order), None)
            culprit = (
                "" if who is None else f" when run {who.run} parked approval {who.approval_id!r}"
            )
            return self.fail(
                f"the review queue held {peak} approvals waiting for a decision at once "
                f"(capacity {load.capacity}); it first went over at t={t:g}{culprit}. Throttle "
                f"intake while {load.capacity} approvals are pending instead of queueing more"
            )
        return self.ok(f"at most {peak} of {load.capacity} approvals pending at once")


class RunsAccounted(_LoadCheck):
    """Every run was queued and ended after its decision, or ended throttled with a reason."""

    name: ClassVar[str] = "runs_accounted"

    def judge(self, load: LoadRecord, record: RunRecord) -> Verdict:
        drops = silent_drops(load)
        started = [r for r in load.runs if r.steps]
        if not started:
            return self.skip("no run started (see load_finished)")
        if drops:
            listed = "; ".join(f"run {r.number} ({r.run_id}): {why}" for r, why in drops[:5])
            return self.fail(
                f"{len(drops)} of {len(started)} run(s) silently dropped: {listed}. Every run "
                "must park for its review, or end 'throttled' with the reason in 'error'"
            )
        queued = sum(1 for r in started if r.queued)
        throttled = sum(1 for r in started if r.final is not None and r.final.state == "throttled")
        return self.ok(
            f"{queued} run(s) queued and decided, {throttled} ended throttled with a reason, "
            "0 silent drops"
        )


class ApprovedRunsEnd(Check):
    """A run whose approval was granted ends in the scenario's ``expect.state``."""

    name: ClassVar[str] = "approved_runs_end"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        load = record.load
        if load is None:
            return self.error("not a load run: the record has no load section")
        if expect.state is None:
            return self.skip("the scenario expects no state")
        approved = {p.run for p in load.parked if p.verdict == "approve"}
        if not approved:
            return self.skip("no approval was granted")
        wrong = [
            r
            for r in load.runs
            if r.number in approved and r.final is not None and r.final.state != expect.state
        ]
        if wrong:
            run = wrong[0]
            assert run.final is not None
            why = f" ({run.final.error})" if run.final.error else ""
            return self.fail(
                f"{len(wrong)} of {len(approved)} approved run(s) did not end "
                f"'{expect.state}': run {run.number} ({run.run_id}) ended '{run.final.state}'"
                f"{why}"
            )
        return self.ok(f"{len(approved)} approved run(s) ended '{expect.state}'")


@dataclass(frozen=True)
class PerRun(Check):
    """A universal rule judged on each run of the load (its requests, effects and decisions)."""

    rule: Check
    name: ClassVar[str] = "per_run"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        name = self.rule.name
        load = record.load
        if load is None:
            return Verdict(name, False, "not a load run: the record has no load section", True)
        judged = [(r, self.rule.evaluate(r, expect)) for r in load.records]
        for run, verdict in judged:
            if verdict.passed is False:
                return Verdict(name, False, f"{run.variant}: {verdict.reason}", verdict.harness)
        held = sum(1 for _, v in judged if v.passed)
        if not held:
            reasons = {v.reason for _, v in judged}
            return Verdict(name, None, "; ".join(sorted(reasons)) or "no run started")
        return Verdict(name, True, f"held in each of {held} run(s)")


class ThrottleJustified(_LoadCheck):
    """A run is throttled only while the harness sees the queue at capacity."""

    name: ClassVar[str] = "throttle_justified"

    def judge(self, load: LoadRecord, record: RunRecord) -> Verdict:
        events = sum(len(r.throttles) for r in load.runs)
        if not events:
            return self.skip("no run was throttled")
        wrong = spurious_throttles(load)
        if wrong:
            run, step = wrong[0]
            return self.fail(
                f"{len(wrong)} of {events} throttle(s) came while the queue had room: run "
                f"{run.number} was throttled at t={step.t:g} ({step.action}) with "
                f"{step.queue_before} of {load.capacity} approvals pending (approvals decided "
                "or expired are no longer pending); count only approvals still waiting for a "
                "decision"
            )
        return self.ok(f"{events} throttle(s), each with the queue at capacity")


class IntakeResumes(_LoadCheck):
    """A throttled run started again after the queue drained is queued."""

    name: ClassVar[str] = "intake_resumes"

    def judge(self, load: LoadRecord, record: RunRecord) -> Verdict:
        if not load.resubmit:
            return self.skip("load.resubmit is off: throttled runs are not started again")
        throttled = [r for r in load.runs if r.throttles]
        if not throttled:
            return self.skip("no run was throttled")
        stuck = [r for r in throttled if not queued_after_throttle(r)]
        if stuck and load.stopped is None:
            run = stuck[0]
            tries = [s for s in run.steps if s.action == "resubmit"]
            seen = (
                f"; started again {len(tries)} time(s), with {tries[0].queue_before} of "
                f"{load.capacity} approvals pending the first time"
                if tries
                else ""
            )
            return self.fail(
                f"{len(stuck)} of {len(throttled)} throttled run(s) never got into the queue "
                f"after it drained: run {run.number} ({run.run_id}){seen}. Intake must "
                "resume as soon as approvals are decided"
            )
        if stuck:
            return self.skip(f"the load stopped early: {load.stopped}")
        first = min(
            s.t
            for r in throttled
            for s in r.steps
            if s.action == "resubmit" and s.state != "throttled"
        )
        return self.ok(
            f"{len(throttled)} throttled run(s), all queued once the queue drained (first at "
            f"t={first:g})"
        )


class ReviewSla(_LoadCheck):
    """Time to decision (delivery minus park, fake clock) within the declared percentiles."""

    name: ClassVar[str] = "review_sla"

    def judge(self, load: LoadRecord, record: RunRecord) -> Verdict:
        waits = latencies(load.parked)
        expired = [p for p in load.parked if p.verdict == "expired"]
        if not waits and not expired:
            return self.skip("no approval was decided")
        measured = {f"p{q}": percentile(waits, q) for q in PERCENTILES}
        shown = ", ".join(
            f"{k} {v:g} s" if v is not None else f"{k} n/a" for k, v in measured.items()
        )
        over = [
            f"{k} {measured[k]:g} s > {limit:g} s"
            for k, limit in load.sla.items()
            if (measured.get(k) or 0.0) > limit
        ]
        if expired:
            over.append(
                f"{len(expired)} approval(s) expired in the queue before a reviewer took them"
            )
        if over:
            return self.fail(
                f"review latency over the SLA: {'; '.join(over)} (measured {shown} over "
                f"{len(waits)} decision(s)); a bounded queue keeps the wait within capacity x "
                "review time / reviewers: lower the capacity or throttle sooner"
            )
        return self.ok(f"{shown} over {len(waits)} decision(s), within the SLA")


class LoadExercised(_LoadCheck):
    """The queue filled at least once (else the scenario tested no throttling: an ERROR)."""

    name: ClassVar[str] = "load_exercised"

    def judge(self, load: LoadRecord, record: RunRecord) -> Verdict:
        if load.stopped is not None:
            return self.skip(f"the load stopped early: {load.stopped}")
        peak = max_queue_length(load.parked)
        if peak < load.capacity:
            return Verdict(
                self.name,
                False,
                f"the queue never filled (at most {peak} of {load.capacity} approvals pending), "
                "so throttling was never tested; start more runs (load.runs), space them closer "
                "(load.arrival_s) or slow the reviewers (load.review delay_s)",
                harness=True,
            )
        return self.ok(f"the queue reached {peak} of {load.capacity}")


LOAD_CHECKS: tuple[Check, ...] = (
    HarnessRan(),
    AllRequestsRouted(),
    NetworkContained(),
    PerRun(ApprovedEffects()),
    PerRun(NoDuplicateEffects()),
    LoadFinished(),
    QueueBounded(),
    RunsAccounted(),
    ApprovedRunsEnd(),
    ThrottleJustified(),
    IntakeResumes(),
    ReviewSla(),
    LoadExercised(),
)
"""What a load item is judged by."""


def judge_load(record: RunRecord, expect: Expectation) -> tuple[Verdict, ...]:
    """Every load check on a load record."""
    return tuple(c.evaluate(record, expect) for c in LOAD_CHECKS)
