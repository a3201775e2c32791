"""Augmentation keeps image, joints and ignore mask aligned; flips relabel left/right joints."""

from __future__ import annotations

import numpy as np
import pytest

from grapepose.data import Augmentation, Sample, affine_points
from grapepose.keypoints import flip_index_from_names

NAMES = ("head", "left_hand", "right_hand", "left_foot", "right_foot")
FLIP = flip_index_from_names(NAMES)
S, G = 128, 32


def _blobs(h: int, w: int, points: list[tuple[float, float, int]], sigma: float = 3.0) -> np.ndarray:
    """uint8 image with a Gaussian blob per (x, y, channel)."""
    yy, xx = np.mgrid[:h, :w]
    img = np.zeros((h, w, 3))
    for x, y, c in points:
        img[..., c] += 255 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return np.clip(img, 0, 255).astype(np.uint8)


def _centroid(channel: np.ndarray, near: np.ndarray, r: int = 14) -> np.ndarray:
    x0, y0 = int(near[0]) - r, int(near[1]) - r
    win = channel[y0 : y0 + 2 * r + 1, x0 : x0 + 2 * r + 1].astype(np.float64)
    yy, xx = np.mgrid[: win.shape[0], : win.shape[1]]
    return np.array([(win * xx).sum() / win.sum() + x0, (win * yy).sum() / win.sum() + y0])


@pytest.mark.parametrize("flip_prob", [0.0, 1.0])
def test_joints_follow_the_image(flip_prob: float) -> None:
    h, w = 96, 120
    left, right = (50.3, 40.7), (72.6, 55.2)  # left hand drawn in red, right hand in green
    kp = np.zeros((1, 5, 3), np.float32)
    kp[0, 1] = [*left, 2]
    kp[0, 2] = [*right, 2]
    sample = Sample(_blobs(h, w, [(*left, 0), (*right, 1)]), kp)
    aug = Augmentation(input_size=S, output_size=G, flip_prob=flip_prob, max_translate=10)
    for seed in range(4):
        out = aug.apply(sample, FLIP, np.random.default_rng(seed))
        assert out.flipped == bool(flip_prob)
        assert out.image.shape == (S, S, 3) and out.ignore_mask.shape == (G, G)
        joints_px = out.keypoints[0, :, :2].astype(np.float64) * (S / G)
        # the left-labelled source joint becomes the right hand in a mirrored image
        src_of = {1: 2, 2: 1} if out.flipped else {1: 1, 2: 2}
        for j, colour in ((1, 0), (2, 1)):
            np.testing.assert_allclose(joints_px[j], affine_points(kp[0, src_of[j], :2], out.matrix), atol=1e-4)
            expected_colour = colour if not out.flipped else 1 - colour
            found = _centroid(out.image[..., expected_colour], joints_px[j])
            np.testing.assert_allclose(found, joints_px[j], atol=0.4)
        assert out.keypoints[0, 1, 2] == 2 and out.keypoints[0, 0, 2] == 0


def test_flip_mirrors_about_the_input_width() -> None:
    img = np.zeros((64, 64, 3), np.uint8)
    kp = np.array([[[10, 20, 2], [5, 5, 2], [7, 7, 1], [0, 0, 0], [0, 0, 0]]], np.float32)
    aug = Augmentation(64, 16, max_rotation=0, min_scale=1, max_scale=1, max_translate=0, flip_prob=1)
    out = aug.apply(Sample(img, kp), FLIP, np.random.default_rng(0))
    np.testing.assert_allclose(out.matrix, [[-1, 0, 63], [0, 1, 0]], atol=1e-12)
    np.testing.assert_allclose(out.keypoints[0, 0], [(63 - 10) / 4, 20 / 4, 2])
    np.testing.assert_allclose(out.keypoints[0, 2], [(63 - 5) / 4, 5 / 4, 2])  # left hand -> right hand
    np.testing.assert_allclose(out.keypoints[0, 1], [(63 - 7) / 4, 7 / 4, 1])


def test_ignore_mask_follows_the_image() -> None:
    h, w = 80, 100
    ignore = np.zeros((h, w), bool)
    ignore[20:50, 30:70] = True
    sample = Sample(np.zeros((h, w, 3), np.uint8), np.zeros((0, 5, 3), np.float32), ignore_mask=ignore)
    aug = Augmentation(input_size=S, output_size=G)
    for seed in range(3):
        out = aug.apply(sample, FLIP, np.random.default_rng(seed))
        m_grid = out.matrix * (G / S)
        inv = np.linalg.inv(np.vstack([m_grid, [0, 0, 1]]))[:2]
        cells = np.stack(np.meshgrid(np.arange(G), np.arange(G)), -1).reshape(-1, 2)
        x, y = affine_points(cells, inv).T
        dist_in = np.minimum.reduce([x - 30, 69 - x, y - 20, 49 - y])  # > 0 inside the region
        img_in = np.minimum.reduce([x, w - 1 - x, y, h - 1 - y])
        got = out.ignore_mask.reshape(-1)
        margin = 3 * S / G
        assert got[dist_in > margin].all()
        assert not got[(dist_in < -margin) & (img_in > margin)].any()
        assert got[img_in < -margin].all()  # outside the image is ignored too (as in the reference)


def test_eval_is_deterministic_centre_crop() -> None:
    aug = Augmentation(input_size=S, output_size=G, train=False)
    m, flipped = aug.matrix(100, 200, None)
    assert not flipped
    np.testing.assert_allclose(affine_points(np.array([100.0, 50.0]), m), [S / 2, S / 2])
    np.testing.assert_allclose(m[:, :2], np.eye(2) * S / 100)  # short side -> S, no rotation
    np.testing.assert_allclose(aug.matrix(100, 200, np.random.default_rng(1))[0], m)


def test_scale_and_rotation_ranges() -> None:
    aug = Augmentation(input_size=S, output_size=G)
    scales, angles = [], []
    for seed in range(200):
        m, flipped = aug.matrix(100, 150, np.random.default_rng(seed))
        a = m[:, :2] * np.array([[-1, 1]] if flipped else [[1, 1]]).T
        scales.append(np.hypot(*a[0]))
        angles.append(np.degrees(np.arctan2(a[1, 0], a[0, 0])))
    box = S / np.array(scales) / 100  # box side / short side
    assert 0.75 <= box.min() < 0.8 and 1.45 < box.max() <= 1.5
    assert -30 <= min(angles) < -25 and 25 < max(angles) <= 30
