"""Construction-time settings and per-run options of the refund desk.

Infrastructure: imports ``errors`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reference_agent.errors import ConfigError

Api = Literal["openai_chat", "openai_responses", "anthropic_messages"]


class Settings(BaseModel):
    """Where the desk sends its traffic and which model API it speaks.

    Attributes:
        model_base_url: base URL of the model endpoint (e.g. ``http://model.test/v1``).
        tools_base_url: base URL of the tool services.
        api_key: the model API key.
        model: the model name sent with every request.
        api: the wire API: ``openai_chat`` (default), ``openai_responses``, ``anthropic_messages``.
        stream: whether model answers are streamed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_base_url: str
    tools_base_url: str
    api_key: str = "sk-refund-desk"
    model: str = "refund-desk-model"
    api: Api = "openai_chat"
    stream: bool = False


class RunOptions(BaseModel):
    """Per-world options read from ``world.config``; every key is optional, unknown keys fail.

    Attributes:
        api: overrides ``Settings.api``.
        stream: overrides ``Settings.stream``.
        review_queue_capacity: pending approvals at which intake throttles; 0 closes the
            queue (reviewers offline), so every new ticket is throttled at intake.
        approval_sla_s: seconds an approval request stays valid.
        max_model_calls: model requests per run, retries and re-asks included.
        max_tool_calls: tool requests per run, retries included.
        max_run_seconds: clock seconds per run, parked time excluded.
        max_attempts: total attempts for a transient failure.
        trace_sample_rate: share of routine runs whose trace is kept in full.
        persist: False keeps the state in an in-memory SQLite database (benchmarks).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    api: Api | None = None
    stream: bool | None = None
    review_queue_capacity: int = Field(default=50, ge=0)
    approval_sla_s: float = Field(default=3600.0, gt=0)
    max_model_calls: int = Field(default=8, ge=1)
    max_tool_calls: int = Field(default=24, ge=1)
    max_run_seconds: float = Field(default=900.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    trace_sample_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    persist: bool = True

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RunOptions:
        """Validate a world's config mapping.

        Raises:
            ConfigError: a key is unknown or a value is invalid; the message lists the valid keys.
        """
        try:
            return cls.model_validate(dict(config))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<config>'}: {e['msg']} "
                f"(got {e.get('input')!r})"
                for e in exc.errors()
            )
            valid = ", ".join(sorted(cls.model_fields))
            raise ConfigError(
                f"invalid refund desk config: {problems}. Valid keys are: {valid}"
            ) from None
