"""Tool faults: what a downstream HTTP service can answer instead of what the agent expects."""

from __future__ import annotations

import email.utils
import json
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from faults.base import Category, FaultNotApplicableError
from faults.surfaces import (
    HttpResponse,
    ToolCallContext,
    ToolFault,
    ToolResult,
    TransportError,
    TransportFailure,
)

ONE_MIB = 1024 * 1024

# Reason phrases and error codes as real JSON APIs word them, so an agent's error body parsing
# meets what it would meet in production.
_STATUS_TEXT: dict[int, tuple[str, str]] = {
    400: ("bad_request", "The request body could not be processed."),
    401: ("unauthorized", "Missing or invalid API credentials."),
    403: ("forbidden", "The API key does not have permission for this resource."),
    404: ("not_found", "The requested resource does not exist."),
    409: ("conflict", "The resource was modified by another request."),
    422: ("unprocessable_entity", "The request failed validation."),
    500: ("internal_error", "An unexpected error occurred."),
    502: ("bad_gateway", "The upstream service returned an invalid response."),
    503: ("service_unavailable", "The service is temporarily unavailable."),
    504: ("gateway_timeout", "The upstream service did not answer in time."),
}


def error_body(status: int, code: str, message: str, request_id: str) -> dict[str, Any]:
    """The JSON error envelope tool faults serve: ``{"error": {code, message, status, ...}}``."""
    return {"error": {"code": code, "message": message, "status": status, "request_id": request_id}}


def mistyped(value: Any) -> Any:
    """``value`` as a JSON type no lax validator coerces back (scalars wrapped in a list,
    containers turned into their JSON text), for wrong-type faults."""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return [value]


def _request_id(ctx: ToolCallContext) -> str:
    # Drawn from the run's RNG so the same seed serves byte-identical bodies.
    return f"req_{ctx.rng.getrandbits(48):012x}"


