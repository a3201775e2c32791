"""Drawing one posed person: clothing, tapered limbs, head and face marks, into a labelled crop.

Drawing goes into a 4-channel crop: channels 0-2 are RGB, channel 3 a part label (0 = empty), so
one pass of OpenCV drawing yields both the colours and the person's silhouette. Parts are drawn far
to near, each with a dark outline so overlapping limbs of one colour stay separable.

Left and right are decidable: the face (eyes, nose, mouth) is drawn only on the side turned to the
camera, hair covers the back of the head, feet point forward, and every person wears blue-ish
gloves and shoes on the left and red/orange ones on the right.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import cv2
import numpy as np

from grapepose.synth.skeleton import Body, J

__all__ = ["Look", "sample_look", "draw_person", "capsules"]

_SHIFT = 3  # OpenCV sub-pixel bits: coordinates are multiplied by 8
_ONE = 1 << _SHIFT
SKIN, SHIRT, TROUSERS, HAIR, LEFT, RIGHT, MARK = 1, 2, 3, 4, 5, 6, 7
_SKINS = np.array([(255, 224, 196), (241, 194, 160), (224, 172, 130), (198, 134, 90), (160, 102, 62),
                   (110, 70, 45), (80, 52, 36)], np.float64)  # fmt: skip
_HAIRS = np.array([(25, 20, 20), (60, 40, 30), (110, 75, 45), (200, 170, 110), (165, 160, 155), (140, 60, 30)],
                  np.float64)  # fmt: skip
# (part, joint a, joint b, radius at a, radius at b, material) in body units. Materials: 0 skin,
# 1 shirt, 2 trousers, 3 left accessory (4 on the right side); forearms and shins turn to skin for
# short sleeves and shorts.
_LIMBS = (
    ("upper_arm", "shoulder", "elbow", 0.034, 0.027, 1), ("forearm", "elbow", "wrist", 0.027, 0.021, 1),
    ("hand", "wrist", "hand", 0.022, 0.027, 3), ("thigh", "hip", "knee", 0.058, 0.040, 2),
    ("shin", "knee", "ankle", 0.040, 0.028, 2), ("foot", "ankle", "toe", 0.032, 0.026, 3),
)  # fmt: skip
_PARTS = [(f"{sd}_{a}", f"{sd}_{b}", r0, r1, m + (m == 3 and sd == "right"), part)
          for sd in ("left", "right") for part, a, b, r0, r1, m in _LIMBS]
_PARTS.append(("neck_base", "neck_top", 0.03, 0.028, 0, "neck"))
_IA = np.array([J[p[0]] for p in _PARTS])
_IB = np.array([J[p[1]] for p in _PARTS])
_IA2, _IB2 = np.concatenate([_IA, _IA]), np.concatenate([_IB, _IB])
_RA = np.array([p[2] for p in _PARTS])
_RB = np.array([p[3] for p in _PARTS])
_MAT = np.array([p[4] for p in _PARTS])
_FOREARMS = np.array([p[5] == "forearm" for p in _PARTS])
_SHINS = np.array([p[5] == "shin" for p in _PARTS])
_BY_BUILD = np.array([p[5] == "neck" for p in _PARTS])
_BY_LIMB = np.array([p[5] not in ("hand", "foot", "neck") for p in _PARTS])
_LABELS = np.array([SKIN, SHIRT, TROUSERS, LEFT, RIGHT])


@dataclass
class Look:
    """A person's appearance: RGB colours (float 0-255), sleeve/leg lengths and fabric patterns."""

    skin: np.ndarray
    hair: np.ndarray
    shirt: np.ndarray
    trousers: np.ndarray
    left: np.ndarray
    right: np.ndarray
    long_sleeves: bool
    long_legs: bool
    patterns: dict[int, tuple[str, float, float, float]]  # label -> (kind, period px fraction, angle, gain)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v)) * 255.0


