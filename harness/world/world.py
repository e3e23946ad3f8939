"""The world a run happens in: scripted model, tool services and faults behind one interceptor."""

from __future__ import annotations

import functools
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Sequence as Seq
from contextlib import contextmanager
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
from harness.record import (
    RECORD_BODY_LIMIT,
    Blocked,
    Commit,
    Crash,
    EventLog,
    Exchange,
    request_identity,
)
from harness.world.clock import FakeClock
from harness.world.intercept import Answer, Interceptor, StreamedResponse
from harness.world.model import ScriptedModel
from harness.world.routing import Router
from harness.world.services import Ledger, ServiceDefinitionError, ToolService

__all__ = ["RECORD_BODY_LIMIT", "World"]


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
        log: the run's event log (shared with the driver); a new one when None.
        allow_subprocess: the agent may start processes (the scenario's ``allow_subprocess``);
            otherwise the network guard refuses them and records each attempt.
    """

    def __init__(
        self,
        endpoints: Endpoints,
        model: ScriptedModel,
        services: Seq[ToolService],
        faults: Seq[Fault],
        seed: int,
        clock: FakeClock | None = None,
        log: EventLog | None = None,
        *,
        allow_subprocess: bool = False,
    ) -> None:
        self.endpoints = endpoints
        self.allow_subprocess = allow_subprocess
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
        self.log = log if log is not None else EventLog()
        self._current_seq = 0  # the request being answered (the world lock serialises them)
        self._firings: list[FaultFiring] = []
        self._unrouted: list[HttpRequest] = []
        self._exhausted: list[int] = []
        self._blocked: list[str] = []
        self._errors: list[Exception] = []
        # A permanent fault answers every retry of the request it broke (by request identity).
        self._repeats: dict[str, tuple[ToolFault, int | None]] = {}
        for service in self.services:
            if isinstance(service.behaviour, Ledger):
                service.behaviour.stamp = self._stamp
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
            harness.world.intercept.InterceptionError: when another world is already active.
        """
        interceptor = Interceptor(
            self.router, on_blocked=self.blocked_attempt, allow_subprocess=self.allow_subprocess
        )
        try:
            with interceptor:
                yield self
        finally:
            with self._lock:
                self._errors.extend(interceptor.handler_errors)

    def blocked_attempt(self, what: str, target: str) -> None:
        """Record an attempt to leave the world that the guard refused (evidence)."""
        with self._lock:
            self._blocked.append(target)
        self.log.add(Blocked(what, target, self.log.next(), self.clock.now()))

    def _stamp(self) -> tuple[int, int]:
        """A ledger's commit number and the number of the request committing it."""
        return self.log.next(), self._current_seq

    # ------------------------------------------------------------------ answering

    def _answer_model(self, request: HttpRequest) -> Answer:
        with self._lock:
            seq = self.log.next()
            t, mono = self.clock.now(), time.monotonic()
            served = self.model.handle(
                request, self.faults, self.rng, self.clock, self._firings.append
            )
            if served.exhausted:
                self._exhausted.append(served.call_index)
            self._record(
                seq,
                "model",
                None,
                served.call_index,
                request,
                served.response,
                (t, mono),
                served.fired,
                stream=served.stream,
            )
            return served.response

    def _answer_tool(self, service: ToolService, request: HttpRequest) -> Answer:
        with self._lock:
            seq = self.log.next()
            self._current_seq = seq
            t, mono = self.clock.now(), time.monotonic()
            index = self._tool_calls.get(service.name, 0) + 1
            self._tool_calls[service.name] = index
            ctx = _ToolCall(service, request, index, self.clock, self.rng)
            fired: list[str] = []
            result: ToolResult | None = None
            # only a tool fault ever answers by identity (and fills _repeats): a run without
            # one skips building it (the body's repr) for every tool call
            identity = request_identity(service.name, request) if self._tool_faults else ""
            again = self._repeats.get(identity)
            if again is not None:
                # the retry of a request a fault broke: a permanent fault answers every retry,
                # a transient one with ``times`` its remaining attempts
                fault, left = again
                if left is None or left > 0:
                    self._repeats[identity] = (fault, None if left is None else left - 1)
                    result = fault.apply(ctx)
                    fired.append(fault.label())
                    self._firings.append(
                        FaultFiring(
                            fault.key,
                            fault.surface,
                            service.name,
                            index,
                            {"repeat": True},
                            fault.label(),
                        )
                    )
            if result is None:
                for fault in self._tool_faults:
                    if fault.target in (None, service.name) and fault.at.fires(index, self.rng):
                        result = fault.apply(ctx)
                        fired.append(fault.label())
                        self._firings.append(
                            FaultFiring(
                                fault.key, fault.surface, service.name, index, {}, fault.label()
                            )
                        )
                        if not fault.transient:
                            self._repeats[identity] = (fault, None)
                        elif fault.times > 1:
                            self._repeats[identity] = (fault, fault.times - 1)
                        break
            if result is None:
                result = ctx.call_service()
            crash = self._crash_for(service, index)
            if crash is not None:
                # The effect is applied once: reuse the answer the service already gave.
                served = ctx.served if ctx.served is not None else ctx.call_service()
                fired.append(crash.label())
                self._firings.append(
                    FaultFiring(
                        crash.key,
                        crash.surface,
                        service.name,
                        index,
                        {"point": CrashPoint.AFTER_EFFECT.value},
                        crash.label(),
                    )
                )
                self._record(
                    seq, "tool", service.name, index, request, served, (t, mono), fired, True
                )
                self.log.add(Crash("after_effect", service.name, self.log.next(), t))
                raise AgentCrash(
                    f"shakeout crashed the agent after the effect of {service.name} call "
                    f"{index} ({crash.label()})"
                )
            self._record(seq, "tool", service.name, index, request, result, (t, mono), fired)
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
            seq = self.log.next()
            self._record(
                seq,
                "unrouted",
                None,
                len(self._unrouted),
                request,
                refusal,
                (self.clock.now(), time.monotonic()),
                (),
            )

    def _record(
        self,
        seq: int,
        surface: Literal["model", "tool", "unrouted"],
        tool: str | None,
        call_index: int,
        request: HttpRequest,
        answer: Answer,
        when: tuple[float, float],
        fired: Seq[str],
        crashed: bool = False,
        *,
        stream: bool = False,
    ) -> None:
        status: int | None = None
        headers: tuple[tuple[str, str], ...] = ()
        body = b""
        error: str | None = None
        if isinstance(answer, HttpResponse):
            status, headers, body = answer.status, answer.headers, answer.body
        elif isinstance(answer, StreamedResponse):
            status, headers, stream = answer.status, answer.headers, True
            plan = answer.plan
            body = b"".join(plan.events) + plan.terminator
            if plan.cut_after is not None:
                body = body[: plan.cut_after]
        else:
            error = answer.kind.value + (f": {answer.message}" if answer.message else "")
        if crashed and error is None:
            error = "crash"
        if len(body) > RECORD_BODY_LIMIT:
            body = body[:RECORD_BODY_LIMIT]
        self.log.add(
            Exchange(
                seq=seq,
                surface=surface,
                tool=tool,
                call_index=call_index,
                request=request,
                status=status,
                error=error,
                faults=tuple(fired),
                t=when[0],
                response_body=body,
                stream=stream,
                crashed=crashed,
                mono=when[1],
                headers=headers,
            )
        )

    # ------------------------------------------------------------------ the record

    @property
    def exchanges(self) -> tuple[Exchange, ...]:
        """Every exchange, in order."""
        return self.log.of(Exchange)

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
        """What the network guard refused, in order (``host:port``, host name or command)."""
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
    def effects(self) -> tuple[Commit, ...]:
        """Every ledger's committed effects, in commit order, each with its request's number."""
        merged = [e for ledger in self.ledgers.values() for e in ledger.commits()]
        return tuple(sorted(merged, key=lambda e: e.seq))


def _bind(
    answer: Callable[[ToolService, HttpRequest], Answer], service: ToolService
) -> Callable[[HttpRequest], Answer]:
    def handler(request: HttpRequest) -> Answer:
        return answer(service, request)

    return handler


@functools.lru_cache(maxsize=256)
@functools.lru_cache(maxsize=256)
def _model_pattern(base_url: str, suffix: str) -> Pattern:
    # cached, like the services' patterns: the same pattern objects run after run let the
    # router's memo (keyed by them) remember where each request goes
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
