"""SLOW reference: the training targets (docs/DESIGN.md) as plain per-person, per-joint, per-cell Python loops.

The oracle that tests compare `build_targets` against (~100 ms for 15 people on a 128 grid, where
`build_targets` takes ~1 ms).
"""

from __future__ import annotations

import math

import numpy as np

from grapepose.data.targets import Targets


def reference_targets(
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
    """Same contract as `grapepose.data.targets.build_targets`, computed with loops."""
    joints = np.asarray(joints, dtype=np.float64)
    n, k = joints.shape[0], joints.shape[1]
    h, w = size
    heat = np.zeros((k + 1, h, w), np.float32)
    patch = np.zeros((k + 1, h, w), bool)
    offsets = np.zeros((2 * k, h, w), np.float32)
    offset_w = np.zeros((2 * k, h, w), np.float32)
    vis = np.zeros((k, h, w), np.float32)
    claimed_area = np.full((k, h, w), np.inf)  # area of the person holding (joint, cell)

    def inside(px: float, py: float) -> bool:
        return 0 <= px < w and 0 <= py < h

    def gaussian(channel: int, px: float, py: float, s: float) -> None:
        x0, x1 = math.floor(px - 3 * s - 1), math.ceil(px + 3 * s + 2)
        y0, y1 = math.floor(py - 3 * s - 1), math.ceil(py + 3 * s + 2)
        for row in range(max(0, y0), min(y1, h)):
            for col in range(max(0, x0), min(x1, w)):
                g = math.exp(-((col - px) ** 2 + (row - py) ** 2) / (2 * s * s))
                heat[channel, row, col] = max(heat[channel, row, col], g)
                patch[channel, row, col] = True

    for i in range(n):
        person = joints[i]
        labelled = [j for j in range(k) if person[j, 2] > 0]
        for j in labelled:
            if inside(person[j, 0], person[j, 1]):
                gaussian(j, person[j, 0], person[j, 1], sigma)
        if not labelled or (has_center is not None and not has_center[i]):
            continue
        cx = float(np.mean([person[j, 0] for j in labelled]))
        cy = float(np.mean([person[j, 1] for j in labelled]))
        if not inside(cx, cy):
            continue
        gaussian(k, cx, cy, center_sigma)
        if areas is not None:
            area = float(areas[i])
        else:
            xs = [person[j, 0] for j in labelled]
            ys = [person[j, 1] for j in labelled]
            area = max((max(xs) - min(xs)) ** 2 + (max(ys) - min(ys)) ** 2, 1.0)
        ix, iy = int(cx), int(cy)
        for j in labelled:
            jx, jy = person[j, 0], person[j, 1]
            if not inside(jx, jy):
                continue
            for row in range(max(iy - offset_radius, 0), min(iy + offset_radius, h)):
                for col in range(max(ix - offset_radius, 0), min(ix + offset_radius, w)):
                    if area <= claimed_area[j, row, col]:  # smaller person wins; the later one on ties
                        claimed_area[j, row, col] = area
                        offsets[2 * j, row, col] = col - jx
                        offsets[2 * j + 1, row, col] = row - jy
                        offset_w[2 * j, row, col] = offset_w[2 * j + 1, row, col] = 1 / math.sqrt(area)
            r = visibility_radius
            for row in range(max(int(jy - r), 0), min(int(jy + r), h)):
                for col in range(max(int(jx - r), 0), min(int(jx + r), w)):
                    vis[j, row, col] = 1.0

    weights = np.where(patch, 1.0, bg_weight).astype(np.float32)
    if ignore_mask is not None:
        weights[:, np.asarray(ignore_mask, bool)] = 0.0
    return Targets(heat, weights, offsets, offset_w, vis)
