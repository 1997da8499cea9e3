"""The transport-free serving runtime: validation, micro-batching, model processes, live reload."""
