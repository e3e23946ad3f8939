"""Recovery, crash and resume: a transient failure is answered for real before the run goes on,
a permanent one is not retried and no gated effect follows it, retries wait as asked, a cut
model answer is never used, a failed tool call handed to the model is reacted to as scripted,
and after a crash and resume no completed step runs again.

May import: ``base``.
"""

from __future__ import annotations

import dataclasses
import email.utils
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from faults.base import Category
from faults.model import LengthCut
from harness.adapter import RunState
from harness.record import Commit, Exchange, RunRecord, canonical
from harness.scenario.expect import Expectation
from harness.verdict.base import Check, Verdict, _failed, _fault_by_label, _request_faults, _what
from harness.world.model import REACTION_KEY

# --------------------------------------------------------------------------- evidence of recovery


def _later_real(record: RunRecord, ex: Exchange) -> Exchange | None:
    """The first later request for the same call that got a real answer."""
    identity = ex.identity() if ex.surface == "tool" else None
    for other in record.exchanges:
        if other.seq <= ex.seq or other.surface != ex.surface or not other.real:
            continue
        if identity is None or other.identity() == identity:
            return other
    return None


def _next_commit(record: RunRecord, ex: Exchange) -> Commit | None:
    """The first effect committed by a request after ``ex`` (not by ``ex`` itself)."""
    for c in record.effects:
        if c.request_seq > ex.seq:
            return c
    return None


class Recovered(Check):
    """Evidence: after a transient fault, the same call was answered for real before the run's
    next effect (and before it ended ``completed``): otherwise the run did not recover, whatever
    it reports. Tools: the same route and body, or the same idempotency key; the model: the
    agent's next model request."""

    name = "recovered"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        if not expect.recovery_required:
            return self.skip(f"recovery not required: {expect.origin}")
        checked = 0
        for ex in record.exchanges:
            faults = _request_faults(record, ex)
            if not faults or not all(f.transient and f.needs_real_answer for f in faults):
                continue
            checked += 1
            again = _later_real(record, ex)
            commit = _next_commit(record, ex)
            if commit is not None and (again is None or again.seq > commit.request_seq):
                got = "was never fetched again" if again is None else "was fetched again only later"
                return self.fail(
                    f"{_what(ex)} and {got} before the effect on {commit.tool!r} (request "
                    f"#{commit.request_seq}, body {canonical(commit.body)[:120]}): the effect "
                    "was built without the data that call should have returned",
                    around=commit.request_seq,
                )
            final = record.final
            if again is None and final is not None and final.state is RunState.COMPLETED:
                return self.fail(
                    f"{_what(ex)} and was never answered for real afterwards, yet the run "
                    "reported 'completed': it did not recover from the fault",
                    around=ex.seq,
                )
        if not checked:
            return self.skip("no transient fault broke a request")
        return self.ok(f"{checked} broken request(s), each answered for real before going on")


class StoppedAfterPermanent(Check):
    """Evidence: a permanent failure is not retried and stops the work.

    A tool request answered by a permanent fault is never sent again (an SDK's built-in retries
    of a model request are its own business: the provider's status alone does not say whether
    a 429 is a quota); after it, no effect on a gated tool is committed (the base run's effects
    before that point stay; the scenario may allow others), whatever the agent reports.
    """

    name = "stopped_after_failure"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        first = None
        for ex in record.exchanges:
            if any(not f.transient for f in _request_faults(record, ex)):
                first = ex
                break
        if first is None:
            return self.skip("no permanent fault broke a request")
        if first.surface == "tool":
            again = [
                e.seq
                for e in record.exchanges
                if e.seq > first.seq and e.surface == "tool" and e.identity() == first.identity()
            ]
            if again:
                return self.fail(
                    f"{_what(first)}, a permanent failure, and was sent again {len(again)} "
                    f"time(s) (request(s) {', '.join(f'#{n}' for n in again)}): a permanent "
                    "error must not be retried (only transient ones: 429 with Retry-After, 5xx, "
                    "timeouts, resets)",
                    around=again[0],
                )
        if expect.state not in (None, "failed"):
            return self.ok(f"not retried; the run is expected to end {expect.state!r}")
        for c in record.effects:
            if c.request_seq <= first.seq or c.tool not in expect.gated_tools:
                continue
            if c.tool in expect.allowed_after_failure:
                continue
            return self.fail(
                f"{_what(first)}, a permanent failure, yet the run went on to commit an effect "
                f"on gated tool {c.tool!r} (request #{c.request_seq}, body "
                f"{canonical(c.body)[:120]}); a permanent failure must stop the work (list the "
                "tool under 'matrix.allow_after_failure' if that effect is intended)",
                around=c.request_seq,
            )
        return self.ok(f"no retry and no gated effect after {_what(first)}")


