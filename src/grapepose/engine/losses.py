"""Training losses (docs/DESIGN.md, Losses), as pure functions plus a small module that weights them.

All losses are computed in float32 whatever the autocast dtype of the network outputs.
Batch tensors follow `TrainingDataset`: `heatmaps`/`heatmap_weights` [B,K+1,h,w],
`offsets`/`offset_weights` [B,2K,h,w], `visibility` [B,K,h,w] (0/1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.ops import sigmoid_focal_loss

from grapepose.config import TrainConfig

__all__ = ["heatmap_loss", "offset_loss", "visibility_loss", "GrapeLoss", "LOSS_NAMES"]

LOSS_NAMES: tuple[str, ...] = ("heatmap", "offset", "refined_offset", "visibility", "total")


def heatmap_loss(pred: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """Weighted MSE, averaged over every element.

    Args:
        pred: [B,C,h,w] raw heatmaps (keypoints + centre channel).
        target: [B,C,h,w] Gaussian targets.
        weights: [B,C,h,w] per-cell weights (background weight, ignore regions at 0).

    Returns:
        Scalar tensor.
    """
    if pred.numel() == 0:
        return pred.float().sum()
    return ((pred.float() - target.float()) ** 2 * weights.float()).mean()


def offset_loss(pred: Tensor, target: Tensor, weights: Tensor, beta: float = 1.0 / 9.0) -> Tensor:
    """Smooth-L1 times `weights`, summed and divided by the number of positive weights.

    The count is taken over the whole batch and every channel (at least 1, so a batch without
    people gives 0).

    Args:
        pred: [B,2K,h,w] predicted offsets (grid units).
        target: [B,2K,h,w] target offsets.
        weights: [B,2K,h,w] per-cell weights (1/sqrt(area) on labelled cells, 0 elsewhere).
        beta: the smooth-L1 transition point.

    Returns:
        Scalar tensor.
    """
    weights = weights.float()
    num_pos = (weights > 0).sum().clamp(min=1)
    if pred.numel() == 0:
        return pred.float().sum()
    per_cell = nn.functional.smooth_l1_loss(pred.float(), target.float(), reduction="none", beta=beta)
    return (per_cell * weights).sum() / num_pos


def visibility_loss(logits: Tensor, target: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Sigmoid focal loss averaged over every element.

    Args:
        logits: [B,K,h,w] visibility logits.
        target: [B,K,h,w] 0/1 visibility maps.

    Returns:
        Scalar tensor.
    """
    if logits.numel() == 0:
        return logits.float().sum()
    return sigmoid_focal_loss(logits.float(), target.float(), alpha=alpha, gamma=gamma, reduction="mean")


class GrapeLoss(nn.Module):
    """The weighted GRAPE training loss.

    `forward(outputs, batch)` returns a dict with the weighted terms `heatmap`, `offset`,
    `refined_offset`, `visibility` and their sum `total`. For the ablation network (visibility
    None, refined offsets identical to the initial ones) the last two terms are absent.
    """

    def __init__(
        self,
        heatmap_factor: float = 10.0,
        offset_factor: float = 0.3,
        refined_offset_factor: float = 0.3,
        visibility_factor: float = 1.0,
        smooth_l1_beta: float = 1.0 / 9.0,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
    ) -> None:
        super().__init__()
        self.heatmap_factor = heatmap_factor
        self.offset_factor = offset_factor
        self.refined_offset_factor = refined_offset_factor
        self.visibility_factor = visibility_factor
        self.smooth_l1_beta = smooth_l1_beta
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> GrapeLoss:
        """The loss with the factors of `cfg`."""
        return cls(
            heatmap_factor=cfg.heatmap_loss_factor,
            offset_factor=cfg.offset_loss_factor,
            refined_offset_factor=cfg.refined_offset_loss_factor,
            visibility_factor=cfg.visibility_loss_factor,
            smooth_l1_beta=cfg.smooth_l1_beta,
            focal_alpha=cfg.focal_alpha,
            focal_gamma=cfg.focal_gamma,
        )

    def forward(self, outputs: Any, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Weighted losses of a `GrapeOutput` against a collated `TrainingDataset` batch."""
        losses: dict[str, Tensor] = {
            "heatmap": self.heatmap_factor
            * heatmap_loss(outputs.heatmaps, batch["heatmaps"], batch["heatmap_weights"]),
            "offset": self.offset_factor
            * offset_loss(outputs.offsets, batch["offsets"], batch["offset_weights"], self.smooth_l1_beta),
        }
        ablation = outputs.visibility is None
        if not ablation and outputs.refined_offsets is not outputs.offsets:
            losses["refined_offset"] = self.refined_offset_factor * offset_loss(
                outputs.refined_offsets, batch["offsets"], batch["offset_weights"], self.smooth_l1_beta
            )
        if not ablation:
            losses["visibility"] = self.visibility_factor * visibility_loss(
                outputs.visibility, batch["visibility"], self.focal_alpha, self.focal_gamma
            )
        losses["total"] = torch.stack(list(losses.values())).sum()
        return losses
