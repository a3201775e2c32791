"""`grapepose bench predict`: end-to-end `Predictor` throughput (resize, forward, decode, map back).

Random weights; the heatmap head is biased so that the decoder has people to process. With a
precision other than fp32, fp32 is timed in the same run (batches interleaved) for the speed-up.
"""

from __future__ import annotations

import argparse
from typing import Any

from grapepose.cli import options as opt


def add_arguments(p: argparse.ArgumentParser) -> None:
    opt.add_preset(p, "model preset (default crowdpose_w32)", default="crowdpose_w32")
    p.add_argument("--size", type=opt.int_range(1), default=512,
                   help="side of the square test images (default 512)")
    opt.add_batch_size(p, 1, "images per forward pass (default 1)", dest="batch")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True, help="flip test (default on)")
    opt.add_scales(p, "test scales, e.g. 0.5 1 2 (default 1)", default=(1.0,))
    opt.add_precision(p, default="auto", shown="auto")
    opt.add_device(p)
    p.add_argument("--iters", type=opt.int_range(1), default=10,
                   help="timed batches (default 10, after 2 warm-up batches)")
    p.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                   help="when the precision is not fp32, also time fp32 in the same run, batches interleaved, "
                   "and report the speed-up (default: on)")  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    import dataclasses

    import numpy as np
    import torch

    from grapepose.bench._timing import time_calls
    from grapepose.inference import Predictor
    from grapepose.models import build_model

    torch.manual_seed(0)
    model = build_model(args.preset)
    bias = getattr(getattr(getattr(model, "heatmap_head", None), "out", None), "bias", None)
    if bias is not None:
        with torch.no_grad():
            bias.add_(0.5)  # random weights find nobody otherwise; this gives the decoder 30 people
    scales = tuple(args.scales)
    cfg = dataclasses.replace(model.config.test, flip=args.flip, scales=scales, dtype=args.dtype)
    made: list[Predictor] = []

    def prepare() -> None:  # an OpenVINO conversion, or reading it from the cache
        made.append(Predictor(model, cfg, device=args.device, batch_size=args.batch))

    prepare_s = time_calls(prepare, 1).seconds
    pred = made[0]
    runs = {"": pred}
    if args.baseline and pred.precision.name != "fp32":
        runs["fp32_"] = Predictor(model, dataclasses.replace(cfg, dtype="fp32"), device=args.device,
                                  batch_size=args.batch)  # fmt: skip
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(args.size, args.size, 3), dtype=np.uint8) for _ in range(args.batch)]

    elapsed = dict.fromkeys(runs, 0.0)
    found: dict[str, list[int]] = {key: [] for key in runs}  # people per batch, warm-up batches first
    for i in range(args.iters + 2):  # the precisions take turns, so a change of machine load hits both
        for key, p in runs.items():
            one_batch = lambda: found[key].append(sum(len(r) for r in p.predict_batch(images)))  # noqa: B023, E731
            elapsed[key] += time_calls(one_batch, int(i >= 2), int(i < 2), pred.device).seconds
    people = {key: sum(counts[2:]) for key, counts in found.items()}
    n = args.iters * args.batch
    out: dict[str, Any] = {
        "preset": args.preset, "device": str(pred.device), "precision": pred.precision.name,
        "dtype": pred.precision.name,  # the older key, read by tools/gpu_plan.py
        "runtime": pred.precision.runtime, "threads": torch.get_num_threads(),
        "batch": args.batch, "flip": args.flip, "scales": list(scales), "image": args.size,
        "prepare_s": round(prepare_s, 1),
    }  # fmt: skip
    for key in runs:
        out[f"{key}images_per_s"] = round(n / elapsed[key], 2)
        out[f"{key}ms_per_image"] = round(1000 * elapsed[key] / n, 1)
        out[f"{key}people_per_image"] = round(people[key] / n, 1)
    if "fp32_" in runs:
        out["speedup_vs_fp32"] = round(elapsed["fp32_"] / elapsed[""], 2)
    return out
