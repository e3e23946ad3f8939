"""The report and the gate: what a session's verdicts become on disk (the end of the path).

scenario -> world -> run -> record -> verdict -> **report -> gate**.

Owns the typed report document (``model/``: ``ReportItem``, ``Report``, reading and streaming it
out), the spool that keeps a session's entries out of memory and builds each item (``spool``),
the pytest-side collector that gathers entries from test reports and writes the files
(``reporter``), the Markdown and HTML renderings (``markdown``, ``html/``), merging shard reports
(``merge``), and the deployment gate with its policy (``gate``, ``gate_policy``).

May import: ``harness.output`` (atomic file writes), ``harness.redact`` and the verdict's check
families (``harness.verdict.suites``, which the gate re-judges items from). Never the world, the
runner or the plugin: the report reads entries, it never runs anything. Only ``reporter``
imports pytest. This ``__init__`` imports nothing.
"""
