"""The scenario: what one scenario file says and what it expands into (the start of the path).

Owns the scenario model and its rules (``spec`` and the modules it is built from), reading a
YAML file with ``file:line: field`` errors (``loader``), the expectation types and how a cell's
expectation is derived (``expect``), the runnable cells and what a fault-free run touched
(``variant``: ``Variant``, ``Probe``), the injection cells (``injection``) and the expansion into
variants (``matrix``).

May import: ``faults`` and the run record (``harness.record``, for a probe's baseline). Never the
world, the runner, the checks (``harness.verdict``), the report, the gate or the pytest plugin:
they read scenarios, not the other way round. This ``__init__`` imports nothing, so importing one
module loads only it.
"""
