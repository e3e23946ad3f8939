"""The desk under shakeout, the factory the scenarios name.

``agent: examples.langgraph.shakeout_adapter:build_adapter`` in a scenario file (or the
``chaos_agent`` ini key).
"""

from __future__ import annotations

from typing import Any

from examples.langgraph.desk import DeskContext, build_graph
from shakeout_adapters.langgraph import LangGraphAdapter, RunInfo


def desk_context(run: RunInfo) -> DeskContext:
    """The runtime context the graph receives: the harness's client, clock and run id."""
    return DeskContext(run.run_id, run.http, run.clock.sleep, run.clock.now)


def build_adapter(endpoints: Any) -> LangGraphAdapter:
    """The factory the harness calls once per worker (and again after a crash)."""
    return LangGraphAdapter(build_graph, endpoints, context=desk_context)
