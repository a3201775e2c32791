"""`grapepose bench loader`: training DataLoader images/s (augmentation + targets) on real fixture images."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from grapepose.errors import GrapeposeError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    p.add_argument("--size", type=int, default=512, help="input size (grid = size/4)")
    p.add_argument("--batch", type=int, default=8, help="batch size")
    p.add_argument("--batches", type=int, default=20, help="timed batches (after one warm-up batch)")
    p.add_argument("--data", default=None, help="image folder (default: the CrowdPose fixture in ../shared/data)")
    p.add_argument("--ann", default=None, help="COCO-format keypoint JSON (default: the CrowdPose fixture)")
    p.add_argument("--preset", default=None, help="preset or YAML config for the data section (default crowdpose_w32)")
    p.add_argument("--seed", type=int, default=0)


def _fixture() -> tuple[Path, Path]:
    for base in (Path.cwd() / ".." / "shared" / "data", Path(__file__).resolve().parents[3] / ".." / "shared" / "data"):
        ann = base / "crowdpose" / "test_crowdpose.json"
        if ann.is_file():
            return base / "crowdpose", ann
    raise GrapeposeError("no fixture data found at ../shared/data/crowdpose; pass --data and --ann")


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

    from grapepose.config import load_config
    from grapepose.data import KeypointDataset, TrainingDataset

    if args.size % 64 or args.size <= 0:
        raise GrapeposeError(f"--size must be a positive multiple of 64, got {args.size}")
    data, ann = (Path(args.data), Path(args.ann)) if args.data and args.ann else _fixture()
    cfg = load_config(args.preset).data
    cfg = dataclasses.replace(cfg, input_size=args.size, output_size=args.size // 4)
    base = KeypointDataset(ann, data, dataset=cfg.dataset)
    total = (args.batches + 1) * args.batch
    ds = TrainingDataset(_Cycled(base, total), base.spec, cfg, train=True, seed=args.seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, num_workers=args.workers, shuffle=False)
    t0 = time.perf_counter()
    it = iter(loader)
    next(it)
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    n = sum(batch["image"].shape[0] for batch in it)
    elapsed = time.perf_counter() - t1
    return {
        "workers": args.workers, "size": args.size, "batch": args.batch, "batches": args.batches,
        "images_per_s": round(n / elapsed, 1), "first_batch_s": round(first, 2), "dataset": str(ann),
    }  # fmt: skip
