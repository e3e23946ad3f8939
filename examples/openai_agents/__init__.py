"""A refund desk on the OpenAI Agents SDK, put under shakeout with ``shakeout_adapters``."""
