"""Optimizer and learning-rate schedule (docs/DESIGN.md, Losses).

Adam with one parameter group, or two when `train.transformer_lr > 0` (the transformer-side modules
at that rate, as the reference does when fine-tuning a DEKR-style model). The schedule is applied
per optimisation step: linear warm-up, then either steps at the epochs in `train.lr_steps`
(multiplying by `train.lr_factor` at each) or a cosine decay to zero at the last step.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from grapepose.config import TrainConfig

__all__ = ["build_optimizer", "build_scheduler", "lr_multiplier"]

log = logging.getLogger(__name__)


def _fast_parameters(model: nn.Module, split: str) -> list[nn.Parameter]:
    """The parameters trained at `transformer_lr`: the transformer branch, or all but the backbone."""
    if split == "backbone":  # the reference's train.py: only the backbone stays at the base rate
        backbone = getattr(model, "backbone", None)
        slow = {id(p) for p in backbone.parameters()} if backbone is not None else set()
        return [p for p in model.parameters() if id(p) not in slow]
    getter = getattr(model, "global_context_parameters", None)
    if getter is None:
        return []
    return list(getter())


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Adam:
    """Adam over `model`'s trainable parameters.

    Group 0 holds every parameter at `cfg.lr`; with `cfg.transformer_lr > 0` group 1 holds, at that
    rate, `model.global_context_parameters()` (`cfg.lr_split="global_context"`, docs/DESIGN.md,
    Losses) or every parameter outside `model.backbone` (`"backbone"`, what the reference's train.py
    does), and group 0 the rest.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups: list[dict] = []
    if cfg.transformer_lr > 0:
        side = {id(p) for p in _fast_parameters(model, cfg.lr_split) if p.requires_grad}
        if not side:
            log.warning("train.transformer_lr is set but the model has no global-context parameters; one group")
        rest = [p for p in params if id(p) not in side]
        groups.append({"params": rest, "lr": cfg.lr, "name": "base"})
        if side:
            groups.append({"params": [p for p in params if id(p) in side], "lr": cfg.transformer_lr,
                           "name": "global_context"})  # fmt: skip
    else:
        groups.append({"params": params, "lr": cfg.lr, "name": "base"})
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_multiplier(step: int, cfg: TrainConfig, steps_per_epoch: int) -> float:
    """The factor applied to every group's base lr for optimisation step `step` (0-based).

    Args:
        step: number of optimizer steps already taken.
        cfg: `warmup_steps`, `schedule`, `lr_steps` (epochs), `lr_factor`, `epochs`.
        steps_per_epoch: optimizer steps per epoch.
    """
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    if cfg.schedule == "cosine":
        total = max(1, cfg.epochs * steps_per_epoch)
        decay = 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    else:
        milestones = sorted(e * steps_per_epoch for e in cfg.lr_steps)
        decay = cfg.lr_factor ** bisect.bisect_right(milestones, step)
    return warm * decay


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> LambdaLR:
    """A per-step `LambdaLR` following `lr_multiplier`.

    The schedule is a plain closure, so `state_dict()` holds only counters and a resumed run with
    a different `cfg.epochs` follows the new schedule.
    """
    fn: Callable[[int], float] = lambda step: lr_multiplier(step, cfg, steps_per_epoch)  # noqa: E731
    return LambdaLR(optimizer, fn)
