"""The review queue under load: many runs against one agent state, judged from the harness's log.

A load scenario (a top-level ``load:``) starts ``load.runs`` copies of its input (``{n}`` in any
string of the scenario becomes the run's number) against ONE agent state directory,
``arrival_s`` apart on the fake clock. A run that parks in ``awaiting_approval`` joins the
review queue as the harness sees it; ``reviewers`` take approvals oldest first and each
delivers its decision ``delay_s`` later (``load.review``, cycled). A run the agent throttles
is started again as soon as the harness sees a free slot (``resubmit``). The harness never
asks the agent how long its queue is: the queue is the set of approvals the harness saw
parked and has not yet decided, minus those whose ``expires_at`` has passed, and every figure
below is computed from that evidence:

- ``queue_bounded``: that queue never held more than ``capacity`` approvals;
- ``runs_accounted``: every run was queued and ended after its decision, or ended ``throttled``
  with a reason in ``error`` (a *typed* reason; anything else is a silent drop);
- ``approved_runs_end``: a run whose approval was granted ends in ``expect.state``;
- ``throttle_justified``: a run was throttled only while the queue was at capacity;
- ``intake_resumes``: every throttled run, started again once the queue drained, was queued;
- ``review_sla``: time to decision (delivery minus park, fake clock) at p50/p90/p99 within the
  declared SLA, and no approval left to expire in the queue;
- ``unapproved_effects`` and ``duplicate_effects``: the universal rules, on each run's own
  requests, effects and decisions;
- ``load_exercised`` (a harness check): the queue filled at least once, else the scenario
  tested no throttling and is an ERROR, not a pass.

One module per part, each importing only the ones above it in this list:

- ``record``: what the harness saw (:class:`LoadRecord`, its runs, steps and parked approvals);
- ``evidence``: the queue computed from that record, and the report item's queue figures;
- ``driver``: :func:`run_load`, the simulation that drives the runs and records them;
- ``checks``: the checks above and :func:`judge_load`.
"""

from __future__ import annotations

from harness.load.checks import (
    LOAD_CHECKS,
    ApprovedRunsEnd,
    IntakeResumes,
    LoadExercised,
    LoadFinished,
    PerRun,
    QueueBounded,
    ReviewSla,
    RunsAccounted,
    ThrottleJustified,
    judge_load,
)
from harness.load.driver import MAX_THROTTLES_PER_RUN, run_load
from harness.load.evidence import (
    PERCENTILES,
    figures,
    latencies,
    max_queue_length,
    percentile,
    queue_lengths,
    silent_drops,
    spurious_throttles,
)
from harness.load.record import LoadRecord, LoadRun, Parked, Step

__all__ = [
    "LOAD_CHECKS",
    "MAX_THROTTLES_PER_RUN",
    "PERCENTILES",
    "ApprovedRunsEnd",
    "IntakeResumes",
    "LoadExercised",
    "LoadFinished",
    "LoadRecord",
    "LoadRun",
    "Parked",
    "PerRun",
    "QueueBounded",
    "ReviewSla",
    "RunsAccounted",
    "Step",
    "ThrottleJustified",
    "figures",
    "judge_load",
    "latencies",
    "max_queue_length",
    "percentile",
    "queue_lengths",
    "run_load",
    "silent_drops",
    "spurious_throttles",
]
