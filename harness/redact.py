"""Redaction: secrets in URL queries, JSON fields, known values and token shapes never get written.

Applied where text leaves the process (report files, JUnit properties, terminal failure text,
cassettes, explored scenario files), never to a run's record: checks must see the real requests,
only what is written is masked. A :class:`Redactor` is stateful on purpose: every secret value it
masks by name (``?api_key=...``, ``"password": ...``) is remembered and masked wherever else it
shows up later (a URL echoed into an error message, a key quoted in a reason).

What is masked:

- **query parameters** named in :data:`DEFAULT_QUERY_PARAMS` (or added), after ``?``, ``&``,
  ``;`` or ``#``: ``https://h/x?api_key=abc`` -> ``https://h/x?api_key=[redacted]``;
- **fields** named in :data:`DEFAULT_FIELDS` (or added) at any depth of a JSON value, and as
  ``name: value`` / ``name=value`` / ``"name": "value"`` in free text (bodies, reasons);
- **known values**: every value masked by name (at least :data:`MIN_SECRET` characters), plus
  any given up front, wherever they appear;
- **token shapes** (:data:`TOKEN_PATTERNS`): ``sk-...`` provider keys, ``Bearer``/``Basic``
  credentials, GitHub and Slack tokens, AWS access key ids, JWTs, PEM private keys.

Names compare case-insensitively, with ``-`` and ``_`` the same (``X-Api-Key`` is ``x_api_key``).

Errors::

    RedactionConfigError   a [tool.shakeout] redact_* setting is not a list of strings

This module does not import pytest: the plugin, the command line and the recorder share it.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote_plus

from pydantic import BaseModel

_Model = TypeVar("_Model", bound=BaseModel)

MASK = "[redacted]"
"""What a secret is replaced with. Brackets, not angle brackets: it stays inert in HTML and
Markdown, and is a valid value inside a URL, a JSON string or a YAML scalar."""

MIN_SECRET = 8
"""Values shorter than this are masked where they are named but not hunted elsewhere: a short
value (``"1"``, ``"true"``) is too common a string to replace wherever it appears."""

# A JSON string literal as JSON text writes it (escapes kept), from its opening quote.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')

DEFAULT_QUERY_PARAMS: frozenset[str] = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "auth",
        "auth_token",
        "client_secret",
        "code",
        "id_token",
        "key",
        "passwd",
        "password",
        "refresh_token",
        "secret",
        "session_token",
        "sig",
        "signature",
        "token",
        "x_amz_credential",
        "x_amz_security_token",
        "x_amz_signature",
        "x_goog_credential",
        "x_goog_signature",
    }
)
"""URL query parameter names whose values are masked (``?api_key=``, ``&sig=``, ...)."""

DEFAULT_FIELDS: frozenset[str] = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "auth_token",
        "authorization",
        "client_secret",
        "cookie",
        "id_token",
        "passwd",
        "password",
        "private_key",
        "proxy_authorization",
        "refresh_token",
        "secret",
        "secret_key",
        "session_token",
        "set_cookie",
        "token",
        "x_api_key",
    }
)
"""JSON field (and header) names whose values are masked at any depth. Exact names only:
``max_tokens`` or ``idempotency_key`` are not secrets."""

TOKEN_PATTERNS: tuple[str, ...] = (
    r"\bsk-(?:ant-|proj-|live-|test-)?[A-Za-z0-9_\-]{16,}",
    r"\bgh[pousr]_[A-Za-z0-9]{20,}",
    r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",
    r"\bAKIA[0-9A-Z]{16}\b",
    r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
)
"""Shapes of credentials masked wherever they appear, whatever names them."""

# "Bearer <credential>" keeps its scheme, so a reader still sees what kind of credential it was.
_SCHEME = r"(?P<scheme>\b(?:Bearer|Basic|Token|Digest)\s+)(?P<cred>[A-Za-z0-9._~+/=\-]{8,})"
# Literals whose presence (in lower-cased text) makes a secret possible; without any of them a
# text is left alone without running the full pattern. Keeps the report path cheap.
_SHAPE_HINTS = (
    "sk-",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "xox",
    "akia",
    "eyj",
    "private key",
    "bearer ",
    "basic ",
    "token ",
    "digest ",
)
# An environment variable named like this holds a credential the agent may send or echo.
_SECRET_ENV = re.compile(r"(?i)(api_?key|token|secret|passw(or)?d|private_key|access_key)")
# Names whose unquoted "Name: value" form runs to the end of the line (header values with spaces
# or ";"-separated pairs).
_LINE_VALUED = frozenset({"authorization", "proxy_authorization", "cookie", "set_cookie"})


def _minimal_hints(hints: set[str]) -> tuple[str, ...]:
    """The hints no other hint is a substring of: the same texts pass, with fewer scans.

    Query names carry their ``=``, so the ``"key":`` every report item holds is no hint, while
    ``access_token`` is covered by ``token``. The scan then costs a couple of dozen ``in`` tests.
    """
    ordered = sorted(hints, key=len)
    kept: list[str] = []
    for hint in ordered:
        if not any(k in hint for k in kept):
            kept.append(hint)
    return tuple(kept)


class RedactionConfigError(ValueError):
    """A redaction setting is malformed; the message names the setting and the fix."""


def normalize(name: str) -> str:
    """A parameter, field or header name as the lists compare it: lower case, ``-`` as ``_``."""
    return name.strip().lower().replace("-", "_")


def _name_pattern(names: Iterable[str]) -> str:
    # Longest first, so "access_token" wins over "token"; "_" in a name matches "-" as well.
    alternatives = sorted({normalize(n) for n in names if n.strip()}, key=len, reverse=True)
    return "|".join(re.escape(n).replace("_", "[-_]") for n in alternatives)


class Redactor:
    """Masks secrets in text, URLs, JSON values and bodies; remembers what it masked by name.

    Args:
        query: query parameter names added to :data:`DEFAULT_QUERY_PARAMS`.
        fields: field/header names added to :data:`DEFAULT_FIELDS`.
        secrets: values known to be secret up front (masked wherever they appear).
        mask: the replacement text.
        min_secret: the shortest remembered value hunted everywhere.
    """

    def __init__(
        self,
        *,
        query: Iterable[str] = (),
        fields: Iterable[str] = (),
        secrets: Iterable[str] = (),
        mask: str = MASK,
        min_secret: int = MIN_SECRET,
    ) -> None:
        self.query = DEFAULT_QUERY_PARAMS | {normalize(n) for n in query if n.strip()}
        self.fields = DEFAULT_FIELDS | {normalize(n) for n in fields if n.strip()}
        self.mask = mask
        self.min_secret = min_secret
        self._known: set[str] = set()
        self._known_sorted: tuple[str, ...] = ()
        self._known_lower: tuple[str, ...] = ()
        self._known_escaped: tuple[str, ...] = ()
        self._last_json: tuple[str, tuple[str, bool]] | None = None
        self._hints = _minimal_hints(
            {f"{n}=" for n in self.query}
            | {f"{n.replace('_', '-')}=" for n in self.query}
            | self.fields
            | {n.replace("_", "-") for n in self.fields}
            | set(_SHAPE_HINTS)
        )
        # A key the walk masks holds a hint however it mixes '_' and '-' (see _hints_in).
        self._keys_hinted = all(
            n.count("_") <= 10
            and all(
                any(h in "".join(w) for h in self._hints)
                for w in itertools.product(*(("_", "-") if c == "_" else (c,) for c in n))
            )
            for n in self.fields
        )
        query_names = _name_pattern(self.query)
        field_names = _name_pattern(self.fields)
        quoted = r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'"
        self._base = (
            # ?name=value in a URL (or &, ;, # and the start of a form body).
            rf"(?P<qpre>(?:^|(?<=[?&;#])))(?P<qname>{query_names})=(?P<qval>[^&#\s\"'<>\\]+)"
            # name: value / "name": "value" / name=value in free text or a JSON text; a
            # newline before the name may still be escaped (\n) when the text is JSON.
            rf"|(?P<fpre>(?:(?<=\\[nrt])|(?<![A-Za-z0-9_\-])))(?P<fq>\\?[\"']?)"
            rf"(?P<fname>{field_names})(?P=fq)(?P<fsep>\s*[:=]\s*)"
            rf"(?P<fval>{quoted}|\b(?:Bearer|Basic|Token|Digest)\s+[^\s\"',;]+|[^\s\"',;&{{}}\[\]<>]+)"
            rf"|{_SCHEME}"
            rf"|(?P<shape>{'|'.join(TOKEN_PATTERNS)})"
        )
        self._pattern = re.compile(self._base, re.IGNORECASE | re.MULTILINE)
        line_names = "|".join(n.replace("_", "[-_]") for n in sorted(_LINE_VALUED))
        self._line = re.compile(
            rf"(?im)^(?P<head>[ \t]*(?:{line_names})[ \t]*:[ \t]*)(?P<value>[^\r\n]*)$"
        )
        for value in secrets:
            self.learn(value)

    # ------------------------------------------------------------------ known values

    def learn(self, value: str) -> None:
        """Remember a secret value (and its URL-encoded forms), to mask it wherever it appears.

        Args:
            value: the secret; shorter than ``min_secret`` characters it is ignored.
        """
        value = value.strip().strip("\"'")
        if value.startswith(self.mask):
            return
        forms = {value, unquote_plus(value), quote(value, safe="")}
        new = {f for f in forms if len(f) >= self.min_secret and f not in self._known}
        if not new:
            return
        self._known |= new
        self._last_json = None  # a value learned since may be in the remembered document
        self._known_sorted = tuple(sorted(self._known, key=len, reverse=True))
        self._known_lower = tuple(k.lower() for k in self._known_sorted)
        # as JSON text writes them (\u escapes of the value as it is, lowered for the scan)
        escaped = (json.dumps(k)[1:-1].lower() for k in (*self._known_sorted, *self._known_lower))
        self._known_escaped = tuple(dict.fromkeys((*self._known_lower, *escaped)))
        known = "|".join(re.escape(k) for k in self._known_sorted)
        self._pattern = re.compile(
            rf"(?P<known>{known})|{self._base}", re.IGNORECASE | re.MULTILINE
        )

    @property
    def known(self) -> frozenset[str]:
        """The secret values remembered so far."""
        return frozenset(self._known)

    def learn_environment(self, environ: Mapping[str, str] | None = None) -> None:
        """Remember the values of environment variables named like credentials.

        ``OPENAI_API_KEY``, ``GITHUB_TOKEN``, ``AWS_SECRET_ACCESS_KEY``, ...: an agent under test
        reads its keys from there, and may echo one into an error that reaches a report.

        Args:
            environ: the environment (default ``os.environ``).
        """
        for name, value in (os.environ if environ is None else environ).items():
            if _SECRET_ENV.search(name) and value.strip():
                self.learn(value)

    # ------------------------------------------------------------------ detection

    def suspects(self, text: str) -> bool:
        """Whether ``text`` may hold a secret: a cheap literal scan, no regular expression.

        False means :meth:`text` would return ``text`` unchanged, so callers skip the work.
        """
        low = text.lower()
        if any(h in low for h in self._hints):
            return True
        # The pattern matches known values case-insensitively, so the scan does too.
        return any(k in low for k in self._known_lower)

    def holds_known(self, text: str) -> bool:
        """Whether ``text`` holds a remembered secret value, as is or escaped in a JSON string.

        Text another process masked with the same settings can only have missed values this
        process remembers (from the settings, the environment, or learned here): this is the
        whole check it needs, a literal scan instead of a parse and a walk.
        """
        if not self._known_escaped:
            return False
        low = text.lower()
        return any(k in low for k in self._known_escaped)

    # ------------------------------------------------------------------ masking

    def _replace(self, m: re.Match[str]) -> str:
        if "known" in m.re.groupindex and m.group("known") is not None:
            return self.mask
        if m.group("qname") is not None:
            start = m.start("qval")
            if m.string.startswith(self.mask, start):
                return m.group(0)
            self.learn(m.group("qval"))
            return f"{m.group('qname')}={self.mask}"
        if m.group("fname") is not None:
            value = m.group("fval")
            if value.strip("\"'\\").startswith(self.mask):
                return m.group(0)
            quote_char = value[0] if value[:1] in ("'", '"') else ""
            inner = value[1:-1] if quote_char else value
            scheme = re.match(r"(?i)(Bearer|Basic|Token|Digest)\s+", inner)
            if scheme:
                self.learn(inner[scheme.end() :])
                inner = scheme.group(0) + self.mask
            else:
                self.learn(inner)
                inner = self.mask
            return f"{m.group('fq')}{m.group('fname')}{m.group('fq')}{m.group('fsep')}" + (
                f"{quote_char}{inner}{quote_char}"
            )
        if m.group("cred") is not None:
            if m.group("cred").startswith(self.mask):
                return m.group(0)
            self.learn(m.group("cred"))
            return f"{m.group('scheme')}{self.mask}"
        self.learn(m.group(0))
        return self.mask

    def text(self, text: str) -> str:
        """Mask every secret in free text (a URL, a reason, a body, a failure message).

        Args:
            text: any text.

        Returns:
            The text with each secret replaced by the mask (the same object if none).
        """
        if not self.suspects(text):
            return text
        # Whole header lines first, so "Cookie: a=1; b=2" is not masked only up to its ";".
        return self._pattern.sub(self._replace, self._line_values(text))

    def _line_values(self, text: str) -> str:
        # "Cookie: a=1; b=2" / "Authorization: Digest u, r": the whole header value goes.
        def one(m: re.Match[str]) -> str:
            value = m.group("value").strip()
            if not value or value.startswith(self.mask) or value.endswith(self.mask):
                return m.group(0)
            self.learn(value)
            return m.group("head") + self.mask

        return self._line.sub(one, text)

    def value(self, value: Any) -> Any:
        """Mask a JSON-like value: named fields at any depth, and every string as free text.

        Values found under a secret name are remembered first, so a secret that also appears
        bare in an earlier string of the same value is masked too.

        Args:
            value: dicts, lists, strings, numbers (as from ``json.loads``).

        Returns:
            A masked copy (containers are rebuilt; other objects are returned as they are).
        """
        before = len(self._known)
        out = self._walk(value)
        if len(self._known) != before:
            out = self._walk(value)
        return out

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                if isinstance(key, str) and normalize(key) in self.fields:
                    out[key] = self._masked_field(item)
                else:
                    out[key] = self._walk(item)
            return out
        if isinstance(value, list | tuple):
            return [self._walk(v) for v in value]
        return value

    def _strings_change(self, text: str, only: tuple[str, ...]) -> bool:
        """Whether :meth:`value` could change the JSON document ``text``, judged from just the
        strings (keys too) holding one of ``only`` (:meth:`_hints_in`); True when in doubt."""
        low = text.lower()
        for hint in only:
            at = low.find(hint)
            while at != -1:
                # The nearest '"' before the hint not escaped (an even run of backslashes before
                # it) opens the string holding it: inside a string every '"' is escaped.
                start = at
                while True:
                    start = text.rfind('"', 0, start)
                    if start < 0:
                        return True
                    before = start
                    while before and text[before - 1] == "\\":
                        before -= 1
                    if (start - before) % 2 == 0:
                        break
                literal = _JSON_STRING.match(text, start)
                if literal is None or literal.end() < at + len(hint) + 1:
                    return True  # the hint is not inside that string
                string = json.loads(literal.group())
                if normalize(string) in self.fields or self.text(string) != string:
                    return True
                at = low.find(hint, literal.end())
        return False

    def _hints_in(self, text: str) -> tuple[str, ...] | None:
        """The hints and known values a JSON text holds: all its strings can hold when it is ASCII
        without ``\\u`` escapes (a Kelvin sign lowers to 'k' in a string, not as an escape), no
        known value is written escaped and every field's key holds a hint; else None."""
        if not self._keys_hinted or not text.isascii() or "\\u" in text:
            return None
        low = text.lower()
        hints = tuple(h for h in self._hints if h in low)
        if any(json.dumps(k)[1:-1] != k for k in self._known_lower):
            return None  # written escaped in the text ('"', '\\', a control character)
        return hints + tuple(k for k in self._known_lower if k in low)

    def _masked_field(self, item: Any) -> Any:
        if item is None or isinstance(item, bool) or item == "":
            return item
        if isinstance(item, str):
            if item.startswith(self.mask):
                return item
            scheme = re.match(r"(?i)(Bearer|Basic|Token|Digest)\s+", item)
            self.learn(item[scheme.end() :] if scheme else item)
            return f"{scheme.group(0)}{self.mask}" if scheme else self.mask
        if isinstance(item, int | float):
            self.learn(str(item))
        return self.mask

    def json_text(self, text: str) -> tuple[str, bool]:
        """Mask a JSON document given as text; unchanged (and not parsed) when nothing suspect.

        Args:
            text: a JSON document.

        Returns:
            ``(text, changed)``: the masked document, re-serialized with sorted keys when a
            secret was masked, and whether it was.
        """
        # The setup and call reports of an item carry the same entry: the second costs a compare.
        if self._last_json is not None and self._last_json[0] == text:
            return self._last_json[1]
        result = self._json_text(text)
        self._last_json = (text, result)
        return result

    def _json_text(self, text: str) -> tuple[str, bool]:
        only = self._hints_in(text)
        if not only if only is not None else not self.suspects(text):
            return text, False
        # No pattern over the whole document: a case-insensitive scan of a few KB costs
        # milliseconds. The walk runs it on the suspect strings only (and walks again when it
        # learned a value, see value()).
        try:
            parsed = json.loads(text)
        except ValueError:
            masked = self.text(text)
            return masked, masked != text
        # Most suspect documents (an entry with "token" in a check's reason) hold nothing to
        # mask: the strings holding a hint tell, with no full walk (an entry: 1.0 -> 0.3 ms).
        if only is not None and not self._strings_change(text, only):
            return text, False
        masked_value = self.value(parsed)
        if masked_value == parsed:
            return text, False
        return json.dumps(masked_value, sort_keys=True), True

    def body(self, body: str | bytes) -> str | bytes:
        """Mask an HTTP body: a JSON body field by field (re-serialized only if it changed),
        anything else (form, text) as free text; bytes that are not UTF-8 only by known values.

        Args:
            body: the body as text or bytes.

        Returns:
            The masked body, of the same type.
        """
        if isinstance(body, bytes):
            try:
                decoded = body.decode("utf-8")
            except UnicodeDecodeError:
                for secret in self._known_sorted:
                    body = body.replace(secret.encode(), self.mask.encode())
                return body
            masked = self.body(decoded)
            return body if masked == decoded else str(masked).encode("utf-8")
        if not self.suspects(body):
            return body
        stripped = body.lstrip()
        if stripped[:1] in ("{", "["):
            try:
                parsed = json.loads(body)
            except ValueError:
                return self.text(body)
            masked_value = self.value(parsed)
            if masked_value == parsed:
                return self.text(body)
            return json.dumps(masked_value, ensure_ascii=False, separators=(",", ":"))
        return self.text(body)


