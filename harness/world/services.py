"""Fake tool services: static, sequenced and ledger-backed answers, the ledger proving exactly-once.

A :class:`ToolService` names a tool, the method and path it answers, and a behaviour:

- :class:`Static` answers the same response every call;
- :class:`Sequence` answers one response per call, repeating the last;
- :class:`Ledger` records each side effect with its ``Idempotency-Key`` header and answers a
  replayed key with the first response, without a second effect.

Behaviours hold per-run state: build fresh ones for every run.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from respx.patterns import M, Pattern

from faults.surfaces import HttpRequest, HttpResponse
from harness.record import Commit

__all__ = [
    "Behaviour",
    "Ledger",
    "Sequence",
    "ServiceDefinitionError",
    "Static",
    "ToolService",
]


class ServiceDefinitionError(ValueError):
    """A tool service is declared wrongly (no path, both path forms, empty sequence, ...)."""


class Behaviour(Protocol):
    """How a service answers a request routed to it."""

    def respond(self, request: HttpRequest, tool: str, t: float) -> HttpResponse:
        """The response for ``request`` to ``tool`` at fake time ``t``."""
        ...


@dataclass(frozen=True)
class Static:
    """Answers every call with the same response."""

    response: HttpResponse

    def respond(self, request: HttpRequest, tool: str, t: float) -> HttpResponse:
        """See :class:`Behaviour`."""
        return self.response


class Sequence:
    """Answers one response per call, in order; the last repeats once the others are used.

    Args:
        responses: at least one response.
    """

    def __init__(self, responses: Iterable[HttpResponse]) -> None:
        self.responses = tuple(responses)
        if not self.responses:
            raise ServiceDefinitionError(
                "a Sequence behaviour needs at least one response, got none; give the "
                "responses in call order (the last one repeats)"
            )
        self._calls = 0
        self._lock = threading.Lock()

    @property
    def calls(self) -> int:
        """How many calls it has answered."""
        return self._calls

    def respond(self, request: HttpRequest, tool: str, t: float) -> HttpResponse:
        """See :class:`Behaviour`."""
        with self._lock:
            index = min(self._calls, len(self.responses) - 1)
            self._calls += 1
        return self.responses[index]


@dataclass
class _Entry:
    tool: str
    key: str | None
    raw: bytes
    body: Any
    t: float
    response: HttpResponse
    seq: int = 0
    request_seq: int = 0
    replays: int = 0
    conflicts: int = 0

    def freeze(self) -> Commit:
        return Commit(
            self.tool, self.key, self.body, self.replays, self.request_seq, self.seq, self.t
        )


class Ledger:
    """A stateful service that commits side effects, deduplicated by idempotency key.

    The first request with a key commits an effect and gets ``response``; a later request with
    the same key gets that first response again and commits nothing (its replay is counted).
    A request without the key commits an effect every time, and the effect is flagged.

    Args:
        response: the response a committed effect answers with.
        key_header: the header carrying the idempotency key (case-insensitive).
    """

    def __init__(self, response: HttpResponse, key_header: str = "Idempotency-Key") -> None:
        self.response = response
        self.key_header = key_header
        self._entries: list[_Entry] = []
        self._by_key: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self.stamp: Callable[[], tuple[int, int]] | None = None
        """Set by the world: numbers a commit and names the request committing it."""

    @property
    def effects(self) -> tuple[Commit, ...]:
        """Every committed effect, in commit order."""
        return self.commits()

    def commits(self) -> tuple[Commit, ...]:
        """Every committed effect, in commit order, numbered by the world's event log."""
        with self._lock:
            return tuple(e.freeze() for e in self._entries)

    def conflicting_replays(self) -> int:
        """Replays whose body differed from the committed one (a key reused for another action)."""
        with self._lock:
            return sum(e.conflicts for e in self._entries)

    def committed_count(self, key: str) -> int:
        """How many effects were committed under ``key`` (1 at most, by construction)."""
        with self._lock:
            return sum(1 for e in self._entries if e.key == key)

    def replay_count(self, key: str) -> int:
        """How many replays of ``key`` were answered without a new effect."""
        with self._lock:
            entry = self._by_key.get(key)
            return 0 if entry is None else entry.replays

    @property
    def unkeyed(self) -> tuple[Commit, ...]:
        """Effects committed without an idempotency key (flagged)."""
        return tuple(e for e in self.effects if e.idempotency_key is None)

    def respond(self, request: HttpRequest, tool: str, t: float) -> HttpResponse:
        """See :class:`Behaviour`: commit, or answer a replay with the first response."""
        key = request.header(self.key_header)
        with self._lock:
            if key is not None:
                seen = self._by_key.get(key)
                if seen is not None:
                    seen.replays += 1
                    if request.body != seen.raw:
                        seen.conflicts += 1
                    return seen.response
            entry = _Entry(tool, key, request.body, _body(request), t, self.response)
            if self.stamp is not None:
                entry.seq, entry.request_seq = self.stamp()
            self._entries.append(entry)
            if key is not None:
                self._by_key[key] = entry
        return self.response


