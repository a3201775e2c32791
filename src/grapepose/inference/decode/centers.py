"""Person centres: local maxima of the centre heatmap (docs/DESIGN.md, Decoding, step 3)."""

from __future__ import annotations

import torch

__all__ = ["center_pool_kernel", "find_centers", "local_maxima", "max_filter"]


def center_pool_kernel(height: int, width: int, kernel: int = 0) -> int:
    """Max-pool kernel for centre NMS: `kernel` if set, else 3, 5 or 7 for mean sides <=200, <=300, >300."""
    if kernel > 0:
        return kernel
    side = (height + width) / 2.0
    return 7 if side > 300 else 5 if side > 200 else 3


def max_filter(maps: torch.Tensor, kernel: int) -> torch.Tensor:
    """`kernel x kernel` sliding maximum of `[B, C, h, w]` (= max_pool2d, stride 1, same size).

    Separable maxima of shifted slices (no padded copies): several times faster than `max_pool2d`
    on CPU, and exactly equal.
    """
    r = (kernel - 1) // 2
    rows = maps.clone()
    for d in range(1, r + 1):  # the neighbours d cells to the left and to the right (none past the edge)
        torch.maximum(rows[..., d:], maps[..., :-d], out=rows[..., d:])
        torch.maximum(rows[..., :-d], maps[..., d:], out=rows[..., :-d])
    out = rows.clone()
    for d in range(1, r + 1):  # then above and below
        torch.maximum(out[..., d:, :], rows[..., :-d, :], out=out[..., d:, :])
        torch.maximum(out[..., :-d, :], rows[..., d:, :], out=out[..., :-d, :])
    return out


def local_maxima(maps: torch.Tensor, kernel: int) -> torch.Tensor:
    """Boolean `[B, C, h, w]`: cells equal to the max of their `kernel x kernel` neighbourhood."""
    return max_filter(maps, kernel) == maps


def find_centers(
    center_maps: torch.Tensor, max_people: int, threshold: float, kernel: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The `max_people` strongest local maxima of each centre map.

    Args:
        center_maps: `[B, h, w]` raw centre heatmaps.
        max_people: peaks kept per image before thresholding.
        threshold: a peak counts when its value is above this.
        kernel: max-pool kernel (0: by map size, see `center_pool_kernel`).

    Returns:
        scores `[B, P]`, flat cell indices `[B, P]` (y * w + x) and validity `[B, P]`, sorted by
        score, with `P = min(max_people, h * w)`.
    """
    b, h, w = center_maps.shape
    p = min(max_people, h * w)
    if b == 0 or p == 0:
        empty = center_maps.new_zeros((b, p))
        return empty, empty.long(), empty.bool()
    maps = center_maps.float().unsqueeze(1)
    peaks = maps * local_maxima(maps, center_pool_kernel(h, w, kernel))  # the reference zeroes non-maxima
    scores, index = peaks.view(b, h * w).topk(p, dim=1)
    return scores, index, scores > threshold
