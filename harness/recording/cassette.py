"""Reading a vcrpy cassette: its interactions, each request and response in plain bytes.

This module owns the cassette format as shakeout reads it (YAML, or JSON when the name ends in
``.json``; vcrpy's version 1 layout), :class:`CassetteError` and the size bound every response
body is held to (the scenario file limit of :mod:`harness.scenario.reading`, 512 KiB). It
imports only that limit; turning the interactions into a scenario is
:mod:`harness.recording.cassette_import`.

Errors::

    CassetteError      the cassette is missing, unreadable or not in vcrpy's format, or an
                       answer in it is larger than a scenario file may be
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml


class CassetteError(Exception):
    """A cassette cannot be read or converted; the message names the file and the fix."""


@dataclass(frozen=True)
class Interaction:
    """One recorded request and its response; header names are lower case."""

    index: int
    method: str
    url: str
    request_headers: Mapping[str, str]
    request_body: bytes
    status: int
    response_headers: Mapping[str, str]
    response_body: bytes

    @property
    def path(self) -> str:
        """The URL's path (``/`` when it has none)."""
        return urlsplit(self.url).path or "/"

    def request_json(self) -> Any:
        """The request body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.request_body)
        except ValueError:
            return None


def read_cassette(path: Path) -> tuple[Interaction, ...]:
    """Every interaction of a cassette, in recorded order, each response within the size bound.

    Raises:
        CassetteError: the file is missing, unreadable, not vcrpy's format, or holds a response
            body larger than a scenario file may be.
    """
    if not path.is_file():
        raise CassetteError(
            f"cassette {str(path)!r} does not exist; record one with "
            "harness.recording.recorder.record_session or pass the path of a vcrpy cassette"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CassetteError(f"cassette {str(path)!r} cannot be read: {exc}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            from vcr.serializers import yamlserializer  # type: ignore[import-untyped]

            data = yamlserializer.deserialize(text)
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CassetteError(
            f"cassette {str(path)!r} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}"
            f" ({first}); pass a file vcrpy wrote"
        ) from None
    interactions = data.get("interactions") if isinstance(data, dict) else None
    if not isinstance(interactions, list):
        raise CassetteError(
            f"cassette {str(path)!r} has no 'interactions' list (got "
            f"{type(data).__name__}); pass a cassette vcrpy wrote (version 1 format)"
        )
    items = tuple(_interaction(path, i, raw) for i, raw in enumerate(interactions))
    _check_sizes(path, items)
    return items


def _check_sizes(path: Path, items: Sequence[Interaction]) -> None:
    # a response becomes a turn or a tool answer in a scenario file, which the loader reads
    # only up to its limit: refuse here, naming the interaction, not after writing the file
    from harness.scenario.reading import MAX_FILE_BYTES

    for item in items:
        size = len(item.response_body)
        if size > MAX_FILE_BYTES:
            raise CassetteError(
                f"cassette {str(path)!r}: interaction {item.index} ({item.method} {item.url}) "
                f"has a response body of {size:,} bytes, over the {limit_text(MAX_FILE_BYTES)} a "
                "scenario file may hold; record the session with a smaller answer (filter or "
                "page the results) or delete that interaction from the cassette"
            )


def limit_text(limit: int) -> str:
    """A byte limit as people read it: ``512 KiB (524,288 bytes)``."""
    return f"{limit // 1024} KiB ({limit:,} bytes)"


def _interaction(path: Path, index: int, raw: Any) -> Interaction:
    try:
        request, response = raw["request"], raw["response"]
        status = response["status"]
        code = int(status["code"] if isinstance(status, Mapping) else status)
        return Interaction(
            index=index,
            method=str(request["method"]).upper(),
            url=str(request["uri"]),
            request_headers=_headers(request.get("headers")),
            request_body=_bytes(request.get("body")),
            status=code,
            response_headers=_headers(response.get("headers")),
            response_body=_bytes(_body_string(response.get("body"))),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CassetteError(
            f"cassette {str(path)!r}: interaction {index} is malformed ({type(exc).__name__}: "
            f"{exc}); each needs request.method/uri and response.status.code"
        ) from None


def _body_string(body: Any) -> Any:
    return body.get("string") if isinstance(body, Mapping) else body


def _headers(raw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in (raw or {}).items():
        first = value[0] if isinstance(value, list) and value else value
        out[str(name).lower()] = "" if first is None or first == [] else str(first)
    return out


def _bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if hasattr(value, "getvalue"):  # BytesIO bodies of old cassettes
        return bytes(value.getvalue())
    return str(value).encode("utf-8")
