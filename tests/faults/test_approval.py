from __future__ import annotations

import pytest

from faults.approval import (
    ApprovalAfterRestart,
    ApprovalChangedArgs,
    ApprovalDeny,
    ApprovalDuplicate,
    ApprovalNever,
)
from faults.base import registry
from faults.surfaces import ApprovalFault, ReviewAction, ReviewContext

REFUND = {"order_id": "O-1", "amount": 25.0, "currency": "EUR", "reason": "damaged"}


def _ctx(scripted: ReviewAction | None = None) -> ReviewContext:
    return ReviewContext(
        tool="issue_refund",
        arguments=REFUND,
        scripted=scripted or ReviewAction("approve", delay_s=30.0),
        request_index=1,
    )


def test_deny_ends_rejected() -> None:
    action = ApprovalDeny().review(_ctx())
    assert action == ReviewAction("deny", delay_s=30.0)
    assert ApprovalDeny.expected_state == "rejected"
    assert not ApprovalDeny.transient


def test_never_ends_expired() -> None:
    assert ApprovalNever().review(_ctx()).verdict == "never"
    assert ApprovalNever.expected_state == "expired"


def test_changed_args_doubles_the_amount_and_keeps_the_rest() -> None:
    action = ApprovalChangedArgs().review(_ctx())
    assert action.verdict == "approve"
    assert action.arguments == {**REFUND, "amount": 50.0}
    assert ApprovalChangedArgs.expected_state == "expired"
    assert ApprovalChangedArgs().label() == "approval_changed_args-amountx2#1"


@pytest.mark.parametrize("value", ["abc", None, 0, True])
def test_changed_args_always_differs_from_the_request(value: object) -> None:
    args = {**REFUND, "amount": value}
    changed = ApprovalChangedArgs().changed(args)
    assert changed != args
    assert set(changed) == set(args)


def test_changed_args_on_a_missing_argument_adds_it() -> None:
    changed = ApprovalChangedArgs(argument="note").changed(REFUND)
    assert changed == {**REFUND, "note": "None (tampered)"}


def test_duplicate_and_after_restart_keep_the_scripted_verdict() -> None:
    scripted = ReviewAction("deny", delay_s=5.0)
    assert ApprovalDuplicate().review(_ctx(scripted)) == ReviewAction("deny", times=2, delay_s=5.0)
    restarted = ApprovalAfterRestart().review(_ctx(scripted))
    assert restarted == ReviewAction("deny", after_restart=True, delay_s=5.0)
    assert ApprovalDuplicate.expected_state is None
    assert ApprovalAfterRestart.transient


@pytest.mark.parametrize("key", [k for k in registry() if k.startswith("approval_")])
def test_approval_faults_have_no_category(key: str) -> None:
    cls = registry()[key]
    assert issubclass(cls, ApprovalFault)
    assert cls.category is None
    assert cls.transient is (cls.expected_state is None)
