"""The timing loop shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def time_calls(fn: Callable[[], object], warmup: int, iters: int, device: torch.device) -> float:
    """Seconds taken by `iters` calls of `fn` after `warmup` untimed ones.

    CUDA work is synchronised before and after the timed calls, and the CUDA peak-memory counter is
    reset after the warm-up, so `torch.cuda.max_memory_allocated` afterwards covers the timed calls.
    """

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(max(warmup, 0)):
        fn()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return time.perf_counter() - t0
