"""The pydantic-ai adapter: its example desk passes the fault and crash matrices, and the
suite catches the two bugs planted in it (a swallowed tool error, a skipped approval).

One session runs both: the framework is imported once."""

from __future__ import annotations

import pytest
from example_runs import Planted, passed_cells, run_example

FACTORY = "pai_desk:build_adapter"
SWALLOWED = Planted("pai_bug_swallowed", "order_missing", FACTORY, ["swallow_tool_error"])
SKIPPED = Planted("pai_bug_skipped_approval", "refund_approved", FACTORY, ["skip_approval"])


def test_the_example_passes_its_matrices_and_both_planted_bugs_are_caught(
    pytester: pytest.Pytester,
) -> None:
    run = run_example(
        pytester, "pydantic_ai", FACTORY, "-n", "2", "-rA", planted=[SWALLOWED, SKIPPED]
    )
    bugs = (SWALLOWED.name, SKIPPED.name)
    assert run.failing(but=bugs) == {}, run.output[-6000:]
    # the matrices really expanded: faults on both tools, the model and the approval gate,
    # and every crash point (a cell that is missing would not be listed as passed)
    assert len(run.items) - len(bugs) >= 100
    passed_cells(
        run,
        "refund_approved",
        "pai_refund_approved",
        [
            "tool_http_503@get_order#1x3",
            "tool_timeout_after_commit@issue_refund#1",
            "model_refusal#1",
            "approval_changed_args-amountx2#1",
            "crash_after_effect@issue_refund#1",
            "crash_while_parked#1",
            "crash_terminal_write@completed#1",
        ],
    )
    swallowed = run.failed_checks(SWALLOWED.name)
    assert {"expected_state", "expected_category", "expected_effects"} <= swallowed
    assert {"unapproved_effects", "expected_approvals"} <= run.failed_checks(SKIPPED.name)
    assert run.result.ret == 1
