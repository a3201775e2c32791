"""Benchmarks behind `grapepose bench TOPIC`; each module returns a dict of figures.

Every topic times with the one loop `bench._timing.time_calls`; the topics that run the network
take the one `--precision` flag (`cli.options.add_precision`).
"""
