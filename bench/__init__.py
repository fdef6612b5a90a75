"""Benchmarks: `make bench` runs them all and prints one JSON object, a key per benchmark."""
