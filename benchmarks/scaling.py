"""P2: xdist scaling of a >= 1,000-variant matrix session vs the machine's 2-process scaling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks import refund
from benchmarks.figure import Figure, median

LOOP = (
    "import time\n"
    "t = time.perf_counter()\n"
    "x = 0\n"
    "for i in range({n}):\n"
    "    x += i * i % 7\n"
    "print(time.perf_counter() - t)\n"
)
# The sessions are configured as the project's own (pyproject's addopts): langsmith's pytest
# plugin, installed with the langgraph extra, is not loaded (its import is ~40% of a process's
# start-up here, and no shakeout user session needs it).
INI = """[pytest]
addopts = -p no:cacheprovider -p no:randomly -p no:langsmith_plugin
chaos_agent = reference_agent:build_adapter
chaos_seed = {seed}
"""


def write_session(root: Path, variants: int, faults: tuple[str, ...] | None = None) -> None:
    """Write enough copies of refund_happy (with its matrix) under ``root/scenarios``.

    The copies set ``agent_config: {persist: false}``: the session then measures CPU work the
    harness can spread over workers, not the shared disk's fsync queue. Without persistence a
    crashed run cannot resume, so the copies leave out refund_happy's crash matrix.

    Args:
        root: the session's directory (gets ``pytest.ini`` and ``scenarios/``).
        variants: the least number of variants the session must run.
        faults: the matrix's faults (None: refund_happy's own matrix); with them the session is
            one copy (the smoke run takes two tool faults for a small session). The figure
            counts the items the session really ran, from its report.
    """
    copies = 1 if faults is not None else -(-variants // variants_per_copy())
    data = yaml.safe_load(refund.SCENARIO_PATH.read_text(encoding="utf-8"))
    # crash cells need the state to survive a restart, which persist: false gives up
    data.pop("crash_matrix", None)
    data["agent_config"] = {**data.get("agent_config", {}), "persist": False}
    if faults is not None:
        data["matrix"] = {**data["matrix"], "faults": list(faults)}
        data["matrix"].pop("surfaces", None)
    (root / "scenarios").mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text(INI.format(seed=refund.SEED), encoding="utf-8")
    for k in range(copies):
        data["name"] = f"refund_happy_{k:03d}"
        text = yaml.safe_dump(data, sort_keys=False)
        (root / "scenarios" / f"{data['name']}.yaml").write_text(text, encoding="utf-8")


def variants_per_copy() -> int:
    """Variants one refund_happy file expands into (base + fault cells)."""
    from benchmarks.fault_cost import matrix_cells

    return 1 + len(matrix_cells())


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(refund.REPO), env.get("PYTHONPATH", "")) if p
    )
    return env


def run_session(root: Path, workers: int, report: Path) -> float:
    """Run the session with ``-n workers``; return its wall seconds (process start to exit)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-n", str(workers), f"--chaos-report={report}"]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, env=_env(), capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-15:])
        raise RuntimeError(f"matrix session -n {workers} exited {done.returncode}:\n{tail}")
    return elapsed


def machine_scaling(seconds: float = 1.0) -> float:
    """The machine's 2-process speed-up on a CPU-bound Python loop (2.0 is two free cores)."""
    n = _loop_size(seconds)
    one = _loops(n, 1)[0]
    two = max(_loops(n, 2))
    return 2 * one / two


def _loop_size(seconds: float) -> int:
    probe = 2_000_000
    took = _loops(probe, 1)[0]
    return max(int(probe * seconds / took), probe)


def _loops(n: int, parallel: int) -> list[float]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LOOP.format(n=n)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(parallel)
    ]
    return [float(p.communicate()[0]) for p in procs]


def comparable(path: Path) -> dict[str, Any]:
    """A report without its timings (``duration_s``) and its session's identity (a new id and
    start time per session), for an equality check."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    data.pop("session", None)
    for item in data["items"]:
        item.pop("duration_s", None)
    return data


def _timed(cmd: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    # 5: nothing ran, which is what these sessions ask for
    if done.returncode not in (0, 5):
        tail = "\n".join(done.stdout.splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd[2:])} exited {done.returncode}:\n{tail}")
    return elapsed


def start_and_collect(root: Path) -> dict[str, float]:
    """Worker start-up and collection (probe runs included) of the session, apart.

    Start-up is a session over an empty directory (interpreter, plugins, xdist workers);
    collection is a session that collects every item and runs none (``-k`` matching nothing),
    minus that start-up.
    """
    empty = root / "empty"
    empty.mkdir(exist_ok=True)
    (empty / "pytest.ini").write_text(INI.format(seed=refund.SEED), encoding="utf-8")
    out: dict[str, float] = {}
    for n in (0, 2):
        base = [sys.executable, "-m", "pytest", "-q", "-n", str(n)]
        start = _timed(base, empty)
        collect = _timed([*base, "-k", "no_item_has_this_name"], root)
        out[f"startup_n{n}_s"] = round(start, 3)
        out[f"collection_n{n}_s"] = round(max(collect - start, 0.0), 3)
    return out


def measure(*, variants: int, reps: int, faults: tuple[str, ...] | None = None) -> Figure:
    """P2: (t(-n 0) / t(-n 2)) / machine 2-process scaling, reports compared for identity."""
    with tempfile.TemporaryDirectory(prefix="shakeout-bench-p2-") as tmp:
        root = Path(tmp)
        write_session(root, variants, faults)
        serial, parallel, machine, identical = [], [], [], True
        for rep in range(reps):
            machine.append(machine_scaling())
            order = (0, 2) if rep % 2 == 0 else (2, 0)
            took = {}
            for n in order:
                took[n] = run_session(root, n, root / f"report-n{n}.json")
            serial.append(took[0])
            parallel.append(took[2])
            identical &= comparable(root / "report-n0.json") == comparable(root / "report-n2.json")
        machine.append(machine_scaling())
        phases = start_and_collect(root)
        total = len(comparable(root / "report-n0.json")["items"])
    session = [s / p for s, p in zip(serial, parallel, strict=True)]
    figure = median(session) / median(machine)
    return Figure(
        id="P2",
        title=f"xdist scaling on a {total:,}-variant matrix session",
        ratio=figure,
        target=0.95,
        op=">=",
        baseline=(
            "the machine's own 2-process speed-up on a CPU-bound Python loop, measured around "
            "each session pair"
        ),
        medians={
            "n0_session_s": median(serial),
            "n2_session_s": median(parallel),
            "session_speedup": median(session),
            "machine_speedup": median(machine),
        },
        reps=reps,
        note=(
            "copies of refund_happy with its fault matrix (agent_config persist: false), "
            "`pytest -n 2` vs `-n 0` as subprocesses, wall time from start to exit (start-up and "
            "collection included); reports identical minus duration_s and session identity: "
            f"{identical}"
        ),
        extra={"variants": total, "reports_identical": identical, **phases},
    )
