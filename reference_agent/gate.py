"""The approval gate: tool risk classes, action binding, clearing an action, the reviewer's summary.

Infrastructure: it may import ``errors`` only; never the workflow, the engine or the desk.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reference_agent.errors import PreconditionViolated


class Reversibility(StrEnum):
    """Whether an action's effect can be undone."""

    READ_ONLY = "read_only"
    REVERSIBLE = "reversible"
    IRREVERSIBLE = "irreversible"


class BlastRadius(StrEnum):
    """Who an action's effect reaches."""

    NONE = "none"
    INTERNAL = "internal"
    EXTERNAL = "external"  # a customer or another outside party
    FINANCIAL = "financial"  # money moves or financial records change


class Risk(StrEnum):
    """The gate's three classes: read-only runs freely, low runs, high waits for a human."""

    READ_ONLY = "read_only"
    LOW = "low"
    HIGH = "high"


@dataclass(frozen=True)
class ToolClass:
    """A tool's declared class. ``templated`` marks external communication from a fixed template."""

    reversibility: Reversibility
    blast_radius: BlastRadius

    def risk(self, *, templated: bool = False) -> Risk:
        """The risk of one action of this class.

        Args:
            templated: the action is a fixed-template communication (lowers external to low).
        """
        if self.reversibility is Reversibility.READ_ONLY:
            return Risk.READ_ONLY
        if self.blast_radius is BlastRadius.FINANCIAL:
            return Risk.HIGH
        if self.blast_radius is BlastRadius.EXTERNAL:
            return Risk.LOW if templated else Risk.HIGH
        if self.reversibility is Reversibility.IRREVERSIBLE:
            return Risk.HIGH
        return Risk.LOW


TOOL_CLASSES: Mapping[str, ToolClass] = {
    "get_order": ToolClass(Reversibility.READ_ONLY, BlastRadius.NONE),
    "get_customer": ToolClass(Reversibility.READ_ONLY, BlastRadius.NONE),
    "get_refund_policy": ToolClass(Reversibility.READ_ONLY, BlastRadius.NONE),
    "issue_refund": ToolClass(Reversibility.IRREVERSIBLE, BlastRadius.FINANCIAL),
    "send_email": ToolClass(Reversibility.IRREVERSIBLE, BlastRadius.EXTERNAL),
    "close_ticket": ToolClass(Reversibility.REVERSIBLE, BlastRadius.INTERNAL),
}
EMAIL_TEMPLATES = frozenset({"refund_issued", "refund_declined"})


def risk_of(tool: str, arguments: Mapping[str, Any] | None = None) -> Risk:
    """The risk of calling ``tool`` with ``arguments``; an undeclared tool is high risk.

    A ``send_email`` is low only when its ``template`` is one of the fixed templates.
    """
    klass = TOOL_CLASSES.get(tool)
    if klass is None:
        return Risk.HIGH
    templated = bool(arguments) and str((arguments or {}).get("template")) in EMAIL_TEMPLATES
    return klass.risk(templated=templated)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the form actions are hashed and compared in."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def action_hash(tool: str, arguments: Mapping[str, Any]) -> str:
    """sha256 over the tool name and the canonical JSON of its arguments."""
    return hashlib.sha256(f"{tool}\n{canonical_json(dict(arguments))}".encode()).hexdigest()


@dataclass(frozen=True)
class ApprovalRequest:
    """A request for a human decision on one exact action.

    Attributes:
        approval_id: unique id the decision must quote.
        run_id: the run that asked.
        tool: the gated tool.
        arguments: the exact arguments the decision is bound to.
        summary: what the reviewer reads (at most 2000 characters).
        requested_at: clock seconds when it was requested.
        expires_at: clock seconds after which it can no longer be decided.
        action_hash: sha256 of tool + canonical arguments.
    """

    approval_id: str
    run_id: str
    tool: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""
    requested_at: float = 0.0
    expires_at: float = 0.0
    action_hash: str = ""


SUMMARY_LIMIT = 2000
QUOTE_LIMIT = 100
"""Characters of the customer's message quoted in a summary (the rest is cut with an ellipsis)."""


def _quote(text: str, limit: int) -> str:
    # Quoted data may not close its own fence: a customer could otherwise "end" the data block.
    body = text.replace("```", "'''")
    if len(body) > limit:
        body = body[: limit - 1] + "…"
    return f"```text\n{body}\n```"


def build_summary(
    *,
    conclusion: str,
    tool: str,
    arguments: Mapping[str, Any],
    expires_at: float,
    customer_message: str,
    model_reason: str,
) -> str:
    """The reviewer's summary: conclusion, exact action, class, expiry, quoted customer text.

    Short (a typical refund's is under 400 characters): the action line shows every argument,
    the model's reason included; the reason is quoted apart only when it is not an argument.
    Text that came from the customer or from the model is quoted in fenced blocks as data, so a
    reviewer never reads it as the desk's own words. The result is at most 2000 characters.
    """
    klass = TOOL_CLASSES.get(tool)
    radius = klass.blast_radius.value if klass else "unknown"
    reversibility = klass.reversibility.value if klass else "unknown"
    head = (
        f"Conclusion: {conclusion}\n"
        f"Proposed action: {tool} {canonical_json(dict(arguments))}\n"
        f"Blast radius: {radius}; {reversibility}; risk {risk_of(tool, arguments).value}; "
        f"expires at clock second {expires_at:.0f}.\n"
    )
    room = max(SUMMARY_LIMIT - len(head) - 120, 100)
    reason = ""
    if model_reason not in [v for v in arguments.values() if isinstance(v, str)]:
        reason = "Model's reason (data):\n" + _quote(model_reason, min(room // 3, 160)) + "\n"
    message = "Customer message (data):\n" + _quote(customer_message, min(room, QUOTE_LIMIT))
    return f"{head}{reason}{message}"[:SUMMARY_LIMIT]


def clear(tool: str, arguments: Mapping[str, Any], approval: Mapping[str, Any] | None) -> None:
    """The gate: a high-risk action runs only under an approval bound to exactly it.

    Args:
        tool: the tool about to be called.
        arguments: its exact arguments.
        approval: the checkpointed approval (``approved``, ``approval_id``, ``action_hash``), or
            None when the run has none.

    Raises:
        PreconditionViolated: the action is high risk and unapproved, or approved for another
            action.
    """
    if risk_of(tool, arguments) is not Risk.HIGH:
        return
    if not approval or not approval.get("approved"):
        raise PreconditionViolated(
            f"{tool} is high risk and has no approval; it must pass the approval step first"
        )
    if approval.get("action_hash") != action_hash(tool, arguments):
        raise PreconditionViolated(
            f"the approval {approval.get('approval_id')} is bound to another action than "
            f"{tool} {canonical_json(dict(arguments))}"
        )
