"""`grapepose bench forward`: network forward images/s, ms/batch and peak memory (random weights).

`--precision` runs the network as `Predictor` would (`grapepose.inference.precision`): PyTorch with
autocast (bf16/fp16 on CUDA, optionally channels_last), or on the CPU the OpenVINO module for bf16
and int8.
"""

from __future__ import annotations

import argparse
import resource
import sys
from typing import Any

from grapepose.cli import options as opt

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    opt.add_preset(p, "preset or YAML config (default crowdpose_w32)", default="crowdpose_w32")
    p.add_argument("--size", type=opt.int_range(64), default=512,
                   help="input side, a multiple of 64 (default 512)")
    opt.add_batch_size(p, 1, "images per forward (default 1)", dest="batch")
    opt.add_device(p)
    opt.add_precision(p, default="fp32", shown="fp32")
    p.add_argument("--iters", type=opt.int_range(1), default=20, help="timed forwards (default 20)")
    p.add_argument("--warmup", type=opt.int_range(0), default=3, help="untimed forwards first (default 3)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--threads", type=opt.int_range(0), default=0, help="CPU threads (0: torch default)")
    p.add_argument("--baseline", action="store_true",
                   help="PyTorch's kernels (torchvision deformable conv, SDPA attention) instead of the own ones "
                        "(grapepose.models.kernels), for before/after figures")
    opt.add_overrides(p, "model.d_model=64")


def _peak_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def run(args: argparse.Namespace) -> dict[str, Any]:
    import contextlib

    import torch

    from grapepose.bench._timing import time_calls
    from grapepose.config import load_config
    from grapepose.errors import ConfigError
    from grapepose.inference.precision import resolve_precision
    from grapepose.models import build_model
    from grapepose.models.kernels import use_kernels

    if args.size <= 0 or args.size % 64:
        raise ConfigError(f"--size must be a positive multiple of 64, got {args.size}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.preset, args.overrides)
    from grapepose.utils.device import resolve_device

    device = resolve_device(args.device)
    precision = resolve_precision(args.dtype, device, key="precision")
    if precision.runtime != "torch" and (args.channels_last or args.baseline):
        raise ConfigError(f"precision {precision.name} on the CPU runs OpenVINO; --channels-last and --baseline "
                          "are PyTorch settings")  # fmt: skip
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    rss_before = _peak_rss_bytes()
    model = build_model(cfg).to(device).eval()
    images = torch.randn(args.batch, 3, args.size, args.size, device=device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    params = sum(p.numel() for p in model.parameters())
    if precision.runtime == "openvino":
        from grapepose.inference.openvino import openvino_module

        model = openvino_module(model, precision.name, base_size=args.size)
    autocast = precision.runtime == "torch" and precision.name != "fp32"

    def forward() -> None:
        with torch.autocast(device.type, dtype=precision.dtype, enabled=autocast):
            model(images)

    with torch.inference_mode(), use_kernels("torch") if args.baseline else contextlib.nullcontext():
        timing = time_calls(forward, args.iters, args.warmup, device)
    elapsed, cpu = timing.seconds, timing.cpu_seconds
    iters = max(args.iters, 1)
    out: dict[str, Any] = {
        "preset": cfg.name, "device": str(device), "precision": precision.name, "runtime": precision.runtime,
        "dtype": precision.name,  # the older key, read by tools/gpu_plan.py
        "channels_last": args.channels_last,
        "batch": args.batch, "size": args.size, "iters": args.iters,
        "images_per_s": round(args.batch * args.iters / elapsed, 3) if elapsed > 0 else None,
        "ms_per_batch": round(1000 * elapsed / iters, 2),
        "cpu_ms_per_batch": round(1000 * cpu / iters, 2), "baseline": args.baseline,
        "params": params,
        "threads": torch.get_num_threads(),
    }  # fmt: skip
    if device.type == "cuda":
        out["peak_memory_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
        out["gpu"] = torch.cuda.get_device_name(device)
    else:  # growth of this process's peak resident memory over model build + forwards
        out["peak_rss_delta_gb"] = round((_peak_rss_bytes() - rss_before) / 2**30, 3)
    return out
