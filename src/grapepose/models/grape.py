"""The GRAPE network: HRNet, heatmap/offset heads, transformer refinement, visibility (docs/DESIGN.md, Network)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor, nn

from grapepose.errors import GrapeposeError
from grapepose.models.backbone import HRNetBackbone
from grapepose.models.blocks import AdaptiveBlock, BasicBlock, ConvBNReLU, Head
from grapepose.models.transformer import TransformerDecoder, TransformerEncoder, sine_position_encoding

if TYPE_CHECKING:
    from grapepose.config import Config

__all__ = ["GLOBAL_CONTEXT_MODULES", "GrapeNet", "GrapeOutput"]

# Submodules of the transformer branch ("global context"); the reference trains them at their own lr.
GLOBAL_CONTEXT_MODULES = (
    "encoder_input", "decoder_input", "encoder", "decoder", "upsample", "refined_offset_head", "visibility_head",
)  # fmt: skip


class GrapeOutput(NamedTuple):
    """Raw network outputs on the h x w = H/4 x W/4 grid.

    Attributes:
        heatmaps: [B, K+1, h, w] keypoint heatmaps, last channel = person centres (no sigmoid).
        offsets: [B, 2K, h, w] initial offsets; channel 2k = x, 2k+1 = y, in grid units,
            offset = cell - joint.
        refined_offsets: [B, 2K, h, w] offsets after global context (= `offsets` without it).
        visibility: [B, K, h, w] visibility logits, or None without global context.
    """

    heatmaps: Tensor
    offsets: Tensor
    refined_offsets: Tensor
    visibility: Tensor | None


class GrapeNet(nn.Module):
    """GRAPE: bottom-up multi-person pose network.

    Args:
        num_keypoints: K, keypoint types (14 CrowdPose, 17 COCO).
        backbone: HRNet variant (`hrnet_w18`, `hrnet_w32`, `hrnet_w48`, `hrnet_w18_small_v2`).
        head_channels: channels of the shared feature F feeding the heatmap and offset heads.
        d_model: transformer width.
        nhead: attention heads.
        num_encoder_layers: transformer encoder layers.
        num_decoder_layers: transformer decoder layers.
        dim_feedforward: transformer feed-forward width.
        dropout: transformer dropout.
        bn_momentum: momentum of every BatchNorm.
        global_context: False drops the transformer branch (DEKR-style ablation).
    """

    config: Config  # set by `build_model` / `load_model`
    info: dict[str, Any]  # how the model was made (command, data, held-out AP); {} for a new network

    def __init__(
        self,
        num_keypoints: int = 14,
        backbone: str = "hrnet_w32",
        head_channels: int = 32,
        d_model: int = 128,
        nhead: int = 4,
        num_encoder_layers: int = 3,
        num_decoder_layers: int = 2,
        dim_feedforward: int = 256,
        dropout: float = 0.1,
        bn_momentum: float = 0.1,
        global_context: bool = True,
    ) -> None:
        super().__init__()
        # Constructor arguments, so a model without `.config` can still describe itself.
        self.hparams: dict[str, str | int | float | bool] = {
            "num_keypoints": num_keypoints, "backbone": backbone, "head_channels": head_channels,
            "d_model": d_model, "nhead": nhead, "num_encoder_layers": num_encoder_layers,
            "num_decoder_layers": num_decoder_layers, "dim_feedforward": dim_feedforward, "dropout": dropout,
            "bn_momentum": bn_momentum, "global_context": global_context,
        }  # fmt: skip
        k, c, m = num_keypoints, head_channels, bn_momentum
        self.num_keypoints = k
        self.global_context = global_context
        self.info = {}
        self.backbone = HRNetBackbone(backbone, m)
        self.neck = ConvBNReLU(self.backbone.out_channels, c, 1, bn_momentum=m)
        self.heatmap_head = Head(BasicBlock(c, m), c, k + 1)
        self.offset_head = Head(BasicBlock(c, m), c, 2 * k)
        if global_context:
            # Memory: keypoint heatmaps + F; queries: offsets + centre heatmap; both at h/2 x w/2.
            self.encoder_input = ConvBNReLU(k + c, d_model, 2, stride=2, bn_momentum=m)
            self.decoder_input = ConvBNReLU(2 * k + 1, d_model, 2, stride=2, bn_momentum=m)
            self.encoder = TransformerEncoder(num_encoder_layers, d_model, nhead, dim_feedforward, dropout)
            self.decoder = TransformerDecoder(num_decoder_layers, d_model, nhead, dim_feedforward, dropout)
            self.upsample = ConvBNReLU(d_model, d_model, 4, stride=2, padding=1, transposed=True, bn_momentum=m)
            self.refined_offset_head = Head(AdaptiveBlock(d_model, m), d_model, 2 * k)
            self.visibility_head = Head(BasicBlock(d_model, m), d_model, k)

    def global_context_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the transformer branch (`GLOBAL_CONTEXT_MODULES`); empty without it.

        For a separate learning-rate group (docs/DESIGN.md, Losses). Note: the reference's train.py
        actually puts only the backbone (its first 915 parameters) in the low-rate group, so its neck and first
        heads also train at the high rate; use `model.backbone.parameters()` to reproduce that split.
        """
        for name in GLOBAL_CONTEXT_MODULES:
            if hasattr(self, name):
                yield from getattr(self, name).parameters()

    def forward(self, images: Tensor) -> GrapeOutput:
        """Run the network.

        Args:
            images: [B, 3, H, W] float, normalised with `inference.preprocess.normalize_images`; H, W multiples of 32.

        Returns:
            `GrapeOutput` with maps on the [h, w] = [H/4, W/4] grid: heatmaps [B, K+1, h, w],
            offsets and refined_offsets [B, 2K, h, w], visibility [B, K, h, w] or None.
        """
        if not torch.compiler.is_compiling():
            _check_images(images)
        k = self.num_keypoints
        features = self.neck(self.backbone(images))  # F: [B, c, h, w]
        heatmaps = self.heatmap_head(features)
        offsets = self.offset_head(features)
        if not self.global_context:
            return GrapeOutput(heatmaps, offsets, offsets, None)

        memory = self.encoder_input(torch.cat([heatmaps[:, :k], features], 1))  # [B, d, h/2, w/2]
        queries = self.decoder_input(torch.cat([offsets, heatmaps[:, k:]], 1))
        b, d, hh, ww = memory.shape
        pos = sine_position_encoding(hh, ww, d, device=memory.device, dtype=memory.dtype)
        # [B, d, h', w'] -> [B, h'w', d] (row-major tokens); free for channels_last tensors.
        memory = self.encoder(memory.permute(0, 2, 3, 1).reshape(b, hh * ww, d), pos)
        tokens = self.decoder(queries.permute(0, 2, 3, 1).reshape(b, hh * ww, d), memory, pos)
        context = self.upsample(tokens.reshape(b, hh, ww, d).permute(0, 3, 1, 2))  # [B, d, h, w]
        return GrapeOutput(heatmaps, offsets, self.refined_offset_head(context), self.visibility_head(context))


def _check_images(images: Tensor) -> None:
    shape = tuple(images.shape)
    if images.dim() != 4:
        raise GrapeposeError(f"GrapeNet expects images [B, 3, H, W], got a {images.dim()}-D tensor of shape {shape}")
    if shape[1] != 3:
        raise GrapeposeError(f"GrapeNet expects 3 colour channels, got {shape[1]} in images of shape {shape}")
    if shape[2] % 32 or shape[3] % 32 or shape[2] == 0 or shape[3] == 0:
        raise GrapeposeError(f"GrapeNet needs H and W to be positive multiples of 32, got images of shape {shape}")
    if not images.is_floating_point():
        raise GrapeposeError(f"GrapeNet expects float images (normalised), got {images.dtype} of shape {shape}")
