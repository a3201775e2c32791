"""The torchrun helper shared by `train`, `evaluate` and `predict`: where this process sits in the job,
joining and leaving its process group, and the few collectives the trainer needs.

`torchrun` sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; a process without them
is a world of one and needs no process group. The variables are read here only (`torchrun_env`), so
a bad value is the same one-line `ConfigError` on every command. It lives in `utils`, beside the
device resolver, because training (`engine`) and the predict job (`predict_job`) both use it.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from grapepose.errors import ConfigError
from grapepose.utils.device import resolve_device

__all__ = ["DistInfo", "torchrun_env", "env_rank", "world_size", "setup_distributed", "cleanup_distributed",
           "barrier", "all_reduce_mean", "broadcast_"]  # fmt: skip

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 7200.0  # collectives wait this long (rank 0 may validate or merge while the others wait)


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


def _env_int(name: str, default: int, lo: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = lo - 1
    if value < lo:
        raise ConfigError(f"torchrun environment: {name}={text!r} is not an integer >= {lo}")
    return value


def torchrun_env() -> tuple[int, int, int]:
    """`(rank, local_rank, world_size)` as torchrun set them; `(0, 0, 1)` outside torchrun.

    Raises:
        ConfigError: a variable is not an integer, or RANK is not below WORLD_SIZE.
    """
    world = _env_int("WORLD_SIZE", 1, 1)
    rank, local = _env_int("RANK", 0, 0), _env_int("LOCAL_RANK", 0, 0)
    if rank >= world:
        raise ConfigError(f"torchrun environment: RANK={rank} is not below WORLD_SIZE={world}")
    return rank, local, world


def env_rank() -> int:
    """This process's global rank (0 outside torchrun)."""
    return torchrun_env()[0]


def world_size() -> int:
    """The number of processes in the job (1 outside torchrun)."""
    return torchrun_env()[2]


def setup_distributed(
    device: str | torch.device | None = None, timeout_s: float = DEFAULT_TIMEOUT_S, backend: str | None = None
) -> DistInfo:
    """This process's device, and the torchrun process group joined if there is one (gloo on CPU, nccl on CUDA).

    Args:
        device: "cpu", "cuda" or None (CUDA when available). Under torchrun, "cuda" means the GPU
            at LOCAL_RANK.
        timeout_s: collective timeout.
        backend: force a backend (e.g. "gloo" for a job that exchanges only small Python objects).

    Raises:
        ConfigError: a bad device or torchrun environment.
    """
    rank, local, world = torchrun_env()
    dev = resolve_device(device, local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
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
