"""Training targets on the output grid (docs/DESIGN.md, Training targets), vectorised over people and joints.

Conventions (those of the reference generators, as docs/DESIGN.md writes them where it is explicit):

- A joint counts when labelled (v > 0) and inside the grid (0 <= x < w, 0 <= y < h); a person's
  centre is the mean of all its labelled joints (inside the grid or not) and counts when the person
  has one, is allowed a centre (`has_center`), and the centre itself is inside the grid.
- Heatmaps: Gaussian on integer cells of the patch columns floor(x-3σ-1) .. ceil(x+3σ+2)-1 (rows
  likewise), clipped to the grid; max over people. Channel K is the centre (σ = `center_sigma`).
- Heatmap weights: 1 on every patch cell of that channel, `bg_weight` elsewhere, 0 where ignored.
- Offsets: for each person with a counting centre and each of its counting joints, every cell of
  the 2r×2r block floor(cx)-r .. floor(cx)+r-1 (rows likewise, clipped) stores (cell - joint),
  channel 2k = x, 2k+1 = y. Per (joint type, cell) the person with the smallest area wins (ties:
  the later person, as the reference overwrites on equal area). Weight 1/sqrt(area) there.
- Visibility: for the same joints, 1 on the block floor(x)-R .. floor(x)+R-1 (rows likewise).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["Targets", "build_targets", "person_centers", "person_areas"]


class Targets(NamedTuple):
    """Per-image training targets (float32), h×w grid, K keypoint types."""

    heatmaps: np.ndarray  # [K+1, h, w], last channel = person centres
    heatmap_weights: np.ndarray  # [K+1, h, w]
    offsets: np.ndarray  # [2K, h, w], cell - joint in grid units
    offset_weights: np.ndarray  # [2K, h, w]
    visibility: np.ndarray  # [K, h, w], 0/1


def person_centers(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of each person's labelled joints.

    Args:
        joints: `[N, K, 3]` (x, y, v).

    Returns:
        centers `[N, 2]` float64 (0 for people without labelled joints) and `[N]` bool: has one.
    """
    joints = np.asarray(joints, dtype=np.float64)
    labelled = joints[..., 2] > 0
    count = labelled.sum(axis=1)
    sums = np.where(labelled[..., None], joints[..., :2], 0.0).sum(axis=1)
    return sums / np.maximum(count, 1)[:, None], count > 0


def person_areas(joints: np.ndarray) -> np.ndarray:
    """Squared diagonal of the box around each person's labelled joints, `[N]` (0 without any)."""
    joints = np.asarray(joints, dtype=np.float64)
    labelled = joints[..., 2] > 0
    if joints.shape[0] == 0:
        return np.zeros(0)
    lo = np.where(labelled[..., None], joints[..., :2], np.inf).min(axis=1)
    hi = np.where(labelled[..., None], joints[..., :2], -np.inf).max(axis=1)
    side = np.where(labelled.any(axis=1)[:, None], hi - lo, 0.0)
    return (side**2).sum(axis=1)


