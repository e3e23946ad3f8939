"""A refund desk on LangGraph, put under shakeout with ``shakeout_adapters``."""
