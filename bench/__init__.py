"""Benchmarks for mmdshot: speed, selection quality and in-context accuracy (docs/benchmarks.md)."""
