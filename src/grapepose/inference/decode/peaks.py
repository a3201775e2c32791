"""Snapping peaks: the strongest local maxima of each averaged upsampled keypoint heatmap (step 6).

Peaks come highest first, equal ones in row-major pixel order (`rank_peaks`). `heatmap_peaks`
finds them on full maps, for test scales off the integer lattice; `lattice_peaks` finds the same
peaks from the grid maps, without building the full maps.

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

from grapepose.inference.decode.centers import local_maxima
from grapepose.inference.decode.reader import ScaleReader

__all__ = ["heatmap_peaks", "lattice_peaks", "lattice_step", "rank_peaks"]


def rank_peaks(score: torch.Tensor, pixel: torch.Tensor, num: int) -> torch.Tensor:
    """The `num` best of `T` peak candidates: highest score first, equal scores in row-major pixel order.

    `topk` leaves the order of equal values undefined, and equal peaks are common (the replicated
    last column/row of upsampled maps, plateaus): this fixes the order that snapping, which takes
    the first of equally near peaks, sees.

    Args:
        score: `[B, K, T]`; pixel: `[B, K, T]` flat pixel index `y * W + x`.

    Returns:
        `[B, K, min(num, T)]` indices into T.
    """
    by_pixel = pixel.argsort(dim=2, stable=True)
    by_score = score.gather(2, by_pixel).argsort(dim=2, descending=True, stable=True)[..., :num]
    return by_pixel.gather(2, by_score)


def heatmap_peaks(heatmaps: torch.Tensor, num: int, kernel: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """The `num` highest local maxima (`kernel x kernel` max-pool, no threshold) of full maps (`rank_peaks` order).

    The dense form, for test scales whose maps do not sit on an integer lattice (`lattice_step` is None).

    Args:
        heatmaps: `[B, K, H, W]`.

    Returns:
        positions `[B, K, P, 2]` (x, y) as float and validity `[B, K, P]` (False where a map has
        fewer than `P = min(num, H * W)` maxima).
    """
    b, k, h, w = heatmaps.shape
    p = min(num, h * w)
    if b * k * p == 0:
        return heatmaps.new_zeros((b, k, p, 2)), heatmaps.new_zeros((b, k, p), dtype=torch.bool)
    is_max = local_maxima(heatmaps, kernel)
    vals = torch.where(is_max, heatmaps, torch.full_like(heatmaps, -torch.inf))
    top, index = vals.view(b, k, h * w).topk(p, dim=2)
    order = rank_peaks(top, index, p)
    top, index = top.gather(2, order), index.gather(2, order)
    xy = torch.stack([index % w, torch.div(index, w, rounding_mode="floor")], dim=-1).float()
    return xy, torch.isfinite(top)


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


def _node_mix(points: np.ndarray, g: int, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lattice nodes `i0, i1` and weight of `i1` of pixels along one axis (constant past the last knot)."""
    q = np.minimum(points, g * last)
    i0 = q // g
    return i0, np.minimum(i0 + 1, last), (q - i0 * g) / g


def _window_mix(ay: dict[str, np.ndarray], ax: dict[str, np.ndarray], cy: np.ndarray, cx: np.ndarray, g: int,
                nx: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per candidate, its 3 x 3 window points as bilinear mixes of 4 lattice nodes: offsets and weights `[36, C]`.

    On each `g x g` lattice cell every scale's upsampled map is bilinear (its knots are multiples
    of `g`), so their sum is the bilinear mix of the node values; past the last knot it is constant.
    Rows: point `3 * iy + ix` (lo, knot, hi per axis) times corner (y0x0, y0x1, y1x0, y1x1).
    """
    y0, y1, wy = _node_mix(ay["points"][cy].T, g, int(ay["last"]))  # [3, C]
    x0, x1, wx = _node_mix(ax["points"][cx].T, g, int(ax["last"]))
    rows = [(y0, 1 - wy), (y1, wy)]
    cols = [(x0, 1 - wx), (x1, wx)]
    off, wt = [], []
    for iy in range(3):
        for ix in range(3):
            for (yy, a), (xx, b) in ((rows[0], cols[0]), (rows[0], cols[1]), (rows[1], cols[0]), (rows[1], cols[1])):
                off.append(yy[iy] * nx + xx[ix])
                wt.append(a[iy] * b[ix])
    return np.stack(off), np.stack(wt)


@functools.lru_cache(maxsize=8)
def _candidates(h: int, w: int, g: int, r: int, device: str) -> dict[str, torch.Tensor | int]:
    """Per map shape: the lattice/strip layout of the candidates and their window points as node mixes."""
    ay, ax = _axis(h, g, r), _axis(w, g, r)
    ly, lx = int(ay["last"]), int(ax["last"])
    tx, ty = len(ax["tail_left"]), len(ay["tail_left"])
    ex = [np.arange(lx + 1), lx + 1 + np.arange(tx)]
    ey = [np.arange(ly + 1), ly + 1 + np.arange(ty)]
    blocks = [(ey[0], ex[0]), (ey[0], ex[1]), (ey[1], ex[0]), (ey[1], ex[1])]  # lattice, column strip, row strip, corner
    cy = np.concatenate([np.repeat(yy, len(xx)) for yy, xx in blocks])
    cx = np.concatenate([np.tile(xx, len(yy)) for yy, xx in blocks])
    dev = torch.device(device)
    off, wt = _window_mix(ay, ax, cy, cx, g, lx + 1)
    return {
        "ly": ly, "lx": lx, "tx": tx, "ty": ty,
        "tail_x": torch.as_tensor(ax["tail_left"], device=dev), "tail_y": torch.as_tensor(ay["tail_left"], device=dev),
        "off": torch.as_tensor(off, dtype=torch.int32, device=dev),
        "wt": torch.as_tensor(wt, dtype=torch.float32, device=dev),
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

    A positive multiple of the averaged maps (the mean over scales is left out): only
    its order is used.
    """
    total = None
    for rd in readers:
        maps = rd.keypoint_maps(scaled=False)  # every reader has the same heat_scale (flip is all or none)
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


