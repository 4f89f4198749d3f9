"""Benchmarks: scripts that print latency and CPU numbers (never timed assertions)."""