def sample_look(rng: np.random.Generator) -> Look:
    """Random clothing colours and patterns; left accessories blue-ish, right ones red/orange."""
    u = rng.uniform
    patterns = {}
    for label in (SHIRT, TROUSERS):
        if rng.random() < (0.45 if label == SHIRT else 0.2):
            kind = ("stripes", "checks")[int(rng.integers(2))]
            patterns[label] = (kind, u(0.015, 0.05), u(0, np.pi), u(0.55, 0.8) if rng.random() < 0.7 else 1.3)
    return Look(
        skin=_SKINS[rng.integers(len(_SKINS))] * u(0.92, 1.05, 3),
        hair=_HAIRS[rng.integers(len(_HAIRS))] * u(0.85, 1.15),
        shirt=_hsv(u(0, 1), u(0, 1) ** 0.7, u(0.15, 1)),
        trousers=_hsv(u(0, 1), u(0, 0.8), u(0.1, 0.8)),
        left=_hsv(u(0.53, 0.68), u(0.6, 1), u(0.55, 1)),
        right=_hsv(u(-0.03, 0.09), u(0.7, 1), u(0.65, 1)),
        long_sleeves=bool(rng.random() < 0.6),
        long_legs=bool(rng.random() < 0.75),
        patterns=patterns,
    )


def capsules(a: np.ndarray, b: np.ndarray, ra: np.ndarray, rb: np.ndarray, n: int = 7) -> np.ndarray:
    """Convex outlines of tapered capsules (two circles and their outer tangents).

    Args:
        a, b: `[P, 2]` end centres; ra, rb: `[P]` end radii.
        n: points per end arc.

    Returns:
        `[P, 2n, 2]` polygon vertices, counter-clockwise in image axes.
    """
    d = b - a
    length = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)
    theta = np.arctan2(d[:, 1], d[:, 0])[:, None]
    phi = np.arcsin(np.clip((ra - rb) / length, -0.95, 0.95))[:, None]
    t = np.linspace(0.0, 1.0, n)[None, :]
    ang_b = theta + (-np.pi / 2 + phi) + t * (np.pi - 2 * phi)
    ang_a = theta + (np.pi / 2 - phi) + t * (np.pi + 2 * phi)
    pb = b[:, None, :] + rb[:, None, None] * np.stack([np.cos(ang_b), np.sin(ang_b)], -1)
    pa = a[:, None, :] + ra[:, None, None] * np.stack([np.cos(ang_a), np.sin(ang_a)], -1)
    return np.concatenate([pb, pa], axis=1)


def _fix(p: np.ndarray) -> np.ndarray:
    return np.round(p * _ONE).astype(np.int32)


def _col(rgb: np.ndarray, label: int, gain: float = 1.0) -> tuple[int, int, int, int]:
    r, g, b = rgb.tolist()
    return min(int(r * gain), 255), min(int(g * gain), 255), min(int(b * gain), 255), label


def _hull(canvas: np.ndarray, pts: np.ndarray, rgb: np.ndarray, label: int, gain: float, ow: float) -> None:
    hull = cv2.convexHull(_fix(pts)).reshape(-1, 2)
    centre = hull.mean(axis=0)
    rad = hull - centre
    grown = hull + rad / np.maximum(np.linalg.norm(rad, axis=1, keepdims=True), 1) * ow * _ONE
    cv2.fillConvexPoly(canvas, np.round(grown).astype(np.int32), _col(rgb, MARK, 0.45 * gain), cv2.LINE_8, _SHIFT)
    cv2.fillConvexPoly(canvas, hull, _col(rgb, label, gain), cv2.LINE_8, _SHIFT)


def _ellipse(canvas: np.ndarray, c: np.ndarray, ax: tuple[float, float], angle: float, col: tuple) -> None:
    x, y = c.tolist()
    axes = (max(int(ax[0] * _ONE + 0.5), 1), max(int(ax[1] * _ONE + 0.5), 1))
    cv2.ellipse(canvas, (int(x * _ONE + 0.5), int(y * _ONE + 0.5)), axes, angle, 0, 360, col, -1, cv2.LINE_8, _SHIFT)


