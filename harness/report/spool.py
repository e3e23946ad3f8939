"""The entries a pytest session gathers, kept out of memory until the report is built.

A scenario item appends its result entry to ``user_properties`` as ``("shakeout", entry)``.
This module owns that entry on its way to the report: :func:`junit_properties` rewrites it as
masked JSON text for JUnit XML (and for everything downstream), :class:`EntrySpool` keeps each
entry's text in a temporary file with only its offset in memory, and :func:`build_item` turns an
entry, or the failures recorded for an item that left none, into a
:class:`~harness.report.model.ReportItem`.

It never imports pytest or the plugins: :mod:`harness.report.reporter` (the pytest-facing
``ReportPlugin``) feeds it what the hooks see. It imports only the report model and the
redactor.
"""

from __future__ import annotations

import json
import re
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from harness.redact import Redactor
from harness.report.model import ReportItem

PROPERTY = "shakeout"
"""The ``user_properties`` name of a scenario item's entry."""

KEY_FIELDS = ("scenario", "variant", "verdict", "category", "terminal_state", "seed", "reproduce")
SCENARIO_SUFFIXES = (".yaml", ".yml")


def is_scenario_nodeid(nodeid: str) -> bool:
    """Whether a node id belongs to a scenario file (what a report plans and holds)."""
    return nodeid.split("::", 1)[0].endswith(SCENARIO_SUFFIXES)


def parse_nodeid(nodeid: str) -> tuple[str, str]:
    """(scenario, variant) read from a node id, for an item without an entry (best effort).

    ``path.yaml::name[variant]`` gives ``(name, variant)``; a file-level node id (a collection
    error) names the file's stem as the scenario.
    """
    path, _, rest = nodeid.partition("::")
    name = rest.rsplit("::", 1)[-1] if rest else Path(path).stem
    match = re.fullmatch(r"(.*?)\[(.*)\]", name)
    if match:
        return match.group(1), match.group(2)
    return name, "base"


def entry_text(props: Sequence[tuple[str, object]]) -> str | None:
    """The entry's JSON text among a report's ``user_properties``, or None.

    After :func:`junit_properties` the entry is JSON text; it is parsed only when the report is
    built.
    """
    text: str | None = None
    for name, value in props:
        if name != PROPERTY:
            continue
        if isinstance(value, str):
            text = value
        elif isinstance(value, Mapping):
            text = json.dumps(value, sort_keys=True, default=str)
    return text


def junit_properties(
    props: Sequence[tuple[str, object]], redactor: Redactor | None = None
) -> list[tuple[str, object]]:
    """Rewrite ``user_properties`` so JUnit XML shows the entry as JSON plus its key fields.

    junitxml writes ``str(value)``, which for a dict is a Python repr; the entry is replaced by
    its JSON text and ``shakeout.<field>`` properties are added for the key fields. Idempotent.
    With a redactor, secrets are masked in the entry (every string at any depth) and in the
    ``shakeout.*`` properties: everything downstream (JUnit XML, the spool the report files are
    built from) reads the masked text.

    Args:
        props: the report's ``user_properties``.
        redactor: masks secrets; None leaves the values as they are.

    Returns:
        A new list of properties.
    """
    out: list[tuple[str, object]] = []
    entry: Mapping[str, Any] | None = None
    for name, value in props:
        if name == PROPERTY and isinstance(value, Mapping):
            entry = value
            value = json.dumps(value, sort_keys=True, default=str)
            if redactor is not None:
                value, changed = redactor.json_text(value)
                if changed:
                    entry = json.loads(value)
        elif redactor is not None and isinstance(value, str) and name == PROPERTY:
            # Entry text already masked: an xdist worker's (masked there with the same settings)
            # or a second pass. Only a value remembered here can have been missed; walking every
            # worker entry again cost the controller more than half its CPU (P2's profile).
            value = redactor.json_text(value)[0] if redactor.holds_known(value) else value
        elif redactor is not None and isinstance(value, str) and name.startswith(PROPERTY):
            value = redactor.text(value)
        out.append((name, value))
    if entry is not None and not any(n.startswith(f"{PROPERTY}.") for n, _ in out):
        for field in KEY_FIELDS:
            value = entry.get(field)
            out.append((f"{PROPERTY}.{field}", "" if value is None else value))
        fired = entry.get("faults_fired") or []
        keys = [f.get("key", "") for f in fired if isinstance(f, Mapping)]
        out.append((f"{PROPERTY}.faults_fired", ",".join(dict.fromkeys(keys))))
    return out


