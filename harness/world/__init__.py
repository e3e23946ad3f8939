"""The world: what the agent under test talks to during one run (second stage of the path).

scenario -> **world** -> run -> record -> verdict -> report -> gate.

Owns the interception of every HTTP request the agent makes (``intercept``: the interceptor
that patches the transports of ``httpx`` and ``httpx2``; ``bridge``: each library's requests,
responses, streams and errors in and out of the neutral form; ``netguard``: the audit hook, the
loopback policy and the network seal; ``routing``: which route answers a request), the scripted
model and its provider wire formats (``model``, ``wire/``), the tool services and their ledgers
(``services``), the fake clock (``clock``) and the ``World`` that binds them to one run and its
faults (``world``).

May import: ``faults``, the adapter's types (``harness.adapter``), the run record
(``harness.record``, the world writes its events) and the scenario's vocabulary
(``harness.scenario.base``). Never the runner, the checks, the report or the plugin: the world
answers requests and writes evidence; it neither drives nor judges. This ``__init__`` imports
nothing, so importing one module loads only it and what it needs.
"""
