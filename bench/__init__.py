"""Benchmarks, run as modules (`python -m bench.<name>`, `make bench`); `_*.py` are their helpers."""
