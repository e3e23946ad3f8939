"""Turning a recorded cassette into a scenario: ``cassette_to_scenario`` and ``shakeout
import-cassette``.

A cassette becomes a scenario mapping: each model answer a turn, each tool endpoint a fake
service, ``expect`` pre-filled from what the recording shows. Faults are spliced into the replay
by the harness as for any scenario (``faults:`` or ``matrix:``). Model answers are read by the
wire format that serves them (:mod:`harness.world.wire`); the scenario is held to the scenario file
limit of :mod:`harness.scenario.reading` (512 KiB).

This module owns the conversion and the command. It imports :mod:`harness.recording.cassette`
(reading), the wire formats, the scenario's loader and model, the project's redactor and the file
writer; it never imports the recording (:mod:`harness.recording.recorder`), which never imports it.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import yaml

from faults.surfaces import WireFormat
from harness.output import OutputError, write_text
from harness.project import find_project
from harness.recording.cassette import CassetteError, Interaction, limit_text, read_cassette
from harness.redact import RedactionConfigError
from harness.world.wire import DecodedAnswer, UnreadableAnswer, encoder_for, format_of_path

_EFFECT_METHODS = frozenset({"POST", "PATCH", "PUT"})
_KEPT_HEADERS = ("retry-after", "location", "etag")


# --------------------------------------------------------------------------- model answers


def _is_stream(item: Interaction) -> bool:
    return "text/event-stream" in item.response_headers.get("content-type", "")


def _answer(item: Interaction, wire: WireFormat) -> DecodedAnswer:
    encoder = encoder_for(wire)
    if _is_stream(item):
        return encoder.decode_stream(item.response_body)
    return encoder.decode(item.response_body)


def _turn(answer: DecodedAnswer) -> dict[str, Any]:
    calls = [{"name": name, "arguments": _arguments(args)} for name, args in answer.calls]
    text = answer.text or None
    derived = "tool_calls" if calls else "stop"
    finish = answer.finish if answer.finish not in (None, derived) else None
    if answer.empty:
        return {"answer": {"empty": True}}
    if finish is None and text is None and answer.refusal is None:
        if len(calls) == 1:
            return {"tool_call": calls[0]}
        if calls:
            return {"tool_calls": calls}
    if finish is None and not calls and answer.refusal is None and text is not None:
        return {"text": text}
    if finish is None and not calls and text is None and answer.refusal is not None:
        return {"refusal": answer.refusal}
    full: dict[str, Any] = {}
    if text is not None:
        full["text"] = text
    if calls:
        full["tool_calls"] = calls
    if finish is not None:
        full["finish"] = finish
    if answer.refusal is not None:
        full["refusal"] = answer.refusal
    return {"answer": full}


def _arguments(raw: str) -> Any:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw
    # a mapping reads best; anything else is served back verbatim as raw JSON text
    return parsed if isinstance(parsed, dict) else raw


# --------------------------------------------------------------------------- tool services


def _response_spec(item: Interaction) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if item.status != 200:
        spec["status"] = item.status
    content_type = item.response_headers.get("content-type", "")
    body = item.response_body
    parsed: Any = None
    if body.strip() and "json" in content_type:
        try:
            parsed = json.loads(body)
            spec["json"] = parsed
        except ValueError:
            parsed = None
    if "json" not in spec and body:
        spec["body"] = body.decode("utf-8", errors="replace")
    headers = {k: v for k, v in item.response_headers.items() if k in _KEPT_HEADERS}
    if "body" in spec and content_type and not content_type.startswith("text/plain"):
        headers["content-type"] = content_type
    if headers:
        spec["headers"] = headers
    return spec


def _service_name(method: str, path: str, taken: set[str]) -> str:
    words: list[str] = []
    for segment in (s for s in path.split("/") if s):
        if any(ch.isdigit() for ch in segment) and words:
            # an id: name the resource it identifies in the singular (orders/O-1 -> order)
            words[-1] = words[-1][:-1] if words[-1].endswith("s") else words[-1]
            continue
        words.append(re.sub(r"[^a-z0-9]+", "_", segment.lower()).strip("_"))
    base = "_".join([method.lower(), *[w for w in words if w]])
    base = re.sub(r"_+", "_", base)
    if not re.match(r"^[a-z]", base):
        base = f"tool_{base}"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


# --------------------------------------------------------------------------- conversion


@dataclass(frozen=True)
class _Conversion:
    scenario: dict[str, Any]
    notes: tuple[str, ...]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _base(url: str | None) -> tuple[str, str] | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CassetteError(
            f"base URL {url!r} is not an http(s) URL; write e.g. 'https://api.example.com/v1'"
        )
    return _origin(url), parts.path.rstrip("/")


def _under(item: Interaction, base: tuple[str, str]) -> bool:
    path = item.path
    return _origin(item.url) == base[0] and (path == base[1] or path.startswith(base[1] + "/"))


def _wire_of(item: Interaction) -> WireFormat | None:
    return format_of_path(item.path)


def _is_model(item: Interaction, base: tuple[str, str] | None) -> bool:
    if item.method != "POST" or _wire_of(item) is None:
        return False
    if base is not None:
        return _under(item, base)
    # inferred: a model API path whose JSON body names a model and a conversation
    body = item.request_json()
    return isinstance(body, dict) and "model" in body and ("messages" in body or "input" in body)


@dataclass
class _Split:
    model: list[Interaction] = field(default_factory=list)
    tools: list[Interaction] = field(default_factory=list)
    tools_base: tuple[str, str] | None = None


def _split(
    path: Path,
    items: Sequence[Interaction],
    model_base_url: str | None,
    tools_base_url: str | None,
    notes: list[str],
) -> _Split:
    model_base = _base(model_base_url)
    out = _Split(tools_base=_base(tools_base_url))
    for item in items:
        if _is_model(item, model_base):
            out.model.append(item)
        elif out.tools_base is None or _under(item, out.tools_base):
            out.tools.append(item)
        else:
            notes.append(
                f"interaction {item.index} ({item.method} {item.url}) is below neither the "
                "model nor the tools base URL: not converted"
            )
    if out.tools_base is None and out.tools:
        origins = sorted({_origin(i.url) for i in out.tools})
        if len(origins) > 1:
            raise CassetteError(
                f"cassette {str(path)!r}: tool requests go to several hosts "
                f"({', '.join(origins)}); a scenario has one tools base URL, so pass "
                "tools_base_url (--tools-base-url) to say which one holds the tools"
            )
        out.tools_base = (origins[0], "")
    return out


def _turns(
    path: Path, items: Sequence[Interaction], notes: list[str]
) -> tuple[list[dict[str, Any]], str | None, bool]:
    turns: list[dict[str, Any]] = []
    formats: list[WireFormat] = []
    streamed = False
    for n, item in enumerate(items, 1):
        wire = _wire_of(item) or "openai_chat"
        if not 200 <= item.status < 300:
            notes.append(
                f"model request {n} was answered HTTP {item.status}: not a turn (splice a model "
                "fault into the scenario to replay a provider error)"
            )
            continue
        try:
            answer = _answer(item, wire)
        except UnreadableAnswer as exc:
            notes.append(f"model request {n} ({wire}) was not converted: {exc}")
            continue
        formats.append(wire)
        body = item.request_json()
        asked = isinstance(body, dict) and body.get("stream") is True
        streamed = streamed or asked or _is_stream(item)
        turns.append(_turn(answer))
    if len(set(formats)) > 1:
        raise CassetteError(
            f"cassette {str(path)!r} mixes model wire formats ({', '.join(sorted(set(formats)))});"
            " a scenario speaks one: record one API per session"
        )
    return turns, (formats[0] if formats else None), streamed


def _convert(
    cassette_path: str | PathLike[str],
    *,
    name: str,
    input: Mapping[str, Any] | None,
    model_base_url: str | None,
    tools_base_url: str | None,
    agent_config: Mapping[str, Any] | None = None,
) -> _Conversion:
    path = Path(cassette_path)
    items = read_cassette(path)
    notes: list[str] = []
    split = _split(path, items, model_base_url, tools_base_url, notes)
    turns, wire, streamed = _turns(path, split.model, notes)
    services, effects, order = _services(split.tools, split.tools_base)

    scenario: dict[str, Any] = {
        "name": name,
        "description": f"Imported from the recorded session {path.name}: {len(turns)} model "
        f"turns, {len(split.tools)} tool requests.",
        "tags": ["imported"],
    }
    if agent_config:
        scenario["agent_config"] = dict(agent_config)
    scenario["input"] = dict(input or {})
    model: dict[str, Any] = {}
    if wire is not None and wire != "openai_chat":
        model["format"] = wire
    if streamed:
        model["stream"] = True
    model["turns"] = turns
    scenario["model"] = model
    scenario["tools"] = {"services": services}
    if effects:
        # the recorded run committed its effects, so whatever it asked a human was approved
        scenario["reviewer"] = ["approve"] * sum(effects.values())
    scenario["expect"] = _expect(split, effects, order)
    if not input:
        notes.append("input: fill in the payload the recorded session started from")
    if streamed and not agent_config:
        notes.append(
            "the session streamed its model answers: if your agent streams by configuration, "
            "set it under 'agent_config' (the reference agent: {stream: true})"
        )
    return _Conversion(scenario, tuple(notes))


def _services(
    items: Sequence[Interaction], base: tuple[str, str] | None
) -> tuple[dict[str, Any], dict[str, int], list[str]]:
    grouped: dict[tuple[str, str], list[Interaction]] = {}
    for item in items:
        path = item.path
        if base is not None and base[1] and path.startswith(base[1]):
            path = path[len(base[1]) :] or "/"
        grouped.setdefault((item.method, path), []).append(item)
    taken: set[str] = set()
    services: dict[str, Any] = {}
    effects: dict[str, int] = {}
    order: list[str] = []
    for (method, path), calls in grouped.items():
        tool = _service_name(method, path, taken)
        order.append(tool)
        service: dict[str, Any] = {}
        if method != "GET":
            service["method"] = method
        service["path"] = path
        specs = [_response_spec(c) for c in calls]
        keys = [c.request_headers.get("idempotency-key") for c in calls]
        if method in _EFFECT_METHODS and any(keys):
            ok = [i for i, c in enumerate(calls) if 200 <= c.status < 300]
            service["ledger"] = specs[ok[0] if ok else 0]
            effects[tool] = len({keys[i] for i in ok if keys[i]})
        elif all(s == specs[0] for s in specs):
            service["respond"] = specs[0]
        else:
            service["sequence"] = specs
        services[tool] = service
    return services, effects, order


def _expect(split: _Split, effects: Mapping[str, int], order: Sequence[str]) -> dict[str, Any]:
    expect: dict[str, Any] = {}
    converted = sorted([*split.model, *split.tools], key=lambda i: i.index)
    last = converted[-1] if converted else None
    if last is not None and last.status >= 400:
        expect["state"] = "failed"
        expect["category"] = "model" if last in split.model else "tool"
    else:
        # a final model answer or a session that ended on a successful request
        expect["state"] = "completed"
    if effects:
        expect["effects"] = dict(effects)
    if split.tools:
        expect["calls_made"] = list(order)
    return expect


def cassette_to_scenario(
    cassette_path: str | PathLike[str],
    *,
    name: str,
    input: Mapping[str, Any] | None = None,
    model_base_url: str | None = None,
    tools_base_url: str | None = None,
    agent_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A scenario mapping (the scenario file format) from a recorded cassette.

    Each 2xx model answer (OpenAI chat completions, OpenAI responses or Anthropic messages,
    JSON or streamed SSE) becomes a ``turns`` entry in order. Each tool endpoint (method +
    path below the tools base URL) becomes a service named from its method and path
    (``GET /orders/O-1`` -> ``get_order``): one distinct response -> ``respond``, several ->
    ``sequence`` in recorded order, a POST/PATCH/PUT sent with an ``Idempotency-Key`` ->
    ``ledger`` (its first 2xx response). ``expect`` is pre-filled from the recording: the
    state (failed with the category of the last request when that request failed, else
    completed), ``effects`` per ledger tool (distinct idempotency keys answered 2xx) and
    ``calls_made``; the reviewer approves as many requests as effects were committed. The
    scenario's base URLs are the harness defaults, so no recorded host is contacted again.

    Args:
        cassette_path: a vcrpy cassette (YAML, or JSON when the name ends in ``.json``).
        name: the scenario name (``^[a-z][a-z0-9_]*$``).
        input: the payload the session started from (``{}`` when not given).
        model_base_url: where the model endpoint was during recording; None infers it
            (POSTs ending in a model API path whose JSON body names a ``model``).
        tools_base_url: where the tools were during recording; None takes the one host the
            other requests went to.
        agent_config: the scenario's ``agent_config`` (how the agent ran, e.g. streaming).

    Returns:
        The scenario as a plain mapping; ``harness.scenario.loader`` / ``Scenario`` validate it.

    Raises:
        CassetteError: the cassette is missing or malformed, or cannot become one scenario.
    """
    return _convert(
        cassette_path,
        name=name,
        input=input,
        model_base_url=model_base_url,
        tools_base_url=tools_base_url,
        agent_config=agent_config,
    ).scenario


