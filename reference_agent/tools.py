"""HTTP calls to the tool services, each answer validated and mapped onto the error taxonomy.

Infrastructure: imports ``errors``, ``schemas`` and ``tls`` only; retries and Idempotency-Keys are
``calls``'s.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from reference_agent.errors import (
    ConnectionFailed,
    MalformedBody,
    OversizeBody,
    RateLimited,
    SchemaDrift,
    Timeout,
    ToolError,
    UnexpectedStatus,
)
from reference_agent.schemas import (
    CustomerBody,
    EmailBody,
    OrderBody,
    PolicyBody,
    RefundBody,
    TicketBody,
)
from reference_agent.tls import httpx_ssl_context

MAX_BODY_BYTES = 1024 * 1024
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
QUOTA_CODES = frozenset({"insufficient_quota", "quota_exceeded"})


@dataclass(frozen=True)
class ToolSpec:
    """One tool's HTTP shape: method, path template, 2xx body schema, side effect or not."""

    method: str
    path: str
    body: type[BaseModel]
    side_effect: bool


TOOLS: Mapping[str, ToolSpec] = {
    "get_order": ToolSpec("GET", "/orders/{order_id}", OrderBody, False),
    "get_customer": ToolSpec("GET", "/customers/{customer_id}", CustomerBody, False),
    "get_refund_policy": ToolSpec("GET", "/policy/refunds", PolicyBody, False),
    "issue_refund": ToolSpec("POST", "/refunds", RefundBody, True),
    "send_email": ToolSpec("POST", "/emails", EmailBody, True),
    "close_ticket": ToolSpec("PATCH", "/tickets/{ticket_id}", TicketBody, True),
}


@dataclass
class ToolExchange:
    """What one tool request sent and received, for the trace (filled as the call goes)."""

    method: str
    url: str
    status: int | None = None
    response: Any = None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP-date vs ``now``)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def _error_code(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return None
    inner = payload.get("error", payload)
    if isinstance(inner, dict):
        code = inner.get("code") or inner.get("type")
        return code if isinstance(code, str) else None
    return inner if isinstance(inner, str) else None


class ToolClient:
    """Calls the tool services over one reused ``httpx.Client``.

    Args:
        base_url: the tool services' base URL.
        http_client: a client to use (tests pass one with a ``MockTransport``); None builds one,
            on the process's shared SSL context.
    """

    def __init__(self, base_url: str, http_client: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http_client or httpx.Client(
            verify=httpx_ssl_context(), timeout=httpx.Timeout(10.0, connect=5.0)
        )

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()

    def exchange(self, tool: str, path_args: Mapping[str, str]) -> ToolExchange:
        """The method and full URL a call will use (before it is sent)."""
        spec = TOOLS[tool]
        # Quote every segment fully: an id from a model must not be able to walk the path.
        path = spec.path.format(**{k: quote(v, safe="") for k, v in path_args.items()})
        return ToolExchange(method=spec.method, url=self.base_url + path)

    def call(
        self,
        tool: str,
        exchange: ToolExchange,
        *,
        body: Mapping[str, Any] | None,
        idempotency_key: str | None,
        now: float,
    ) -> BaseModel:
        """Send one request and return the validated 2xx body.

        Raises:
            ToolError: a subclass naming exactly what went wrong (see ``errors``).
        """
        spec = TOOLS[tool]
        headers = {"accept": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        request = self._http.build_request(
            exchange.method,
            exchange.url,
            headers=headers,
            json=None if body is None else dict(body),
        )
        try:
            response = self._http.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise Timeout(f"{tool}: {type(exc).__name__} calling {exchange.url}: {exc}") from exc
        except httpx.TransportError as exc:
            raise ConnectionFailed(
                f"{tool}: {type(exc).__name__} calling {exchange.url}: {exc}"
            ) from exc
        try:
            exchange.status = response.status_code
            raw = self._read(tool, response)
        finally:
            response.close()
        exchange.response = raw.decode("utf-8", "replace")[:2000]
        self._check_status(tool, response, raw, now)
        ctype = response.headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            raise MalformedBody(
                f"{tool}: expected content-type application/json, received {ctype or 'none'!r}",
                status=response.status_code,
            )
        if not raw.strip():
            raise MalformedBody(f"{tool}: the 2xx body is empty", status=response.status_code)
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise MalformedBody(
                f"{tool}: the body is not JSON ({exc}); received {raw[:80]!r}",
                status=response.status_code,
            ) from exc
        exchange.response = parsed
        try:
            return spec.body.model_validate_json(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<body>'}: {e['msg']}"
                for e in exc.errors()
            )
            raise SchemaDrift(
                f"{tool}: the body does not match the {spec.body.__name__} schema: {problems}",
                status=response.status_code,
            ) from None

    def _read(self, tool: str, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise OversizeBody(
                f"{tool}: content-length {declared} exceeds the {MAX_BODY_BYTES}-byte limit",
                status=response.status_code,
            )
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise OversizeBody(
                        f"{tool}: the body exceeds the {MAX_BODY_BYTES}-byte limit",
                        status=response.status_code,
                    )
                chunks.append(chunk)
        except httpx.TimeoutException as exc:
            raise Timeout(f"{tool}: {type(exc).__name__} reading the body: {exc}") from exc
        except httpx.TransportError as exc:
            raise ConnectionFailed(
                f"{tool}: {type(exc).__name__} reading the body: {exc}",
                status=response.status_code,
            ) from exc
        return b"".join(chunks)

    def _check_status(self, tool: str, response: httpx.Response, raw: bytes, now: float) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        code = _error_code(payload)
        if status == 429:
            if code in QUOTA_CODES:
                raise RateLimited(
                    f"{tool}: 429 with code {code!r}: the quota is exhausted, retrying cannot help",
                    transient=False,
                    status=status,
                )
            raise RateLimited(
                f"{tool}: 429 rate limited",
                status=status,
                retry_after=parse_retry_after(response.headers.get("retry-after"), now),
            )
        transient = status in TRANSIENT_STATUSES
        error: ToolError = UnexpectedStatus(
            f"{tool}: unexpected status {status}"
            + (f" (code {code!r})" if code else "")
            + ("; transient, will retry" if transient else "; permanent, not retried"),
            transient=transient,
            status=status,
            retry_after=parse_retry_after(response.headers.get("retry-after"), now),
        )
        raise error