_PENALTY = 1e38  # per unit by which a lattice node falls short of a neighbour (-inf when it overflows)
_FAILED = -1e30  # candidates ordered below this failed the axial test
_BLOCK = 32  # candidates per block of `_block_topk`


def _block_topk(values: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`values.topk(t, dim=2)` for `[B, K, C]` (C a multiple of `_BLOCK`) via the blocks with the highest maxima.

    The `t` largest values lie in the `t` blocks of `_BLOCK` with the largest maxima (up to ties),
    so one small `topk` over block maxima and one over those blocks replace a `topk` over all of C.
    """
    b, k, c = values.shape
    blocks = values.view(b, k, c // _BLOCK, _BLOCK)
    nb = min(t, c // _BLOCK)
    if nb * _BLOCK >= c:
        return values.topk(t, dim=2)
    which = blocks.amax(3).topk(nb, dim=2).indices  # [B, K, nb]
    chosen = blocks.gather(2, which[..., None].expand(-1, -1, -1, _BLOCK)).view(b, k, -1)
    top, pos = chosen.topk(t, dim=2)
    return top, which.gather(2, torch.div(pos, _BLOCK, rounding_mode="floor")) * _BLOCK + pos % _BLOCK


@functools.lru_cache(maxsize=8)
def _minus_inf(device: str) -> torch.Tensor:
    return torch.tensor(-torch.inf, device=device)


@functools.lru_cache(maxsize=64)
def _map_starts(b: int, k: int, size: int, device: str) -> torch.Tensor:
    """`[B, K, 1]` int32: where each of the B x K node maps starts in their flattened tensor."""
    return (torch.arange(b * k, device=device, dtype=torch.int32) * size).view(b, k, 1)


def _pair_max(x: torch.Tensor) -> torch.Tensor:
    """`max(x[i - 1], x[i + 1])` along the last axis, -inf past the ends."""
    padded = F.pad(x, (1, 1), value=-torch.inf)
    return torch.maximum(padded[..., :-2], padded[..., 2:])


def _axial_max(v: torch.Tensor) -> torch.Tensor:
    """`[..., H, W]`: the largest of each node's left, right, upper and lower neighbours (-inf past the edges).

    Written on slices of `v` (no padded copy): two passes of `maximum` per axis over the interior.
    """
    h, w = v.shape[-2:]
    if h < 2 or w < 2:
        return torch.maximum(_pair_max(v), _pair_max(v.transpose(-1, -2)).transpose(-1, -2))
    out = torch.empty_like(v)
    torch.maximum(v[..., :, :-2], v[..., :, 2:], out=out[..., :, 1:-1])
    out[..., :, 0], out[..., :, -1] = v[..., :, 1], v[..., :, -2]
    torch.maximum(out[..., 1:-1, :], torch.maximum(v[..., :-2, :], v[..., 2:, :]), out=out[..., 1:-1, :])
    torch.maximum(out[..., 0, :], v[..., 1, :], out=out[..., 0, :])
    torch.maximum(out[..., -1, :], v[..., -2, :], out=out[..., -1, :])
    return out


def lattice_peaks(
    readers: Sequence[ScaleReader], size: tuple[int, int], g: int, num: int, kernel: int = 5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as `heatmap_peaks` on the averaged upsampled maps, from the grid maps.

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

    # The axial necessary test on the lattice (no higher left/right/up/down node) only orders the
    # candidates: a failed node is pushed far down instead of masked (a dense `where` is slow), and
    # the exact 3 x 3 window test below decides.
    higher = _axial_max(v)
    shortfall = torch.sub(v, higher, out=higher).clamp_max_(0.0)
    nl = v.shape[2] * v.shape[3]
    neg = _minus_inf(str(dev))
    # candidates of the final strips share the value and the orthogonal test of the last node
    col, row = v[..., :, lx], v[..., ly, :]  # [B, K, Ly+1], [B, K, Lx+1]
    col_ok = col >= _pair_max(col)  # up and down
    row_ok = row >= _pair_max(row)
    left_ok = col >= v[..., :, lx - 1] if lx else torch.ones_like(col, dtype=torch.bool)  # vs the left node
    up_ok = row >= v[..., ly - 1, :] if ly else torch.ones_like(row, dtype=torch.bool)  # vs the upper node
    col_ok = col_ok[..., None] & (left_ok[..., None] | ~tlx)  # [B, K, Ly+1, Tx]
    row_ok = row_ok[..., None, :] & (up_ok[..., None, :] | ~tly[:, None])  # [B, K, Ty, Lx+1]
    corner_ok = (left_ok[..., ly, None, None] | ~tlx) & (up_ok[..., lx, None, None] | ~tly[:, None])
    strips = [
        torch.where(col_ok, col[..., None], neg).reshape(b, k, -1),
        torch.where(row_ok, row[..., None, :], neg).reshape(b, k, -1),
        torch.where(corner_ok, v[..., ly, lx, None, None], neg).reshape(b, k, -1),
    ]  # fmt: skip
    total = nl + sum(x.shape[2] for x in strips)
    cand = v.new_empty((b, k, total + (-total % _BLOCK)))  # lattice, strips, -inf padding to whole blocks
    torch.add(v, shortfall, alpha=_PENALTY, out=cand[:, :, :nl].unflatten(2, v.shape[2:]))
    start = nl
    for x in strips:
        cand[:, :, start : start + x.shape[2]] = x
        start += x.shape[2]
    cand[:, :, total:] = -torch.inf
    off_all, wt_all = layout["off"], layout["wt"]
    assert isinstance(off_all, torch.Tensor) and isinstance(wt_all, torch.Tensor)
    flat = v.reshape(-1)
    base = _map_starts(b, k, v[0, 0].numel(), str(dev))

    # Most candidates that pass the axial test pass the window test too when r < g (only the
    # diagonal mixes can fail it); with r == g the window's corners are the diagonal nodes.
    t = min(total, 16 * p if dev.type == "cuda" else 2 * p if r >= g else p + p // 4 + 4)
    while True:
        top, index = _block_topk(cand, t)  # [B, K, T]
        index = index.clamp_(max=total - 1)  # a -inf padding entry (top != own: it fails)
        pick = index.view(-1)
        nodes = flat.index_select(0, (off_all.index_select(1, pick).view(36, b, k, -1) + base).view(-1))
        vals = (nodes.view(36, -1) * wt_all.index_select(1, pick)).view(9, 4, b, k, -1).sum(1)  # [9, B, K, T]
        own = vals[4]  # the knot (lattice: the candidate; strip: the same value)
        # an unpenalised candidate (top == own) passed the axial test exactly: a shortfall of even
        # one ulp times _PENALTY moves it
        passed = (top == own) & (own >= vals.amax(0))
        if dev.type == "cuda" or t == total:
            break
        short = (passed.sum(-1) < p) & (top[..., -1] > _FAILED)  # not yet down to failed candidates
        if not bool(short.any()):
            break
        t = min(total, 4 * t)
    score = torch.where(passed, own, neg)
    xy_all = layout["xy"]
    assert isinstance(xy_all, torch.Tensor)
    xy = xy_all[index]  # [B, K, T, 2] the candidate pixels
    order = rank_peaks(score, (xy[..., 1] * w + xy[..., 0]).long(), p)
    best = score.gather(2, order)
    xy = xy.gather(2, order[..., None].expand(-1, -1, -1, 2))
    ok = torch.isfinite(best)
    if xy.shape[2] < p:
        pad = p - xy.shape[2]
        xy = torch.cat([xy, xy.new_zeros((b, k, pad, 2))], 2)
        ok = torch.cat([ok, ok.new_zeros((b, k, pad))], 2)
    return xy, ok
