"""The plain tool-loop helper: its example desk, on the openai and on the anthropic SDK, passes
the fault and crash matrices, and the suite catches the two bugs planted in it (a swallowed
tool error, a skipped approval)."""

from __future__ import annotations

import pytest
from example_runs import run_example

FACTORY = "loop_desk:build_adapter"


def test_both_loops_pass_the_fault_and_crash_matrices(pytester: pytest.Pytester) -> None:
    run = run_example(pytester, "tool_loop", FACTORY, "-n", "2", "-rA")
    outcomes = run.result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, run.output[-6000:]
    assert outcomes.get("errors", 0) == 0, run.output[-6000:]
    assert outcomes["passed"] >= 200
    for scenario, name in (
        ("openai_refund_approved", "loop_openai_refund_approved"),
        ("anthropic_refund_approved", "loop_anthropic_refund_approved"),
    ):
        for cell in (
            "tool_http_503@get_order#1x3",
            "tool_timeout_after_commit@issue_refund#1",
            "model_args_not_json#1",
            "model_overloaded#1",
            "approval_late#1",
            "crash_after_effect@issue_refund#1",
            "crash_terminal_write@completed#1",
        ):
            item = f"PASSED scenarios/{scenario}.yaml::{name}[{cell}]"
            assert item in run.output, item


def test_a_swallowed_tool_error_is_caught(pytester: pytest.Pytester) -> None:
    run = run_example(
        pytester, "tool_loop", FACTORY, "-k", "loop_order_missing", defects=["swallow_tool_error"]
    )
    run.result.assert_outcomes(failed=1)
    assert run.failed_items == [("loop_order_missing", "base")]
    assert {"expected_state", "expected_category", "expected_effects"} <= run.failed_checks


@pytest.mark.parametrize(
    ("factory", "scenario"),
    [
        (FACTORY, "loop_openai_refund_approved"),
        ("loop_desk:build_anthropic_adapter", "loop_anthropic_refund_approved"),
    ],
)
def test_a_skipped_approval_is_caught(
    pytester: pytest.Pytester, factory: str, scenario: str
) -> None:
    run = run_example(
        pytester, "tool_loop", factory, "-k", f"{scenario} and not [", defects=["skip_approval"]
    )
    run.result.assert_outcomes(failed=1)
    assert {"unapproved_effects", "expected_approvals"} <= run.failed_checks
