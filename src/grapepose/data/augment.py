"""Geometric augmentation: one affine per sample, applied alike to image, ignore mask and joints.

The affine follows the reference (HigherHRNet/DEKR lineage): a square box of side
`short side × scale` centred on the image centre (shifted by the translation) is mapped onto the
S×S input, rotated about the input's centre. Translation is in the reference's units: pixels of a
200-px normalised box, i.e. up to ±`max_translate`/200 of the box side (±102 px of a 512 input for
the default 40). Unlike the reference, the horizontal flip is folded into the same matrix
(x -> S-1-x), so image, mask and joints stay exactly aligned; the joint order is then permuted
with the dataset's flip index. Eval mode is the reference's validation transform: no randomness,
scale 1, i.e. the short side resized to S and the long side centre-cropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from grapepose.config import DataConfig
from grapepose.data.sample import Sample
from grapepose.data.targets import person_areas

__all__ = ["Augmentation", "Augmented", "affine_points", "flip_joints"]

# Offset weights are 1/sqrt(area): floor the area (input px²) so that people with one labelled joint
# (area 0) or a few close ones do not get unbounded weight.
MIN_AREA = 32.0**2


class Augmented(NamedTuple):
    """A sample after augmentation."""

    image: np.ndarray  # uint8 [S, S, 3]
    keypoints: np.ndarray  # float32 [N, K, 3], grid units, joint order already flipped when `flipped`
    ignore_mask: np.ndarray  # bool [h, w], True = no heatmap loss (ignored regions and outside the image)
    areas: np.ndarray  # float64 [N], squared joint-box diagonal in input pixels (>= MIN_AREA)
    has_center: np.ndarray | None  # bool [N] or None
    matrix: np.ndarray  # float64 [2, 3], original pixels -> input pixels
    flipped: bool


def affine_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine to `[..., 2]` points; returns the same shape (float64)."""
    p = np.asarray(points, dtype=np.float64)
    return p @ matrix[:, :2].T + matrix[:, 2]


def flip_joints(keypoints: np.ndarray, flip_index: tuple[int, ...] | np.ndarray) -> np.ndarray:
    """Relabel joints after mirroring: joint k becomes joint `flip_index[k]`. `[N, K, 3]` -> same."""
    out = np.empty_like(keypoints)
    out[:, np.asarray(flip_index)] = keypoints
    return out


_DEFAULTS = DataConfig()  # the reference recipe lives in one place: DataConfig's defaults


@dataclass(frozen=True)
class Augmentation:
    """Affine augmentation parameters (defaults: `DataConfig`'s, the reference recipe)."""

    input_size: int = _DEFAULTS.input_size
    output_size: int = _DEFAULTS.output_size
    max_rotation: float = _DEFAULTS.max_rotation
    min_scale: float = _DEFAULTS.min_scale
    max_scale: float = _DEFAULTS.max_scale
    max_translate: float = _DEFAULTS.max_translate
    flip_prob: float = _DEFAULTS.flip_prob
    train: bool = True

    @classmethod
    def from_config(cls, cfg: DataConfig, train: bool = True) -> Augmentation:
        return cls(
            cfg.input_size, cfg.output_size, cfg.max_rotation, cfg.min_scale, cfg.max_scale,
            cfg.max_translate, cfg.flip_prob, train,
        )  # fmt: skip

    def matrix(self, height: int, width: int, rng: np.random.Generator | None) -> tuple[np.ndarray, bool]:
        """Draw the affine for an image of `height`×`width`.

        Args:
            rng: source of randomness; ignored (may be None) in eval mode.

        Returns:
            `[2, 3]` float64 matrix from original to input pixels, and whether it mirrors.
        """
        s = self.input_size
        scale, angle, dx, dy, flip = 1.0, 0.0, 0.0, 0.0, False
        if self.train:
            assert rng is not None, "training augmentation needs an rng"
            scale = rng.uniform(self.min_scale, self.max_scale)
            angle = rng.uniform(-self.max_rotation, self.max_rotation)
            dx, dy = rng.uniform(-1.0, 1.0, size=2)
            flip = bool(rng.random() < self.flip_prob)
        box = min(height, width) * scale
        shift = self.max_translate * box / 200.0 if self.train else 0.0
        cx, cy = width / 2.0 + dx * shift, height / 2.0 + dy * shift
        c, si = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        k = s / box
        # x' = R · k · (x - centre) + S/2
        m = np.array([[c * k, -si * k, 0.0], [si * k, c * k, 0.0]])
        m[:, 2] = s / 2.0 - m[:, :2] @ np.array([cx, cy])
        if flip:
            m[0] = -m[0]
            m[0, 2] += s - 1
        return m, flip

    def apply(self, sample: Sample, flip_index: tuple[int, ...], rng: np.random.Generator | None) -> Augmented:
        """Warp `sample` with one drawn affine (see module docstring)."""
        img = sample.image
        height, width = img.shape[:2]
        m, flipped = self.matrix(height, width, rng)
        s, g = self.input_size, self.output_size
        image = cv2.warpAffine(img, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        m_grid = m * (g / s)
        # like the reference: warp the *valid* mask so that what falls outside the image is ignored too
        valid = np.full((height, width), 255, np.uint8)
        if sample.ignore_mask is not None:
            valid[sample.ignore_mask] = 0
        valid = cv2.warpAffine(
            valid, m_grid, (g, g), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        kp = sample.keypoints.astype(np.float32, copy=True)
        kp[..., :2] = affine_points(kp[..., :2], m_grid)
        has_center = sample.has_center
        if flipped:
            kp = flip_joints(kp, flip_index)
        box_scale = math.hypot(m[0, 0], m[0, 1])  # original -> input pixels, rotation-free
        areas = np.maximum(person_areas(sample.keypoints) * box_scale**2, MIN_AREA)
        return Augmented(image, kp, valid < 128, areas, has_center, m, flipped)
