"""`grapepose bench TOPIC`: speed (and, for `joints`, quality) figures, printed as one JSON line.

Each topic lives in `grapepose.bench.<topic>` and defines `add_arguments(parser)` and
`run(args) -> dict` (the figures).
"""

from __future__ import annotations

import argparse
import importlib
import json

TOPICS: dict[str, str] = {
    "forward": "network forward time and peak memory (random weights)",
    "targets": "training-target generation ms/image",
    "loader": "training DataLoader images/s",
    "decode": "decoding ms/image for planted people",
    "predict": "end-to-end predictor images/s",
    "train": "training images/s and peak memory",
    "serve": "HTTP service requests/s and p50/p99 latency at 1 and 8 concurrent clients (loopback)",
    "joints": "per-joint confidence: ROC AUC of labelled vs absent joints on an annotated set",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="topic", metavar="TOPIC", required=True)
    for name, desc in TOPICS.items():
        sp = sub.add_parser(name, help=desc, description=desc)
        importlib.import_module(f"grapepose.bench.{name}").add_arguments(sp)


def run(args: argparse.Namespace) -> int:
    mod = importlib.import_module(f"grapepose.bench.{args.topic}")
    print(json.dumps({"bench": args.topic, **mod.run(args)}), flush=True)
    return 0
