"""`grapepose bench train`: training images/s and peak memory on random data of the target shapes.

Runs the trainer's own step (`forward_backward` + `apply_update`: autocast, loss, backward, Adam)
on one device; no data loading is measured.
"""

from __future__ import annotations

import argparse
import resource
import sys
from typing import Any

from grapepose.cli import options as opt

__all__ = ["add_arguments", "run", "random_batch"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    opt.add_preset(p, "preset or YAML config (default crowdpose_w32)", default="crowdpose_w32")
    opt.add_batch_size(p, 16, "images per step (default 16)", dest="batch")
    p.add_argument("--size", type=opt.int_range(64), default=512,
                   help="input side, a multiple of 64 (default 512)")
    opt.add_device(p)
    opt.add_precision(p, default="auto", shown="auto: bf16 on CUDA, else fp32",
                      help="train.amp: fp32, bf16 or fp16 autocast (int8 is for inference only)")
    p.add_argument("--steps", type=opt.int_range(1), default=20, help="timed steps (default 20)")
    p.add_argument("--warmup", type=opt.int_range(0), default=3, help="untimed steps first (default 3)")
    p.add_argument("--threads", type=opt.int_range(0), default=0, help="CPU threads (0: torch default)")
    p.add_argument("--baseline", action="store_true",
                   help="PyTorch's kernels (torchvision deformable conv, SDPA attention and dropout) instead of the "
                        "own ones (grapepose.models.kernels) and the system's malloc, for before/after figures")
    p.add_argument("--system-malloc", action="store_true",
                   help="leave malloc as it is (default on CPU: keep freed memory for reuse, as the trainer does)")
    opt.add_overrides(p, "model.d_model=64")


def random_batch(batch: int, size: int, num_keypoints: int, seed: int = 0) -> dict[str, Any]:
    """A batch shaped like collated `TrainingDataset` items, with plausible value ranges."""
    import torch

    g = torch.Generator().manual_seed(seed)
    k, h = num_keypoints, size // 4
    offset_weights = (torch.rand(batch, 2 * k, h, h, generator=g) > 0.95).float() * 0.05
    return {
        "image": torch.randn(batch, 3, size, size, generator=g),
        "heatmaps": torch.rand(batch, k + 1, h, h, generator=g) ** 8,
        "heatmap_weights": torch.where(torch.rand(batch, k + 1, h, h, generator=g) > 0.8, 1.0, 0.1),
        "offsets": torch.randn(batch, 2 * k, h, h, generator=g) * 10,
        "offset_weights": offset_weights,
        "visibility": (torch.rand(batch, k, h, h, generator=g) > 0.9).float(),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import contextlib

    import torch

    from grapepose.bench._timing import time_calls
    from grapepose.config import load_config
    from grapepose.engine.losses import GrapeLoss
    from grapepose.engine.optim import build_optimizer
    from grapepose.engine.precision import resolve_precision
    from grapepose.engine.step import apply_update, forward_backward
    from grapepose.errors import ConfigError
    from grapepose.models import build_model
    from grapepose.models.kernels import use_kernels
    from grapepose.utils.device import DTYPE_NAMES

    if args.size % 64:
        raise ConfigError(f"--size must be a multiple of 64, got {args.size}")
    if args.dtype not in DTYPE_NAMES:
        raise ConfigError(f"precision {args.dtype} is for inference only; training runs {', '.join(DTYPE_NAMES)}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.preset, [f"data.input_size={args.size}", f"data.output_size={args.size // 4}",
                                    f"train.amp={args.dtype}", *args.overrides])  # fmt: skip
    from grapepose.utils.device import resolve_device

    device = resolve_device(args.device)
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    model = build_model(cfg).to(device)
    heap = "system"
    if device.type == "cpu" and not (args.baseline or args.system_malloc):
        from grapepose.utils.memory import retain_freed_memory

        heap = "retained" if retain_freed_memory() else "system"
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    model.train()
    precision = resolve_precision(cfg.train.amp, device)
    optimizer, scaler = build_optimizer(model, cfg.train), precision.scaler()
    criterion = GrapeLoss.from_config(cfg.train)
    batch = {k: v.to(device) for k, v in random_batch(args.batch, args.size, cfg.model.num_keypoints).items()}

    def step() -> None:
        forward_backward(model, batch, criterion, precision, scaler, optimizer, device)
        apply_update(model, optimizer, scaler, None, cfg.train.grad_clip)

    with use_kernels("torch") if args.baseline else contextlib.nullcontext():
        timing = time_calls(step, args.steps, args.warmup, device)
    elapsed, cpu = timing.seconds, timing.cpu_seconds
    out: dict[str, Any] = {
        "preset": cfg.name, "backbone": cfg.model.backbone, "device": str(device), "precision": precision.name,
        "dtype": precision.name,  # the older key, read by tools/gpu_plan.py
        "batch": args.batch, "size": args.size, "steps": args.steps,
        "images_per_s": round(args.batch * args.steps / elapsed, 3),
        "ms_per_step": round(1000 * elapsed / max(args.steps, 1), 2),
        "cpu_ms_per_step": round(1000 * cpu / max(args.steps, 1), 2), "baseline": args.baseline,
        "malloc": heap, "threads": torch.get_num_threads(),
    }  # fmt: skip
    if device.type == "cuda":
        out["peak_memory_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
        out["gpu"] = torch.cuda.get_device_name(device)
    else:  # peak resident memory of this process (includes Python and torch themselves)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out["peak_rss_gb"] = round(rss / (2**30 if sys.platform == "darwin" else 2**20), 3)
    return out