def redact_model(model: _Model, redactor: Redactor) -> _Model:
    """A pydantic model with every string field masked (the model itself when none had a secret).

    Args:
        model: e.g. a report; it must validate from its own JSON (by alias).
        redactor: the redactor.
    """
    text, changed = redactor.json_text(model.model_dump_json(by_alias=True))
    return type(model).model_validate_json(text) if changed else model


# --------------------------------------------------------------------------- configuration


def read_settings(pyproject: Path) -> tuple[list[str], list[str]]:
    """``redact_query`` and ``redact_fields`` of ``[tool.shakeout]`` in a pyproject.toml.

    Args:
        pyproject: the file; a missing or unreadable file means no settings.

    Returns:
        ``(query, fields)``, each a list of names (empty when not set).

    Raises:
        RedactionConfigError: a setting is not a list of strings.
    """
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return [], []
    table = data.get("tool", {}).get("shakeout", {})
    out: list[list[str]] = []
    for key in ("redact_query", "redact_fields"):
        names = table.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise RedactionConfigError(
                f"{pyproject}: [tool.shakeout] {key} must be a list of names, e.g. "
                f'{key} = ["x_session", "pin"]; got {names!r}'
            )
        out.append(names)
    return out[0], out[1]


def redactor_for(
    pyproject: Path | None,
    *,
    query: Iterable[str] = (),
    fields: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
    mask: str = MASK,
) -> Redactor:
    """The redactor a session or command uses: defaults, ``[tool.shakeout]``, extras, env values.

    Args:
        pyproject: the project's pyproject.toml (None: no file settings).
        query: more query parameter names (e.g. from ini keys).
        fields: more field names.
        environ: the environment whose credential-named variables are learned
            (default ``os.environ``).
        mask: the replacement text.

    Raises:
        RedactionConfigError: a ``[tool.shakeout]`` setting is malformed.
    """
    file_query, file_fields = read_settings(pyproject) if pyproject is not None else ([], [])
    redactor = Redactor(query=[*file_query, *query], fields=[*file_fields, *fields], mask=mask)
    redactor.learn_environment(environ)
    return redactor