def _draw_head(canvas: np.ndarray, body: Body, look: Look, q: np.ndarray, s: float, ow: float) -> None:
    """Hair, face, ears, eyes, nose and mouth; only the parts turned to the camera are drawn."""
    r = body.dims["head_r"] * s
    left, up, fwd = (np.array([v[0], -v[1]]) for v in body.head_axes)
    fz = body.head_axes[2, 2]
    c = q[J["head_center"]]
    angle = float(np.degrees(np.arctan2(up[1], up[0]))) + 90.0
    seen = body.face_seen
    ear_r = max(0.22 * r, 0.6)
    ears = [(q[J[n]], k) for n, k in (("left_ear", 3), ("right_ear", 4)) if seen[k]]
    for p, k in ears:
        if body.head_axes[0, 2] * (1 if k == 3 else -1) <= 0.2:
            _ellipse(canvas, p, (ear_r + ow, ear_r + ow), 0, _col(look.skin, MARK, 0.55))
            _ellipse(canvas, p, (ear_r, ear_r), 0, _col(look.skin, SKIN))
    hc = c - fwd * 0.12 * r + up * 0.06 * r
    _ellipse(canvas, hc, (0.95 * r + ow, 1.08 * r + ow), angle, _col(look.hair, MARK, 0.5))
    _ellipse(canvas, hc, (0.95 * r, 1.08 * r), angle, _col(look.hair, HAIR))
    if fz > -0.35:
        _ellipse(canvas, c + fwd * 0.22 * r - up * 0.1 * r, (0.82 * r, 0.92 * r), angle, _col(look.skin, SKIN))
    for p, k in ears:
        if body.head_axes[0, 2] * (1 if k == 3 else -1) > 0.2:
            _ellipse(canvas, p, (ear_r + ow, ear_r + ow), 0, _col(look.skin, MARK, 0.55))
            _ellipse(canvas, p, (ear_r, ear_r), 0, _col(look.skin, SKIN))
    for name, k in (("left_eye", 1), ("right_eye", 2)):
        if seen[k]:
            p = q[J[name]]
            if r >= 7:
                _ellipse(canvas, p, (0.2 * r, 0.13 * r), angle, (240, 240, 235, MARK))
            _ellipse(canvas, p + fwd * 0.06 * r, (max(0.09 * r, 0.6),) * 2, 0, (25, 20, 20, MARK))
    if seen[0]:
        _ellipse(canvas, q[J["nose"]], (max(0.13 * r, 0.6),) * 2, 0, _col(look.skin, MARK, 0.7))
    if fz > 0.25 and r >= 4:
        m, half = q[J["mouth"]], left * 0.22 * r * fz
        pts = _fix(np.stack([m - half, m + half]))
        cv2.line(canvas, tuple(map(int, pts[0])), tuple(map(int, pts[1])), (130, 40, 45, MARK),
                 max(1, int(0.07 * r)), cv2.LINE_8, _SHIFT)  # fmt: skip


def _texture(rgb: np.ndarray, label: np.ndarray, look: Look, s: float) -> None:
    """Stripes or checks on shirt and trousers pixels (in place)."""
    h, w = label.shape
    for part, (kind, period, ang, gain) in look.patterns.items():
        sel = cv2.compare(label, part, cv2.CMP_EQ)
        if not cv2.countNonZero(sel):
            continue
        per = max(int(round(period * s)), 2)
        tile = np.zeros((1, 2 * per), np.uint8)
        tile[0, :per] = 255
        # Stripes as a 1-pixel-high tile sampled along a rotated axis, wrapping around.
        warp = {"flags": cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, "borderMode": cv2.BORDER_WRAP}
        c, sn = float(np.cos(ang)), float(np.sin(ang))
        odd = cv2.warpAffine(tile, np.float32([[c, sn, 0], [0, 0, 0]]), (w, h), **warp)
        if kind == "checks":
            odd ^= cv2.warpAffine(tile, np.float32([[-sn, c, 0], [0, 0, 0]]), (w, h), **warp)
        sel = cv2.bitwise_and(sel, odd)
        cv2.copyTo(cv2.convertScaleAbs(rgb, alpha=gain), sel, rgb)


def _torso_hulls(body: Body) -> tuple[np.ndarray, np.ndarray]:
    """3D corner points of the chest (shirt) and pelvis (trousers), thickened front to back."""
    bp, d, w = body.points, body.dims, body.dims["build"]
    tl, tu, tf = body.torso_axes
    hl = bp[J["left_hip"]] - bp[J["right_hip"]]
    hl /= np.linalg.norm(hl)
    pf = np.array([-hl[2], 0.0, hl[0]])  # forward of the hips: their left x up
    chest = np.stack([bp[J["left_shoulder"]] + tu * 0.025 + tl * 0.02, bp[J["right_shoulder"]] + tu * 0.025 - tl * 0.02,
                      bp[J["neck_base"]] + tu * 0.03, bp[J["waist"]] + tl * 0.095 * w,
                      bp[J["waist"]] - tl * 0.095 * w])  # fmt: skip
    pelvis = np.stack([bp[J["waist"]] + hl * 0.1 * w, bp[J["waist"]] - hl * 0.1 * w,
                       bp[J["left_hip"]] + hl * 0.055 * w - 0.02 * tu, bp[J["right_hip"]] - hl * 0.055 * w - 0.02 * tu,
                       bp[J["pelvis"]] - np.array([0, 0.075, 0])])  # fmt: skip
    off_c, off_p = tf * d["chest_depth"], pf * 0.065 * w
    return np.concatenate([chest + off_c, chest - off_c]), np.concatenate([pelvis + off_p, pelvis - off_p])


