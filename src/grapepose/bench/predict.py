"""`grapepose bench predict`: end-to-end `Predictor` throughput (resize, forward, decode, map back).

Random weights; the heatmap head is biased so that the decoder has people to process.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from grapepose.cli import _options as opt


def add_arguments(p: argparse.ArgumentParser) -> None:
    opt.add_preset(p, "model preset (default crowdpose_w32)", default="crowdpose_w32")
    p.add_argument("--size", type=opt.int_range(1), default=512,
                   help="side of the square test images (default 512)")
    opt.add_batch_size(p, 1, "images per forward pass (default 1)", dest="batch", old="--batch")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True, help="flip test (default on)")
    opt.add_scales(p, "test scales, e.g. 0.5 1 2 (default 1)", default=(1.0,))
    p.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16", "fp16"), help="autocast dtype")
    opt.add_device(p)
    p.add_argument("--iters", type=opt.int_range(1), default=10,
                   help="timed batches (default 10, after 2 warm-up batches)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    import dataclasses

    import numpy as np
    import torch

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
    pred = Predictor(model, cfg, device=args.device, batch_size=args.batch)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(args.size, args.size, 3), dtype=np.uint8) for _ in range(args.batch)]

    def sync() -> None:
        if pred.device.type == "cuda":
            torch.cuda.synchronize(pred.device)

    people = 0
    for i in range(args.iters + 2):
        if i == 2:
            sync()
            t0 = time.perf_counter()
        people += sum(len(r) for r in pred.predict_batch(images)) if i >= 2 else 0
    sync()
    elapsed = time.perf_counter() - t0
    n = args.iters * args.batch
    return {
        "preset": args.preset, "device": str(pred.device), "dtype": str(pred.dtype).replace("torch.", ""),
        "batch": args.batch, "flip": args.flip, "scales": list(scales), "image": args.size,
        "images_per_s": round(n / elapsed, 2), "ms_per_image": round(1000 * elapsed / n, 1),
        "people_per_image": round(people / n, 1),
    }  # fmt: skip
