"""Helpers for tests and benchmarks (toy worlds with known answers); not used by the pipeline."""