def draw_person(
    body: Body, look: Look, scale: float, foot: tuple[float, float], size: int
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, tuple[int, int]]:
    """Rasterize `body` with standing height `scale` px, feet at image point `foot`.

    Returns:
        pts: `[len(J), 2]` image coordinates of every body point.
        rgb: `[h, w, 3]` uint8 crop of the part inside the `size`-square image (None when nothing
            of the person falls inside it).
        label: `[h, w]` uint8 part labels of the crop (0 = not the person), or None.
        origin: (x, y) of the crop's top-left pixel in the image.
    """
    pts = np.stack([foot[0] + scale * body.points[:, 0], foot[1] - scale * body.points[:, 1]], axis=1)
    z = body.points[:, 2]
    pad = 0.12 * scale + 2
    x0, y0 = np.floor(pts.min(axis=0) - pad).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0) + pad).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
    if x1 <= x0 or y1 <= y0:
        return pts, None, None, (0, 0)
    canvas = np.zeros((y1 - y0, x1 - x0, 4), np.uint8)
    q = pts - np.array([x0, y0], np.float64)
    d = body.dims
    ow = max(1.0, 0.005 * scale)
    zc = float(z[J["pelvis"]])

    # Capsule parts, in the static order of _PARTS; colours per part from the look's palette.
    mat = _MAT.copy()
    mat[_FOREARMS] = 1 if look.long_sleeves else 0
    mat[_SHINS] = 2 if look.long_legs else 0
    size_k = np.where(_BY_BUILD, d["build"], np.where(_BY_LIMB, d["limb"], 1.0)) * scale
    rad_a, rad_b = _RA * size_k, _RB * size_k
    n = len(_PARTS)
    both = _fix(capsules(q[_IA2], q[_IB2], np.concatenate([rad_a, rad_a + ow]), np.concatenate([rad_b, rad_b + ow])))
    inner, outer = both[:n], both[n:]
    keys = (z[_IA] + z[_IB]) / 2
    keys[-1] = min(keys[-1], z[J["head_center"]]) - 0.005  # neck behind the head
    palette = np.stack([look.skin, look.shirt, look.trousers, look.left, look.right])[mat]
    gains = np.clip(1.0 + 1.2 * (keys - zc), 0.75, 1.1)[:, None]
    fills = np.minimum(palette * gains, 255).astype(np.int64).tolist()
    lines = (palette * gains * 0.45).astype(np.int64).tolist()
    labels = _LABELS[mat].tolist()
    items: list[tuple[float, int]] = [(float(k), i) for i, k in enumerate(keys)]
    items += [(float(z[J["waist"]]) - 0.03, -1), (zc - 0.035, -2), (float(z[J["head_center"]]), -3)]
    hulls = _torso_hulls(body)
    to_crop = np.array([scale, -scale])
    for zz, i in sorted(items):
        if i >= 0:
            cv2.fillConvexPoly(canvas, outer[i], (*lines[i], MARK), cv2.LINE_8, _SHIFT)
            cv2.fillConvexPoly(canvas, inner[i], (*fills[i], labels[i]), cv2.LINE_8, _SHIFT)
        elif i == -3:
            _draw_head(canvas, body, look, q, scale, ow)
        else:
            p3, rgb, label = hulls[-1 - i], (look.shirt, look.trousers)[-1 - i], (SHIRT, TROUSERS)[-1 - i]
            p2 = (p3[:, :2] - body.points[J["pelvis"], :2]) * to_crop + q[J["pelvis"]]
            _hull(canvas, p2, rgb, label, min(max(1.0 + 1.2 * (zz - zc), 0.75), 1.1), ow)
    rgb, label = cv2.cvtColor(canvas, cv2.COLOR_RGBA2RGB), cv2.extractChannel(canvas, 3)
    if look.patterns:
        _texture(rgb, label, look, scale)
    return pts, rgb, label, (int(x0), int(y0))
