"""Cluttered procedural backgrounds with limb-like distractors, and final camera-like noise."""

from __future__ import annotations

import cv2
import numpy as np

from grapepose.synth.figure import capsules

__all__ = ["background", "finish"]

_SKIN_LIKE = np.array([(240, 200, 170), (200, 140, 100), (120, 80, 55), (90, 60, 40)], np.float64)


def _rand_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    c = rng.integers(0, 256, 3)
    return int(c[0]), int(c[1]), int(c[2])


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A `[size, size, 3]` uint8 RGB scene: wall and floor gradients, blotches, shapes, lines and
    stray limbs and head-like blobs (distractors a detector must learn to ignore)."""
    s = size
    lo = max(s // 4, 16)  # smooth parts are built at low resolution and upscaled (fast)
    horizon = int(rng.uniform(0.15, 0.75) * lo)
    rows = np.empty((lo, 3), np.float32)
    c = rng.uniform(30, 230, (4, 3))
    rows[:horizon] = np.linspace(c[0], c[1], horizon, dtype=np.float32)
    rows[horizon:] = np.linspace(c[2], c[3], lo - horizon, dtype=np.float32)
    blotch = cv2.resize(rng.uniform(-40, 40, (5, 5, 3)).astype(np.float32), (lo, lo), interpolation=cv2.INTER_CUBIC)
    small = np.clip(rows[:, None, :] + blotch, 0, 255).astype(np.uint8)
    img = cv2.resize(small, (s, s), interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.integers(3, 13))):  # furniture, windows, signs
        x, y = rng.uniform(-0.1, 1.0, 2) * s
        w, h = rng.uniform(0.03, 0.4, 2) * s
        col = _rand_colour(rng)
        kind = rng.integers(3)
        if kind == 0:
            cv2.rectangle(img, (int(x), int(y)), (int(x + w), int(y + h)), col, -1)
        elif kind == 1:
            cv2.ellipse(img, (int(x), int(y)), (int(w / 2), int(h / 2)), float(rng.uniform(0, 180)), 0, 360, col, -1)
        else:
            pts = (rng.uniform(0, 1, (int(rng.integers(3, 6)), 2)) * [w, h] + [x, y]).astype(np.int32)
            cv2.fillConvexPoly(img, cv2.convexHull(pts), col)
    for _ in range(int(rng.integers(4, 20))):  # poles, cables, edges
        p = (rng.uniform(-0.1, 1.1, 4) * s).astype(int)
        cv2.line(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), _rand_colour(rng), int(rng.integers(1, 5)))
    _distractors(rng, img)
    return img


def _distractors(rng: np.random.Generator, img: np.ndarray) -> None:
    """Chains of tapered capsules in skin and cloth colours, and bare head-like ovals."""
    s = img.shape[0]
    n = int(rng.integers(2, 10))
    for _ in range(n):
        links = int(rng.integers(1, 4))
        width = rng.uniform(0.008, 0.04) * s
        seg = rng.uniform(0.04, 0.16) * s
        start = rng.uniform(0, 1, 2) * s
        ang = rng.uniform(-np.pi, np.pi) + np.cumsum(rng.uniform(-1.2, 1.2, links))
        pts = start + np.concatenate([[[0.0, 0.0]], np.cumsum(seg * np.stack([np.cos(ang), np.sin(ang)], 1), 0)])
        radii = width * np.linspace(1.0, 0.7, links + 1)
        if rng.random() < 0.5:
            col = _SKIN_LIKE[rng.integers(len(_SKIN_LIKE))] * rng.uniform(0.85, 1.1)
            col = tuple(int(v) for v in np.clip(col, 0, 255))
        else:
            col = _rand_colour(rng)
        polys = np.round(capsules(pts[:-1], pts[1:], radii[:-1], radii[1:]) * 8).astype(np.int32)
        for poly in polys:
            cv2.fillConvexPoly(img, poly, col, cv2.LINE_8, 3)
        if rng.random() < 0.25:
            r = int(width * rng.uniform(1.5, 2.5))
            tip = tuple(int(v) for v in pts[-1])
            cv2.ellipse(img, tip, (max(r, 1), max(int(r * 1.2), 1)), 0, 0, 360, col, -1)


def finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Camera-like finish: occasional blur, brightness/contrast change and sensor noise."""
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (3, 3), 0)
    gain, bias = float(rng.uniform(0.8, 1.2)), float(rng.uniform(-20, 20))
    img = cv2.addWeighted(img, gain, img, 0.0, bias)
    if rng.random() < 0.5:
        noise = rng.standard_normal(img.shape[:2], dtype=np.float32) * np.float32(rng.uniform(2, 7)) + np.float32(128)
        grain = cv2.cvtColor(np.clip(noise, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
        img = cv2.addWeighted(img, 1.0, grain, 1.0, -128.0)
    return img
