"""The run: the agent under test driven through one scenario variant (third stage of the path).

scenario -> world -> **run** -> record -> verdict -> report -> gate.

Owns loading the agent's adapter factory (``agent_factory``), driving an adapter through a run
with its reviewer decisions, crashes and restarts under a wall-clock deadline (``driver``), the
hard-kill mode that runs the agent in its own process and kills it for real (``hardkill/``), and
building a variant's world, running it and returning its record (``runner``: ``run_variant``,
``probe``).

May import: ``faults``, ``harness.adapter``, ``harness.record``, the scenario (its spec,
expectations and variants) and the world. Never the checks, the report or the plugin: a run
produces a record; judging it is the verdict's job. Plain code, no pytest: a script can run a
variant. This ``__init__`` imports nothing.
"""
