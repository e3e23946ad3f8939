"""The scenario: what one scenario file says and what it expands into (the start of the path).

Owns the scenario model and its rules (``spec`` and the modules it is built from), reading a
YAML file with ``file:line: field`` errors (``loader``), the expectation types and how a cell's
expectation is derived (``expect``), and the expansion into variants (``matrix``).

May import: ``faults``, the run record (``harness.record``), the run's variant and probe types
(``harness.runner``) and the injection cells (``harness.injection``). Never the checks
(``harness.verdict``), the report, the gate or the pytest plugin: they read scenarios, not the
other way round. This ``__init__`` imports nothing, so importing one module loads only it.
"""
