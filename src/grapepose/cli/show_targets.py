"""`grapepose show-targets` (not implemented yet)."""

from __future__ import annotations

import argparse

from grapepose.errors import GrapeposeError


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise GrapeposeError("this command is not implemented yet")
