"""Routing: which handler answers a neutral request, by respx pattern; first match wins and an
unmatched request fails closed.

May import :mod:`harness.world.bridge` (the neutral request, answers, the caller's own request
object); the interceptor never imports this module: a world hands it a router as its answer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from respx.patterns import Noop, Pattern

from faults.surfaces import HttpRequest, TransportError, TransportFailure
from harness.world.bridge import Answer, Handler, native_request

__all__ = ["Route", "Router"]


# --------------------------------------------------------------------------- router


# respx pattern keys whose value comes from the request's method and URL alone: a route table
# made of these matches a request the same way every time its method and URL are the same.
_URL_KEYS = frozenset({"method", "scheme", "host", "port", "path", "params", "url"})
_NO_ROUTE = -1
# Bounds of the shared route memo: tables (distinct route sets) and entries per table.
_TABLES_MAX = 256
_ENTRIES_MAX = 1024


def _url_only(pattern: Pattern) -> bool:
    """Whether ``pattern`` reads nothing but the request's method and URL (no headers, body)."""
    return all(
        getattr(leaf, "key", None) in _URL_KEYS or isinstance(leaf, Noop) for leaf in pattern
    )


class _RouteMemo:
    """Which route (by index) answered each (library, method, URL) through one route table.

    Shared by every Router with the same pattern objects in the same order: a world builds its
    router per run from patterns that are cached, so a scenario's requests are matched by respx
    once per process, not once per run. It holds its patterns, so the ids it is keyed by stay
    theirs for as long as it lives.
    """

    __slots__ = ("hits", "patterns")

    def __init__(self, patterns: tuple[Pattern, ...]) -> None:
        self.patterns = patterns
        self.hits: dict[tuple[type, str, str], int] = {}


_MEMOS: dict[tuple[int, ...], _RouteMemo] = {}
_MEMOS_LOCK = threading.Lock()


def _memo_for(patterns: tuple[Pattern, ...]) -> _RouteMemo | None:
    """The shared memo of a route table, or None when a pattern reads more than method and URL."""
    key = tuple(map(id, patterns))
    memo = _MEMOS.get(key)  # a table only gets a memo once its patterns were found URL-only
    if memo is not None:
        return memo
    if not all(_url_only(p) for p in patterns):
        return None
    with _MEMOS_LOCK:
        memo = _MEMOS.get(key)
        if memo is None:
            if len(_MEMOS) >= _TABLES_MAX:
                del _MEMOS[next(iter(_MEMOS))]  # the oldest table
            memo = _MEMOS[key] = _RouteMemo(patterns)
        return memo


@dataclass(frozen=True)
class Route:
    """A respx pattern and the handler that answers the requests it matches."""

    pattern: Pattern
    handler: Handler
    name: str = ""


class Router:
    """Routes neutral requests by respx pattern; first match wins; unmatched fails closed.

    Patterns are matched against the caller's own request object (an ``httpx.Request`` probe
    built from the neutral request when there is none), whichever library sent it, so one set
    of routes covers both stacks. When every pattern reads only the method and URL (the
    world's routes do), the route a (library, method, URL) went to is remembered, in a memo
    shared by routers over the same pattern objects: matching respx patterns was the largest
    share of the harness's own cost per run.

    Args:
        on_unrouted: called with each request no route matched and the connect error it is
            refused with, before the refusal is returned.
    """

    def __init__(
        self, on_unrouted: Callable[[HttpRequest, TransportError], None] | None = None
    ) -> None:
        self._routes: list[Route] = []
        self._on_unrouted = on_unrouted
        self._memo: _RouteMemo | None = None
        self._memo_known = False

    @property
    def routes(self) -> tuple[Route, ...]:
        """The routes in match order."""
        return tuple(self._routes)

    def route(self, pattern: Pattern, handler: Handler, name: str = "") -> Route:
        """Add a route after the existing ones and return it."""
        added = Route(pattern, handler, name)
        self._routes.append(added)
        self._memo_known = False
        return added

    def match(self, request: HttpRequest) -> Route | None:
        """The first route whose pattern matches ``request``, or None."""
        native = native_request(request)
        if not self._memo_known:
            self._memo = _memo_for(tuple(r.pattern for r in self._routes))
            self._memo_known = True
        memo = self._memo
        # the library is part of the key: each parses the URL string its own way
        key = (type(native), request.method, request.url)
        if memo is not None:
            index = memo.hits.get(key)
            if index is not None:
                return None if index == _NO_ROUTE else self._routes[index]
        probe = native
        if probe is None:
            probe = httpx.Request(
                request.method, request.url, headers=request.headers, content=request.body
            )
        index = _NO_ROUTE
        for i, candidate in enumerate(self._routes):
            if candidate.pattern.match(probe):
                index = i
                break
        if memo is not None and len(memo.hits) < _ENTRIES_MAX:
            memo.hits[key] = index
        return None if index == _NO_ROUTE else self._routes[index]

    def __call__(self, request: HttpRequest) -> Answer:
        """Answer ``request`` from the first matching route, or refuse it with a connect error."""
        found = self.match(request)
        if found is not None:
            return found.handler(request)
        refusal = TransportError(
            TransportFailure.CONNECT_ERROR,
            f"shakeout: no scenario route for {request.method} {request.url}; add a route to "
            "the scenario's tools or model",
        )
        if self._on_unrouted is not None:
            self._on_unrouted(request, refusal)
        return refusal
