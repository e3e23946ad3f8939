"""P3 (resume cost at step 50 vs step 5) and P3b (checkpoint cost per step, persistence on/off)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from benchmarks import refund, walker
from benchmarks.figure import Figure, interleaved, median
from faults.base import Schedule
from faults.crash import CrashBeforeStep
from harness.plugin.session import judge
from harness.run.runner import endpoints_of, run_variant
from harness.scenario.matrix import base_variant
from harness.scenario.spec import Scenario
from harness.scenario.variant import Variant

STEPS = 100
SHORT = 10


@cache
def _walk(steps: int, persist: bool) -> tuple[Scenario, walker.Walker]:
    sc = Scenario.model_validate(walker.scenario(f"walk_{steps}", steps, persist=persist))
    return sc, walker.build_adapter(endpoints_of(sc))


def _run(variant: Variant, agent: walker.Walker) -> None:
    record = run_variant(variant, agent, seed=refund.SEED, wall_s=refund.WALL_S)
    result = judge(variant, record, "python -m benchmarks")
    if result.verdict != "pass":
        raise RuntimeError(f"walker run did not pass:\n{result.explain()}")


def _crash_at(step: int) -> tuple[Callable[[], None], walker.Walker]:
    sc, _ = _walk(STEPS, True)
    agent = walker.build_adapter(endpoints_of(sc))  # its own latencies list
    fault = CrashBeforeStep(target=f"step-{step:03d}", at=Schedule(nth=1))
    base = base_variant(sc)
    variant = Variant(sc, fault.label(), (fault,), base.expect, "crash")
    return (lambda: _run(variant, agent)), agent


def measure_resume(*, reps: int, batch: int) -> Figure:
    """P3: restart-to-first-checkpoint latency after a crash before step 50 / before step 5."""
    late, late_agent = _crash_at(50)
    early, early_agent = _crash_at(5)
    late(), early()
    late_agent.resume_latencies.clear()
    early_agent.resume_latencies.clear()
    interleaved({"step50": late, "step5": early}, reps=reps, batch=batch)
    lat50, lat5 = late_agent.resume_latencies, early_agent.resume_latencies
    # pair the k-th resume of each arm: they ran back to back
    ratio = median([a / b for a, b in zip(lat50, lat5, strict=True)])
    return Figure(
        id="P3",
        title=f"resume cost at step 50 vs step 5 of a {STEPS}-step run",
        ratio=ratio,
        target=1.2,
        op="<=",
        baseline="the same restart after a crash before step 5",
        medians={"resume_at_50_s": median(lat50), "resume_at_5_s": median(lat5)},
        reps=len(lat50),
        note=(
            "benchmarks.walker (100 checkpointed steps over the reference agent's SQLite Store; "
            "the reference agent has 7 steps) crashed by crash_before_step; resume cost = "
            "adapter.begin over the state dir to the first step checkpointed after it, "
            "through the harness's restart (driver) path"
        ),
    )


def measure_checkpoints(*, reps: int, batch: int) -> Figure:
    """P3b: per-step cost with persistence on / off (slope between a 10- and a 100-step walk).

    A walk's steps are timed by the walker itself (``Walker.walk_seconds``: its first step's
    start record to its last checkpoint), so opening and closing the database stay out of the
    slope. Timed around the whole run instead, the persist-on arm also carries the state dir's
    setup and teardown on the shared disk: creating the database (6 fdatasyncs) and dropping
    the previous run's deleted files when its Store closes (ext4 mounted with ``discard`` frees
    their blocks with a synchronous discard) wait on the disk for milliseconds, varying run to
    run by more than the 90 steps' whole difference; that
    whole-run slope ratio is still reported (``extra``), and so is the steps' CPU-time ratio
    (the process's CPU time: a step's commit does not wait on the disk, only the fdatasyncs and
    discards above do, so it is the steps' cost without other tenants' preemption).
    """
    arms: dict[str, Callable[[], None]] = {}
    agents: dict[str, walker.Walker] = {}
    for persist in (True, False):
        for steps in (STEPS, SHORT):
            sc, agent = _walk(steps, persist)
            variant = base_variant(sc)
            name = f"{'on' if persist else 'off'}_{steps}"
            arms[name], agents[name] = _bind(variant, agent), agent
    for fn in arms.values():
        fn()
    for agent in agents.values():
        agent.walk_seconds.clear()
        agent.walk_cpu_seconds.clear()
    times = interleaved(arms, reps=reps, batch=batch)
    span = STEPS - SHORT

    def walks(name: str, *, cpu: bool = False) -> list[float]:
        # one value per repetition: the mean of its batch's walks (as interleaved reports)
        agent = agents[name]
        done = agent.walk_cpu_seconds if cpu else agent.walk_seconds
        if len(done) != reps * batch:
            raise RuntimeError(f"{name}: {len(done)} walks timed, expected {reps * batch}")
        return [sum(done[i * batch : (i + 1) * batch]) / batch for i in range(reps)]

    def slopes(long: list[float], short: list[float]) -> list[float]:
        return [(a - b) / span for a, b in zip(long, short, strict=True)]

    on = slopes(walks(f"on_{STEPS}"), walks(f"on_{SHORT}"))
    off = slopes(walks(f"off_{STEPS}"), walks(f"off_{SHORT}"))
    ratio = median([a / b for a, b in zip(on, off, strict=True)])
    cpu_on = slopes(walks(f"on_{STEPS}", cpu=True), walks(f"on_{SHORT}", cpu=True))
    cpu_off = slopes(walks(f"off_{STEPS}", cpu=True), walks(f"off_{SHORT}", cpu=True))
    cpu_ratio = median([a / b for a, b in zip(cpu_on, cpu_off, strict=True)])
    run_on = slopes(times.wall[f"on_{STEPS}"], times.wall[f"on_{SHORT}"])
    run_off = slopes(times.wall[f"off_{STEPS}"], times.wall[f"off_{SHORT}"])
    run_ratio = median([a / b for a, b in zip(run_on, run_off, strict=True)])
    refund_ratio = _refund_persist_ratio(reps=reps, batch=max(batch // 2, 1))
    return Figure(
        id="P3b",
        title="checkpoint overhead per step (persistence on vs off)",
        ratio=ratio,
        target=1.10,
        op="<=",
        baseline="the same walk with persist: false (the Store in an in-memory SQLite database)",
        medians={
            "per_step_persist_on_s": median(on),
            "per_step_persist_off_s": median(off),
            "run_100_steps_persist_on_s": times.median(f"on_{STEPS}"),
            "run_100_steps_persist_off_s": times.median(f"off_{STEPS}"),
        },
        reps=reps,
        note=(
            f"per-step cost = (steps of a {STEPS}-step walk - steps of a {SHORT}-step walk) / "
            f"{span}, each walk's steps timed by the walker from its first step's start record "
            "to its last checkpoint, so opening and closing the database are left out; one write "
            "transaction per step (its checkpoint and the next step's start) in WAL mode, "
            "synchronous=NORMAL"
        ),
        extra={
            "per_step_cpu_on_vs_off": round(cpu_ratio, 4),
            "whole_run_slope_on_vs_off": round(run_ratio, 4),
            "refund_happy_whole_run_on_vs_off": round(refund_ratio, 4),
        },
    )


def _bind(variant: Variant, agent: walker.Walker) -> Callable[[], None]:
    def run() -> None:
        _run(variant, agent)

    return run


def _refund_persist_ratio(*, reps: int, batch: int) -> float:
    variant = refund.base()
    times = interleaved(
        {
            "on": lambda: refund.run_and_judge(variant),
            "off": lambda: refund.run_and_judge(variant, config={"persist": False}),
        },
        reps=reps,
        batch=batch,
    )
    return times.ratio("on", "off")
