"""The pydantic-ai adapter: its example desk passes the fault and crash matrices, and the
suite catches the two bugs planted in it (a swallowed tool error, a skipped approval)."""

from __future__ import annotations

import pytest
from example_runs import run_example

FACTORY = "pai_desk:build_adapter"


def test_the_example_passes_the_fault_and_crash_matrices(pytester: pytest.Pytester) -> None:
    run = run_example(pytester, "pydantic_ai", FACTORY, "-n", "2", "-rA")
    outcomes = run.result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, run.output[-6000:]
    assert outcomes.get("errors", 0) == 0, run.output[-6000:]
    # the matrices really expanded: faults on both tools, the model and the approval gate,
    # and every crash point (a cell that is missing would not be listed as passed)
    assert outcomes["passed"] >= 100
    for cell in (
        "tool_http_503@get_order#1x3",
        "tool_timeout_after_commit@issue_refund#1",
        "model_refusal#1",
        "approval_changed_args-amountx2#1",
        "crash_after_effect@issue_refund#1",
        "crash_while_parked#1",
        "crash_terminal_write@completed#1",
    ):
        assert f"PASSED scenarios/refund_approved.yaml::pai_refund_approved[{cell}]" in run.output


def test_a_swallowed_tool_error_is_caught(pytester: pytest.Pytester) -> None:
    run = run_example(
        pytester, "pydantic_ai", FACTORY, "-k", "pai_order_missing", defects=["swallow_tool_error"]
    )
    run.result.assert_outcomes(failed=1)
    assert run.failed_items == [("pai_order_missing", "base")]
    assert {"expected_state", "expected_category", "expected_effects"} <= run.failed_checks


def test_a_skipped_approval_is_caught(pytester: pytest.Pytester) -> None:
    run = run_example(
        pytester,
        "pydantic_ai",
        FACTORY,
        "-k",
        "pai_refund_approved and not [",
        defects=["skip_approval"],
    )
    run.result.assert_outcomes(failed=1)
    assert {"unapproved_effects", "expected_approvals"} <= run.failed_checks
