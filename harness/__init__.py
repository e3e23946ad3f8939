"""shakeout: the pytest plugin and the engine."""
