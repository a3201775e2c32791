"""`grapepose demo`: run on bundled input (placeholder until the network lands)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    print("grapepose is being built: the demo will run the network on ../shared/data/demo once it exists.")
    return 0
