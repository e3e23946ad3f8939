"""P5b: peak RSS of a 10k-variant pytest session vs a 1k one (each in its own process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks import bare_items, refund, walker
from benchmarks.figure import Figure, median
from benchmarks.scaling import INI, _env

WALK_STEPS = 4
CALLS = list(range(1, WALK_STEPS + 1))


def write_session(root: Path, variants: int) -> int:
    """Write walker scenarios with a tool-fault matrix until they expand to ``variants`` items.

    Returns:
        The number of items the session will run.
    """
    per_file = _variants_per_file(root)
    files = max(1, round(variants / per_file))
    (root / "scenarios").mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text(INI.format(seed=refund.SEED), encoding="utf-8")
    for k in range(files):
        name = f"walk_{k:04d}"
        data = walker.scenario(
            name, WALK_STEPS, persist=False, matrix={"surfaces": ["tool"], "calls": CALLS}
        )
        text = yaml.safe_dump(data, sort_keys=False)
        (root / "scenarios" / f"{name}.yaml").write_text(text, encoding="utf-8")
    return files * per_file


def _variants_per_file(root: Path) -> int:
    from harness.run.runner import endpoints_of, probe
    from harness.scenario.matrix import expand
    from harness.scenario.spec import Scenario

    sc = Scenario.model_validate(
        walker.scenario(
            "walk", WALK_STEPS, persist=False, matrix={"surfaces": ["tool"], "calls": CALLS}
        )
    )
    found = probe(sc, walker.build_adapter(endpoints_of(sc)), seed=refund.SEED, wall_s=30.0)
    return len(expand(sc, found))


def peak_rss(root: Path, *, bare_per_file: int | None = None) -> tuple[int, float]:
    """Run the session in a fresh process; return (peak RSS in KiB, wall seconds).

    Args:
        root: the session's directory (``write_session``).
        bare_per_file: None for the shakeout session; else the same files collected as that
            many bare pytest items each, with no shakeout plugin (P5b's floor: pytest's own).
    """
    cmd = [sys.executable, "-m", "benchmarks.peak_rss", "-q", "-n", "0"]
    env = _env()
    if bare_per_file is None:
        cmd.append(f"--chaos-report={root / 'report.json'}")
    else:
        cmd += bare_items.PYTEST_ARGS
        env["BARE_PER_FILE"] = str(bare_per_file)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(refund.REPO), env.get("PYTHONPATH")]))
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    try:
        result = json.loads(last)
    except json.JSONDecodeError:
        raise RuntimeError(
            f"session gave no peak RSS:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        ) from None
    if result["exit"] not in (0, 1):
        raise RuntimeError(f"session exited {result['exit']}:\n{done.stdout[-2000:]}")
    return int(result["maxrss_kib"]), took


def measure(*, small: int, large: int, reps: int) -> Figure:
    """P5b: peak RSS of the large session / of the small one."""
    rss: dict[str, list[float]] = {"small": [], "large": [], "bare_small": [], "bare_large": []}
    wall: dict[str, list[float]] = {"small": [], "large": []}
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="shakeout-bench-p5b-") as tmp:
        roots = {"small": Path(tmp) / "small", "large": Path(tmp) / "large"}
        counts["small"] = write_session(roots["small"], small)
        counts["large"] = write_session(roots["large"], large)
        per_file = _variants_per_file(roots["small"])
        for _ in range(reps):
            for size in ("small", "large"):
                kib, took = peak_rss(roots[size])
                rss[size].append(kib / 1024)
                wall[size].append(took)
                kib, _ = peak_rss(roots[size], bare_per_file=per_file)
                rss[f"bare_{size}"].append(kib / 1024)
    big, little = median(rss["large"]), median(rss["small"])
    bare_big, bare_little = median(rss["bare_large"]), median(rss["bare_small"])
    return Figure(
        id="P5b",
        title=f"peak RSS, {counts['large']:,}-variant session vs {counts['small']:,}",
        ratio=big / little,
        target=1.10,
        op="<=",
        baseline=f"peak RSS of the same kind of session with {counts['small']:,} variants",
        medians={
            "large_session_mib": big,
            "small_session_mib": little,
            "large_session_s": median(wall["large"]),
            "small_session_s": median(wall["small"]),
            "bare_pytest_large_mib": bare_big,
            "bare_pytest_small_mib": bare_little,
        },
        unit="MiB (and s)",
        reps=reps,
        note=(
            "full pytest sessions (-n 0, --chaos-report) in fresh processes over generated "
            f"benchmarks.walker scenarios ({WALK_STEPS} tool calls per run, tool-fault matrix "
            "over calls 1-4, persist: false): the reference agent's 20-60 ms runs would make a "
            "10k session take minutes; peak RSS is the process's VmHWM at the session's end. "
            "The floor, measured in the same run: the same files collected as as many bare "
            "pytest items with no shakeout plugin (benchmarks.bare_items); its ratio is what "
            "pytest alone keeps per item (an Item and three TestReports, to the end)"
        ),
        extra={"variants": counts, "bare_pytest_ratio": bare_big / bare_little},
    )
