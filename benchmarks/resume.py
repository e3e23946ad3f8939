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
    """P3b: per-step cost with persistence on / off (slope between a 10- and a 100-step walk)."""
    arms: dict[str, Callable[[], None]] = {}
    for persist in (True, False):
        for steps in (STEPS, SHORT):
            sc, agent = _walk(steps, persist)
            variant = base_variant(sc)
            arms[f"{'on' if persist else 'off'}_{steps}"] = _bind(variant, agent)
    for fn in arms.values():
        fn()
    times = interleaved(arms, reps=reps, batch=batch)
    span = STEPS - SHORT

    def slope(mode: str, i: int) -> float:
        return (times.wall[f"{mode}_{STEPS}"][i] - times.wall[f"{mode}_{SHORT}"][i]) / span

    on = [slope("on", i) for i in range(reps)]
    off = [slope("off", i) for i in range(reps)]
    ratio = median([a / b for a, b in zip(on, off, strict=True)])
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
            f"per-step cost = (run of {STEPS} steps - run of {SHORT} steps) / {span}, so opening "
            "and closing the database is left out; one write transaction per step (its checkpoint "
            "and the next step's start) in WAL mode, synchronous=NORMAL"
        ),
        extra={"refund_happy_whole_run_on_vs_off": round(refund_ratio, 4)},
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
