"""Names of the authors' (JBNU-VL/grape2dpose) checkpoints and their mapping onto `GrapeNet`.

The reference network (`OurNet`) names its parts `backbone.*` (HRNet names), `bottleneck`,
`head_heatmap`, `head_offset`, `bottleneck_encoder`, `bottleneck_decoder`, `global_encoder`,
`global_decoder`, `deconv`, `head_offset_attention`, `head_visibility_attention`. Its released files
wrap that network as `Sequential(to-half, net, to-float)` (prefix `1.`), sometimes inside
DataParallel (`module.`), and may nest the state dict under `state_dict`/`best_state_dict`/`model`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from grapepose.backbones import identify_backbone, stage1_blocks_of

__all__ = ["REFERENCE_PREFIXES", "from_reference_names", "infer_architecture", "is_reference_state_dict",
           "unwrap_state_dict"]  # fmt: skip

# (reference prefix, our prefix); the first match wins. `X.0.0.` is the head's block inside
# ModuleList[Sequential[block], Conv2d], `X.1.` its final 1x1 conv.
REFERENCE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("backbone.", "backbone.hrnet."),
    ("bottleneck.0.", "neck.conv."),
    ("bottleneck.1.", "neck.bn."),
    ("head_heatmap.0.0.", "heatmap_head.block."),
    ("head_heatmap.1.", "heatmap_head.out."),
    ("head_offset.0.0.", "offset_head.block."),
    ("head_offset.1.", "offset_head.out."),
    ("bottleneck_encoder.0.", "encoder_input.conv."),
    ("bottleneck_encoder.1.", "encoder_input.bn."),
    ("bottleneck_decoder.0.", "decoder_input.conv."),
    ("bottleneck_decoder.1.", "decoder_input.bn."),
    ("global_encoder.", "encoder."),
    ("global_decoder.", "decoder."),
    ("deconv.0.deconv.", "upsample.conv."),
    ("deconv.0.bn.", "upsample.bn."),
    ("head_offset_attention.0.0.transform_matrix_conv.", "refined_offset_head.block.affine."),
    ("head_offset_attention.0.0.translation_conv.", "refined_offset_head.block.translation."),
    ("head_offset_attention.0.0.adapt_conv.", "refined_offset_head.block.deform_conv."),
    ("head_offset_attention.0.0.bn.", "refined_offset_head.block.bn."),
    ("head_offset_attention.1.", "refined_offset_head.out."),
    ("head_visibility_attention.0.0.", "visibility_head.block."),
    ("head_visibility_attention.1.", "visibility_head.out."),
)
# Constant buffers of the reference that our network computes instead (the adaptive block's 3x3 grid).
_REFERENCE_CONSTANTS = ("regular_matrix",)
_NESTING_KEYS = ("state_dict", "best_state_dict", "model")
_WRAPPER_PREFIXES = ("module.", "1.")


def unwrap_state_dict(obj: Any) -> dict[str, Tensor] | None:
    """The flat tensor dict inside a loaded file (nested dicts and wrapper prefixes removed), or None."""
    for _ in range(3):  # e.g. {"state_dict": {...}}; a checkpoint's "model" may also be a name string
        if isinstance(obj, Mapping) and not _all_tensors(obj):
            inner = next((obj[k] for k in _NESTING_KEYS if isinstance(obj.get(k), Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not obj or not _all_tensors(obj):
        return None
    sd = {str(k): v for k, v in obj.items()}
    changed = True
    while changed:  # 'module.1.' (DataParallel around the fp16 wrapper), '1.', 'module.'
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix) :]: v for k, v in sd.items()}
                changed = True
    return sd


def _all_tensors(d: Mapping[Any, Any]) -> bool:
    return bool(d) and all(isinstance(v, Tensor) for v in d.values())


def is_reference_state_dict(sd: Mapping[str, Tensor]) -> bool:
    """True when `sd` uses the reference's top-level names rather than ours."""
    return any(k.startswith(("head_heatmap.", "global_encoder.", "bottleneck.")) for k in sd) or (
        any(k.startswith("backbone.") for k in sd) and not any(k.startswith("backbone.hrnet.") for k in sd)
    )


def _rename(name: str) -> str | None:
    if name.rsplit(".", 1)[-1] in _REFERENCE_CONSTANTS:
        return None
    for old, new in REFERENCE_PREFIXES:
        if name.startswith(old):
            name = new + name[len(old) :]
            if new == "decoder.":
                name = name.replace(".multihead_attn.", ".cross_attn.")
            return name
    return name  # unknown names are kept and reported as unexpected by the strict check


def from_reference_names(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a reference state dict to `GrapeNet` names, dropping the reference's constant buffers."""
    out = {}
    for name, tensor in sd.items():
        new = _rename(name)
        if new is not None:
            out[new] = tensor
    return out


def infer_architecture(sd: Mapping[str, Tensor]) -> tuple[int, str, bool] | None:
    """(num_keypoints, backbone name, global_context) from a `GrapeNet`-named state dict, or None.

    The backbone is told from its width (`transition1`) and its `layer1` block count, so
    HRNet-W18-small-v2 (2 blocks) is not mistaken for HRNet-W18 (4 blocks).
    """
    heat = sd.get("heatmap_head.out.weight")
    stem = sd.get("backbone.hrnet.transition1.0.0.weight")  # [width, 256, 3, 3]
    if heat is None or stem is None or heat.dim() != 4 or stem.dim() != 4:
        return None
    backbone = identify_backbone(int(stem.shape[0]), stage1_blocks_of(sd))
    if backbone is None:
        return None
    return int(heat.shape[0]) - 1, backbone.name, "visibility_head.out.weight" in sd
