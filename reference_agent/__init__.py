"""shakeout's reference agent: a refund desk built on the discipline shakeout tests.

The harness drives it through ``build_adapter(endpoints) -> RefundDeskAdapter``, read
structurally (this package never imports the harness):

- ``begin(world)``: bind to ``world.state_dir`` (SQLite, WAL), ``world.clock`` (``now()``,
  ``sleep(s)``), ``world.config`` (``api``, ``stream``, ``review_queue_capacity``,
  ``approval_sla_s``, ``max_model_calls``, ``max_tool_calls``, ``max_run_seconds``,
  ``max_attempts``, ``trace_sample_rate``, ``persist``; anything else raises ``ConfigError``)
  and ``world.boundary`` (called as ``("before_step", step)``, ``("after_checkpoint", step)``
  and ``("terminal_write", state)``). All in-memory run state is dropped; clients are kept.
- ``start(payload) -> Outcome``: run ``intake -> classify -> gather -> decide -> approve ->
  act -> notify -> close`` until terminal or parked on an approval.
- ``resume(run_id, decision=None) -> Outcome``: continue a crashed run at its first unfinished
  step, or deliver a reviewer ``decision`` (``approval_id``, ``approved``, ``tool``,
  ``arguments``) to a parked one. Mismatched, consumed or expired decisions are refused.
- ``trace(run_id) -> Trace | None``: ``records`` (``model_call``, ``tool_call``,
  ``decision``, ``transition``, ``approval_refused``, ``summary``) and ``kept_in_full``.

``Outcome`` carries ``run_id``, ``state``, ``category``, ``error``, ``pending_approval``,
``approvals``, ``decision`` and ``refund_id``; ``ApprovalRequest`` carries ``approval_id``,
``tool``, ``arguments``, ``summary``, ``expires_at`` and ``action_hash``.

The package's layout (``tests/test_layout.py`` checks who may import whom): ``workflow`` (the
stages, their output schemas and recovery paths) and ``policy`` are what a team copies and
rewrites; ``engine`` carries a run along the stages (one transaction per checkpoint); ``desk``
binds them to a world; the rest is infrastructure kept as it is and never importing the
workflow: ``store``, ``lock``, ``queue``, ``gate``, ``approvals``, ``calls`` (budgets, retries,
Idempotency-Keys), ``tools``, ``model``/``replies``, ``tls`` (one SSL context per process),
``trace``, ``contract``, ``schemas``, ``settings``, ``errors``.
"""

from __future__ import annotations

from reference_agent.adapter import RefundDeskAdapter, build_adapter
from reference_agent.desk import Outcome, RefundDesk, UnknownRunError, run_id_for
from reference_agent.errors import (
    BudgetExhausted,
    ConfigError,
    ConnectionFailed,
    EmptyAnswer,
    IllegalTransition,
    InputError,
    InvalidJSON,
    LogicError,
    MalformedBody,
    MissingToolCallId,
    ModelError,
    NoProgress,
    OversizeBody,
    PreconditionViolated,
    ProviderError,
    RateLimited,
    Refusal,
    RunError,
    SchemaDrift,
    SchemaViolation,
    ThrottledError,
    Timeout,
    ToolError,
    TruncatedOutput,
    UnexpectedStatus,
    UnknownTool,
)
from reference_agent.gate import ApprovalRequest, Risk, ToolClass, action_hash
from reference_agent.queue import ReviewStats
from reference_agent.settings import RunOptions, Settings
from reference_agent.trace import Trace

__all__ = [
    "ApprovalRequest",
    "BudgetExhausted",
    "ConfigError",
    "ConnectionFailed",
    "EmptyAnswer",
    "IllegalTransition",
    "InputError",
    "InvalidJSON",
    "LogicError",
    "MalformedBody",
    "MissingToolCallId",
    "ModelError",
    "NoProgress",
    "Outcome",
    "OversizeBody",
    "PreconditionViolated",
    "ProviderError",
    "RateLimited",
    "RefundDesk",
    "RefundDeskAdapter",
    "Refusal",
    "ReviewStats",
    "Risk",
    "RunError",
    "RunOptions",
    "SchemaDrift",
    "SchemaViolation",
    "Settings",
    "ThrottledError",
    "Timeout",
    "ToolClass",
    "ToolError",
    "Trace",
    "TruncatedOutput",
    "UnexpectedStatus",
    "UnknownRunError",
    "UnknownTool",
    "action_hash",
    "build_adapter",
    "run_id_for",
]
