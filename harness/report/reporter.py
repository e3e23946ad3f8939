"""The reporting plugin object: gathers scenario results from test reports and writes the report.

It reads the ``("shakeout", entry)`` pair each scenario item appends to ``user_properties`` in its
call phase. Those travel with the test reports, so under xdist the controller sees every entry
and is the only process that writes files. Items that never produced an entry (collection
errors, a crashed worker's item, a harness exception) are recorded with verdict ``error``.
Entries wait in a temporary spool file, not in memory, until the report is streamed out.

This module owns the pytest hooks, the plan, the streaming into the files and the terminal
summary; the entry's JUnit form, the spool and building an item from an entry are
:mod:`harness.report.spool`, which never imports pytest. It imports the gate, the report model and
the writers of the files; only ``harness.plugin`` imports it.

Secrets are masked here, where entries leave the item (JUnit properties, the spool every file is
built from) and failure text is recorded, by a :class:`~harness.redact.Redactor` walking the
whole entry: any string field, present or added later, is covered. Files are written through
:mod:`harness.output`; a file that cannot be written is one terminal line and a non-zero exit.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from harness.output import OutputError, staged
from harness.redact import Redactor
from harness.report.gate import (
    check_complete,
    evaluate_gate,
    format_gate,
    judge_item,
    rejudged_note,
)
from harness.report.gate_policy import GatePolicy, PolicyError, load_policy
from harness.report.html import PageIndex, write_html
from harness.report.markdown import write_markdown
from harness.report.model import (
    Plan,
    Report,
    ReportError,
    ReportItem,
    ReportWriter,
    SessionInfo,
    SummaryAccumulator,
)
from harness.report.spool import (
    EntrySpool,
    build_item,
    entry_text,
    is_scenario_nodeid,
    junit_properties,
)

SELECTION_KEY = pytest.StashKey[tuple[int, str]]()
"""(count, :func:`~harness.report.model.nodeids_digest`) of the scenario items the session
selected before ``--chaos-shard`` kept its share; set by ``harness.plugin`` when sharding."""
SHARD_KEY = pytest.StashKey[str]()
"""The ``--chaos-shard`` value ``K/N``, when given."""
_SELECTION_OUTPUT = "shakeout_selection"
"""The ``workeroutput`` key an xdist worker hands its selection to the controller under."""
_STATUS_REASONS: dict[int, str] = {
    pytest.ExitCode.INTERRUPTED: "interrupted (pytest exit status 2: Ctrl-C, a collection error, "
    "pytest.exit or an xdist stop)",
    pytest.ExitCode.INTERNAL_ERROR: "pytest or a plugin had an internal error (exit status 3)",
    pytest.ExitCode.USAGE_ERROR: "pytest was misused (exit status 4)",
}

MAX_REASON_LINES = 5
MAX_REASON_CHARS = 1000
_CRASH = re.compile(r"^worker '?[\w-]+'? crashed while running", re.MULTILINE)
# pytest's report text starts with "[gw0] linux -- Python 3.x /path" when it came from a worker.
_WORKER_INFO = re.compile(r"^\[[^\]]+\] \S+ -- Python \S+ .*$")


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    message = getattr(crash, "message", None)
    # For Python tracebacks the crash line names the exception; the traceback's first lines
    # would only show source context. Custom reprs (scenario files) lead with their message.
    text = message if isinstance(message, str) and message else report.longreprtext
    if not text:
        text = str(longrepr) if longrepr is not None else ""
    lines = [
        line.rstrip() for line in text.splitlines() if line.strip() and not _WORKER_INFO.match(line)
    ][:MAX_REASON_LINES]
    return "\n".join(lines)[:MAX_REASON_CHARS] or f"{report.outcome} without details"


class ReportPlugin:
    """Collects scenario results during the session and writes the JSON, Markdown and HTML files.

    Registered by ``harness.plugin`` on every process; only the xdist controller (or a session
    without xdist) writes files and prints the terminal summary.

    Memory does not grow with the items' entries: each entry's JSON text is appended to a
    temporary spool file as it arrives and only its offset is kept. At the end of the session
    the items are built one at a time in nodeid order, streamed into the JSON report and counted
    into the summary; only the items the Markdown, HTML and gate read (the non-passing ones, and
    the ones a gate rule names) stay in memory, in :attr:`session_report`.

    Args:
        config: the pytest config.
        seed: the session seed.
        json_path: ``--chaos-report`` destination, or None.
        markdown_path: ``--chaos-markdown`` destination, or None.
        html_path: ``--chaos-html`` destination, or None.
        policy_path: ``--chaos-policy`` file, or None for ``[tool.shakeout.gate]`` (if any).
        session_id: the id stamped in the report (``--chaos-session-id``), or None for a
            random one.
        redactor: masks secrets in everything written (default: the built-in lists).
    """

    def __init__(
        self,
        config: pytest.Config,
        seed: int,
        json_path: str | None,
        markdown_path: str | None,
        html_path: str | None,
        policy_path: str | None,
        session_id: str | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.config = config
        self.seed = seed
        self.session = SessionInfo.new(session_id)
        # The scenario node ids collection planned (None until a collection is seen), and why
        # the session did not run them all, once known.
        self._planned: list[str] | None = None
        self._interrupted: str | None = None
        self._selection: tuple[int, str] | None = None
        self.json_path = json_path
        self.markdown_path = markdown_path
        self.html_path = html_path
        self.policy_path = policy_path
        self._spool = EntrySpool()
        self._problems: dict[str, list[tuple[str, str]]] = {}
        self._scenario_nodeids: set[str] = set()
        self._reported: set[str] = set()
        self._collected: set[str] = set()
        self._crashed = False
        self._report: Report | None = None
        self._policy: GatePolicy | PolicyError | None = None
        self._gate_view: Report | None = None
        self._page_index: PageIndex | None = None
        self._rejudged: list[tuple[str, str, str]] = []
        self.redactor = redactor if redactor is not None else Redactor()
        self.written: list[Path] = []
        self.output_errors: list[str] = []

    @property
    def is_writer(self) -> bool:
        """Whether this process writes the files (the xdist controller or a plain session)."""
        return not hasattr(self.config, "workerinput")

    @property
    def session_report(self) -> Report | None:
        """After the session: its full summary with only the items Markdown, HTML and gate read.

        Those are the first item and, when a Markdown or HTML file or a gate wants them, the
        non-passing items and the items a category or check rule of the policy names (without
        timelines, effects, approvals and passed checks unless the HTML page shows them). The
        JSON file holds every item whole.
        """
        return self._report

    def _is_scenario(self, report: pytest.TestReport | pytest.CollectReport) -> bool:
        nodeid = report.nodeid
        return (
            nodeid in self._scenario_nodeids
            or is_scenario_nodeid(nodeid)
            or "chaos" in getattr(report, "keywords", {})
        )

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Record a phase's report; rewrite its properties for JUnit before junitxml reads them."""
        report.user_properties = junit_properties(report.user_properties, self.redactor)
        if not self.is_writer:
            # A worker only rewrites the properties; the controller keeps the books.
            return
        nodeid = report.nodeid
        self._reported.add(nodeid)
        text = entry_text(report.user_properties)
        if text is not None:
            self._spool.add(nodeid, text)
            self._scenario_nodeids.add(nodeid)
        elif self._is_scenario(report):
            self._scenario_nodeids.add(nodeid)
        if report.failed and self._is_scenario(report):
            when = str(report.when)
            if when == "???" or _CRASH.search(report.longreprtext or ""):
                self._crashed = True
                when = "crash"
            self._problems.setdefault(nodeid, []).append(
                (when, self.redactor.text(_reason(report)))
            )

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """Record a scenario file that failed to collect as an error item."""
        if report.failed and self._is_scenario(report):
            self._scenario_nodeids.add(report.nodeid)
            self._problems.setdefault(report.nodeid, []).append(
                ("collect", self.redactor.text(_reason(report)))
            )

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: object, ids: Sequence[str]) -> None:
        """xdist controller: the plan, and the scenario items a dead worker may never run.

        Every worker must collect the same items; when one differs, xdist runs nothing and the
        report says the session was interrupted, so the gate refuses it.
        """
        scenario_ids = [i for i in ids if is_scenario_nodeid(i)]
        self._collected.update(scenario_ids)
        if self._planned is None:
            self._planned = scenario_ids
        elif set(scenario_ids) != set(self._planned) and self._interrupted is None:
            name = getattr(getattr(node, "gateway", None), "id", None) or "a worker"
            self._interrupted = (
                f"xdist workers collected different items ({len(self._planned)} on the first, "
                f"{len(scenario_ids)} on {name}), so none ran; make collection deterministic "
                "(no random or time-dependent parametrization) and rerun"
            )

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The plan of a session without xdist: the scenario items left after selection."""
        if self.is_writer:
            self._planned = [i.nodeid for i in session.items if is_scenario_nodeid(i.nodeid)]

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """xdist controller: take the selection a worker reported (they all select the same)."""
        output = getattr(node, "workeroutput", None) or {}
        selection = output.get(_SELECTION_OUTPUT)
        if self._selection is None and isinstance(selection, list | tuple) and len(selection) == 2:
            self._selection = (int(selection[0]), str(selection[1]))

    def plan(self) -> Plan:
        """What the session planned to run, as far as it is known now."""
        shard = self.config.stash.get(SHARD_KEY, None)
        selection = self._selection or self.config.stash.get(SELECTION_KEY, None)
        return Plan.of(self._planned or (), shard=shard, selection=selection if shard else None)

    def _note_interruption(self, session: pytest.Session, exitstatus: int) -> None:
        reason = _STATUS_REASONS.get(int(exitstatus))
        stop = getattr(session, "shouldstop", None) or getattr(session, "shouldfail", None)
        if reason is None and stop:
            reason = f"stopped early: {stop}"
        if reason is None and self._planned is None:
            reason = "no collection was reported (every xdist worker died before collecting)"
        if self._interrupted is None:
            self._interrupted = reason

    def _nodeids(self) -> list[str]:
        nodeids = self._spool.nodeids() | set(self._problems)
        if self._crashed:
            nodeids |= self._collected - self._reported
        return sorted(nodeids)

    def iter_items(self) -> Iterator[ReportItem]:
        """The items gathered so far, one per scenario nodeid, in nodeid order, built lazily."""
        for nodeid in self._nodeids():
            entry = self._spool.entry(nodeid)
            yield build_item(nodeid, entry, self._problems.get(nodeid, []), self.seed)

    def items(self) -> list[ReportItem]:
        """The items gathered so far, one per scenario nodeid, in nodeid order."""
        return list(self.iter_items())

    def build_report(self) -> Report:
        """The full report of everything gathered so far (every item in memory at once)."""
        session = self.session.model_copy(update={"interrupted": self._interrupted})
        return Report.build(self.iter_items(), self.seed, plan=self.plan(), session=session)

    def _load_policy(self) -> GatePolicy | PolicyError | None:
        if self.policy_path is None and not _has_gate_table(self.config.rootpath):
            return None
        try:
            return load_policy(self.policy_path, cwd=self.config.rootpath)
        except PolicyError as exc:
            return exc

    def _finish(self) -> Report:
        """Stream every item once: into the JSON file, the summary, and the kept subset."""
        with contextlib.ExitStack() as stack:
            writer = self._json_writer(stack)
            report = self._stream(writer)
            try:
                stack.close()  # publishes the staged JSON file
            except OutputError as exc:
                self.output_errors.append(str(exc))
            else:
                if writer is not None:
                    self.written.append(Path(str(self.json_path)))
        return report

    def _json_writer(self, stack: contextlib.ExitStack) -> ReportWriter | None:
        if not self.json_path:
            return None
        try:
            path = stack.enter_context(staged(self.json_path, "JSON report"))
        except OutputError as exc:
            self.output_errors.append(str(exc))
            return None
        plan = self.plan()
        session = self.session.model_copy(update={"interrupted": self._interrupted})
        return ReportWriter(path, self.seed, plan=plan, session=session)

    def _stream(self, writer: ReportWriter | None) -> Report:
        policy = self._policy if isinstance(self._policy, GatePolicy) else None
        plan = self.plan()
        session = self.session.model_copy(update={"interrupted": self._interrupted})
        kept: list[ReportItem] = []
        summary = SummaryAccumulator()
        # The HTML page counts and lists every item: a compact row each, passing ones too.
        self._page_index = PageIndex() if self.html_path else None
        # Without a Markdown or HTML file or a gate, nothing reads the items after the summary.
        wanted = bool(
            self.html_path
            or self.markdown_path
            or os.environ.get("GITHUB_STEP_SUMMARY")
            or policy is not None
        )
        # The gate judges each item again from its checks (judge_item), as `shakeout gate` does:
        # its view holds the items it judged non-passing or a rule names, and their summary.
        gate_kept: list[ReportItem] = []
        gate_summary = SummaryAccumulator()
        self._rejudged = []
        try:
            for n, item in enumerate(self.iter_items()):
                if writer is not None:
                    writer.add(item)
                else:
                    summary.add(item)
                if self._page_index is not None:
                    self._page_index.add(item)
                # The first item keeps the view non-empty, as evaluate_gate checks policy
                # check names only against a non-empty report.
                view: ReportItem | None = None
                if n == 0 or (wanted and _kept(item, policy)):
                    view = item if self.html_path else _slim(item)
                    kept.append(view)
                if policy is None:
                    continue
                verdict = judge_item(item)
                judged = item
                if verdict != item.verdict:
                    self._rejudged.append((item.nodeid, item.verdict, verdict))
                    judged = item.model_copy(update={"verdict": verdict})
                gate_summary.add(judged)
                if n == 0 or _kept(judged, policy):
                    gate_kept.append(view if view is not None and judged is item else _slim(judged))
            if writer is not None:
                try:
                    totals = writer.finish()
                except OSError as exc:
                    raise OutputError(
                        f"cannot write the JSON report {self.json_path}: {exc.strerror or exc}; "
                        "free space or choose another path"
                    ) from None
            else:
                totals = summary.summary()
        finally:
            if writer is not None:
                writer.close()
        if policy is not None:
            self._gate_view = Report(
                seed=self.seed,
                session=session,
                plan=plan,
                summary=gate_summary.summary(),
                items=gate_kept,
            )
        return Report(seed=self.seed, session=session, plan=plan, summary=totals, items=kept)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Write the requested files, on the controller only; a worker hands over its selection."""
        if not self.is_writer:
            selection = self.config.stash.get(SELECTION_KEY, None)
            output = getattr(self.config, "workeroutput", None)
            if selection is not None and isinstance(output, dict):
                output[_SELECTION_OUTPUT] = list(selection)
            return
        self._note_interruption(session, exitstatus)
        self._policy = self._load_policy()
        try:
            report = self._report = self._finish()
        except OutputError as exc:  # the staged JSON file could not be completed
            self.output_errors.append(str(exc))
            report = self._report = Report.build([], self.seed)
        if report.summary.total or self.markdown_path:
            try:
                self.written.extend(write_markdown(report, self.markdown_path, self.redactor))
            except OutputError as exc:
                self.output_errors.append(str(exc))
        if self.html_path:
            try:
                self.written.append(
                    write_html(report, self.html_path, self.redactor, self._page_index)
                )
            except OutputError as exc:
                self.output_errors.append(str(exc))
        if self.output_errors:
            # A requested file that is missing fails the session: CI must not go green on a
            # report it never got. Tests that failed keep their own exit status.
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            if self.config.pluginmanager.get_plugin("terminalreporter") is None:
                for line in self.output_errors:
                    sys.stderr.write(f"shakeout: {line}\n")

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Print counts per verdict, fault class and category, the files and the gate verdict."""
        if not self.is_writer:
            return
        if self._report is None:
            self._policy = self._load_policy()
            self._report = self._finish()
        report = self._report
        tr = terminalreporter
        for line in self.output_errors:
            tr.write_line(f"shakeout: {line}", red=True, bold=True)
        if not report.summary.total and not self.written:
            return
        tr.write_sep("=", "shakeout")
        for line in summary_lines(report):
            tr.write_line(line)
        for path in self.written:
            tr.write_line(f"written: {path}")
        gate = self._gate_lines(report)
        for line in gate:
            markup = {"red": True} if "FAIL" in line or "ERROR" in line else {}
            tr.write_line(line, **markup)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Delete the spool."""
        self._spool.close()

    def _gate_lines(self, report: Report) -> list[str]:
        if self._policy is None:
            return []
        label = self.json_path or "<this session>"
        if isinstance(self._policy, PolicyError):
            return [f"shakeout gate: ERROR {self._policy}"]
        view = self._gate_view or report
        try:
            notes = [*self._policy.notes]
            notes += check_complete(
                view.plan,
                view.session,
                self._nodeids(),
                self._policy,
                label=f"report {label}",
            )
            if self._rejudged:
                notes.append(rejudged_note(self._rejudged))
            result = evaluate_gate(view, self._policy)
        except (PolicyError, ReportError) as exc:
            return [f"shakeout gate: ERROR {exc}"]
        lines = [f"shakeout gate: note: {note}" for note in notes]
        return lines + format_gate(result, label, report.summary.total)


