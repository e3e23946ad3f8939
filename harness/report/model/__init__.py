"""The versioned fault-injection report: its pydantic schema, summary maths and loading.

One module per part, each importing only the ones above it in this list:

- ``entries``: the item schema (checks, faults, requests, events, queue figures), the version;
- ``summary``: the summary's schema and maths, over a list or streamed item by item;
- ``collector``: pausing the cyclic garbage collector while models are built in bulk;
- ``atomic``: writing a file so that no reader sees it half-written;
- ``document``: :class:`Report` (plan, session, summary, items) and its JSON Schema;
- ``writer``: :class:`ReportWriter`, the report written one item at a time;
- ``reading``: :func:`load_report`, bounded and saying what is wrong with a bad file.
"""

from __future__ import annotations

from harness.report.model.atomic import (
    open_atomic,
    write_text_atomic,
)
from harness.report.model.document import (
    Plan,
    Report,
    SessionInfo,
    nodeids_digest,
    report_schema,
)
from harness.report.model.entries import (
    NONE_KEY,
    SCHEMA_VERSION,
    VERDICTS,
    ApprovalEntry,
    CheckOutcome,
    EffectEntry,
    EventEntry,
    FiredFault,
    InjectedFault,
    OutcomesEntry,
    QueueFigures,
    ReportError,
    ReportItem,
    RequestEntry,
    Verdict,
)
from harness.report.model.reading import (
    MAX_REPORT_BYTES,
    FileRefused,
    load_report,
    read_bounded,
)
from harness.report.model.summary import (
    INJECTION_CHECK,
    INJECTION_PREFIX,
    CheckCounts,
    Coverage,
    CoverageCell,
    CrashFigures,
    InjectionCell,
    Summary,
    SummaryAccumulator,
    TransientRecovery,
    TunedOutcome,
    VerdictCounts,
    summarize,
)
from harness.report.model.writer import (
    ReportWriter,
)

__all__ = [
    "INJECTION_CHECK",
    "INJECTION_PREFIX",
    "MAX_REPORT_BYTES",
    "NONE_KEY",
    "SCHEMA_VERSION",
    "VERDICTS",
    "ApprovalEntry",
    "CheckCounts",
    "CheckOutcome",
    "Coverage",
    "CoverageCell",
    "CrashFigures",
    "EffectEntry",
    "EventEntry",
    "FileRefused",
    "FiredFault",
    "InjectedFault",
    "InjectionCell",
    "OutcomesEntry",
    "Plan",
    "QueueFigures",
    "Report",
    "ReportError",
    "ReportItem",
    "ReportWriter",
    "RequestEntry",
    "SessionInfo",
    "Summary",
    "SummaryAccumulator",
    "TransientRecovery",
    "TunedOutcome",
    "Verdict",
    "VerdictCounts",
    "load_report",
    "nodeids_digest",
    "open_atomic",
    "read_bounded",
    "report_schema",
    "summarize",
    "write_text_atomic",
]
