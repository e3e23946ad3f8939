"""shakeout: the pytest plugin and the engine; this module is its public surface.

What a user imports comes from here (the fault classes for extension come from ``faults``)::

    from harness import AgentAdapter, Outcome, WorldContext    # plug an agent in
    from harness import record_session                         # record a live session

Everything else under ``harness`` is internal and may move between releases. The names load on
first use, so ``import harness`` (which every harness module implies, the agent's own process in
hard-kill mode included) imports neither pytest nor vcrpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.adapter import (
        AdapterContractError,
        AdapterFactory,
        AgentAdapter,
        ApprovalLike,
        ApprovalRecord,
        Decision,
        Endpoints,
        Outcome,
        OutcomeLike,
        RunState,
        TraceLike,
        WorldContext,
    )
    from harness.plugin import chaos_config, chaos_run
    from harness.plugin.session import RunResult
    from harness.recording.cassette import CassetteError
    from harness.recording.cassette_import import cassette_to_scenario
    from harness.recording.recorder import record_session
    from harness.run.hardkill import HardKillAdapter

__all__ = [
    "AdapterContractError",
    "AdapterFactory",
    "AgentAdapter",
    "ApprovalLike",
    "ApprovalRecord",
    "CassetteError",
    "Decision",
    "Endpoints",
    "HardKillAdapter",
    "Outcome",
    "OutcomeLike",
    "RunResult",
    "RunState",
    "TraceLike",
    "WorldContext",
    "cassette_to_scenario",
    "chaos_config",
    "chaos_run",
    "record_session",
]

_HOME = {
    "AdapterContractError": "harness.adapter",
    "AdapterFactory": "harness.adapter",
    "AgentAdapter": "harness.adapter",
    "ApprovalLike": "harness.adapter",
    "ApprovalRecord": "harness.adapter",
    "Decision": "harness.adapter",
    "Endpoints": "harness.adapter",
    "Outcome": "harness.adapter",
    "OutcomeLike": "harness.adapter",
    "RunState": "harness.adapter",
    "TraceLike": "harness.adapter",
    "WorldContext": "harness.adapter",
    "HardKillAdapter": "harness.run.hardkill",
    "chaos_config": "harness.plugin",
    "chaos_run": "harness.plugin",
    "CassetteError": "harness.recording.cassette",
    "cassette_to_scenario": "harness.recording.cassette_import",
    "record_session": "harness.recording.recorder",
    "RunResult": "harness.plugin.session",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(
            f"module 'harness' has no attribute {name!r}; the public names are listed in "
            "harness.__all__"
        )
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
