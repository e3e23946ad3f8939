"""Typed run failures and the mapping of SDK, HTTP and validation exceptions onto categories.

The four categories (see the README's "What it does"): ``model`` (the model's answer or the
model endpoint failed: bad tool call, truncated or refused answer, provider 4xx/5xx, rate
limit, connection), ``tool`` (a tool service answered something unexpected), ``logic`` (the
workflow reached a state it did not anticipate: no progress, budget exhausted) and ``input``
(the run's input was rejected at intake)::

    Exception
    └── AgentError            category + transient + retry_after
        ├── ModelError        category "model"
        ├── ToolError         category "tool"
        ├── LogicError        category "logic"
        └── InputError        category "input"
"""

from __future__ import annotations

from typing import Final

import anthropic
import httpx
import httpx2
import openai
import pydantic

__all__ = [
    "AgentError",
    "InputError",
    "LogicError",
    "ModelError",
    "ToolError",
    "categorize",
]

QUOTA_CODES: Final = frozenset({"insufficient_quota", "quota_exceeded", "billing_hard_limit"})


class AgentError(Exception):
    """A run failure with its category.

    Args:
        message: what went wrong, in words a reviewer reads.
        transient: whether trying again can help (a 503, a timeout), as opposed to a
            permanent failure (a 404, a schema violation) that must not be retried.
        retry_after: the wait the other side asked for, in seconds.
    """

    category: str = "logic"

    def __init__(
        self, message: str, *, transient: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


class ModelError(AgentError):
    """The model's answer, or the model endpoint, failed."""

    category = "model"


class ToolError(AgentError):
    """A tool service answered something unexpected."""

    category = "tool"


class LogicError(AgentError):
    """The workflow reached a state its design did not anticipate."""

    category = "logic"


class InputError(AgentError):
    """The run's input was rejected at intake."""

    category = "input"


def _status_transient(status: int, code: object) -> bool:
    if status == 429:
        return code not in QUOTA_CODES
    return status >= 500 or status == 408


def categorize(exc: BaseException) -> AgentError:
    """The typed failure an exception stands for.

    ``AgentError`` passes through. Errors of the ``openai`` and ``anthropic`` SDKs are model
    errors: connection failures, timeouts, 429 (except quota exhaustion), 5xx and Anthropic's
    529 ``overloaded`` are transient; 400/401/403/404/422 and quota are permanent. Their
    ``LengthFinishReasonError`` / ``ContentFilterFinishReasonError`` (an answer cut by the token
    limit or filtered) are transient model errors: asking again can help. ``httpx`` / ``httpx2``
    transport errors outside an SDK are tool errors. A ``pydantic.ValidationError`` is a model
    error (the model's arguments broke a tool's schema); validate tool *answers* with
    :class:`~shakeout_adapters.tool_http.ToolHttp`, which raises ``ToolError`` instead. Anything
    else is a logic error.

    Args:
        exc: the exception a run raised.
    """
    if isinstance(exc, AgentError):
        return exc
    for sdk in (openai, anthropic):
        if isinstance(exc, sdk.APIStatusError):
            body = exc.body if isinstance(exc.body, dict) else {}
            inner = body.get("error", body)
            code = inner.get("code") or inner.get("type") if isinstance(inner, dict) else None
            transient = _status_transient(exc.status_code, code)
            return ModelError(
                f"the model endpoint answered HTTP {exc.status_code}: {exc.message}",
                transient=transient,
                retry_after=_retry_after(exc.response.headers.get("retry-after")),
            )
        if isinstance(exc, sdk.APIConnectionError):  # timeouts included
            return ModelError(f"the model endpoint could not be reached: {exc}", transient=True)
        if isinstance(exc, sdk.APIResponseValidationError):
            return ModelError(f"the model's answer broke the SDK's schema: {exc}", transient=True)
    if isinstance(exc, openai.LengthFinishReasonError | openai.ContentFilterFinishReasonError):
        return ModelError(f"the model's answer was cut or filtered: {exc}", transient=True)
    if isinstance(exc, openai.OpenAIError | anthropic.AnthropicError):
        return ModelError(f"the model SDK failed: {exc}")
    if isinstance(exc, httpx.TransportError | httpx2.TransportError):
        return ToolError(f"a tool service could not be reached: {exc}", transient=True)
    if isinstance(exc, pydantic.ValidationError):
        return ModelError(f"the model's arguments broke the tool's schema: {exc}", transient=True)
    return LogicError(f"{type(exc).__name__}: {exc}")


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None