class EntrySpool:
    """Each scenario item's entry text in a temporary file; only offsets are kept in memory.

    The file is made on the first entry and closed by :meth:`close` (or when the spool is
    garbage collected, for a spool used outside a session).
    """

    def __init__(self) -> None:
        # nodeid -> (offset, length, hash) of its entry's JSON text in the file.
        self._places: dict[str, tuple[int, int, int]] = {}
        self._file: BinaryIO | None = None
        self._end = 0

    def nodeids(self) -> set[str]:
        """The node ids an entry was spooled for."""
        return set(self._places)

    def add(self, nodeid: str, text: str) -> None:
        """Spool an item's entry text; the same text again (setup and call both carry it) is
        spooled once."""
        known = self._places.get(nodeid)
        data = text.encode("utf-8")
        digest = hash(data)
        if known is not None and known[1:] == (len(data), digest):
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="shakeout-entries-")  # noqa: SIM115
            weakref.finalize(self, self._file.close)
        self._file.seek(self._end)
        self._file.write(data)
        self._places[nodeid] = (self._end, len(data), digest)
        self._end += len(data)

    def entry(self, nodeid: str) -> Mapping[str, Any] | None:
        """The item's entry, parsed; an unparsable one comes back as ``{"_unparsable": ...}``."""
        place = self._places.get(nodeid)
        if place is None or self._file is None:
            return None
        offset, length, _ = place
        self._file.seek(offset)
        text = self._file.read(length).decode("utf-8")
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        return parsed if isinstance(parsed, dict) else {"_unparsable": text[:200]}

    def close(self) -> None:
        """Delete the file."""
        if self._file is not None:
            self._file.close()


def build_item(
    nodeid: str,
    entry: Mapping[str, Any] | None,
    problems: Sequence[tuple[str, str]],
    seed: int,
) -> ReportItem:
    """The report item of one scenario node id, from its entry and its recorded failures.

    Without an entry the item is an ``error`` naming the failures (or the crashed worker
    that left it unrun); an entry that does not match the report schema is an ``error``
    too. A failing setup or teardown makes a passing entry an ``error``, a failing call
    after a passing run (the test's own assertion) a ``fail``.

    Args:
        nodeid: the item's node id.
        entry: its parsed entry, or None.
        problems: (phase, reason) per failed phase: ``collect``, ``crash``, ``setup``,
            ``call``, ``teardown``.
        seed: the session seed, for an item without an entry.

    Returns:
        The item.
    """
    scenario, variant = parse_nodeid(nodeid)
    if entry is None:
        if problems:
            text = "\n".join(describe(when, reason) for when, reason in problems)
        else:
            text = "not run: its xdist worker crashed and no worker was left to run it"
        return ReportItem(
            nodeid=nodeid,
            scenario=scenario,
            variant=variant,
            verdict="error",
            seed=seed,
            error=text,
        )
    try:
        item = ReportItem.model_validate({**entry, "nodeid": nodeid})
    except ValidationError as exc:
        return ReportItem(
            nodeid=nodeid,
            scenario=str(entry.get("scenario") or scenario),
            variant=str(entry.get("variant") or variant),
            verdict="error",
            seed=seed,
            error=(
                "the harness produced a result entry that does not match the report "
                f"schema (a shakeout bug; please report it): {exc.error_count()} problem(s), "
                f"first: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
            ),
        )
    # A failing call is how a scenario item signals a verdict the entry already holds; it
    # only adds something when the entry says pass (an assertion on the outcome failed).
    extra = [
        (when, reason) for when, reason in problems if when != "call" or item.verdict == "pass"
    ]
    if not extra:
        return item
    # A broken setup/teardown is the harness's error; a failing call after a passing run
    # is the test's own assertion on the outcome, so a failure.
    verdict = item.verdict
    if verdict == "pass":
        verdict = "fail" if all(w == "call" for w, _ in extra) else "error"
    text = "\n".join(
        describe("call-after-pass" if when == "call" else when, reason) for when, reason in extra
    )
    return item.model_copy(update={"verdict": verdict, "error": text})


def describe(when: str, reason: str) -> str:
    """A failed phase's reason, led by what failed (``setup`` -> ``error in setup: ...``)."""
    prefix = {
        "collect": "collection failed",
        "crash": "crashed",
        "setup": "error in setup",
        "teardown": "error in teardown",
        "call": "failed in call without a shakeout result",
        "call-after-pass": "failed after the run passed",
    }.get(when, f"failed in {when}")
    return f"{prefix}: {reason}"
