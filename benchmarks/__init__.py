"""Benchmarks beside the package: scripts run with `python -m benchmarks.X`."""
