"""`grapepose bench loader`: training DataLoader images/s (augmentation + targets) on real fixture images."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from grapepose.cli import options as opt
from grapepose.errors import GrapeposeError


def add_arguments(p: argparse.ArgumentParser) -> None:
    opt.add_workers(p, 2, "DataLoader workers (default 2)")
    p.add_argument("--size", type=opt.int_range(64), default=512, help="input size (grid = size/4)")
    opt.add_batch_size(p, 8, "images per batch (default 8)", dest="batch")
    p.add_argument("--batches", type=opt.int_range(1), default=20,
                   help="timed batches (after one warm-up batch)")
    p.add_argument("--data", required=True, metavar="ROOT", help="image folder, e.g. data/crowdpose")
    p.add_argument("--ann", required=True, metavar="ANN.json", help="COCO-format keypoint JSON of those images")
    opt.add_preset(p, "preset or YAML config for the data section (default crowdpose_w32)")
    p.add_argument("--seed", type=opt.int_range(0, opt.SEED_MAX), default=0, help="augmentation seed")


class _Cycled:
    """A sample source repeating `base` up to `length` samples."""

    def __init__(self, base: Any, length: int) -> None:
        self.base, self.length = base, length

    def __len__(self) -> int:
        return self.length

    def load(self, i: int) -> Any:
        return self.base.load(i % len(self.base))


def run(args: argparse.Namespace) -> dict[str, Any]:
    import dataclasses

    import torch

    from grapepose.bench._timing import time_calls
    from grapepose.config import load_config
    from grapepose.data import KeypointDataset, TrainingDataset

    if args.size % 64 or args.size <= 0:
        raise GrapeposeError(f"--size must be a positive multiple of 64, got {args.size}")
    data, ann = Path(args.data), Path(args.ann)
    cfg = load_config(args.preset).data
    cfg = dataclasses.replace(cfg, input_size=args.size, output_size=args.size // 4)
    base = KeypointDataset(ann, data, dataset=cfg.dataset)
    total = (args.batches + 1) * args.batch
    ds = TrainingDataset(_Cycled(base, total), base.spec, cfg, train=True, seed=args.seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, num_workers=args.workers, shuffle=False)
    batches: Any = None

    def start() -> None:  # starting the workers is part of the first batch's time
        nonlocal batches
        batches = iter(loader)
        next(batches)

    first = time_calls(start, 1).seconds
    sizes: list[int] = []
    elapsed = time_calls(lambda: sizes.append(next(batches)["image"].shape[0]), args.batches).seconds
    return {
        "workers": args.workers, "size": args.size, "batch": args.batch, "batches": args.batches,
        "images_per_s": round(sum(sizes) / elapsed, 1), "first_batch_s": round(first, 2), "dataset": str(ann),
    }  # fmt: skip
