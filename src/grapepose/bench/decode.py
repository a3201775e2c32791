"""`grapepose bench decode`: decoding time per image for planted outputs (DESIGN §5 steps 3-6)."""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from grapepose.cli import _options as opt


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--people", type=opt.int_range(0), action="append",
                   help="people per image (repeatable; default 5, 15, 30)")
    opt.add_device(p, default="cpu")
    p.add_argument("--grid", type=opt.int_range(1), default=128,
                   help="output grid side; the input is 4x (default 128)")
    p.add_argument("--keypoints", type=opt.int_range(1), default=14, help="K (default 14, CrowdPose)")
    opt.add_batch_size(p, 1, "images decoded together (default 1)", dest="batch", old="--batch")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True, help="merge flipped outputs too")
    iters = opt.int_range(1)
    p.add_argument("--iters", dest="repeats", type=iters, default=10, metavar="N",
                   help="timed runs (default 10, after 2 warm-up runs)")
    opt.add_deprecated(p, "--repeats", "--iters", "repeats", type=iters)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from grapepose.config import TestConfig
    from grapepose.inference import decode
    from grapepose.testing.planted import plant_outputs, random_people
    from grapepose.keypoints import keypoint_spec

    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    size = (4 * args.grid, 4 * args.grid)
    spec = keypoint_spec(args.keypoints)
    cfg = TestConfig(flip=args.flip)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    figures: dict[str, float] = {}
    found: dict[str, int] = {}
    for n in args.people or [5, 15, 30]:
        people = [random_people(n, spec.num_keypoints, size, seed=i, min_gap=40) for i in range(args.batch)]
        out = plant_outputs(people, size)
        out = type(out)(*(None if t is None else t.to(dev) for t in out))
        flipped = None
        if args.flip:
            fo = plant_outputs(people, size, flipped=True, flip_index=spec.flip_index)
            flipped = type(fo)(*(None if t is None else t.to(dev) for t in fo))
        times = []
        for i in range(args.repeats + 2):
            sync()
            t0 = time.perf_counter()
            res = decode(out, cfg, flipped=flipped, flip_index=spec.flip_index)
            sync()
            if i >= 2:
                times.append((time.perf_counter() - t0) * 1000.0 / args.batch)
        figures[str(n)] = round(statistics.median(times), 2)
        found[str(n)] = sum(len(r.scores) for r in res) // args.batch
    return {
        "device": str(dev), "grid": args.grid, "batch": args.batch, "flip": args.flip, "threads": torch.get_num_threads(),
        "ms_per_image": figures, "people_found": found,
    }  # fmt: skip
