"""What a scenario run reads from the pytest session: the settings and the session's stash keys.

``ChaosSettings`` applies the precedence, stated once:
**command line > ``chaos`` marker > ``chaos_config`` fixture > ini key > built-in default.**
The stash keys name what ``harness.plugin`` puts on the config at configure time (the seed, the
adapter cache, the redactor, the outcome rules) for the scenario items of
``harness.plugin.collect`` to read. Both import this module; it imports neither of them (nor
anything but pytest and the redactor; the runner's adapter cache only when a process first runs
a scenario), so the plugin and the collector never import each other in a circle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pytest

from harness.redact import Redactor

if TYPE_CHECKING:
    from harness.run.runner import AdapterCache

DEFAULT_WALL_S = 20.0

SEED_KEY = pytest.StashKey[int]()
ADAPTERS_KEY = pytest.StashKey["AdapterCache"]()
REDACTOR_KEY = pytest.StashKey[Redactor]()
OUTCOMES_KEY = pytest.StashKey[dict[str, Any]]()


def adapter_cache(config: pytest.Config) -> AdapterCache:
    """The session's adapter cache, made when the process first runs a scenario.

    An xdist controller runs none: it never imports the runner (with the world, the verdicts
    and the scenario models behind it), so the workers it starts are started that much sooner.
    """
    cache = config.stash.get(ADAPTERS_KEY, None)
    if cache is None:
        from harness.run.runner import AdapterCache

        cache = config.stash[ADAPTERS_KEY] = AdapterCache()
    return cache


@dataclass(frozen=True)
class ChaosSettings:
    """The knobs a run reads, after precedence is applied.

    Attributes:
        seed: the seed every random choice of the run flows from.
        agent: the adapter factory, ``module:callable``.
        wall_s: the real-time limit per run, in seconds.
        config: extra agent config merged under the scenario's ``agent_config``.
    """

    seed: int
    agent: str | None = None
    wall_s: float = DEFAULT_WALL_S
    config: Mapping[str, Any] | None = None

    @classmethod
    def resolve(
        cls,
        pytest_config: pytest.Config,
        marker: pytest.Mark | None = None,
        fixture: Mapping[str, Any] | None = None,
    ) -> ChaosSettings:
        """Apply command line > marker > fixture > ini > default."""
        ini_agent = pytest_config.getini("chaos_agent") or None
        ini_wall = pytest_config.getini("chaos_wall_s")
        base = cls(
            seed=pytest_config.stash[SEED_KEY],
            agent=ini_agent,
            wall_s=float(ini_wall) if ini_wall else DEFAULT_WALL_S,
        )
        for layer in (fixture, _marker_kwargs(marker)):
            if layer:
                base = replace(
                    base,
                    **_checked(
                        layer, "chaos_config fixture" if layer is fixture else "@pytest.mark.chaos"
                    ),
                )
        cli_seed = pytest_config.getoption("chaos_seed")
        cli_agent = pytest_config.getoption("chaos_agent")
        cli_wall = pytest_config.getoption("chaos_wall_s")
        return replace(
            base,
            seed=cli_seed if cli_seed is not None else base.seed,
            agent=cli_agent or base.agent,
            wall_s=cli_wall if cli_wall is not None else base.wall_s,
        )


_SETTINGS_FIELDS = {"seed", "agent", "wall_s", "config"}


def _checked(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(values) - _SETTINGS_FIELDS)
    if unknown:
        raise pytest.UsageError(
            f"{where} got unknown option(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(sorted(_SETTINGS_FIELDS))}"
        )
    return dict(values)


def _marker_kwargs(marker: pytest.Mark | None) -> dict[str, Any]:
    if marker is None:
        return {}
    if marker.args:
        raise pytest.UsageError(
            "@pytest.mark.chaos takes keyword arguments only (seed=, agent=, wall_s=, config=), "
            f"got positional {marker.args!r}"
        )
    return dict(marker.kwargs)
