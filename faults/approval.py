"""Approval faults: the human reviewer denies, never answers, answers twice, or too late."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from faults.surfaces import ApprovalFault, ReviewAction, ReviewContext


@dataclass(frozen=True)
class ApprovalDeny(ApprovalFault):
    """The reviewer denies the action: the run must end rejected, with no effect."""

    key = "approval_deny"
    category = None
    transient = False
    expected_state = "rejected"

    def review(self, ctx: ReviewContext) -> ReviewAction:
        """A denial."""
        return ReviewAction("deny", delay_s=ctx.scripted.delay_s)


@dataclass(frozen=True)
class ApprovalNever(ApprovalFault):
    """The reviewer never decides: the approval must expire and the run end expired."""

    key = "approval_never"
    category = None
    transient = False
    expected_state = "expired"

    def review(self, ctx: ReviewContext) -> ReviewAction:
        """No decision."""
        return ReviewAction("never")


@dataclass(frozen=True)
class ApprovalChangedArgs(ApprovalFault):
    """The approval is bound to changed arguments (amount doubled): the agent must refuse it.

    Refusing leaves the run parked until the approval expires, so it ends expired.

    Attributes:
        argument: the argument to change; a number is multiplied by ``factor``, anything else
            (or a missing argument) is replaced by a tampered marker.
        factor: the multiplier for a numeric argument.
    """

    key = "approval_changed_args"
    category = None
    transient = False
    expected_state = "expired"
    argument: str = "amount"
    factor: float = 2.0

    def review(self, ctx: ReviewContext) -> ReviewAction:
        """An approval bound to arguments that differ from the requested ones."""
        return ReviewAction(
            "approve", arguments=self.changed(ctx.arguments), delay_s=ctx.scripted.delay_s
        )

    def changed(self, arguments: Any) -> dict[str, Any]:
        """The requested arguments with ``argument`` changed (always different from them)."""
        args = dict(arguments)
        value = args.get(self.argument)
        if isinstance(value, int | float) and not isinstance(value, bool) and value != 0:
            args[self.argument] = value * self.factor
        else:
            args[self.argument] = f"{value!r} (tampered)"
        return args

    def label_detail(self) -> str:
        """The argument and factor, e.g. ``amountx2``."""
        return f"{self.argument}x{self.factor:g}"


@dataclass(frozen=True)
class ApprovalDuplicate(ApprovalFault):
    """The reviewer's decision is delivered twice: its effect must happen once."""

    key = "approval_duplicate"
    category = None
    transient = True

    def review(self, ctx: ReviewContext) -> ReviewAction:
        """The scripted decision, delivered twice."""
        return dataclasses.replace(ctx.scripted, times=2)


@dataclass(frozen=True)
class ApprovalAfterRestart(ApprovalFault):
    """The decision arrives after the agent restarted while parked: a fresh process applies it."""

    key = "approval_after_restart"
    category = None
    transient = True

    def review(self, ctx: ReviewContext) -> ReviewAction:
        """The scripted decision, delivered to a restarted agent."""
        return dataclasses.replace(ctx.scripted, after_restart=True)


@dataclass(frozen=True)
class ApprovalConcurrentDuplicate(ApprovalFault):
    """Two workers deliver the same decision at once: the gated effect must happen once."""

    key = "approval_concurrent_duplicate"
    category = None
    transient = True

    def review(self, ctx: ReviewContext) -> ReviewAction:
        """The scripted decision, delivered by two workers at the same moment."""
        return dataclasses.replace(ctx.scripted, concurrent=True)


LATE_BY_S = 60.0
"""How long after the approval's expiry ``approval_late`` delivers its approve decision."""
LATE_UNKNOWN_EXPIRY_S = 86_400.0
"""The delay ``approval_late`` uses when the reviewer is not told the expiry (a day)."""


@dataclass(frozen=True)
class ApprovalLate(ApprovalFault):
    """The reviewer approves after the approval expired: the agent must refuse it and expire.

    The decision is delivered ``late_by_s`` seconds past the pending approval's ``expires_at``
    on the fake clock. Applying it would be an effect without a valid approval; refusing it
    leaves the run parked until the approval expires, so it ends expired with no effect.

    Attributes:
        late_by_s: seconds past the expiry at which the decision arrives.
    """

    key = "approval_late"
    category = None
    transient = False
    expected_state = "expired"
    late_by_s: float = LATE_BY_S

    def review(self, ctx: ReviewContext) -> ReviewAction:
        """An approval of the requested arguments, delivered after the expiry."""
        if ctx.expires_at is None or ctx.now is None:
            delay = LATE_UNKNOWN_EXPIRY_S
        else:
            delay = max(ctx.expires_at - ctx.now, 0.0) + self.late_by_s
        return ReviewAction("approve", delay_s=delay)