def _body(request: HttpRequest) -> Any:
    try:
        return request.json()
    except ValueError:
        return request.body.decode("utf-8", "replace")


@dataclass(frozen=True)
class ToolService:
    """A fake tool endpoint: which requests it answers, under which tool name, and how.

    Args:
        name: the tool name (faults and records refer to it).
        method: the HTTP method it answers.
        behaviour: how it answers (:class:`Static`, :class:`Sequence`, :class:`Ledger`).
        path: the exact path below the tools base URL, e.g. ``/orders/42``.
        path_regex: a regular expression the whole path below the base URL must match,
            e.g. ``/orders/\\d+``; give exactly one of ``path`` and ``path_regex``.
    """

    name: str
    method: str
    behaviour: Behaviour
    path: str | None = None
    path_regex: str | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.path_regex is None):
            raise ServiceDefinitionError(
                f"tool service {self.name!r} needs exactly one of path or path_regex, got "
                f"path={self.path!r}, path_regex={self.path_regex!r}"
            )
        object.__setattr__(self, "method", self.method.upper())
        if self.path_regex is not None:
            try:
                re.compile(self.path_regex)
            except re.error as exc:
                raise ServiceDefinitionError(
                    f"tool service {self.name!r} has path_regex {self.path_regex!r}, which is "
                    f"not a regular expression ({exc}); fix the pattern"
                ) from None

    def pattern(self, base_url: str) -> Pattern:
        """The respx pattern matching this service's requests below ``base_url``."""
        return _service_pattern(self.method, self.path, self.path_regex, base_url)

    def call(self, request: HttpRequest, t: float) -> HttpResponse:
        """Answer ``request`` at fake time ``t`` with the service's behaviour."""
        return self.behaviour.respond(request, self.name, t)


@functools.lru_cache(maxsize=1024)
def _service_pattern(
    method: str, path: str | None, path_regex: str | None, base_url: str
) -> Pattern:
    # cached: scenarios rebuild their services every run, and building a respx pattern costs
    # ~15-25 µs (patterns are immutable once built, so sharing them is safe)
    parts = urlsplit(base_url)
    prefix = parts.path.rstrip("/")
    # respx tests lookups in this order and stops at the first miss: the path tells routes
    # apart soonest, so most routes cost one comparison for a request that is not theirs
    where: dict[str, Any] = {}
    if path is not None:
        where["path"] = prefix + "/" + path.lstrip("/")
    else:
        inner = (path_regex or "").removeprefix("^").removesuffix("$")
        where["path__regex"] = f"^{re.escape(prefix)}(?:{inner})$"
    where["method"] = method
    where["host"] = parts.hostname or ""
    if parts.port is not None:
        where["port"] = parts.port
    where["scheme"] = parts.scheme
    return M(**where)
