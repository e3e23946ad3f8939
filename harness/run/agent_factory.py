"""Loading an agent's adapter factory from its ``module:callable`` name.

Owns :func:`load_factory` and :class:`AgentLoadError`. Imports only ``harness.adapter``, so the
runner and the hard-kill child (which builds the agent in its own process) share it without
importing each other.
"""

from __future__ import annotations

import importlib
from typing import Any

from harness.adapter import AdapterFactory

__all__ = ["AgentLoadError", "load_factory"]


class AgentLoadError(Exception):
    """The adapter factory named by a scenario or the ini key cannot be loaded."""


def load_factory(path: str) -> AdapterFactory:
    """Import ``module:callable`` and return the callable."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise AgentLoadError(
            f"agent {path!r} must be 'module:callable', e.g. 'reference_agent:build_adapter'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AgentLoadError(
            f"cannot import module {module_name!r} of agent {path!r}: {exc}; check the "
            "chaos_agent ini key or the scenario's 'agent' field"
        ) from exc
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise AgentLoadError(
                f"module {module_name!r} has no attribute {attr!r} (agent {path!r})"
            )
    if not callable(target):
        raise AgentLoadError(f"agent {path!r} is not callable")
    return target  # type: ignore[no-any-return]
