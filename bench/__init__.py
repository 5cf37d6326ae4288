"""Benchmark harness: `make bench` or `python -m bench --help` (see bench/README.md)."""
