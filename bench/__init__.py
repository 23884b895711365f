"""Benchmark suite (`make bench`). Timing goals live here, never in tests."""
