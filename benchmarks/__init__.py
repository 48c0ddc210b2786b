"""Benchmarks and the dense naive reference for rankgrad (not part of the installed package)."""
