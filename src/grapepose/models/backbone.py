"""HRNet backbone (timm's implementation) fused on the 1/4 grid (docs/DESIGN.md, Network).

timm's HRNet uses the parameter names of the original HRNet code (conv1, bn1, conv2, bn2, layer1,
transition1..3, stage2..4), so the authors' and HRNet's ImageNet weights load by name.
"""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from grapepose.backbones import BACKBONES

__all__ = ["HRNetBackbone"]


class HRNetBackbone(nn.Module):
    """HRNet: the four branch outputs, the lower three bilinearly upsampled and concatenated.

    Args:
        variant: a name in `grapepose.backbones.BACKBONES` (`"hrnet_w32"`, ...) or a width (18, 32, 48).
        bn_momentum: momentum of every BatchNorm.

    Output channels: 15 * width (270 for W18, 480 for W32, 720 for W48).
    """

    def __init__(self, variant: str | int = "hrnet_w32", bn_momentum: float = 0.1) -> None:
        super().__init__()
        name = f"hrnet_w{variant}" if isinstance(variant, int) else variant
        if name not in BACKBONES:
            raise ValueError(f"HRNet backbone must be one of {sorted(BACKBONES)}, got {variant!r}")
        self.variant = name
        self.width = BACKBONES[name].width
        # pretrained=False: timm must never download; weights come from our checkpoints.
        # feature_location='' keeps HRNet's own branch outputs (no classification 'incre' modules);
        # out_indices 1..4 are the four branches (index 0 would be the stride-2 stem).
        self.hrnet = timm.create_model(
            BACKBONES[name].timm_name, pretrained=False, features_only=True, feature_location="", out_indices=(1, 2, 3, 4)
        )
        self.branch_channels: tuple[int, ...] = tuple(self.hrnet.feature_info.channels())
        self.out_channels = sum(self.branch_channels)
        self.reset_parameters(bn_momentum)

    def reset_parameters(self, bn_momentum: float = 0.1) -> None:
        """HRNet's initialisation: convolutions N(0, 0.001), BatchNorm weight 1, bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                m.momentum = bn_momentum

    def forward(self, x: Tensor) -> Tensor:
        """[B, 3, H, W] -> [B, 15 * width, H / 4, W / 4]."""
        first, *lower = self.hrnet(x)
        size = first.shape[-2:]
        up = [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in lower]
        return torch.cat([first, *up], dim=1)
