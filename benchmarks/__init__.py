"""shakeout's benchmarks: every figure of issue 7 as a ratio against a baseline of the same run.

Run ``python -m benchmarks`` from the repository root (``--quick`` for a small smoke run,
``--json PATH`` to write the figures, ``--only P1,P4`` to pick some).
"""
