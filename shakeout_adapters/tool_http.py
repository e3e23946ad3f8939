"""HTTP calls to tool services with bounded, category-aware retries on the world's clock.

Transient answers (429 with ``Retry-After``, 5xx, timeouts, resets, a body that is cut, empty or
not JSON) are retried up to ``attempts`` times, waiting as ``Retry-After`` asks or with a bounded
backoff, every wait on the injected clock. Permanent answers (other 4xx, an oversize body, a body
that breaks the expected schema) raise :class:`~shakeout_adapters.categories.ToolError` at once.
An effect carries its ``Idempotency-Key`` on every attempt, so a retried or replayed request
commits once.
"""

from __future__ import annotations

import email.utils
import json as jsonlib
from collections.abc import Mapping
from typing import Any, Final, TypeVar

import httpx
import pydantic

from shakeout_adapters._runs import ClockLike, idempotency_key
from shakeout_adapters.categories import QUOTA_CODES, ToolError

__all__ = ["ToolHttp", "idempotency_key"]

T = TypeVar("T", bound=pydantic.BaseModel)

TRANSIENT_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
MAX_BODY_BYTES: Final = 1024 * 1024
BACKOFF_S: Final = 0.5
MAX_WAIT_S: Final = 60.0


class ToolHttp:
    """A tool-service client for an agent's tool functions.

    Args:
        client: an ``httpx.Client`` whose ``base_url`` is the tool services' base URL
            (``endpoints.tools_base_url``); build it once per adapter and share it.
        clock: the world's clock (``world.clock``); every wait between attempts sleeps on it.
        attempts: how many times one request is tried (first try included).
    """

    def __init__(self, client: httpx.Client, clock: ClockLike, *, attempts: int = 3) -> None:
        self.clock = clock
        self.attempts = attempts
        self._http = client

    def get(self, path: str, schema: type[T]) -> T:
        """GET ``path`` and validate the JSON answer against ``schema``."""
        return self.request("GET", path, schema)

    def effect(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any],
        schema: type[T],
        *,
        key: str,
    ) -> T:
        """Send a side effect with its ``Idempotency-Key`` (the same on every attempt).

        Args:
            method: POST, PUT, PATCH or DELETE.
            path: the service path.
            body: the JSON body (for a gated tool: exactly the approved arguments).
            schema: the model the answer must validate against.
            key: the effect's key, e.g. ``idempotency_key(run_id, tool_call_id)``.
        """
        return self.request(method, path, schema, json=dict(body), key=key)

    def request(
        self,
        method: str,
        path: str,
        schema: type[T],
        *,
        json: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> T:
        """Send one request with bounded retries; return its validated answer.

        Raises:
            ToolError: a permanent answer, or a transient one on the last attempt.
        """
        headers = {} if key is None else {"Idempotency-Key": key}
        last: ToolError | None = None
        for attempt in range(1, self.attempts + 1):
            if last is not None:
                self.clock.sleep(_wait(last, attempt))
            try:
                return self._once(method, path, schema, json, headers)
            except ToolError as exc:
                if not exc.transient:
                    raise
                last = exc
        assert last is not None
        raise ToolError(
            f"{method} {path} failed {self.attempts} times in a row; last: {last}",
            transient=True,
        ) from last

    def _once(
        self,
        method: str,
        path: str,
        schema: type[T],
        body: Mapping[str, Any] | None,
        headers: Mapping[str, str],
    ) -> T:
        where = f"{method} {path}"
        try:
            with self._http.stream(method, path, json=body, headers=headers) as response:
                raw = _read_bounded(response, where)
        except httpx.TransportError as exc:
            raise ToolError(f"{where}: {type(exc).__name__}: {exc}", transient=True) from exc
        status = response.status_code
        if status >= 400:
            quota = status == 429 and _error_code(raw) in QUOTA_CODES
            raise ToolError(
                f"{where} answered HTTP {status}" + (" (quota exhausted)" if quota else ""),
                transient=status in TRANSIENT_STATUSES and not quota,
                retry_after=_retry_after(response.headers.get("retry-after"), self.clock.now()),
            )
        if "json" not in response.headers.get("content-type", ""):
            raise ToolError(f"{where} answered a non-JSON content type", transient=True)
        try:
            return schema.model_validate_json(raw)
        except pydantic.ValidationError as exc:
            if _parse_failure(exc):
                why = f"{where} answered a body that is not JSON"
                raise ToolError(why, transient=True) from exc
            raise ToolError(f"{where} answered a body that breaks its schema: {exc}") from exc


def _read_bounded(response: httpx.Response, where: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ToolError(f"{where} answered more than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _error_code(raw: bytes) -> object:
    try:
        body = jsonlib.loads(raw)
    except ValueError:
        return None
    inner = body.get("error", body) if isinstance(body, dict) else None
    return inner.get("code") if isinstance(inner, dict) else None


def _parse_failure(exc: pydantic.ValidationError) -> bool:
    return any(e["type"] == "json_invalid" for e in exc.errors())


def _wait(failure: ToolError, attempt: int) -> float:
    if failure.retry_after is not None:
        return min(failure.retry_after, MAX_WAIT_S)
    backoff: float = BACKOFF_S * 2.0 ** (attempt - 2)
    return min(backoff, MAX_WAIT_S)


def _retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` in seconds, or as an HTTP date (on the world's clock)."""
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now, 0.0)
