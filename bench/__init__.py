"""Benchmarks of hpcplane, run as `python -m bench` or `python -m bench.<name>`."""
