"""P6: scenario runs per second vs a pydantic-ai agent tested over respx, same two-request loop."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest_httpx2  # noqa: F401  (registers respx's httpcore2 mocker, which pydantic-ai needs)
import respx

from benchmarks import pydantic_agent, refund
from benchmarks.figure import Figure, interleaved
from harness.plugin.session import judge
from harness.run.runner import endpoints_of, run_variant
from harness.scenario.matrix import base_variant
from harness.scenario.spec import Scenario

QUESTION = "What did order O-1001 cost?"


def harness_arm() -> tuple[Callable[[], object], list[bytes]]:
    """One scenario run (world, interception, driver, checks) of the pydantic-ai agent."""
    sc = Scenario.model_validate(pydantic_agent.scenario())
    variant = base_variant(sc)
    adapter = pydantic_agent.build_adapter(endpoints_of(sc))

    def run() -> list[bytes]:
        record = run_variant(variant, adapter, seed=refund.SEED, wall_s=refund.WALL_S)
        result = judge(variant, record, "python -m benchmarks")
        if result.verdict != "pass":
            raise RuntimeError(f"pydantic-ai scenario did not pass:\n{result.explain()}")
        return [e.response_body for e in record.exchanges]

    return run, run()


def respx_arm(bodies: list[bytes]) -> Callable[[], None]:
    """The usual test: the same agent under ``respx.mock(using="httpcore2")`` serving the bytes."""
    agent = pydantic_agent.build_agent()
    url = f"{pydantic_agent.MODEL_BASE_URL}/chat/completions"
    headers = {"content-type": "application/json"}

    def run() -> None:
        with respx.mock(using="httpcore2", assert_all_called=True) as router:
            router.post(url).mock(
                side_effect=[httpx.Response(200, content=b, headers=headers) for b in bodies]
            )
            result = agent.run_sync(QUESTION)
        if not result.output.startswith("Order O-1001"):
            raise RuntimeError(f"the respx arm answered {result.output!r}")

    return run


def measure(*, reps: int, batch: int) -> Figure:
    """P6: harness scenario runs/s / respx-mocked runs/s of the same pydantic-ai agent."""
    harness, bodies = harness_arm()
    arms = {"shakeout": harness, "respx": respx_arm(bodies)}
    for fn in arms.values():
        fn()
    times = interleaved(arms, reps=reps, batch=batch)
    # runs/s ratio = inverse time ratio, paired per repetition
    ratio = times.ratio("respx", "shakeout")
    return Figure(
        id="P6",
        title="scenario runs/s vs pydantic-ai over respx (2-request loop)",
        ratio=ratio,
        target=1.0,
        op=">=",
        baseline=(
            "the same pydantic-ai agent (OpenAIChatModel, one local tool, 2 chat completions) "
            "in a respx.mock(using='httpcore2') block serving the same bytes, as a test would"
        ),
        medians={
            "shakeout_runs_per_s": 1.0 / times.median("shakeout"),
            "respx_runs_per_s": 1.0 / times.median("respx"),
        },
        unit="runs/s",
        reps=reps,
        note=(
            "shakeout arm: run_variant + every check, agent through benchmarks.pydantic_agent's "
            f"adapter; median of {reps} paired ratios of {batch} runs per arm"
        ),
    )
