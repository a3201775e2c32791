"""The one switch between the network's own kernels and PyTorch's, for the three operations that have both.

Each pair computes the same function (to float rounding); the choice changes speed, memory and the
ONNX operators, never parameters or results, so checkpoints do not record it.

- the adaptive block's 3x3 deformable conv: `deform.deform_conv3x3` (`grid_sample` + one matmul), or
  `torchvision.ops.deform_conv2d`;
- attention with dropout, training on CPU: `transformer.dropout_attention`, or SDPA (its math path);
- the transformer's other dropouts, training on CPU: masks from `transformer.keep_mask`, or `F.dropout`.

The choice is one of `KERNELS`: `auto` (the default) runs the own kernels on CPU, where they are
measured faster (docs/BENCHMARKS.md), and PyTorch's elsewhere; `own` runs them on every device (the
dropout forms exist on CPU only); `torch` runs PyTorch's everywhere (`grapepose bench ... --baseline`).
The environment variable `GRAPEPOSE_KERNELS` sets it for a process and is read here only, at each
use; `use_kernels` sets it for a block of code (the ONNX export chooses its deformable conv so).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar

import torch

from grapepose.errors import ConfigError

__all__ = ["KERNELS", "KERNELS_ENV", "kernel_choice", "own_kernels", "use_kernels"]

KERNELS = ("auto", "own", "torch")
KERNELS_ENV = "GRAPEPOSE_KERNELS"

_scoped: ContextVar[str | None] = ContextVar("grapepose_kernels", default=None)


def kernel_choice() -> str:
    """The choice in force: the innermost `use_kernels`, else `GRAPEPOSE_KERNELS`, else `auto`.

    Raises:
        ConfigError: `GRAPEPOSE_KERNELS` is not one of `KERNELS`.
    """
    scoped = _scoped.get()
    if scoped is not None:
        return scoped
    value = os.environ.get(KERNELS_ENV, "").strip().lower() or "auto"
    if value not in KERNELS:
        raise ConfigError(f"{KERNELS_ENV}={value!r} is not one of {', '.join(KERNELS)}")
    return value


def own_kernels(device: torch.device) -> bool:
    """Whether the own kernels run for tensors on `device`."""
    choice = kernel_choice()
    return choice == "own" or (choice == "auto" and device.type == "cpu")


@contextlib.contextmanager
def use_kernels(choice: str) -> Iterator[None]:
    """Run the block with kernel `choice` (one of `KERNELS`) in this thread, whatever `GRAPEPOSE_KERNELS` says."""
    if choice not in KERNELS:
        raise ValueError(f"kernels must be one of {', '.join(KERNELS)}, got {choice!r}")
    token = _scoped.set(choice)
    try:
        yield
    finally:
        _scoped.reset(token)