def _splat(
    heat: np.ndarray, touched: np.ndarray, ch: np.ndarray, xs: np.ndarray, ys: np.ndarray, sigma: float, h: int, w: int
) -> None:
    """Max-accumulate P Gaussian patches into flat `heat` and mark their cells in `touched`.

    `heat`/`touched` are flat `[C*h*w + 1]` (the last slot absorbs out-of-grid patch cells);
    `ch`, `xs`, `ys` are `[P]`.
    """
    if xs.size == 0:
        return
    span = np.arange(int(math.ceil(6.0 * sigma + 5.0)))  # >= the widest patch
    dump = heat.size - 1

    def axis(p: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo = np.floor(p - 3.0 * sigma - 1.0).astype(np.int64)
        hi = np.ceil(p + 3.0 * sigma + 2.0).astype(np.int64)
        cells = lo[:, None] + span  # [P, L]
        ok = (cells < hi[:, None]) & (cells >= 0) & (cells < size)
        return cells, ok, np.exp(-((cells - p[:, None]) ** 2) / (2.0 * sigma * sigma))

    cols, col_ok, gx = axis(xs, w)
    rows, row_ok, gy = axis(ys, h)
    idx = (ch[:, None, None] * h + rows[:, :, None]) * w + cols[:, None, :]  # [P, L, L]
    idx = np.where(row_ok[:, :, None] & col_ok[:, None, :], idx, dump).ravel()
    vals = (gy.astype(np.float32)[:, :, None] * gx.astype(np.float32)[:, None, :]).ravel()
    np.maximum.at(heat, idx, vals)
    touched[idx] = True


def build_targets(
    joints: np.ndarray,
    size: tuple[int, int],
    *,
    sigma: float,
    center_sigma: float,
    bg_weight: float = 0.1,
    offset_radius: int = 4,
    visibility_radius: int = 4,
    areas: np.ndarray | None = None,
    has_center: np.ndarray | None = None,
    ignore_mask: np.ndarray | None = None,
) -> Targets:
    """Heatmaps, weights, offsets and visibility for one image (conventions in the module docstring).

    Args:
        joints: `[N, K, 3]` (x, y, v) in grid units.
        size: grid (h, w).
        sigma: keypoint Gaussian sigma (grid cells).
        center_sigma: centre Gaussian sigma.
        bg_weight: heatmap weight outside all patches.
        offset_radius: r of the 2r×2r offset block around each centre.
        visibility_radius: R of the 2R×2R visibility block around each joint.
        areas: `[N]` positive person areas for the smaller-person rule and the 1/sqrt(area) offset
            weights; None = `person_areas(joints)` in grid units, clamped to >= 1.
        has_center: `[N]` bool, people allowed a centre (None = all).
        ignore_mask: bool `[h, w]`, True where the heatmap weight is 0 (None = nowhere).

    Returns:
        `Targets` of float32 arrays: heatmaps/heatmap_weights `[K+1, h, w]`, offsets/offset_weights
        `[2K, h, w]`, visibility `[K, h, w]`.
    """
    joints = np.asarray(joints, dtype=np.float64)
    n, k = joints.shape[0], joints.shape[1]
    h, w = int(size[0]), int(size[1])
    hw = h * w
    keep = np.ones((h, w), np.float32) if ignore_mask is None else (~np.asarray(ignore_mask, bool)).astype(np.float32)
    offsets = np.zeros((2 * k, h, w), np.float32)
    offset_weights = np.zeros((2 * k, h, w), np.float32)
    if n == 0:
        heat_w = np.broadcast_to(np.float32(bg_weight) * keep, (k + 1, h, w)).copy()
        empty = np.zeros((k + 1, h, w), np.float32)
        return Targets(empty, heat_w, offsets, offset_weights, np.zeros((k, h, w), np.float32))

    x, y = joints[..., 0], joints[..., 1]
    inside = (joints[..., 2] > 0) & (x >= 0) & (y >= 0) & (x < w) & (y < h)  # [N, K]
    centers, has_joint = person_centers(joints)
    cx, cy = centers[:, 0], centers[:, 1]
    c_ok = has_joint & (cx >= 0) & (cy >= 0) & (cx < w) & (cy < h)
    if has_center is not None:
        c_ok &= np.asarray(has_center, bool)
    if areas is None:
        areas = np.maximum(person_areas(joints), 1.0)
    areas = np.asarray(areas, dtype=np.float64).reshape(n)

    # heatmaps and their weights
    heat = np.zeros((k + 1) * hw + 1, np.float32)
    touched = np.zeros((k + 1) * hw + 1, bool)
    jn, jk = np.nonzero(inside)
    _splat(heat, touched, jk, x[jn, jk], y[jn, jk], sigma, h, w)
    cn = np.flatnonzero(c_ok)
    _splat(heat, touched, np.full(cn.size, k), cx[cn], cy[cn], center_sigma, h, w)
    heatmaps = heat[:-1].reshape(k + 1, h, w)
    heat_w = np.where(touched[:-1].reshape(k + 1, h, w), keep, np.float32(bg_weight) * keep)

    # offsets: per (joint type, cell) the highest-priority claimant wins
    valid_j = inside & c_ok[:, None]  # [N, K]
    m = cn.size
    if m:
        block = np.arange(-offset_radius, offset_radius)
        bx = np.floor(cx[cn]).astype(np.int64)[:, None] + block  # [M, B]
        by = np.floor(cy[cn]).astype(np.int64)[:, None] + block
        row_ok, col_ok = (by >= 0) & (by < h), (bx >= 0) & (bx < w)
        ok = valid_j[cn][:, :, None, None] & row_ok[:, None, :, None] & col_ok[:, None, None, :]
        flat = (np.arange(k)[None, :, None, None] * h + by[:, None, :, None]) * w + bx[:, None, None, :]  # [M, K, B, B]
        flat = np.where(ok, flat, k * hw)
        order = np.lexsort((-np.arange(n), areas))  # smallest area first; among equals, the later person
        small = np.int8 if n < 127 else np.int32  # a small dtype: filling `owner` is the costly part
        prio = np.empty(n, small)
        prio[order] = np.arange(n)
        p = np.broadcast_to(prio[cn][:, None, None, None], flat.shape)
        owner = np.full(k * hw + 1, n, small)
        np.minimum.at(owner, flat.ravel(), p.ravel())
        win = ok & (owner[flat] == p)
        cells = flat[win]
        dx = (bx[:, None, None, :] - x[cn][:, :, None, None])  # [M, K, 1, B]
        dy = (by[:, None, :, None] - y[cn][:, :, None, None])  # [M, K, B, 1]
        full = (m, k, 2 * offset_radius, 2 * offset_radius)
        wt = np.broadcast_to((1.0 / np.sqrt(areas[cn]))[:, None, None, None], full)[win]
        kk, cell = np.divmod(cells, hw)
        offsets.reshape(k, 2, hw)[kk, 0, cell] = np.broadcast_to(dx, full)[win]
        offsets.reshape(k, 2, hw)[kk, 1, cell] = np.broadcast_to(dy, full)[win]
        offset_weights.reshape(k, 2, hw)[kk, :, cell] = wt[:, None]

    # visibility
    vis = np.zeros(k * hw + 1, np.float32)
    vn, vk = np.nonzero(valid_j)
    if vn.size:
        span = np.arange(2 * visibility_radius)
        vx = np.floor(x[vn, vk] - visibility_radius).astype(np.int64)[:, None] + span  # [P, 2R]
        vy = np.floor(y[vn, vk] - visibility_radius).astype(np.int64)[:, None] + span
        ok_v = ((vy >= 0) & (vy < h))[:, :, None] & ((vx >= 0) & (vx < w))[:, None, :]
        idx = (vk[:, None, None] * h + vy[:, :, None]) * w + vx[:, None, :]
        vis[np.where(ok_v, idx, k * hw)] = 1.0
    return Targets(heatmaps, heat_w, offsets, offset_weights, vis[:-1].reshape(k, h, w))
