"""Benchmarks behind `grapepose bench TOPIC`; each module returns a dict of figures."""
