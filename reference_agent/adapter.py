"""The harness-facing adapter: ``build_adapter(endpoints)`` and the four-method surface.

Imports ``contract``, ``desk``, ``settings`` and ``trace``; nothing in the package imports it
but ``__init__``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import httpx2

from reference_agent.desk import DecisionLike, Outcome, RefundDesk, WorldLike
from reference_agent.settings import Settings
from reference_agent.trace import Trace


class RefundDeskAdapter:
    """Drives a ``RefundDesk`` through the harness's adapter protocol (structurally).

    Args:
        desk: the desk to drive; built once per worker and reused across worlds.
    """

    def __init__(self, desk: RefundDesk) -> None:
        self.desk = desk

    def begin(self, world: WorldLike) -> None:
        """Bind to a run's world, dropping all in-memory run state (clients are kept)."""
        self.desk.begin(world)

    def start(self, payload: Mapping[str, Any]) -> Outcome:
        """Start a run from a ticket payload; returns when terminal or parked."""
        return self.desk.start(payload)

    def resume(self, run_id: str, decision: DecisionLike | None = None) -> Outcome:
        """Resume a parked or crashed run, delivering a decision where one is pending."""
        return self.desk.resume(run_id, decision)

    def trace(self, run_id: str) -> Trace | None:
        """The run's trace, or None for an unknown run."""
        return self.desk.trace(run_id)

    def close(self) -> None:
        """Close the desk's database and HTTP clients (the harness calls it on an instance it
        built for one run, once the run is over)."""
        self.desk.close()


def build_adapter(
    endpoints: Any,
    *,
    model_http_client: httpx2.Client | None = None,
    tools_http_client: httpx.Client | None = None,
) -> RefundDeskAdapter:
    """The factory the harness calls once per worker.

    Args:
        endpoints: anything with ``model_base_url``, ``tools_base_url``, ``api_key``, ``model``.
        model_http_client: optional ``httpx2.Client`` for the model SDKs.
        tools_http_client: optional ``httpx.Client`` for the tools.
    """
    settings = Settings(
        model_base_url=str(endpoints.model_base_url),
        tools_base_url=str(endpoints.tools_base_url),
        api_key=str(getattr(endpoints, "api_key", "sk-refund-desk")),
        model=str(getattr(endpoints, "model", "refund-desk-model")),
    )
    return RefundDeskAdapter(
        RefundDesk(
            settings, model_http_client=model_http_client, tools_http_client=tools_http_client
        )
    )
