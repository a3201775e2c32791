"""`grapepose bench TOPIC`: speed figures, printed as one JSON line.

Each topic lives in `grapepose.bench.<topic>` and defines `add_arguments(parser)` and
`run(args) -> dict` (the figures).
"""

from __future__ import annotations

import argparse
import importlib
import json

TOPICS: dict[str, str] = {
    "forward": "network forward time and peak memory (random weights)",
    "targets": "training-target generation ms/image, vectorized vs loop oracle",
    "loader": "training DataLoader images/s",
    "decode": "decoding ms/image for planted people",
    "predict": "end-to-end predictor images/s",
    "train": "training images/s and peak memory",
    "serve": "HTTP service requests/s and p50/p99 latency at 1 and 8 concurrent clients (loopback)",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="topic", metavar="TOPIC", required=True)
    for name, desc in TOPICS.items():
        sp = sub.add_parser(name, help=desc, description=desc)
        try:
            mod = importlib.import_module(f"grapepose.bench.{name}")
        except ModuleNotFoundError:
            continue
        mod.add_arguments(sp)


def run(args: argparse.Namespace) -> int:
    try:
        mod = importlib.import_module(f"grapepose.bench.{args.topic}")
    except ModuleNotFoundError:
        from grapepose.errors import GrapeposeError

        raise GrapeposeError(f"benchmark {args.topic!r} is not implemented yet") from None
    print(json.dumps({"bench": args.topic, **mod.run(args)}), flush=True)
    return 0