def _retry_after(ex: Exchange) -> float | None:
    """The shortest wait the answer asked for (``retry-after-ms``, ``Retry-After`` seconds or
    HTTP-date on the fake clock), or None."""
    waits: list[float] = []
    for name, value in ex.headers:
        low = name.lower()
        try:
            if low == "retry-after-ms":
                waits.append(float(value) / 1000.0)
            elif low == "retry-after":
                if value.strip().isdigit():
                    waits.append(float(value))
                else:
                    when = email.utils.parsedate_to_datetime(value).timestamp()
                    # an HTTP-date has whole seconds: allow the rounding
                    waits.append(max(when - ex.t - 1.0, 0.0))
        except (ValueError, TypeError, OverflowError):
            continue
    return min(waits) if waits else None


_MIN_REAL_WAIT = 0.005
"""A model retry after a failure without a Retry-After must wait: some fake-clock time, or at
least this much real time (an SDK's own backoff sleeps for real)."""


class RetryTiming(Check):
    """Evidence: a retry after a failed answer waits (at least its ``Retry-After``, else some
    time: no zero-delay storms), and no request is attempted more often than the budget allows.

    Waits are read on both clocks (the fake clock for agents that sleep on it, real time for an
    SDK's built-in retries), so either kind of well-built retry passes.
    """

    name = "retry_timing"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        by_identity: dict[str, list[Exchange]] = {}
        for ex in record.exchanges:
            if ex.surface in ("model", "tool"):
                by_identity.setdefault(ex.identity(), []).append(ex)
        retries = 0
        for attempts in by_identity.values():
            if expect.max_attempts is not None and len(attempts) > expect.max_attempts:
                first = attempts[0]
                return self.fail(
                    f"{first.tool or 'the model request'} was attempted {len(attempts)} times "
                    f"(requests {', '.join(f'#{a.seq}' for a in attempts)}); the budget allows "
                    f"{expect.max_attempts} attempts per request",
                    around=attempts[-1].seq,
                )
            for before, after in itertools.pairwise(attempts):
                if not _failed(before):
                    continue
                retries += 1
                fake, real = after.t - before.t, after.mono - before.mono
                if after.surface == "tool":
                    # an agent's own waits are on the world's clock (the contract); only an
                    # SDK's built-in model retries sleep for real
                    real = 0.0
                need = _retry_after(before)
                if need is not None:
                    if fake + 1e-9 < need and real + 1e-3 < need:
                        return self.fail(
                            f"{_what(before)} asking to retry after {need:g} s, but the retry "
                            f"(request #{after.seq}) came {max(fake, 0.0):g} s later on the "
                            f"fake clock ({real * 1000:.1f} ms real): Retry-After was ignored",
                            around=after.seq,
                        )
                elif fake <= 0 and real < _MIN_REAL_WAIT:
                    return self.fail(
                        f"{_what(before)}, and it was retried at once (request #{after.seq}, no "
                        "wait on the fake clock): a retry after a transient failure must back "
                        "off first (sleep on the world's clock)",
                        around=after.seq,
                    )
        if not retries:
            return self.skip("no failed request was retried")
        return self.ok(f"{retries} retry(ies), each after a wait")


# --------------------------------------------------------------------------- guarded rules


