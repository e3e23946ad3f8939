"""The world a run happens in: scripted model, tool services and faults behind one interceptor."""

from __future__ import annotations

import functools
import random
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Sequence as Seq
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlsplit

from respx.patterns import M, Pattern

from faults.base import Fault
from faults.surfaces import (
    AgentCrash,
    CrashFault,
    CrashPoint,
    FaultFiring,
    HttpRequest,
    HttpResponse,
    ToolFault,
    ToolResult,
    TransportError,
)
from harness.adapter import Endpoints
from harness.clock import FakeClock
from harness.intercept import Answer, Interceptor, Router, StreamedResponse
from harness.model import ScriptedModel
from harness.services import Effect, Ledger, ServiceDefinitionError, ToolService

__all__ = ["RECORD_BODY_LIMIT", "Exchange", "World"]

RECORD_BODY_LIMIT = 64 * 1024
"""Response bodies are kept in the record up to this many bytes."""


@dataclass(frozen=True)
class Exchange:
    """One request the world answered (or refused), as recorded.

    Attributes:
        seq: 1-based order among all the world's exchanges.
        surface: ``model``, ``tool``, or ``unrouted`` (refused, no route).
        tool: the tool name for tool exchanges.
        call_index: 1-based index among calls to that tool, or among model requests.
        request: the request as intercepted.
        status: the response status (None when a transport error was raised instead).
        headers: the response headers.
        body: the response body, truncated to :data:`RECORD_BODY_LIMIT` bytes (for a stream,
            the planned bytes up to any cut).
        error: the transport error raised instead of a response.
        stream: whether the response was streamed.
        faults: keys of the faults that fired on this exchange.
        t: the fake time when the request arrived.
        crashed: the world crashed the agent after this exchange's effect.
    """

    seq: int
    surface: Literal["model", "tool", "unrouted"]
    tool: str | None
    call_index: int
    request: HttpRequest
    status: int | None
    headers: tuple[tuple[str, str], ...]
    body: bytes
    error: TransportError | None
    stream: bool
    faults: tuple[str, ...]
    t: float
    crashed: bool = False


class _ToolCall:
    """The ``ToolCallContext`` a tool fault sees; ``call_service`` runs the service once."""

    def __init__(
        self,
        service: ToolService,
        request: HttpRequest,
        call_index: int,
        clock: FakeClock,
        rng: random.Random,
    ) -> None:
        self.service = service
        self.request = request
        self.tool = service.name
        self.call_index = call_index
        self.clock = clock
        self.rng = rng
        self.served: HttpResponse | None = None

    def call_service(self) -> HttpResponse:
        # Every call reaches the service, as a real redelivery would: a ledger dedupes a
        # replayed idempotency key itself (that is what a duplicate-delivery fault tests).
        self.served = self.service.call(self.request, self.clock.now())
        return self.served


