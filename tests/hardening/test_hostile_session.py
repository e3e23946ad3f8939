"""A pytest session over a directory mixing hostile and valid scenario files never crashes.

Each hostile file is one ERROR item naming its file and line; the valid scenarios still run
and pass, with and without xdist.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HAPPY = yaml.safe_load((ROOT / "scenarios" / "refund_happy.yaml").read_text())

INI = """
[pytest]
chaos_agent = reference_agent:build_adapter
chaos_seed = 3
filterwarnings = error
"""


def valid(name: str) -> str:
    matrices = ("matrix", "input_matrix", "crash_matrix")
    data = {k: v for k, v in HAPPY.items() if k not in matrices}
    data["name"] = name
    return yaml.safe_dump(data, sort_keys=False)


GOOD = valid("refund_ok")
HOSTILE: dict[str, str | bytes] = {
    "huge_int": GOOD.replace("status: 201", "status: " + "7" * 5000),
    "deep": GOOD + "agent_config: " + "[" * 600 + "]" * 600 + "\n",
    "bad_tag": GOOD.replace("total: 49.99", "total: !!float lots"),
    "python_tag": GOOD.replace("total: 49.99", "total: !!python/object/apply:os.system [id]"),
    "nul": GOOD.replace("C-42", "C-\x0042", 1),
    "laughs": GOOD
    + "agent_config:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"  {c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcd", "bcde", strict=True)
    ),
    "loop": GOOD.replace("input:\n", "input: &in\n  again: *in\n", 1),
    "inf_wall": GOOD.replace("wall_s: 10", "wall_s: .inf"),
    "long_wall": GOOD.replace("wall_s: 10", "wall_s: 86400"),
    "times": GOOD.replace(
        "reviewer:\n- approve", "reviewer:\n- {verdict: approve, times: 1000000000}"
    ),
    "wrong_type": GOOD.replace("state: completed", "state: [completed]"),
    "unknown": GOOD + "surprise: 1\n",
    "truncated": GOOD[: len(GOOD) // 2] + "  - {unclosed: [",
    "garbage": bytes(range(256)) * 4,
    "empty": "",
}


def write_library(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    directory = pytester.path / "scenarios"
    directory.mkdir()
    (directory / "a_refund_ok.yaml").write_text(GOOD)
    (directory / "z_refund_ok_too.yaml").write_text(valid("refund_ok_too"))
    for name, text in HOSTILE.items():
        data = text if isinstance(text, bytes) else text.encode()
        (directory / f"{name}.yaml").write_bytes(data)


def check(result: pytest.RunResult) -> None:
    result.assert_outcomes(passed=2, errors=len(HOSTILE))
    out = result.stdout.str()
    assert "Interrupted" not in out
    assert "Traceback" not in out
    for name in HOSTILE:
        result.stdout.fnmatch_lines([f"scenarios/{name}.yaml:*: * Fix: *"])


def test_hostile_files_are_error_items_and_valid_ones_run(pytester: pytest.Pytester) -> None:
    write_library(pytester)
    check(pytester.runpytest("-p", "no:cacheprovider", "-n", "0"))


def test_the_same_under_xdist(pytester: pytest.Pytester) -> None:
    write_library(pytester)
    check(pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2"))
