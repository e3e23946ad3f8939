"""Agents for the harness's own tests: a small refund agent, correct unless told not to be."""
