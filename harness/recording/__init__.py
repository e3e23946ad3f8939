"""Recording a live session into a cassette, and turning a cassette into a scenario.

Beside the path, feeding its start: a recorded session becomes a scenario file.

Owns ``record_session`` (vcrpy, the one place requests may leave the machine, and only when a
user calls it: ``recorder``), reading a cassette (``cassette``) and converting it into a scenario
with the provider wire formats of ``harness.world.wire`` (``cassette_import``).

May import: ``harness.output``, ``harness.project``, ``harness.redact``, the scenario's loader and
model, and ``harness.world.wire`` for parsing provider answers. Never the runner, the checks, the
report or the plugin. This ``__init__`` imports nothing.
"""
