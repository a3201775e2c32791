"""Training telemetry: running loss means, throughput and TensorBoard scalars (rank 0 only)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

__all__ = ["Monitor"]

log = logging.getLogger(__name__)


class Monitor:
    """Accumulates per-step losses and writes them every `interval` steps.

    Args:
        log_dir: TensorBoard folder; None (other ranks, tests) writes nothing.
        interval: steps between log lines / TensorBoard points (0: never).
        images_per_step: images processed per optimisation step over all ranks.
    """

    def __init__(self, log_dir: Path | None, interval: int, images_per_step: int) -> None:
        self.interval = interval
        self.images_per_step = images_per_step
        self._writer: Any = None
        if log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter  # slow import; rank 0 only

            self._writer = SummaryWriter(str(log_dir))
        self._sums: dict[str, float] = defaultdict(float)
        self._count = 0
        self._t0 = time.perf_counter()
        self.images_per_s = 0.0

    def restart_clock(self) -> None:
        """Start a new throughput window (after validation or checkpointing)."""
        self._t0 = time.perf_counter()
        self._sums.clear()
        self._count = 0

    def update(self, step: int, epoch: int, losses: dict[str, float], lrs: list[float]) -> None:
        """Record the losses of optimisation step `step` (1-based count of steps done)."""
        for k, v in losses.items():
            self._sums[k] += v
        self._count += 1
        if self.interval <= 0 or step % self.interval:
            return
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        self.images_per_s = self._count * self.images_per_step / elapsed
        means = {k: v / self._count for k, v in self._sums.items()}
        log.info(
            "epoch %d step %d  %s  lr %s  %.1f img/s", epoch, step,
            "  ".join(f"{k} {v:.4g}" for k, v in means.items()), " ".join(f"{lr:.3g}" for lr in lrs),
            self.images_per_s,
        )  # fmt: skip
        if self._writer is not None:
            for k, v in means.items():
                self._writer.add_scalar(f"loss/{k}", v, step)
            for i, lr in enumerate(lrs):
                self._writer.add_scalar(f"lr/group{i}", lr, step)
            self._writer.add_scalar("perf/images_per_s", self.images_per_s, step)
        self.restart_clock()

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        """Write extra scalars (validation metrics) at `step`."""
        if self._writer is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    self._writer.add_scalar(f"{prefix}/{k}", float(v), step)
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
