"""The support desks' calls to their tool services: bounded retries, typed failures, checked bodies.

Plain application code (no shakeout, no agent framework): every wait goes through the ``sleep``
it is given, so a test clock makes a 5 s backoff free.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx

MAX_ATTEMPTS = 3
MAX_BODY_BYTES = 1024 * 1024
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
QUOTA_CODES = frozenset({"insufficient_quota", "quota_exceeded"})


class ServiceError(Exception):
    """A tool service failed; ``transient`` ones are worth another attempt.

    Attributes:
        category: always ``tool`` (read by the adapter to categorize the failed run).
        transient: whether retrying can help.
        retry_after: the wait the service asked for, in seconds.
    """

    category = "tool"

    def __init__(self, message: str, *, transient: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


def call_service(
    http: httpx.Client,
    method: str,
    path: str,
    *,
    fields: Mapping[str, type | tuple[type, ...]],
    sleep: Callable[[float], None],
    now: Callable[[], float],
    body: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """One tool call with up to ``MAX_ATTEMPTS`` attempts; transient failures back off.

    Args:
        http: the client (its base URL points at the tool services).
        method: the HTTP method.
        path: the path under the base URL.
        fields: the fields a 2xx body must carry, with their JSON types.
        sleep: waits this many seconds (a test clock's ``sleep``).
        now: the current time in seconds (for ``Retry-After`` HTTP dates).
        body: the JSON body of a side effect.
        idempotency_key: sent as ``Idempotency-Key``, the same on every attempt.

    Raises:
        ServiceError: a permanent failure, or a transient one that outlived every attempt.
    """
    headers = {"accept": "application/json"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    attempt = 0
    while True:
        attempt += 1
        try:
            return _once(http, method, path, headers, body, fields, now)
        except ServiceError as exc:
            if not exc.transient or attempt >= MAX_ATTEMPTS:
                raise
            delay = exc.retry_after if exc.retry_after is not None else 0.5 * 2 ** (attempt - 1)
            sleep(min(max(delay, 0.1), 60.0))


def _once(
    http: httpx.Client,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: Mapping[str, Any] | None,
    fields: Mapping[str, type | tuple[type, ...]],
    now: Callable[[], float],
) -> dict[str, Any]:
    try:
        response = http.request(
            method, path, headers=dict(headers), json=None if body is None else dict(body)
        )
    except httpx.TransportError as exc:
        raise ServiceError(f"{method} {path}: {type(exc).__name__}", transient=True) from exc
    status, raw = response.status_code, response.content
    if status == 429:
        if _error_code(raw) in QUOTA_CODES:
            raise ServiceError(f"{method} {path}: quota exhausted", transient=False)
        after = _retry_after(response.headers.get("retry-after"), now)
        raise ServiceError(f"{method} {path}: rate limited", transient=True, retry_after=after)
    if status >= 400:
        raise ServiceError(
            f"{method} {path}: status {status}", transient=status in TRANSIENT_STATUSES
        )
    if len(raw) > MAX_BODY_BYTES:
        raise ServiceError(f"{method} {path}: a body of {len(raw)} bytes", transient=False)
    ctype = response.headers.get("content-type", "").split(";")[0].strip()
    try:
        if ctype != "application/json":
            raise ValueError(ctype)
        data = json.loads(raw)
    except ValueError:
        raise ServiceError(f"{method} {path}: not a JSON body", transient=True) from None
    drifted = [
        name
        for name, kind in fields.items()
        if not isinstance(data, dict)
        or isinstance(data.get(name), bool)
        or not isinstance(data.get(name), kind)
    ]
    if drifted:
        raise ServiceError(f"{method} {path}: the body drifted at {drifted}", transient=False)
    return dict(data)


def _error_code(raw: bytes) -> str | None:
    try:
        payload = json.loads(raw)
    except ValueError:
        return None
    inner = payload.get("error", payload) if isinstance(payload, dict) else None
    code = inner.get("code") or inner.get("type") if isinstance(inner, dict) else None
    return code if isinstance(code, str) else None


def _retry_after(value: str | None, now: Callable[[], float]) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())
