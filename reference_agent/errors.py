"""The refund desk's error taxonomy: every way a run can fail, each transient or permanent.

The tree (``[T]`` transient: retried with bounded backoff; ``[P]`` permanent: never retried)::

    RunError                         a run failure; ``category`` names its recovery path
    ├── ModelError                   category "model": the model's answer broke its contract
    │   ├── InvalidJSON          [P] tool-call arguments are not a JSON object
    │   ├── UnknownTool          [P] the model called a tool that was not offered
    │   ├── SchemaViolation      [P] wrong/missing/extra arguments, no tool call, amount over limit
    │   ├── Refusal              [P] the model refused (refusal field, content filter)
    │   ├── TruncatedOutput      [P] the answer was cut at the token limit
    │   ├── EmptyAnswer          [P] no choices / no content
    │   ├── MissingToolCallId    [P] a tool call without an id
    │   └── ProviderError        [T] 429, 5xx, 529, connection, timeout, cut stream
    │                            [P] when the 429 says the quota is exhausted, or another 4xx
    ├── ToolError                    category "tool": a tool service answered unexpectedly
    │   ├── UnexpectedStatus     [T] 500/502/503/504, [P] 400/401/403/404/409/422 and others
    │   ├── RateLimited          [T] 429 (Retry-After honoured), [P] with a quota-exhausted body
    │   ├── Timeout              [T] connect or read timeout
    │   ├── ConnectionFailed     [T] connect error, reset, remote protocol error
    │   ├── MalformedBody        [T] not JSON, truncated, empty, not application/json
    │   ├── OversizeBody         [P] body over 1 MiB
    │   └── SchemaDrift          [P] the 2xx body does not match the tool's schema
    ├── LogicError                   category "logic": the workflow reached an unplanned state
    │   ├── IllegalTransition    [P] a step or state change the workflow does not allow
    │   ├── PreconditionViolated [P] e.g. the order belongs to another customer
    │   ├── NoProgress           [P] the model repeated a tool call it already made
    │   └── BudgetExhausted      [P] model calls, tool calls or run seconds used up
    └── InputError               [P] category "input": the payload was rejected at intake

Outside the tree: ``ThrottledError`` (a control-flow signal: the review queue is full, the run
ends "throttled" with no category) and ``ConfigError`` (misuse: a bad ``world.config``).

Infrastructure: imports nothing from the package; every module may import it.
"""

from __future__ import annotations

from typing import ClassVar, Literal

Category = Literal["model", "tool", "logic", "input"]


class RunError(Exception):
    """A run failure. ``category`` names the recovery path; ``transient`` says if it is retried."""

    category: ClassVar[Category]
    transient: bool = False

    def __init__(self, message: str, *, transient: bool | None = None) -> None:
        super().__init__(message)
        if transient is not None:
            self.transient = transient

    @property
    def kind(self) -> str:
        """The concrete class name, as recorded in traces."""
        return type(self).__name__


class ModelError(RunError):
    """The model's answer did not conform to the expected schema (permanent unless noted)."""

    category = "model"


class InvalidJSON(ModelError):
    """Tool-call arguments are not a JSON object (permanent; one corrective re-ask)."""


class UnknownTool(ModelError):
    """The model called a tool that was not offered (permanent; one corrective re-ask)."""


class SchemaViolation(ModelError):
    """Arguments missing, extra or mistyped, no tool call, or an amount over the limit
    (permanent; one corrective re-ask)."""


class Refusal(ModelError):
    """The model refused to answer (permanent; one corrective re-ask)."""


class TruncatedOutput(ModelError):
    """The answer stopped at the token limit (permanent; one corrective re-ask)."""


class EmptyAnswer(ModelError):
    """The answer had no choices or no content (permanent; one corrective re-ask)."""


class MissingToolCallId(ModelError):
    """A tool call came without an id (permanent; one corrective re-ask)."""


class ProviderError(ModelError):
    """The model provider failed: transient (rate limit, 5xx, overload, connection, timeout,
    cut stream) unless the quota is exhausted or the request itself was refused (permanent)."""

    transient = True

    def __init__(
        self, message: str, *, transient: bool | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, transient=transient)
        self.retry_after = retry_after


class ToolError(RunError):
    """A tool service answered something unexpected."""

    category = "tool"

    def __init__(
        self,
        message: str,
        *,
        transient: bool | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, transient=transient)
        self.status = status
        self.retry_after = retry_after


class UnexpectedStatus(ToolError):
    """A non-2xx status: 5xx transient, 4xx permanent."""


class RateLimited(ToolError):
    """HTTP 429: transient (honour Retry-After) unless the body says the quota is exhausted."""

    transient = True


class Timeout(ToolError):
    """Connect or read timeout (transient)."""

    transient = True


class ConnectionFailed(ToolError):
    """Connect error, connection reset or remote protocol error (transient)."""

    transient = True


class MalformedBody(ToolError):
    """A 2xx body that is not JSON, truncated, empty or not application/json (transient)."""

    transient = True


class OversizeBody(ToolError):
    """A body over 1 MiB (permanent)."""


class SchemaDrift(ToolError):
    """A 2xx body that does not match the tool's schema (permanent)."""


class LogicError(RunError):
    """The workflow reached a state its design did not anticipate (permanent)."""

    category = "logic"


class IllegalTransition(LogicError):
    """A step or state change the workflow does not allow (permanent)."""


class PreconditionViolated(LogicError):
    """A fact the next step relies on does not hold (permanent)."""


class NoProgress(LogicError):
    """The model repeated a tool call (same name, same canonical arguments) (permanent)."""


class BudgetExhausted(LogicError):
    """The run used up its model calls, tool calls or run seconds (permanent)."""


class InputError(RunError):
    """The payload was rejected at the intake boundary (permanent)."""

    category = "input"


class ThrottledError(Exception):
    """Control flow: the review queue is full, so intake refuses new work (no category)."""


class ConfigError(ValueError):
    """Misuse: the agent was configured with unknown or invalid options."""


def restore(kind: str, message: str) -> RunError:
    """Rebuild a failure persisted by kind (its class name) and message, after a restart."""
    cls = globals().get(kind)
    if not (isinstance(cls, type) and issubclass(cls, RunError)):
        return IllegalTransition(f"unknown recorded failure {kind!r}: {message}")
    return cls(message)
