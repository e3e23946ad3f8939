"""The desk under shakeout, the factory the scenarios name.

``agent: examples.openai_agents.shakeout_adapter:build_adapter`` in a scenario file (or the
``chaos_agent`` ini key).
"""

from __future__ import annotations

from typing import Any

from examples.openai_agents.desk import DeskContext, build_agent
from shakeout_adapters.openai_agents import OpenAIAgentsAdapter, RunInfo


def desk_context(run: RunInfo) -> DeskContext:
    """The run context the desk's tools receive: the harness's client, clock and run id."""
    return DeskContext(run.run_id, run.http, run.clock.sleep, run.clock.now)


def build_adapter(endpoints: Any) -> OpenAIAgentsAdapter[DeskContext]:
    """The factory the harness calls once per worker (and again after a crash)."""
    return OpenAIAgentsAdapter(build_agent(), endpoints, context=desk_context)
