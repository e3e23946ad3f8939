"""The plain tool-loop helper: its example desk, on the openai and on the anthropic SDK, passes
the fault and crash matrices, and the suite catches the two bugs planted in it (a swallowed
tool error, a skipped approval on either SDK).

One session runs all of it: the SDKs are imported once."""

from __future__ import annotations

import pytest
from example_runs import Planted, passed_cells, run_example

FACTORY = "loop_desk:build_adapter"
ANTHROPIC = "loop_desk:build_anthropic_adapter"
SWALLOWED = Planted("loop_bug_swallowed", "order_missing", FACTORY, ["swallow_tool_error"])
SKIPPED = (
    Planted("loop_bug_openai_skipped", "openai_refund_approved", FACTORY, ["skip_approval"]),
    Planted(
        "loop_bug_anthropic_skipped", "anthropic_refund_approved", ANTHROPIC, ["skip_approval"]
    ),
)


def test_both_loops_pass_their_matrices_and_the_planted_bugs_are_caught(
    pytester: pytest.Pytester,
) -> None:
    run = run_example(
        pytester, "tool_loop", FACTORY, "-n", "2", "-rA", planted=[SWALLOWED, *SKIPPED]
    )
    bugs = (SWALLOWED.name, *(s.name for s in SKIPPED))
    assert run.failing(but=bugs) == {}, run.output[-6000:]
    assert len(run.items) - len(bugs) >= 200
    for scenario, name in (
        ("openai_refund_approved", "loop_openai_refund_approved"),
        ("anthropic_refund_approved", "loop_anthropic_refund_approved"),
    ):
        passed_cells(
            run,
            scenario,
            name,
            [
                "tool_http_503@get_order#1x3",
                "tool_timeout_after_commit@issue_refund#1",
                "model_args_not_json#1",
                "model_overloaded#1",
                "approval_late#1",
                "crash_after_effect@issue_refund#1",
                "crash_terminal_write@completed#1",
            ],
        )
    swallowed = run.failed_checks(SWALLOWED.name)
    assert {"expected_state", "expected_category", "expected_effects"} <= swallowed
    for skipped in SKIPPED:
        assert {"unapproved_effects", "expected_approvals"} <= run.failed_checks(skipped.name)
    assert run.result.ret == 1
