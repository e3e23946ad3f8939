"""Record a live agent session with vcrpy, secrets scrubbed, into a cassette.

Recording is the one place shakeout lets requests leave the machine, and only when the user asks
for it by calling :func:`record_session`. No fault is ever recorded into a cassette: faults are
spliced into the replay of the scenario the cassette becomes
(:mod:`harness.recording.cassette_import`).

This module owns the recording: vcrpy's hooks that scrub secret headers and every place their
values show up, and the cassette's atomic write. It imports the redactor and the file writer
only; reading a cassette back is :mod:`harness.recording.cassette`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from os import PathLike
from pathlib import Path
from typing import Any

from harness.output import write_text
from harness.redact import Redactor, normalize

DEFAULT_SCRUB = ("authorization", "x-api-key", "api-key", "cookie")
"""Header names (case-insensitive) whose values never reach a cassette."""

REDACTED = "<scrubbed>"
"""What a scrubbed header value, or a secret found elsewhere, is replaced with."""

MATCH_ON = ("method", "scheme", "host", "port", "path", "query", "body")
"""vcrpy matchers for the recording: the body is included, so two LLM POSTs to the same URL
with different conversations are told apart (vcrpy's default ignores bodies)."""

# a scrubbed value shorter than this is too common a string to replace wherever it appears
_MIN_SECRET = 6


# --------------------------------------------------------------------------- recording


def record_session(
    cassette_path: str | PathLike[str],
    fn: Callable[[], object],
    *,
    scrub: Iterable[str] = DEFAULT_SCRUB,
    redactor: Redactor | None = None,
) -> None:
    """Run ``fn()`` (a live session) while vcrpy records every HTTP exchange to a cassette.

    Requests really go out: this is the explicit ask to record a session against a real model
    endpoint and real tools. The cassette is written afresh (``record_mode="all"``, earlier
    interactions dropped), also when ``fn`` raises. Headers named in ``scrub`` are replaced by
    ``<scrubbed>`` in requests and responses (``set-cookie`` too when ``cookie`` is scrubbed),
    and their values are replaced wherever else they appear (URLs, bodies, other headers).
    Secret query parameters (``?api_key=``), secret JSON body fields (``"password"``) and token
    shapes (``sk-...``) are scrubbed too (see :mod:`harness.redact`). Bodies are otherwise kept,
    decompressed, since they are what the scenario is built from. The cassette is written
    atomically and never through a symbolic link.

    Args:
        cassette_path: the cassette file to write (YAML, vcrpy's format).
        fn: the session to record; its return value is ignored.
        scrub: header names (case-insensitive) whose values must not be recorded.
        redactor: what else is scrubbed (default: the built-in lists, ``<scrubbed>`` as mask).
    """
    import vcr  # type: ignore[import-untyped]  # vcrpy ships no type information

    scrubber = _Scrubber(scrub, redactor)
    recorder = vcr.VCR(
        record_mode="all",
        match_on=MATCH_ON,
        decode_compressed_response=True,
        drop_unused_requests=True,
        before_record_request=scrubber.request,
        before_record_response=scrubber.response,
        before_save_interaction=scrubber.interaction,
    )
    recorder.register_persister(_SafePersister)
    with recorder.use_cassette(str(Path(cassette_path))):
        fn()


class _SafePersister:
    """vcrpy's file persister, writing the cassette atomically and never through a link."""

    @classmethod
    def load_cassette(cls, cassette_path: str | PathLike[str], serializer: Any) -> Any:
        from vcr.persisters.filesystem import FilesystemPersister  # type: ignore[import-untyped]

        return FilesystemPersister.load_cassette(cassette_path, serializer)

    @staticmethod
    def save_cassette(
        cassette_path: str | PathLike[str], cassette_dict: Any, serializer: Any
    ) -> None:
        from vcr.serialize import serialize  # type: ignore[import-untyped]

        write_text(cassette_path, serialize(cassette_dict, serializer), "cassette")


class _Scrubber:
    """vcrpy hooks that redact secret headers and every place their values show up.

    Header values are replaced whole; query strings, bodies and other headers go through a
    :class:`~harness.redact.Redactor` that also knows every scrubbed header value.
    """

    def __init__(self, names: Iterable[str], redactor: Redactor | None = None) -> None:
        self.names = frozenset(n.lower() for n in names)
        self.redactor = (
            redactor if redactor is not None else Redactor(mask=REDACTED, min_secret=_MIN_SECRET)
        )

    @property
    def secrets(self) -> frozenset[str]:
        """The secret values seen so far (scrubbed wherever they appear)."""
        return self.redactor.known

    def _hidden_header(self, name: str, response: bool = False) -> bool:
        low = name.lower()
        if low in self.names or normalize(low) in self.redactor.fields:
            return True
        return response and low == "set-cookie" and "cookie" in self.names

    def _remember(self, name: str, value: str) -> None:
        candidates = {value.strip()}
        words = value.split()
        if len(words) == 2:  # "Bearer <token>": the token may be echoed on its own
            candidates.add(words[1])
        if "cookie" in name:
            candidates.update(pair.partition("=")[2].strip() for pair in value.split(";"))
        for candidate in candidates:
            if len(candidate) >= _MIN_SECRET and candidate != REDACTED:
                self.redactor.learn(candidate)

    def _hide(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redactor.text(value)
        return value

    def _hide_body(self, value: Any) -> Any:
        if isinstance(value, bytearray):
            value = bytes(value)
        if isinstance(value, str | bytes):  # file and iterator bodies stay as they are
            return self.redactor.body(value)
        return value

    def request(self, request: Any) -> Any:
        for name in list(request.headers):
            if self._hidden_header(name):
                self._remember(name.lower(), str(request.headers[name]))
                request.headers[name] = REDACTED
        for name in list(request.headers):
            request.headers[name] = self._hide(request.headers[name])
        request.uri = self._hide(request.uri)
        request.body = self._hide_body(request.body)
        return request

    def response(self, response: dict[str, Any]) -> dict[str, Any]:
        headers: dict[str, list[str]] = {}
        for name, values in (response.get("headers") or {}).items():
            if self._hidden_header(name, response=True):
                for value in values:
                    self._remember(name.lower(), str(value))
                headers[name] = [REDACTED for _ in values]
            else:
                headers[name] = [self._hide(v) for v in values]
        response["headers"] = headers
        body = response.get("body")
        if isinstance(body, dict) and "string" in body:
            body["string"] = self._hide_body(body["string"])
        return response

    def interaction(self, request: Any, response: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        # a secret first seen late (a rotated token) is hidden in the earlier interactions too
        return self.request(request), self.response(response)
