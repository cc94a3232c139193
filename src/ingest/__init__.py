"""Readers that turn profiler output into profile rows."""
