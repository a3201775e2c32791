"""The decoder's maps built densely: the forms `grapepose.inference.decode.reader` computes pointwise.

The flip merge of whole maps (`merge_flip`, `to_pose_maps` without flip), the upsampled maps read
at points (`sample_upsampled`) and windows cut from full maps (`map_windows`): what `ScaleReader`
must equal, and what `reference_decode` decodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from grapepose.inference.decode.reader import PoseMaps, probabilities, valid_cells
from grapepose.inference.decode.refine import Windows

__all__ = ["map_windows", "merge_flip", "pose_field", "sample_upsampled", "to_pose_maps"]


def pose_field(offsets: torch.Tensor) -> torch.Tensor:
    """`[B, 2K, h, w]` offsets (channel 2k = x, 2k+1 = y; offset = cell - joint) -> `[B, K, 2, h, w]` poses."""
    b, c, h, w = offsets.shape
    off = offsets.float().view(b, c // 2, 2, h, w)
    ys, xs = torch.meshgrid(
        torch.arange(h, device=offsets.device, dtype=torch.float32),
        torch.arange(w, device=offsets.device, dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack([xs, ys]) - off  # cells [2, h, w] broadcast over batch and joints


def to_pose_maps(output: Any) -> PoseMaps:
    """A `GrapeOutput` (heatmaps, refined_offsets, visibility logits) as `PoseMaps`, no flip."""
    vis = output.visibility
    return PoseMaps(
        output.heatmaps.float(),
        pose_field(output.refined_offsets),
        None if vis is None else probabilities(vis),
    )


def merge_flip(output: Any, flipped: Any, flip_index: Sequence[int]) -> PoseMaps:
    """Average the outputs of an input and of its mirrored copy (docs/DESIGN.md, Decoding, step 2).

    Args:
        output: `GrapeOutput` of the input.
        flipped: `GrapeOutput` of the mirrored (and `flip_shift`-ed) input, same shapes.
        flip_index: `flip_index[k]` is the joint that k becomes when mirrored (length K).

    Returns:
        `PoseMaps` with heatmaps/visibility mirrored back, left/right channels swapped (centre
        channel stays) and averaged; the mirrored pose field is mirrored back (x -> w - 1 - x) and
        permuted before averaging.
    """
    base = to_pose_maps(output)
    k = base.poses.shape[1]
    if len(flip_index) != k:
        raise ValueError(f"flip_index has {len(flip_index)} entries but the outputs have {k} keypoints")
    perm = torch.as_tensor(list(flip_index), dtype=torch.long, device=base.heatmaps.device)
    perm_c = torch.cat([perm, perm.new_tensor([k])])
    w = base.heatmaps.shape[-1]

    heat_f = torch.flip(flipped.heatmaps.float(), dims=[3])[:, perm_c]
    poses_f = torch.flip(pose_field(flipped.refined_offsets), dims=[4])[:, perm]
    poses_f = torch.stack([(w - 1) - poses_f[:, :, 0], poses_f[:, :, 1]], dim=2)
    vis = None
    if base.visibility is not None and flipped.visibility is not None:
        vis_f = torch.flip(probabilities(flipped.visibility), dims=[3])[:, perm]
        vis = (base.visibility + vis_f) / 2.0
    return PoseMaps((base.heatmaps + heat_f) / 2.0, (base.poses + poses_f) / 2.0, vis)


def sample_upsampled(maps: torch.Tensor, factor: float, size: tuple[int, int], points: torch.Tensor) -> torch.Tensor:
    """Values of `upsample_maps(maps, factor, size)` at the floor of given points, without upsampling.

    Args:
        maps: `[B, C, h, w]`.
        points: `[B, M, C, 2]` (x, y) pixel positions, one per channel; clamped into the image.

    Returns:
        `[B, M, C]` float32.
    """
    b, c, h, w = maps.shape
    out_h, out_w = size
    px = points[..., 0].floor().clamp(0, out_w - 1)
    py = points[..., 1].floor().clamp(0, out_h - 1)
    sx = (px.double() / factor).clamp(max=valid_cells(w, out_w, factor) - 1).float()
    sy = (py.double() / factor).clamp(max=valid_cells(h, out_h, factor) - 1).float()
    x0, y0 = sx.floor().long().clamp(0, w - 1), sy.floor().long().clamp(0, h - 1)
    x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
    ax, ay = sx - x0.float(), sy - y0.float()
    flat = maps.float().reshape(b, c, h * w).transpose(1, 2)  # [B, hw, C]

    def at(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        return flat.gather(1, yy * w + xx)

    top = at(y0, x0) * (1 - ax) + at(y0, x1) * ax
    bottom = at(y1, x0) * (1 - ax) + at(y1, x1) * ax
    return top * (1 - ay) + bottom * ay


def map_windows(heatmaps: torch.Tensor) -> Windows:
    """`windows(center, r)`: the `[2r+1, 2r+1, J]` windows (rows y, columns x) of `[B, K, H, W]` maps
    around `[B, N, K, 2]` pixels, joints `J = B * N * K` last.

    Positions outside the maps read the nearest border pixel (the fit masks them).
    """
    b, k, h, w = heatmaps.shape
    flat = heatmaps.float().reshape(-1)

    def windows(center: torch.Tensor, radius: int) -> torch.Tensor:
        n = center.shape[1]
        c = center.reshape(-1, 2).T  # [2, J]
        offs = torch.arange(-radius, radius + 1, device=center.device)[:, None]
        px = (c[0] + offs).clamp(0, w - 1)[None]  # [1, S(x), J]
        py = (c[1] + offs).clamp(0, h - 1)[:, None]  # [S(y), 1, J]
        j = torch.arange(c.shape[1], device=center.device)
        plane = torch.div(j, n * k, rounding_mode="floor") * k + j % k  # [J] the joint's map
        index = (plane * h + py) * w + px
        return flat.index_select(0, index.reshape(-1)).view(index.shape)

    return windows
