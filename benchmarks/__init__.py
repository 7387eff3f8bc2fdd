"""Benchmarks of lupus-dash (not part of the product package): `python -m benchmarks`."""
