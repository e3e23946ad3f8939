"""Repo-wide test switches: none at the moment.

The Hypothesis profiles live in ``tests/conftest.py``: this file is loaded by every pytest
process of the scenario suite too (the controller and each xdist worker), where importing
Hypothesis (and rewriting its asserts) cost each process about a second before any scenario ran.
"""
