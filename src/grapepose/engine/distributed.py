"""Distributed-training helpers for processes started by `torchrun` (never spawned by us).

`torchrun` sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; a process without them
is a world of one and needs no process group.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from grapepose.utils.device import resolve_device

__all__ = ["DistInfo", "env_rank", "setup_distributed", "cleanup_distributed", "barrier", "all_reduce_mean",
           "broadcast_"]  # fmt: skip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_rank() -> int:
    """This process's global rank as told by torchrun (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


def _resolve_device(device: str | torch.device | None, local_rank: int) -> torch.device:
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return dev


def setup_distributed(
    device: str | torch.device | None = None, timeout_s: float = 7200.0, backend: str | None = None
) -> DistInfo:
    """Join the torchrun process group if there is one (gloo on CPU, nccl on CUDA).

    Args:
        device: "cpu", "cuda" or None (CUDA when available). Under torchrun, "cuda" means the GPU
            at LOCAL_RANK.
        timeout_s: collective timeout (rank 0 validates while the others wait).
        backend: force a backend (e.g. "gloo" for a job that exchanges only small Python objects).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = env_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    dev = _resolve_device(device, local)
    if world <= 1:
        return DistInfo(0, 0, 1, dev)
    if not dist.is_initialized():
        backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
        kwargs = {"device_id": dev} if backend == "nccl" else {}
        dist.init_process_group(
            backend=backend, timeout=datetime.timedelta(seconds=timeout_s), **kwargs  # type: ignore[arg-type]
        )
        log.debug("rank %d/%d joined the %s process group on %s", rank, world, backend, dev)
    return DistInfo(dist.get_rank(), local, dist.get_world_size(), dev)


def cleanup_distributed() -> None:
    """Leave the process group (no-op outside one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean of `t` over the ranks (returns `t` itself outside a process group)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / dist.get_world_size()


def broadcast_(t: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite `t` with rank `src`'s values, in place (no-op outside a process group)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.broadcast(t, src=src)
    return t
