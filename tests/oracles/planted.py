"""Synthetic network outputs for known people.

What a perfect network would output for people at known joints: Gaussian keypoint peaks, a
Gaussian centre peak at the mean joint, an offset field in which every cell points to the joints of
the person whose centre is nearest, and visibility logits that are high near each joint.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from grapepose.errors import GrapeposeError
from grapepose.inference.decode import STRIDE
from grapepose.inference.preprocess import ImageTransform
from grapepose.models import GrapeOutput

__all__ = ["plant_outputs", "random_people"]


def plant_outputs(
    people: Sequence[np.ndarray],
    input_size: tuple[int, int],
    scale: float = 1.0,
    *,
    flipped: bool = False,
    flip_index: Sequence[int] | None = None,
    flip_shift: int = 3,
    sigma: float = 2.0,
    center_sigma: float = 4.0,
    center_scores: Sequence[np.ndarray] | None = None,
    visibility: bool = True,
    noise: float = 0.0,
    seed: int = 0,
) -> GrapeOutput:
    """Outputs for a batch of images, each with known people.

    Args:
        people: per image, `[N, K, 2]` joints (x, y) in scale-1 network-input pixels.
        input_size: `(H, W)` of the scale-1 input.
        scale: test scale; the grid is the padded scale-s canvas / `STRIDE`.
        flipped: plant what the network sees on the mirrored, `flip_shift`-ed input (needs `flip_index`).
        sigma: keypoint peak sigma in grid cells; `center_sigma` likewise for centres.
        center_scores: per image `[N]` centre peak heights (default 1).
        visibility: False gives `visibility=None` (the ablation model).
        noise: amplitude of uniform noise added to the heatmaps.

    Returns:
        a `GrapeOutput` with `refined_offsets == offsets`.
    """
    ch, cw = ImageTransform(input_size, input_size, (0.0, 0.0), 1.0).canvas_size(scale)
    h, w = ch // STRIDE, cw // STRIDE
    k = int(people[0].shape[1]) if len(people) else 0
    gen = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    heat, off, vis = [], [], []
    for i, joints_np in enumerate(people):
        joints = torch.as_tensor(np.asarray(joints_np, dtype=np.float64)).reshape(-1, k, 2) * scale
        if flipped:
            if flip_index is None:
                raise ValueError("plant_outputs: flipped=True needs flip_index")
            joints = joints[:, list(flip_index)]
            joints[..., 0] = cw - 1 - flip_shift - joints[..., 0]
        grid = joints / STRIDE  # [N, K, 2]
        n = grid.shape[0]
        centers = grid.mean(1)  # [N, 2]
        peak = torch.ones(n, dtype=torch.float64)
        if center_scores is not None:
            peak = torch.as_tensor(np.asarray(center_scores[i], dtype=np.float64))
        hm = torch.zeros(k + 1, h, w, dtype=torch.float64)
        of = torch.zeros(2 * k, h, w, dtype=torch.float64)
        vl = torch.full((k, h, w), -6.0, dtype=torch.float64)
        if n:
            dx = xs[None, None] - grid[..., 0, None, None]  # [N, K, h, w]
            dy = ys[None, None] - grid[..., 1, None, None]
            hm[:k] = torch.exp(-(dx.square() + dy.square()) / (2 * sigma**2)).amax(0)
            cdx = xs[None] - centers[:, 0, None, None]
            cdy = ys[None] - centers[:, 1, None, None]
            cd2 = cdx.square() + cdy.square()  # [N, h, w]
            hm[k] = (peak[:, None, None] * torch.exp(-cd2 / (2 * center_sigma**2))).amax(0)
            owner = cd2.argmin(0)  # [h, w] nearest centre
            of[0::2] = dx.gather(0, owner[None, None].expand(1, k, h, w))[0]
            of[1::2] = dy.gather(0, owner[None, None].expand(1, k, h, w))[0]
            near = ((dx.abs() <= 4) & (dy.abs() <= 4)).any(0)  # [K, h, w]
            vl[near] = 6.0
        if noise > 0:
            hm += noise * torch.rand(hm.shape, generator=gen, dtype=torch.float64)
        heat.append(hm)
        off.append(of)
        vis.append(vl)
    heat_t = torch.stack(heat).float() if heat else torch.zeros(0, k + 1, h, w)
    off_t = torch.stack(off).float() if off else torch.zeros(0, 2 * k, h, w)
    vis_t = torch.stack(vis).float() if vis else torch.zeros(0, k, h, w)
    return GrapeOutput(heat_t, off_t, off_t.clone(), vis_t if visibility else None)


def random_people(
    num: int,
    num_keypoints: int,
    input_size: tuple[int, int],
    seed: int = 0,
    min_gap: float = 48.0,
    min_joint_gap: float = 0.0,
) -> np.ndarray:
    """`[num, K, 2]` random people inside the input.

    Centres are at least `min_gap` px apart and joints of the same type of different people at least
    `min_joint_gap` px apart.
    """
    rng = np.random.default_rng(seed)
    h, w = input_size
    placed: list[np.ndarray] = []
    for _ in range(20000):
        if len(placed) == num:
            break
        c = rng.uniform([40, 40], [w - 40, h - 40])
        shape = rng.uniform(-1, 1, size=(num_keypoints, 2)) * rng.uniform(20, 34)
        joints = c + shape - shape.mean(0)
        if all(
            np.linalg.norm(c - o.mean(0)) >= min_gap and np.linalg.norm(joints - o, axis=1).min() >= min_joint_gap
            for o in placed
        ):
            placed.append(joints)
    if len(placed) < num:
        raise GrapeposeError(f"cannot place {num} people {min_gap} px apart in a {w}x{h} input")
    return np.stack(placed).astype(np.float64) if placed else np.zeros((0, num_keypoints, 2))
