"""Benchmarks of otfr_vec: ``python -m benchmarks`` (see benchmarks/run.py)."""
