"""The one timing loop of the benchmarks: every `grapepose bench` topic times its calls with `time_calls`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(frozen=True)
class Timing:
    """What `time_calls` measured over its timed calls."""

    calls: tuple[float, ...]  # wall seconds of each call
    seconds: float  # wall seconds of all of them, from the first call's start to the last one's end
    cpu_seconds: float  # this process's CPU seconds over them (with one thread, steadier than the wall time)

    @property
    def median_ms(self) -> float:
        ordered = sorted(self.calls)
        mid = len(ordered) // 2
        return 1000.0 * (ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2)

    @property
    def best_ms(self) -> float:
        """The fastest call: on a shared machine, the least disturbed one."""
        return 1000.0 * min(self.calls)


def time_calls(fn: Callable[[], object], iters: int, warmup: int = 0, device: torch.device | None = None) -> Timing:
    """Call `fn` `warmup` times untimed, then `iters` times timed, one after another.

    With a CUDA `device`, the device is synchronised before the timed calls and after each of them (a
    call's time includes its kernels), and its peak-memory counter is reset after the warm-up, so
    `torch.cuda.max_memory_allocated` afterwards covers the timed calls.
    """
    cuda = device is not None and device.type == "cuda"
    if cuda:
        import torch

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    for _ in range(max(warmup, 0)):
        fn()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    calls = []
    start, cpu = time.perf_counter(), time.process_time()
    t = start
    for _ in range(iters):
        fn()
        sync()
        now = time.perf_counter()
        calls.append(now - t)
        t = now
    return Timing(tuple(calls), t - start, time.process_time() - cpu)
