"""Benchmarks: plain scripts run with ``python -m bench.<name>``; they print figures."""