class IncompleteAnswerUnused(Check):
    """Evidence: an answer cut at the token limit is never acted on; the agent's next request
    goes to the model again (a re-ask), never to a tool built from the incomplete answer.

    The cut answer may look whole (valid, schema-valid arguments): only its finish signal
    (``finish_reason: length``, ``status: incomplete``, ``stop_reason: max_tokens``) says so.
    """

    name = "incomplete_answer_unused"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        by_label = _fault_by_label(record)
        checked = 0
        requests = [e for e in record.exchanges if e.surface in ("model", "tool")]
        for ex, after in itertools.zip_longest(requests, requests[1:]):
            if ex is None or ex.surface != "model" or ex.crashed:
                continue
            cut = [by_label[f] for f in ex.faults if isinstance(by_label.get(f), LengthCut)]
            if not cut:
                continue
            checked += 1
            if after is not None and after.surface == "tool":
                return self.fail(
                    f"the model answer to request #{ex.seq} stopped at the token limit "
                    f"({cut[0].label()}: finish 'length', status 'incomplete' or stop_reason "
                    f"'max_tokens'), yet the agent's next request was {after.tool} "
                    f"(#{after.seq}): it acted on an incomplete answer. Check the finish "
                    "reason before using an answer, and re-ask the model when it was cut",
                    around=after.seq,
                )
        if not checked:
            return self.skip("no answer was cut at the token limit")
        return self.ok(f"{checked} cut answer(s), none acted on")


@dataclass(frozen=True)
class ToolErrorReaction(Check):
    """Evidence: how the agent handled its model's reaction to a failed tool call
    (``on_tool_error``). Not applicable when no failed call reached the model: the reaction was
    never played, and the run is judged as if the model had none. ``give_up``: the run must not
    end ``completed`` and commits no effect after the model gave up. ``retry``: the agent must
    reach a terminal state however often the model re-asks. ``proceed`` is judged by the checks
    beside it (recovered, stopped_after_failure, same_effects, the expected outcome)."""

    reaction: str
    name: ClassVar[str] = "tool_error_reaction"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        fired = [f for f in record.firings if f.key == REACTION_KEY]
        if not fired:
            return self.skip(
                f"on_tool_error {self.reaction} not exercised: no failed tool call reached the "
                f"model in its {record.model_calls()} request(s) (the agent handled every tool "
                "error in its own code, or none occurred)"
            )
        first = fired[0]
        what = (
            f"the model reacted {self.reaction!r} at model request {first.call_index} to the "
            f"failed {first.where} call ({first.detail.get('error') or 'an error'})"
        )
        final = record.final
        if record.timed_out is not None or final is None or not final.state.terminal:
            if self.reaction != "retry":
                return self.skip("no terminal state (see terminal_state)")
            return self.fail(
                f"{what}, and kept re-asking it {len(fired)} time(s): the agent never reached "
                "a terminal state. Bound the attempts per tool call, whoever asks for them, and "
                "do not re-run a call that failed permanently"
            )
        if self.reaction == "give_up":
            if final.state is RunState.COMPLETED:
                return self.fail(
                    f"{what}: it answered that it cannot continue, yet the agent reported "
                    "'completed'; a run whose model gave up has no result and must end failed "
                    "with category tool"
                )
            seq = next(
                (
                    e.seq
                    for e in record.exchanges
                    if e.surface == "model" and e.call_index == first.call_index
                ),
                0,
            )
            late = next((c for c in record.effects if c.request_seq > seq), None)
            if late is not None:
                return self.fail(
                    f"{what}, yet the run went on to commit an effect on {late.tool!r} (request "
                    f"#{late.request_seq}); nothing may be done after the model gave up",
                    around=late.request_seq,
                )
        return self.ok(f"{what} {len(fired)} time(s); the run ended {final.state.value!r}")


def after_give_up(record: RunRecord, expect: Expectation) -> Expectation:
    """The expectation of a run whose model gave up after a failed tool call: failed with
    category tool (the failure the model could not get past), effects judged only by
    ``tool_error_reaction``; ``expect`` itself when the model did not give up."""
    gave_up = any(
        f.key == REACTION_KEY and f.detail.get("reaction") == "give_up" for f in record.firings
    )
    if not gave_up:
        return expect
    return dataclasses.replace(
        expect,
        state="failed",
        category=Category.TOOL.value,
        check_category=True,
        effects=None,
        bodies=None,
        baseline=None,
        approvals=None,
        calls_made=(),
        origin="the model gave up after a failed tool call: failed with category tool",
    )


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
