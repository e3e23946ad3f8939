"""Ready adapters that put agents built on common frameworks under shakeout's test harness."""
