"""Benchmarks: one command per figure (see BENCHMARKS.md). Not tests; CI times nothing."""
