"""Benchmarks that measure profcast's regressors on real profile tables (run with `python -m benchmarks.<name>`)."""
