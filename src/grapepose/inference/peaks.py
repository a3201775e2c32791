"""Snapping peaks of the averaged upsampled heatmaps found on the grid, not on the full maps.

The reference takes the `num` highest `kernel x kernel` local maxima of each averaged keypoint
heatmap at input resolution. That map is, for test scales with integer factors `f = 4 / s`, the
sum of bilinear interpolations whose knots are multiples of `g = gcd(f)` (plus a constant strip
after the last knot, where every scale replicates its last valid cell): on each `g x g` lattice
cell it is bilinear, so along any row or column it is linear between knots. Hence (for
`r = kernel // 2 <= g`):

- a pixel strictly between two knots has a strictly larger neighbour unless the row is flat there,
  so the local maxima are the lattice points and the pixels of the final strip (equal values, as
  the reference's replicated border), except on exactly flat plateaus, where the reference's own
  choice among equal values is arbitrary too;
- the maximum of the window around a candidate is attained at the corners of its pieces, i.e. on
  the 3 x 3 points {c - r, knot, c + r} per axis, so one candidate is tested with 10 values;
- a candidate can only pass if its node is >= its axial lattice neighbours (the value at c +- r
  lies between the two nodes), a cheap necessary test on the lattice-resolution node map.

`lattice_peaks` therefore tests only the strongest nodes that pass the axial test, as many as
needed (on the CPU it checks and widens; on CUDA it tests a fixed `16 * num` without syncing).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from grapepose.inference.points import ScaleReader

__all__ = ["lattice_peaks", "lattice_step"]


def lattice_step(factors: Sequence[float], kernel: int) -> int | None:
    """The knot spacing `g` of the averaged upsampled maps, or None when the lattice form does not apply."""
    ints = [round(f) for f in factors]
    if any(abs(f - i) > 1e-9 or i < 1 for f, i in zip(factors, ints)):
        return None
    g = math.gcd(*ints)
    r = kernel // 2
    if kernel % 2 == 0 or r < 1 or r > g:
        return None
    return g


def _axis(n: int, g: int, r: int) -> dict[str, np.ndarray]:
    """Candidates along one axis of `n` pixels: pixel, whether a tail window reaches left of the last knot, window points."""
    last = (n - 1) // g
    lattice = np.arange(last + 1) * g
    tail = np.arange(g * last + 1, n)
    pixel = np.concatenate([lattice, tail])
    lo = np.maximum(pixel - r, 0)
    hi = np.minimum(pixel + r, n - 1)
    # the knot inside the window; in the final strip every value equals the last knot's
    mid = np.concatenate([lattice, np.maximum(g * last, lo[last + 1 :])])
    tail_left = (tail - r < g * last) & (last >= 1)
    return {"last": np.array(last), "tail_left": tail_left, "points": np.stack([lo, mid, hi], -1), "pixel": pixel}


@functools.lru_cache(maxsize=32)
def _candidates(h: int, w: int, g: int, r: int, device: str) -> dict[str, torch.Tensor | int]:
    """Per map shape: the lattice/strip layout of the candidates and their 3 window points per axis."""
    ay, ax = _axis(h, g, r), _axis(w, g, r)
    ly, lx = int(ay["last"]), int(ax["last"])
    tx, ty = len(ax["tail_left"]), len(ay["tail_left"])
    ex = [np.arange(lx + 1), lx + 1 + np.arange(tx)]
    ey = [np.arange(ly + 1), ly + 1 + np.arange(ty)]
    blocks = [(ey[0], ex[0]), (ey[0], ex[1]), (ey[1], ex[0]), (ey[1], ex[1])]  # lattice, column strip, row strip, corner
    cy = np.concatenate([np.repeat(yy, len(xx)) for yy, xx in blocks])
    cx = np.concatenate([np.tile(xx, len(yy)) for yy, xx in blocks])
    dev = torch.device(device)
    return {
        "ly": ly, "lx": lx, "tx": tx, "ty": ty,
        "tail_x": torch.as_tensor(ax["tail_left"], device=dev), "tail_y": torch.as_tensor(ay["tail_left"], device=dev),
        "px": torch.as_tensor(ax["points"][cx], device=dev), "py": torch.as_tensor(ay["points"][cy], device=dev),
        "xy": torch.as_tensor(np.stack([ax["pixel"][cx], ay["pixel"][cy]], -1), dtype=torch.float32, device=dev),
    }  # fmt: skip


@functools.lru_cache(maxsize=64)
def _resampling(count: int, g: int, factor: float, valid: int, cells: int, device: str) -> tuple[Any, ...]:
    """Cells and weights that sample one axis of a scale's grid at the lattice points `g * m`.

    Returns `("narrow",)` when the lattice is the grid itself, `("index", i0)` when every point is
    a cell, else `("lerp", i0, i1, weight)`; tensors are made once per device.
    """
    src = np.minimum(np.arange(count) * g / factor, valid - 1)
    i0 = np.floor(src).astype(np.int64)
    frac = src - i0
    dev = torch.device(device)
    if not frac.any():
        return ("narrow",) if np.array_equal(i0, np.arange(count)) else ("index", torch.as_tensor(i0, device=dev))
    i1 = np.minimum(i0 + 1, cells - 1)
    return ("lerp", torch.as_tensor(i0, device=dev), torch.as_tensor(i1, device=dev),
            torch.as_tensor(frac, dtype=torch.float32, device=dev))  # fmt: skip


def _node_map(readers: Sequence[ScaleReader], g: int, nodes: tuple[int, int]) -> torch.Tensor:
    """`[B, K, Ly+1, Lx+1]` summed upsampled keypoint heatmaps at the lattice points.

    A positive multiple of the averaged maps (the flip mean and the scale mean are left out): only
    its order is used.
    """
    total = None
    for rd in readers:
        maps = rd.keypoint_maps(halve=len(readers) > 1)
        for dim, count, valid in ((2, nodes[0], rd.valid[0]), (3, nodes[1], rd.valid[1])):
            how = _resampling(count, g, rd.factor, valid, maps.shape[dim], str(maps.device))
            if how[0] == "narrow":
                maps = maps.narrow(dim, 0, count)
            elif how[0] == "index":
                maps = maps.index_select(dim, how[1])
            else:
                shape = [1] * 4
                shape[dim] = count
                wt = how[3].view(shape)
                maps = maps.index_select(dim, how[1]) * (1 - wt) + maps.index_select(dim, how[2]) * wt
        total = maps if total is None else total + maps
    assert total is not None
    return total


def _mean_pixels(readers: Sequence[ScaleReader], channel: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    total = readers[0].heat_pixels(channel, px, py)
    for rd in readers[1:]:
        total = total + rd.heat_pixels(channel, px, py)
    return total / len(readers)


def lattice_peaks(
    readers: Sequence[ScaleReader], size: tuple[int, int], g: int, num: int, kernel: int = 5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as `refine.heatmap_peaks` on the averaged upsampled maps, from the grid maps.

    Args:
        readers: one per test scale (their factors must be multiples of `g = lattice_step(...)`).
        size: `(H, W)` of the upsampled maps.
        g: the knot spacing.
        num: peaks per map.
        kernel: max-pool kernel of the local-maximum test.

    Returns:
        positions `[B, K, P, 2]` (x, y) float and validity `[B, K, P]`, `P = min(num, H * W)`.
    """
    h, w = size
    r = kernel // 2
    b, k = readers[0].shape[0], readers[0].k
    dev = readers[0].heat.device
    p = min(num, h * w)
    if b * k * p == 0:
        return torch.zeros((b, k, p, 2), device=dev), torch.zeros((b, k, p), dtype=torch.bool, device=dev)
    layout = _candidates(h, w, g, r, str(dev))
    ly, lx, tx, ty = (int(layout[key]) for key in ("ly", "lx", "tx", "ty"))  # type: ignore[call-overload]
    tlx, tly = layout["tail_x"], layout["tail_y"]
    assert isinstance(tlx, torch.Tensor) and isinstance(tly, torch.Tensor)
    v = _node_map(readers, g, (ly + 1, lx + 1))  # [B, K, Ly+1, Lx+1]

    # the axial necessary test on the lattice: no higher left/right/up/down node
    padded = F.pad(v, (1, 1, 1, 1), value=-torch.inf)
    higher = torch.maximum(padded[..., 1:-1, :-2], padded[..., 1:-1, 2:])
    torch.maximum(higher, padded[..., :-2, 1:-1], out=higher)
    torch.maximum(higher, padded[..., 2:, 1:-1], out=higher)
    neg = torch.tensor(-torch.inf, device=dev)
    lattice = torch.where(v >= higher, v, neg)
    # candidates of the final strips share the value and the orthogonal test of the last node
    col, row = v[..., :, lx], v[..., ly, :]  # [B, K, Ly+1], [B, K, Lx+1]
    col_ok = col >= torch.maximum(padded[..., :-2, lx + 1], padded[..., 2:, lx + 1])  # up and down
    row_ok = row >= torch.maximum(padded[..., ly + 1, :-2], padded[..., ly + 1, 2:])
    left_ok, up_ok = col >= padded[..., 1:-1, lx], row >= padded[..., ly, 1:-1]  # the last node vs its left / upper one
    col_ok = col_ok[..., None] & (left_ok[..., None] | ~tlx)  # [B, K, Ly+1, Tx]
    row_ok = row_ok[..., None, :] & (up_ok[..., None, :] | ~tly[:, None])  # [B, K, Ty, Lx+1]
    corner_ok = (left_ok[..., ly, None, None] | ~tlx) & (up_ok[..., lx, None, None] | ~tly[:, None])
    cand = torch.cat([
        lattice.reshape(b, k, -1),
        torch.where(col_ok, col[..., None], neg).reshape(b, k, -1),
        torch.where(row_ok, row[..., None, :], neg).reshape(b, k, -1),
        torch.where(corner_ok, v[..., ly, lx, None, None], neg).reshape(b, k, -1),
    ], dim=2)  # fmt: skip
    px_all, py_all = layout["px"], layout["py"]
    assert isinstance(px_all, torch.Tensor) and isinstance(py_all, torch.Tensor)

    total = cand.shape[2]
    t = min(total, (16 if dev.type == "cuda" else 2) * p)
    channel = torch.arange(k, device=dev)[None, :, None, None, None]
    while True:
        top, index = cand.topk(t, dim=2)  # [B, K, T]
        xs, ys = px_all[index], py_all[index]  # [B, K, T, 3]: lo, knot, hi
        vals = _mean_pixels(readers, channel, xs[..., None, :], ys[..., :, None]).flatten(-2)  # [B, K, T, 9]
        own = vals[..., 4]  # the knot (lattice: the candidate; strip: the same value)
        passed = torch.isfinite(top) & (own >= vals.amax(-1))
        if dev.type == "cuda" or t == total:
            break
        short = (passed.sum(-1) < p) & torch.isfinite(top[..., -1])
        if not bool(short.any()):
            break
        t = min(total, 4 * t)
    score = torch.where(passed, own, neg)
    best, order = score.topk(min(p, t), dim=2)
    xy_all = layout["xy"]
    assert isinstance(xy_all, torch.Tensor)
    xy = xy_all[index.gather(2, order)]  # [B, K, P, 2] the candidate pixels
    ok = torch.isfinite(best)
    if xy.shape[2] < p:
        pad = p - xy.shape[2]
        xy = torch.cat([xy, xy.new_zeros((b, k, pad, 2))], 2)
        ok = torch.cat([ok, ok.new_zeros((b, k, pad))], 2)
    return xy, ok
