"""From raw network outputs to the maps decoding reads: pose fields, flip merging, upsampling."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

__all__ = ["PoseMaps", "pose_field", "to_pose_maps", "merge_flip", "upsample_maps", "sample_upsampled", "valid_cells",
           "probabilities"]


class PoseMaps(NamedTuple):
    """One test scale's outputs in decoding form (float32, flip-merged when flip test is on).

    Attributes:
        heatmaps: `[B, K+1, h, w]` raw keypoint heatmaps, last channel = person centres.
        poses: `[B, K, 2, h, w]` pose field in grid units: joint k of the person centred at a cell.
        visibility: `[B, K, h, w]` visibility probabilities (after sigmoid), or None.
    """

    heatmaps: torch.Tensor
    poses: torch.Tensor
    visibility: torch.Tensor | None


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


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """sigmoid(`logits`) in float32, with the same arithmetic at every position of the tensor.

    On the CPU `torch.sigmoid` computes the elements after the last whole vector register apart,
    which changes the last bit of a few percent of them: an image's visibility would depend on its
    place in the batch. `exp` is vectorised to the end of the tensor; `+ 1` and `1 / x` are exact.
    """
    return torch.exp(-logits.float()).add_(1.0).reciprocal_()


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


def valid_cells(n_in: int, n_out: int, factor: float) -> int:
    """Grid cells that map inside an output of `n_out` px (the rest is canvas padding)."""
    return min(n_in, max(1, math.ceil(n_out / factor - 1e-6)))


def _linear_weights(n_out: int, n_in: int, factor: float, n_valid: int, device: torch.device) -> tuple[
    torch.Tensor, torch.Tensor, torch.Tensor
]:
    src = torch.arange(n_out, device=device, dtype=torch.float64) / factor
    src = src.clamp(max=n_valid - 1).to(torch.float32)
    i0 = src.floor().long().clamp(0, n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    return i0, i1, src - i0.float()


def upsample_maps(maps: torch.Tensor, factor: float, size: tuple[int, int]) -> torch.Tensor:
    """Upsample grid maps so that cell i lands on pixel `factor * i` (reference `up_interpolate`).

    Bilinear (align_corners) between cells, replicated past the last valid cell. For an integer
    factor with `size == factor * grid` this is exactly the reference: interpolate to
    `size - factor + 1`, then replicate-pad by `factor - 1`. Cells beyond `size / factor` (padding
    of the network canvas) are never read.

    Args:
        maps: `[B, C, h, w]`.
        factor: input pixels per cell (4 / test scale).
        size: output `(H, W)`.

    Returns:
        `[B, C, H, W]` float32.
    """
    b, c, h, w = maps.shape
    out_h, out_w = size
    if b * c == 0:
        return maps.new_zeros((b, c, out_h, out_w), dtype=torch.float32)
    maps = maps.float()
    f_int = round(factor)
    if abs(factor - f_int) < 1e-9 and f_int * h == out_h and f_int * w == out_w:
        if f_int == 1:
            return maps
        up = F.interpolate(maps, size=(out_h - f_int + 1, out_w - f_int + 1), mode="bilinear", align_corners=True)
        return F.pad(up, (0, f_int - 1, 0, f_int - 1), mode="replicate")
    y0, y1, wy = _linear_weights(out_h, h, factor, valid_cells(h, out_h, factor), maps.device)
    x0, x1, wx = _linear_weights(out_w, w, factor, valid_cells(w, out_w, factor), maps.device)
    rows = maps[:, :, y0] * (1 - wy)[:, None] + maps[:, :, y1] * wy[:, None]  # [B, C, H, w]
    return rows[..., x0] * (1 - wx) + rows[..., x1] * wx


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