def scenario_yaml(scenario: Mapping[str, Any], *, source: str, notes: Sequence[str] = ()) -> str:
    """The scenario as a YAML file: the schema line, a header saying where it came from, notes.

    Args:
        scenario: the mapping :func:`cassette_to_scenario` returned.
        source: the cassette it came from (shown in the header).
        notes: what the conversion could not carry over, one comment line each.
    """
    from harness.scenario.loader import SCHEMA_LINE

    lines = [
        SCHEMA_LINE,
        f"# Imported from the vcrpy cassette {source} by `shakeout import-cassette`.",
        "# Check 'expect' (pre-filled from the recording), mark the tools that need a human",
        "# approval with 'gated: true' (the reviewer approves up to one request per recorded",
        "# effect), rename services if you like, then splice faults in with 'faults:' or",
        "# 'matrix:'.",
        *(f"# NOTE: {note}" for note in notes),
    ]
    body = yaml.safe_dump(dict(scenario), sort_keys=False, allow_unicode=True, width=100)
    return "\n".join(lines) + "\n" + body


def import_cassette_main(
    cassette: str,
    *,
    name: str,
    input_file: str | None = None,
    out: str | None = None,
    model_base_url: str | None = None,
    tools_base_url: str | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``shakeout import-cassette``: write the scenario a cassette records.

    Args:
        cassette: the cassette file.
        name: the scenario name.
        input_file: a JSON file holding the session's input payload.
        out: the YAML file to write (None prints it).
        model_base_url: see :func:`cassette_to_scenario`.
        tools_base_url: see :func:`cassette_to_scenario`.
        stdout: where the YAML goes without ``out`` (default ``sys.stdout``).
        stderr: where problems are reported (default ``sys.stderr``).

    Returns:
        0 when written, 2 when the cassette, the input file or the name is unusable.
    """
    from pydantic import ValidationError

    from harness.scenario import base, loader, reading
    from harness.scenario.spec import Scenario

    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr

    def fail(message: str) -> int:
        stderr.write(f"shakeout import-cassette: {message}\n")
        return 2

    if not re.match(base.NAME_PATTERN, name):
        return fail(
            f"--name {name!r} is not a scenario name; use lower case letters, digits and "
            "underscores, starting with a letter (e.g. refund_recorded)"
        )
    payload: Any = None
    if input_file is not None:
        try:
            payload = json.loads(Path(input_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return fail(f"--input {input_file!r} cannot be read as JSON: {exc}")
        if not isinstance(payload, dict):
            return fail(
                f"--input {input_file!r} holds a {type(payload).__name__}; the input must be "
                "a JSON object (the payload given to the agent's start)"
            )
    try:
        conversion = _convert(
            cassette,
            name=name,
            input=payload,
            model_base_url=model_base_url,
            tools_base_url=tools_base_url,
        )
    except CassetteError as exc:
        return fail(str(exc))
    try:
        Scenario.model_validate(conversion.scenario)
    except ValidationError as exc:  # pragma: no cover - a converter bug, not user input
        return fail(f"the scenario converted from {cassette!r} is invalid (a bug): {exc}")
    try:
        redactor = find_project([cassette]).redactor()
    except RedactionConfigError as exc:
        return fail(str(exc))
    # A cassette recorded without record_session may hold secrets: none reaches the scenario.
    scenario = redactor.value(conversion.scenario)
    text = scenario_yaml(scenario, source=Path(cassette).name, notes=conversion.notes)
    size = len(text.encode("utf-8"))
    if size > reading.MAX_FILE_BYTES:
        return fail(
            f"the scenario converted from {cassette!r} would be {size:,} bytes, over the "
            f"{limit_text(reading.MAX_FILE_BYTES)} a scenario file may hold (each answer is "
            "within it, together they are not); record a shorter session, or split the cassette"
        )
    if out is None:
        stdout.write(text)
        return 0
    try:
        target = write_text(out, text, "scenario file", parents=False)
        loader.load_scenario(target)
    except OutputError as exc:
        return fail(str(exc))
    except reading.ScenarioError as exc:  # pragma: no cover - a converter bug, not user input
        return fail(f"the written scenario does not load (a bug): {exc}")
    stderr.write(
        f"wrote {out} ({len(conversion.scenario['model']['turns'])} turns, "
        f"{len(conversion.scenario['tools']['services'])} services)\n"
    )
    for note in conversion.notes:
        stderr.write(f"note: {note}\n")
    return 0
