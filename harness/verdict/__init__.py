"""The verdict: the checks that judge one run's record against its expectation.

Owns the ``Verdict`` and ``Check`` types, the checks by family and which of them run on which
kind of run (``evaluate``, ``overall``). The checks of a load run live in ``harness.load``.

May import: ``faults``, the scenario's expectation types (``harness.scenario``), the run record
(``harness.record``) and the adapter's types (``harness.adapter``). Never the report, the gate or
the pytest plugin: they read verdicts, not the other way round. This ``__init__`` imports
nothing, so importing one family loads only it and what it needs.
"""
