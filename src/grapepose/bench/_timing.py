"""The timing loop shared by the benchmarks, and the switch to the network's older kernels."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn


def time_calls(fn: Callable[[], object], warmup: int, iters: int, device: torch.device) -> float:
    """Seconds taken by `iters` calls of `fn` after `warmup` untimed ones.

    CUDA work is synchronised before and after the timed calls, and the CUDA peak-memory counter is
    reset after the warm-up, so `torch.cuda.max_memory_allocated` afterwards covers the timed calls.
    """
    return time_calls_wall_and_cpu(fn, warmup, iters, device)[0]


def time_calls_wall_and_cpu(
    fn: Callable[[], object], warmup: int, iters: int, device: torch.device
) -> tuple[float, float]:
    """`time_calls`, also returning this process's CPU seconds over the timed calls.

    On a shared CPU machine the CPU time (with one thread) moves far less than the wall time.
    """

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(max(warmup, 0)):
        fn()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(iters):
        fn()
    sync()
    return time.perf_counter() - t0, time.process_time() - c0


def use_baseline_kernels(model: nn.Module) -> None:
    """Run `model` on the kernels it used before the CPU speed-ups, for before/after figures.

    The adaptive block's deformable conv goes back to `torchvision.ops.deform_conv2d`, attention to
    SDPA in training too (its math path on CPU) and the transformer's dropout to `F.dropout`;
    results are the same function either way.
    """
    from grapepose.models.blocks import AdaptiveBlock
    from grapepose.models.transformer import Attention, DecoderLayer, EncoderLayer

    for m in model.modules():
        if isinstance(m, AdaptiveBlock):
            m.deform_impl = "torchvision"
        elif isinstance(m, Attention):
            m.attention_impl = "sdpa"
        elif isinstance(m, (EncoderLayer, DecoderLayer)):
            m.dropout_impl = "torch"
