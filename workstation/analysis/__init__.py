"""Slice -> Finding. Torch is imported lazily inside this package (engine, network)."""