def _without_length(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    # The body changes size; a stale content-length would make the client library, not the
    # agent, reject the response.
    return tuple((k, v) for k, v in headers if k.lower() != "content-length")


def _json_object(ctx: ToolCallContext, response: HttpResponse, key: str) -> dict[str, Any]:
    try:
        payload = json.loads(response.body) if response.body else None
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or not payload:
        raise FaultNotApplicableError(
            f"{key} needs a non-empty JSON object body from tool {ctx.tool!r} to mutate, "
            f"received status {response.status} with body {response.body[:80]!r}; "
            f"aim the fault at a call whose scripted answer is a JSON object"
        )
    return payload


def _replace_body(response: HttpResponse, payload: Any) -> HttpResponse:
    return HttpResponse(
        response.status, _without_length(response.headers), json.dumps(payload).encode()
    )


# --------------------------------------------------------------------------- HTTP status


@dataclass(frozen=True)
class _HttpStatusFault(ToolFault):
    """Answers with an HTTP error status and a realistic JSON error body."""

    status: ClassVar[int]
    category = Category.TOOL

    def apply(self, ctx: ToolCallContext) -> ToolResult:
        """Serve the error status without calling the service (no effect is applied)."""
        code, message = _STATUS_TEXT[self.status]
        body = error_body(self.status, code, message, _request_id(ctx))
        return HttpResponse.of_json(self.status, body)


@dataclass(frozen=True)
class ToolHttp400(_HttpStatusFault):
    """The tool answers 400 Bad Request."""

    key = "tool_http_400"
    status = 400
    transient = False


@dataclass(frozen=True)
class ToolHttp401(_HttpStatusFault):
    """The tool answers 401 Unauthorized."""

    key = "tool_http_401"
    status = 401
    transient = False


@dataclass(frozen=True)
class ToolHttp403(_HttpStatusFault):
    """The tool answers 403 Forbidden."""

    key = "tool_http_403"
    status = 403
    transient = False


@dataclass(frozen=True)
class ToolHttp404(_HttpStatusFault):
    """The tool answers 404 Not Found."""

    key = "tool_http_404"
    status = 404
    transient = False


@dataclass(frozen=True)
class ToolHttp409(_HttpStatusFault):
    """The tool answers 409 Conflict."""

    key = "tool_http_409"
    status = 409
    transient = False


@dataclass(frozen=True)
class ToolHttp422(_HttpStatusFault):
    """The tool answers 422 Unprocessable Entity."""

    key = "tool_http_422"
    status = 422
    transient = False


@dataclass(frozen=True)
class ToolHttp500(_HttpStatusFault):
    """The tool answers 500 Internal Server Error."""

    key = "tool_http_500"
    status = 500
    transient = True


@dataclass(frozen=True)
class ToolHttp502(_HttpStatusFault):
    """The tool answers 502 Bad Gateway."""

    key = "tool_http_502"
    status = 502
    transient = True


@dataclass(frozen=True)
class ToolHttp503(_HttpStatusFault):
    """The tool answers 503 Service Unavailable."""

    key = "tool_http_503"
    status = 503
    transient = True


@dataclass(frozen=True)
class ToolHttp504(_HttpStatusFault):
    """The tool answers 504 Gateway Timeout."""

    key = "tool_http_504"
    status = 504
    transient = True


# --------------------------------------------------------------------------- rate limits


@dataclass(frozen=True)
class ToolRateLimit(ToolFault):
    """The tool answers 429 Too Many Requests with ``Retry-After`` in seconds.

    Attributes:
        seconds: the Retry-After value the agent must wait before retrying.
    """

    key = "tool_rate_limit"
    category = Category.TOOL
    transient = True
    seconds: int = 2

    def apply(self, ctx: ToolCallContext) -> ToolResult:
        """Serve the 429 without calling the service."""
        body = error_body(429, "rate_limited", "Too many requests.", _request_id(ctx))
        return HttpResponse.of_json(429, body, {"retry-after": str(self.seconds)})

    def label_detail(self) -> str:
        """The wait, e.g. ``2s``."""
        return f"{self.seconds}s"


@dataclass(frozen=True)
class ToolRateLimitHttpDate(ToolFault):
    """The tool answers 429 with ``Retry-After`` as an HTTP-date on the run's clock.

    Attributes:
        seconds: how far past the clock's now the date lies (rounded up to whole seconds, the
            resolution of an HTTP-date).
    """

    key = "tool_rate_limit_http_date"
    category = Category.TOOL
    transient = True
    seconds: int = 2

    def apply(self, ctx: ToolCallContext) -> ToolResult:
        """Serve the 429 without calling the service."""
        when = math.ceil(ctx.clock.now() + self.seconds)
        date = email.utils.formatdate(when, usegmt=True)
        body = error_body(429, "rate_limited", "Too many requests.", _request_id(ctx))
        return HttpResponse.of_json(429, body, {"retry-after": date})

    def label_detail(self) -> str:
        """The wait, e.g. ``2s``."""
        return f"{self.seconds}s"


@dataclass(frozen=True)
class ToolQuotaExhausted(ToolFault):
    """The tool answers 429 whose body says the quota is exhausted: retrying cannot help."""

    key = "tool_quota_exhausted"
    category = Category.TOOL
    transient = False

    def apply(self, ctx: ToolCallContext) -> ToolResult:
        """Serve the 429 without calling the service."""
        body = error_body(
            429, "quota_exceeded", "Monthly request quota exhausted.", _request_id(ctx)
        )
        return HttpResponse.of_json(429, body)


# --------------------------------------------------------------------------- transport


@dataclass(frozen=True)
class ToolConnectTimeout(ToolFault):
    """Connecting to the tool service times out."""

    key = "tool_connect_timeout"
    category = Category.TOOL
    transient = True

    def apply(self, ctx: ToolCallContext) -> ToolResult:
        """Raise a connect timeout (the service never sees the request)."""
        return TransportError(TransportFailure.CONNECT_TIMEOUT, "timed out while connecting")


@dataclass(frozen=True)
class ToolReadTimeout(ToolFault):
    """The tool service accepts the request but never answers (read timeout)."""

    key = "tool_read_timeout"
    category = Category.TOOL
    transient = True

    def apply(self, ctx: ToolCallContext) -> ToolResult:
        """Raise a read timeout without calling the service."""
        return TransportError(TransportFailure.READ_TIMEOUT, "timed out while reading")


@dataclass(frozen=True)
class ToolConnectionReset(ToolFault):
    """The tool service resets the connection."""

    key = "tool_connection_reset"
    category = Category.TOOL
    transient = True

    def apply(self, ctx: ToolCallContext) -> ToolResult:
        """Raise a connection reset without calling the service."""
        return TransportError(TransportFailure.CONNECTION_RESET, "connection reset by peer")


# --------------------------------------------------------------------------- malformed bodies


@dataclass(frozen=True)
class ToolTruncatedBody(ToolFault):
    """The service's real body arrives cut in half (the effect, if any, is applied)."""

    key = "tool_truncated_body"
    category = Category.TOOL
    transient = True

    def apply(self, ctx: ToolCallContext) -> ToolResult:
        """Call the service and serve the first half of its body."""
        real = ctx.call_service()
        half = real.body[: len(real.body) // 2]
        return HttpResponse(real.status, _without_length(real.headers), half)


_HTML_ERROR_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n"
)


@dataclass(frozen=True)
class ToolInvalidJson(ToolFault):
    """A 200 labelled application/json whose body is a proxy's HTML page, not JSON."""

    key = "tool_invalid_json"
    category = Category.TOOL
    transient = True

    def apply(self, ctx: ToolCallContext) -> ToolResult:
        """Serve the mislabelled page without calling the service."""
        return HttpResponse(200, (("content-type", "application/json"),), _HTML_ERROR_PAGE)


_LOGIN_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head>\n"
    b'<body><form method="post" action="/login"><input name="user"><input name="password" '
    b'type="password"><button>Sign in</button></form></body></html>\n'
)


