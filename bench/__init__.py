"""Benchmarks (not part of the service; run them as scripts)."""
