"""Benchmarks against named baselines; run with `make bench`."""
