"""Skeleton drawing with OpenCV.

Each person gets a colour derived from its index (or track id, so a tracked person keeps its
colour across frames); every joint and limb is alpha-blended with its score as opacity, so
uncertain joints fade, and joints whose per-joint confidence (`Poses.joint_scores`) is below
`min_joint_score` (default `MIN_JOINT_SCORE`) are left out with the limbs that touch them.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["draw_poses", "person_color", "MIN_JOINT_SCORE"]

# Default of `--min-joint-score`, `Poses.draw` and the web page's slider: joints whose per-joint
# confidence is below it are taken for absent (see docs/INFERENCE.md for how it separates
# labelled from absent joints).
MIN_JOINT_SCORE = 0.3
_GOLDEN = 0.618033988749895
_MIN_ALPHA = 0.2  # opacity of a zero-confidence element that is still drawn


def person_color(i: int) -> tuple[int, int, int]:
    """A saturated RGB colour for person/track `i`; consecutive ids get well separated hues."""
    hue = (0.11 + _GOLDEN * int(i)) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def _opacity(score: np.ndarray) -> np.ndarray:
    return _MIN_ALPHA + (1.0 - _MIN_ALPHA) * np.clip(np.nan_to_num(score), 0.0, 1.0)


def draw_poses(
    image: np.ndarray,
    keypoints: np.ndarray,
    skeleton: Sequence[tuple[int, int]] = (),
    ids: Sequence[int] | np.ndarray | None = None,
    labels: bool = False,
    joint_threshold: float = 0.0,
    black: bool = False,
    thickness: int = 0,
    joint_scores: np.ndarray | None = None,
    min_joint_score: float = 0.0,
) -> np.ndarray:
    """Draw poses on a copy of `image` (or on black).

    Args:
        image: `[H, W, 3]` uint8 RGB.
        keypoints: `[N, K, 3]` (x, y, score) in image pixels.
        skeleton: (a, b) keypoint pairs joined by a limb.
        ids: per-person colour ids (track ids); default 0..N-1.
        labels: write each person's id above its head.
        joint_threshold: joints with a score at or below this are not drawn (nor their limbs).
        black: draw on a black canvas of the image's size instead of the image.
        thickness: line width in pixels; 0 picks one from the image size.
        joint_scores: `[N, K]` per-joint confidence (`Poses.joint_scores`), or None.
        min_joint_score: joints whose `joint_scores` are below this are not drawn (nor their limbs).

    Returns:
        `[H, W, 3]` uint8 RGB.
    """
    img = np.asarray(image)
    h, w = img.shape[:2]
    base = np.zeros((h, w, 3), np.uint8) if black else np.ascontiguousarray(img, dtype=np.uint8).copy()
    kpts = np.asarray(keypoints, dtype=np.float32)
    if kpts.size == 0:
        return base
    kpts = kpts.reshape(-1, kpts.shape[-2], 3)
    n = len(kpts)
    ids = np.arange(n) if ids is None else np.asarray(ids).reshape(-1)
    lw = thickness or max(2, round(min(h, w) / 180))
    radius = lw + 1
    # Elements are painted opaquely onto a colour layer and an alpha layer, then blended once.
    color_layer = np.zeros((h, w, 3), np.uint8)
    alpha_layer = np.zeros((h, w), np.uint8)
    finite = np.isfinite(kpts[..., :2]).all(-1)
    shown = finite & (np.nan_to_num(kpts[..., 2], nan=-1.0) > joint_threshold)
    if joint_scores is not None and min_joint_score > 0:
        shown &= np.asarray(joint_scores, np.float32).reshape(shown.shape) >= min_joint_score  # NaN: hidden
    alpha = (_opacity(kpts[..., 2]) * 255).astype(np.uint8)
    pts = np.where(finite[..., None], kpts[..., :2], 0.0).round().clip(-1e5, 1e5).astype(np.int32)
    for p in range(n):
        color = person_color(int(ids[p]))
        for a, b in skeleton:
            if shown[p, a] and shown[p, b]:
                pa, pb = tuple(int(v) for v in pts[p, a]), tuple(int(v) for v in pts[p, b])
                cv2.line(color_layer, pa, pb, color, lw, cv2.LINE_AA)
                cv2.line(alpha_layer, pa, pb, int(min(alpha[p, a], alpha[p, b])), lw, cv2.LINE_AA)
        for k in np.flatnonzero(shown[p]):
            c = tuple(int(v) for v in pts[p, k])
            cv2.circle(color_layer, c, radius, color, -1, cv2.LINE_AA)
            cv2.circle(alpha_layer, c, radius, int(alpha[p, k]), -1, cv2.LINE_AA)
    if labels:
        _draw_labels(color_layer, alpha_layer, pts, shown, ids, lw)
    a = alpha_layer.astype(np.float32)[..., None] / 255.0
    out = base.astype(np.float32) * (1.0 - a) + color_layer.astype(np.float32) * a
    return (out + 0.5).astype(np.uint8)


def _draw_labels(
    color_layer: np.ndarray, alpha_layer: np.ndarray, pts: np.ndarray, shown: np.ndarray, ids: np.ndarray, lw: int
) -> None:
    """Write each person's id just above its highest drawn joint, fully opaque."""
    scale = max(0.4, lw / 2.5)
    for p in range(len(pts)):
        if not shown[p].any():
            continue
        visible = pts[p][shown[p]]
        x, y = int(visible[:, 0].min()), int(visible[:, 1].min()) - 3 * lw
        text = str(int(ids[p]))
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(color_layer, text, (x, y), font, scale, person_color(int(ids[p])), lw, cv2.LINE_AA)
        cv2.putText(alpha_layer, text, (x, y), font, scale, 255, lw, cv2.LINE_AA)