class World:
    """A run's world: answers the agent's model and tool requests, applies faults, records all.

    Requests to the model endpoint (``POST`` below ``endpoints.model_base_url`` ending in the
    wire format's path) go to the scripted model; requests below ``endpoints.tools_base_url``
    go to the service whose method and path match; everything else is refused with a connect
    error and recorded as unrouted. Faults apply by surface with their schedules, drawing from
    one ``random.Random(seed)``: tool faults count calls per tool; model and stream faults count
    model requests; a crash fault with point ``after_effect`` lets the service commit, then
    raises ``AgentCrash`` (targeted: counting calls to that tool; untargeted: counting calls to
    ledger services). Other surfaces (approval, other crash points) belong to the runner.

    Records are kept across activations (a crashed run resumed in a new ``with`` block adds to
    the same record) and read as frozen tuples. Thread-safe: one lock serialises answering.

    Args:
        endpoints: where the agent sends its traffic.
        model: the scripted model.
        services: the tool services, fresh for this run.
        faults: the run's faults.
        seed: the seed of the run's one RNG.
        clock: the run's fake clock.
    """

    def __init__(
        self,
        endpoints: Endpoints,
        model: ScriptedModel,
        services: Seq[ToolService],
        faults: Seq[Fault],
        seed: int,
        clock: FakeClock | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.model = model
        self.services = tuple(services)
        self.faults = tuple(faults)
        self.seed = seed
        self.clock = clock if clock is not None else FakeClock()
        self.rng = random.Random(seed)
        names = [s.name for s in self.services]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ServiceDefinitionError(
                f"tool service names must be unique in a world, got duplicates: {duplicates}; "
                "give each route its own tool name"
            )
        self._tool_faults = tuple(f for f in self.faults if isinstance(f, ToolFault))
        self._crash_faults = tuple(
            f
            for f in self.faults
            if isinstance(f, CrashFault)
            and getattr(type(f), "point", None) is CrashPoint.AFTER_EFFECT
        )
        self._ledger_names = frozenset(
            s.name for s in self.services if isinstance(s.behaviour, Ledger)
        )
        self._lock = threading.Lock()
        self._tool_calls: dict[str, int] = {}
        self._effect_calls = 0
        self._exchanges: list[Exchange] = []
        self._firings: list[FaultFiring] = []
        self._unrouted: list[HttpRequest] = []
        self._exhausted: list[int] = []
        self._blocked: list[str] = []
        self._errors: list[Exception] = []
        self.router = self._build_router()

    # ------------------------------------------------------------------ routing

    def _build_router(self) -> Router:
        router = Router(on_unrouted=self._refused)
        router.route(
            _model_pattern(self.endpoints.model_base_url, self.model.path_suffix),
            self._answer_model,
            "model",
        )
        for service in self.services:
            router.route(
                service.pattern(self.endpoints.tools_base_url),
                _bind(self._answer_tool, service),
                service.name,
            )
        return router

    @contextmanager
    def active(self) -> Iterator[World]:
        """Intercept the process's HTTP traffic with this world for the ``with`` block.

        Raises:
            harness.intercept.InterceptionError: when another world is already active.
        """
        interceptor = Interceptor(self.router)
        try:
            with interceptor:
                yield self
        finally:
            with self._lock:
                self._blocked.extend(interceptor.blocked)
                self._errors.extend(interceptor.handler_errors)

    # ------------------------------------------------------------------ answering

    def _answer_model(self, request: HttpRequest) -> Answer:
        with self._lock:
            t = self.clock.now()
            served = self.model.handle(
                request, self.faults, self.rng, self.clock, self._firings.append
            )
            if served.exhausted:
                self._exhausted.append(served.call_index)
            self._record(
                "model",
                None,
                served.call_index,
                request,
                served.response,
                t,
                served.fired,
                stream=served.stream,
            )
            return served.response

    def _answer_tool(self, service: ToolService, request: HttpRequest) -> Answer:
        with self._lock:
            t = self.clock.now()
            index = self._tool_calls.get(service.name, 0) + 1
            self._tool_calls[service.name] = index
            ctx = _ToolCall(service, request, index, self.clock, self.rng)
            fired: list[str] = []
            result: ToolResult | None = None
            for fault in self._tool_faults:
                if fault.target in (None, service.name) and fault.at.fires(index, self.rng):
                    result = fault.apply(ctx)
                    fired.append(fault.key)
                    self._firings.append(FaultFiring(fault.key, fault.surface, service.name, index))
                    break
            if result is None:
                result = ctx.call_service()
            crash = self._crash_for(service, index)
            if crash is not None:
                # The effect is applied once: reuse the answer the service already gave.
                served = ctx.served if ctx.served is not None else ctx.call_service()
                fired.append(crash.key)
                self._firings.append(
                    FaultFiring(
                        crash.key,
                        crash.surface,
                        service.name,
                        index,
                        {"point": CrashPoint.AFTER_EFFECT.value},
                    )
                )
                self._record("tool", service.name, index, request, served, t, fired, crashed=True)
                raise AgentCrash(
                    f"shakeout crashed the agent after the effect of {service.name} call "
                    f"{index} ({crash.label()})"
                )
            self._record("tool", service.name, index, request, result, t, fired)
            return result

    def _crash_for(self, service: ToolService, index: int) -> CrashFault | None:
        if not self._crash_faults:
            return None
        if service.name in self._ledger_names:
            self._effect_calls += 1
        for fault in self._crash_faults:
            if fault.target == service.name:
                if fault.at.fires(index, self.rng):
                    return fault
            elif (
                fault.target is None
                and service.name in self._ledger_names
                and fault.at.fires(self._effect_calls, self.rng)
            ):
                return fault
        return None

    def _refused(self, request: HttpRequest, refusal: TransportError) -> None:
        with self._lock:
            self._unrouted.append(request)
            self._record(
                "unrouted", None, len(self._unrouted), request, refusal, self.clock.now(), ()
            )

    def _record(
        self,
        surface: Literal["model", "tool", "unrouted"],
        tool: str | None,
        call_index: int,
        request: HttpRequest,
        answer: Answer,
        t: float,
        fired: Seq[str],
        *,
        stream: bool = False,
        crashed: bool = False,
    ) -> None:
        status: int | None = None
        headers: tuple[tuple[str, str], ...] = ()
        body = b""
        error: TransportError | None = None
        if isinstance(answer, HttpResponse):
            status, headers, body = answer.status, answer.headers, answer.body
        elif isinstance(answer, StreamedResponse):
            status, headers, stream = answer.status, answer.headers, True
            plan = answer.plan
            body = b"".join(plan.events) + plan.terminator
            if plan.cut_after is not None:
                body = body[: plan.cut_after]
        else:
            error = answer
        if len(body) > RECORD_BODY_LIMIT:
            body = body[:RECORD_BODY_LIMIT]
        self._exchanges.append(
            Exchange(
                len(self._exchanges) + 1,
                surface,
                tool,
                call_index,
                request,
                status,
                headers,
                body,
                error,
                stream,
                tuple(fired),
                t,
                crashed,
            )
        )

    # ------------------------------------------------------------------ the record

    @property
    def exchanges(self) -> tuple[Exchange, ...]:
        """Every exchange, in order."""
        with self._lock:
            return tuple(self._exchanges)

    @property
    def firings(self) -> tuple[FaultFiring, ...]:
        """Every fault firing, in order."""
        with self._lock:
            return tuple(self._firings)

    @property
    def unrouted(self) -> tuple[HttpRequest, ...]:
        """Requests no route matched (refused with a connect error, never sent)."""
        with self._lock:
            return tuple(self._unrouted)

    @property
    def model_exhausted(self) -> tuple[int, ...]:
        """Indices of model requests that found no scripted turn left."""
        with self._lock:
            return tuple(self._exhausted)

    @property
    def blocked(self) -> tuple[str, ...]:
        """Non-loopback socket connections the guard refused (``host:port``)."""
        with self._lock:
            return tuple(self._blocked)

    @property
    def harness_errors(self) -> tuple[Exception, ...]:
        """Exceptions raised while answering (harness or fault bugs: an ERROR, not a FAIL)."""
        with self._lock:
            return tuple(self._errors)

    @property
    def ledgers(self) -> Mapping[str, Ledger]:
        """The ledger behaviours by tool name."""
        return MappingProxyType(
            {s.name: s.behaviour for s in self.services if isinstance(s.behaviour, Ledger)}
        )

    @property
    def effects(self) -> tuple[Effect, ...]:
        """Every ledger's effects, ordered by fake commit time (ledger order among ties)."""
        merged = [e for ledger in self.ledgers.values() for e in ledger.effects]
        return tuple(sorted(merged, key=lambda e: e.t))


def _bind(
    answer: Callable[[ToolService, HttpRequest], Answer], service: ToolService
) -> Callable[[HttpRequest], Answer]:
    def handler(request: HttpRequest) -> Answer:
        return answer(service, request)

    return handler


@functools.lru_cache(maxsize=256)
def _model_pattern(base_url: str, suffix: str) -> Pattern:
    parts = urlsplit(base_url)
    # any path below the base that ends in the endpoint: SDKs differ on whether the base
    # includes /v1 (openai: yes, anthropic: no); path first, as respx stops at the first miss
    prefix = re.escape(parts.path.rstrip("/"))
    where: dict[str, object] = {"path__regex": f"^{prefix}(?:/.*)?{re.escape(suffix)}$"}
    where["method"] = "POST"
    where["host"] = parts.hostname or ""
    if parts.port is not None:
        where["port"] = parts.port
    where["scheme"] = parts.scheme
    return M(**where)