@dataclass(frozen=True)
class ToolWrongContentType(ToolFault):
    """A 200 with ``content-type: text/html`` (a captive login page) instead of JSON."""

    key = "tool_wrong_content_type"
    category = Category.TOOL
    transient = True

    def apply(self, ctx: ToolCallContext) -> ToolResult:
        """Serve the HTML page without calling the service."""
        return HttpResponse(200, (("content-type", "text/html; charset=utf-8"),), _LOGIN_PAGE)


@dataclass(frozen=True)
class ToolEmptyBody(ToolFault):
    """A 200 labelled application/json with an empty body."""

    key = "tool_empty_body"
    category = Category.TOOL
    transient = True

    def apply(self, ctx: ToolCallContext) -> ToolResult:
        """Serve the empty answer without calling the service."""
        return HttpResponse(200, (("content-type", "application/json"),), b"")


@dataclass(frozen=True)
class ToolOversizeBody(ToolFault):
    """The service's real JSON answer padded past 1 MiB (valid JSON, every field intact).

    The real fields stay, so only an agent that enforces a size limit notices: one that parses
    anything would go on as if nothing happened.

    Attributes:
        size_bytes: the minimum size of the served body.
    """

    key = "tool_oversize_body"
    category = Category.TOOL
    transient = False
    size_bytes: int = ONE_MIB + 4096

    def apply(self, ctx: ToolCallContext) -> ToolResult:
        """Call the service and pad its JSON object body with a large extra field."""
        real = ctx.call_service()
        payload = _json_object(ctx, real, self.key)
        payload["_padding"] = ""
        room = self.size_bytes - len(json.dumps(payload))
        payload["_padding"] = "x" * max(room, 0)
        return _replace_body(real, payload)


# --------------------------------------------------------------------------- schema drift


