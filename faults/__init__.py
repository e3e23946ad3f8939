"""The fault catalogue: tool, model, stream, approval, crash and input faults."""
