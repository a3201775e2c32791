"""The one table of HRNet backbones: config name, branch width, timm model, preset suffix.

Presets (`coco_w18s`), the network builder, checkpoint sniffing and conversion all read this table.
It is plain data (no torch import) so `grapepose.config` can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "BACKBONES", "Backbone", "IMAGENET_MEAN", "IMAGENET_STD", "backbone_by_suffix", "backbone_info",
    "identify_backbone", "stage1_blocks_of",
]  # fmt: skip

# The backbones learnt ImageNet with RGB in [0, 1] normalised by its mean and std, so the network takes
# images so normalised (`grapepose.inference.preprocess.normalize_images`).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Backbone:
    """One HRNet variant.

    Attributes:
        name: the `model.backbone` value (also timm's model name).
        width: channels of the highest-resolution branch (18, 32, 48).
        timm_name: the `timm.create_model` name.
        suffix: preset suffix (`coco_<suffix>`).
        stage1_blocks: Bottleneck blocks in HRNet's `layer1`; with `width` it tells variants apart
            in a state dict that carries no config.
        reference: one of the authors' networks (the small model is ours).
    """

    name: str
    width: int
    timm_name: str
    suffix: str
    stage1_blocks: int
    reference: bool = True


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone("hrnet_w18", 18, "hrnet_w18", "w18", 4),
        Backbone("hrnet_w32", 32, "hrnet_w32", "w32", 4),
        Backbone("hrnet_w48", 48, "hrnet_w48", "w48", 4),
        # HRNet-W18-small-v2: fewer blocks (3.9M parameters against W18's 9.6M), for CPUs and shipping.
        Backbone("hrnet_w18_small_v2", 18, "hrnet_w18_small_v2", "w18s", 2, reference=False),
    )
}


def backbone_info(name: str) -> Backbone:
    """The table entry for a `model.backbone` name (KeyError when unknown)."""
    return BACKBONES[name]


def backbone_by_suffix(suffix: str) -> Backbone:
    """The table entry for a preset suffix (`w18s` -> HRNet-W18-small-v2)."""
    for b in BACKBONES.values():
        if b.suffix == suffix:
            return b
    raise KeyError(suffix)


def identify_backbone(width: int, stage1_blocks: int | None) -> Backbone | None:
    """The variant with this width and `layer1` block count (None: the count is unknown, prefer the
    reference network of that width); None when no variant fits."""
    fits = [b for b in BACKBONES.values() if b.width == width]
    if stage1_blocks is not None:
        fits = [b for b in fits if b.stage1_blocks == stage1_blocks]
    else:
        fits.sort(key=lambda b: not b.reference)
    return fits[0] if fits else None


def stage1_blocks_of(keys: Mapping[str, object] | list[str], prefix: str = "backbone.hrnet.") -> int | None:
    """How many `layer1.N.` blocks a state dict holds (None when it has no `layer1`)."""
    start = f"{prefix}layer1."
    seen = {k[len(start) :].split(".", 1)[0] for k in keys if k.startswith(start)}
    idx = [int(s) for s in seen if s.isascii() and s.isdigit()]
    return max(idx) + 1 if idx else None