@dataclass(frozen=True)
class _SchemaFault(ToolFault):
    """Calls the service, then changes one field of its JSON object body."""

    category = Category.TOOL
    transient = False
    field: str | None = None
    """The field to change; None: the body's first field."""

    def apply(self, ctx: ToolCallContext) -> ToolResult:
        """Call the service and serve its body with the field changed."""
        real = ctx.call_service()
        payload = _json_object(ctx, real, self.key)
        name = self.field if self.field is not None else next(iter(payload))
        if name not in payload:
            raise FaultNotApplicableError(
                f"{self.key} was told to change field {name!r}, but the body of tool "
                f"{ctx.tool!r} has only {sorted(payload)}; set `field` to one of those"
            )
        return _replace_body(real, self.mutate(payload, name))

    def mutate(self, payload: dict[str, Any], name: str) -> dict[str, Any]:
        """The drifted body."""
        raise NotImplementedError

    def label_detail(self) -> str:
        """The chosen field, if any."""
        return self.field or ""


@dataclass(frozen=True)
class ToolSchemaMissingField(_SchemaFault):
    """The service's answer drifts: a field (the first, or ``field``) is missing."""

    key = "tool_schema_missing_field"

    def mutate(self, payload: dict[str, Any], name: str) -> dict[str, Any]:
        """Drop the field."""
        return {k: v for k, v in payload.items() if k != name}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclass(frozen=True)
class ToolSchemaRenamedField(_SchemaFault):
    """The service's answer drifts: a field is renamed (``order_id`` -> ``orderId``)."""

    key = "tool_schema_renamed_field"

    def mutate(self, payload: dict[str, Any], name: str) -> dict[str, Any]:
        """Rename the field to camelCase, or suffix ``_v2`` when it has no underscore."""
        renamed = _camel(name)
        if renamed == name or renamed in payload:
            renamed = f"{name}_v2"
        return {(renamed if k == name else k): v for k, v in payload.items()}


@dataclass(frozen=True)
class ToolSchemaWrongType(_SchemaFault):
    """The service's answer drifts: a field changes JSON type (``"O-1"`` -> ``["O-1"]``)."""

    key = "tool_schema_wrong_type"

    def mutate(self, payload: dict[str, Any], name: str) -> dict[str, Any]:
        """Give the field a JSON type no lax validator coerces back."""
        return {**payload, name: mistyped(payload[name])}


# --------------------------------------------------------------------------- timing and delivery


@dataclass(frozen=True)
class ToolLatency(ToolFault):
    """The service answers correctly but late (the fake clock advances by ``seconds``)."""

    key = "tool_latency"
    category = None
    transient = True
    needs_real_answer = False
    seconds: float = 5.0

    def apply(self, ctx: ToolCallContext) -> ToolResult:
        """Advance the clock, then serve the real answer."""
        ctx.clock.sleep(self.seconds)
        return ctx.call_service()

    def label_detail(self) -> str:
        """The delay, e.g. ``5s``."""
        return f"{self.seconds:g}s"


@dataclass(frozen=True)
class ToolTimeoutAfterCommit(ToolFault):
    """The service applies the effect but the answer is lost (read timeout after commit)."""

    key = "tool_timeout_after_commit"
    category = Category.TOOL
    transient = True

    def apply(self, ctx: ToolCallContext) -> ToolResult:
        """Call the service (its effect commits), then raise a read timeout."""
        ctx.call_service()
        return TransportError(
            TransportFailure.READ_TIMEOUT, "timed out while reading (request was processed)"
        )


@dataclass(frozen=True)
class ToolDuplicateDelivery(ToolFault):
    """The request is delivered twice (a network-level replay); the ledger must dedupe it.

    The agent sees an ordinary answer, so there is no category: what breaks is exactly-once,
    which the effects ledger checks (a side effect without an idempotency key commits twice).
    """

    key = "tool_duplicate_delivery"
    category = None
    transient = True
    needs_real_answer = False

    def apply(self, ctx: ToolCallContext) -> ToolResult:
        """Call the service twice and serve the second (replayed) answer."""
        ctx.call_service()
        return ctx.call_service()
