"""One optimisation step, shared by the trainer and the training benchmark."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from grapepose.engine.precision import Precision

__all__ = ["forward_backward", "apply_update"]


def forward_backward(net: nn.Module, batch: Mapping[str, Tensor], criterion: nn.Module, precision: Precision,
                     scaler: torch.amp.GradScaler, optimizer: torch.optim.Optimizer,
                     device: torch.device) -> dict[str, Tensor]:  # fmt: skip
    """Forward under autocast, float32 losses, (scaled) backward; gradients are left in place.

    Args:
        net: the network (maybe DDP-wrapped); returns a `GrapeOutput`.
        batch: collated `TrainingDataset` items (`image` [B,3,S,S] and the targets).

    Returns:
        The weighted losses (see `GrapeLoss`), detached from nothing: `total` was backpropagated.
    """
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    images = batch["image"].to(device, non_blocking=True).contiguous(memory_format=fmt)
    targets = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k != "image"}
    with precision.autocast():
        outputs = net(images)
    losses = criterion(outputs, targets)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(losses["total"]).backward()
    return losses


def apply_update(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None, grad_clip: float) -> None:  # fmt: skip
    """Clip (if `grad_clip > 0`), step the optimizer through the scaler, advance the schedule."""
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    if scheduler is not None:
        with warnings.catch_warnings():
            # fp16: a step the scaler skipped (inf gradients) still advances the per-step schedule
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)`")
            scheduler.step()