def _slim(item: ReportItem) -> ReportItem:
    # Markdown and the gate read no timelines, effects or approvals, and only failed checks;
    # the HTML page (which shows timelines) keeps items whole.
    return item.model_copy(
        update={
            "requests": [],
            "effects": [],
            "approvals": [],
            "checks": [c for c in item.checks if c.passed is False],
        }
    )


def _kept(item: ReportItem, policy: GatePolicy | None) -> bool:
    # What Markdown and HTML list (non-passing items) and what a gate rule may name: its
    # category and failed-check rules count passing items too.
    if item.verdict != "pass":
        return True
    if policy is None:
        return False
    if item.category is not None and item.category in policy.category:
        return True
    return any(c.passed is False and c.name in policy.checks for c in item.checks)


def _has_gate_table(rootpath: Path) -> bool:
    path = rootpath / "pyproject.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False
    return "gate" in data.get("tool", {}).get("shakeout", {})


def summary_lines(report: Report) -> list[str]:
    """The terminal summary's lines: verdicts, counts per fault class and per category.

    Args:
        report: the report.

    Returns:
        Lines without trailing newlines.
    """
    s = report.summary
    v = s.by_verdict
    lines = [
        f"{s.total} items: {v.passed} pass, {v.fail} fail, {v.error} error (seed {report.seed})"
    ]
    if s.by_fault:
        width = max(len(k) for k in s.by_fault)
        lines.append("by fault class:")
        for key, c in s.by_fault.items():
            lines.append(
                f"  {key:<{width}}  {c.total:>4} items  {c.passed} pass, {c.fail} fail, "
                f"{c.error} error"
            )
    if s.by_category:
        lines.append("by category: " + ", ".join(f"{k} {n}" for k, n in s.by_category.items()))
    tr = s.transient_recovery
    if tr.rate is not None:
        lines.append(f"transient recovery: {tr.rate:.1%} ({tr.recovered}/{tr.items})")
    cov = s.coverage
    if cov.planned_pairs:
        lines.append(
            f"coverage: {cov.exercised_pairs}/{cov.planned_pairs} scenario x fault pairs exercised"
        )
    reacted = s.by_check.get("tool_error_reaction")
    if reacted is not None:
        played = reacted.passed + reacted.failed
        items = played + reacted.not_applicable
        lines.append(
            f"tool error reactions (on_tool_error): {played}/{items} items exercised"
            + ("" if played == items else "; in the others no failed tool call reached the model")
        )
    return lines
