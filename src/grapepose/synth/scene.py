"""Scene composition: where people stand (per preset), depth order, occlusion and COCO-style labels.

People are drawn back to front onto a procedural background while a label map records, per pixel,
the front-most person (`owner`, 1-based layer; 0 = background). A joint inside the image is
visible (v=2) unless a person drawn later covers its pixel (`owner > own layer`, v=1). Joints
outside the image, and face points turned away from the camera, are unlabelled (v=0, x=y=0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from grapepose.errors import GrapeposeError
from grapepose.keypoints import KeypointSpec
from grapepose.synth.background import background, finish
from grapepose.synth.figure import draw_person, sample_look
from grapepose.synth.skeleton import FACE, sample_body, spec_to_joints

__all__ = ["PRESETS", "MIN_SIZE", "SynthPerson", "Scene", "compose_scene", "render_scene", "check_params"]

PRESETS = ("sparse", "crowd", "hard")  # few separated people / loose groups / dense groups
MIN_SIZE = 64
MAX_SIZE = 4096  # one 4096² RGB image is 48 MiB; larger sides are a typo, not a dataset
MAX_SEED = 2**32 - 1
MAX_PEOPLE = 20  # COCO keypoint evaluation keeps at most 20 detections per image


@dataclass
class SynthPerson:
    """One drawn person's labels.

    Attributes:
        keypoints: `[K, 3]` float32 (x, y, v) in image pixels, COCO visibility flags.
        bbox: (x, y, w, h) of the person's visible pixels.
        area: number of visible pixels.
        layer: depth rank among the drawn people (0 = farthest; index into the full masks).
    """

    keypoints: np.ndarray
    bbox: tuple[float, float, float, float]
    area: int
    layer: int


@dataclass
class Scene:
    """A rendered image with its people.

    Attributes:
        image: `[S, S, 3]` uint8 RGB.
        people: annotated people (at least one labelled joint), back to front.
        owner: `[S, S]` uint8, 1 + layer of the front-most person per pixel, 0 for background.
        ignored: people drawn but left unlabelled (almost hidden, or no joint in the image): all
            their keypoints are zero, so COCO evaluation ignores them and training masks their pixels.
    """

    image: np.ndarray
    people: list[SynthPerson]
    owner: np.ndarray
    ignored: list[SynthPerson] = field(default_factory=list)
    _crops: list[tuple[np.ndarray, int, int]] = field(default_factory=list, repr=False)

    def full_masks(self) -> np.ndarray:
        """`[L, S, S]` bool silhouettes of every drawn person, ignoring occlusion, back to front."""
        s = self.owner.shape[0]
        out = np.zeros((len(self._crops), s, s), bool)
        for i, (m, x, y) in enumerate(self._crops):
            out[i, y : y + m.shape[0], x : x + m.shape[1]] = m > 0
        return out

    def visible_mask(self, layer: int) -> tuple[np.ndarray, int, int]:
        """uint8 mask (255 = visible pixel) of person `layer` within its crop, and the crop's x, y."""
        m, x, y = self._crops[layer]
        return cv2.compare(self.owner[y : y + m.shape[0], x : x + m.shape[1]], layer + 1, cv2.CMP_EQ), x, y

    def ignore_mask(self) -> np.ndarray | None:
        """Visible pixels of the ignored people, or None when there are none."""
        if not self.ignored:
            return None
        lut = np.zeros(len(self._crops) + 1, bool)
        lut[[p.layer + 1 for p in self.ignored]] = True
        return lut[self.owner]


def check_params(preset: str, size: int) -> None:
    """Raise GrapeposeError for an unknown preset or an image side below MIN_SIZE."""
    if preset not in PRESETS:
        raise GrapeposeError(f"synthetic data: unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if isinstance(size, bool) or int(size) != size or not MIN_SIZE <= size <= MAX_SIZE:
        raise GrapeposeError(f"synthetic data: image size must be an integer in [{MIN_SIZE}, {MAX_SIZE}], got {size}")


def check_seed(seed: int) -> None:
    """Raise GrapeposeError for a seed outside [0, 2**32 - 1]."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise GrapeposeError(f"synthetic data: seed must be an integer in [0, {MAX_SEED}], got {seed}")


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(max(hi, lo)))))


def _layout(rng: np.random.Generator, preset: str, size: int) -> list[tuple[float, float, float]]:
    """(foot x, foot y, standing height) per person, back to front."""
    s = float(size)
    lo, hi = min(40.0, 0.5 * s), 0.92 * s
    out: list[tuple[float, float, float]] = []

    def foot_y(h: float) -> float:  # head top from just above the image to where half the body shows
        return rng.uniform(-0.05 * h, max(s - 0.7 * h, 0.0)) + h

    if preset == "sparse":
        boxes: list[tuple[float, float, float, float]] = []
        for _ in range(int(rng.integers(1, 5))):
            h = _loguniform(rng, lo, 0.85 * s)
            for _try in range(30):
                x, y = rng.uniform(0.1, 0.9) * s, foot_y(h)
                box = (x - 0.2 * h, y - 0.95 * h, x + 0.2 * h, y)  # arms may reach across
                if all(box[2] < b[0] or b[2] < box[0] or box[3] < b[1] or b[3] < box[1] for b in boxes):
                    boxes.append(box)
                    out.append((x, y, h))
                    break
    else:
        hard = preset == "hard"
        n = int(rng.integers(10, MAX_PEOPLE + 1) if hard else rng.integers(3, 15))
        groups = []
        for _ in range(int(rng.integers(1, 3) if hard else rng.integers(1, 4))):
            h = _loguniform(rng, max(lo, 0.15 * s), 0.7 * s)
            spread = rng.uniform(0.3, 0.7) if hard else rng.uniform(0.2, 1.0)
            groups.append((rng.uniform(0.15, 0.85) * s, foot_y(h), h, spread))
        for _ in range(n):
            if not hard and rng.random() < 0.25:
                h = _loguniform(rng, lo, hi)
                out.append((rng.uniform(0.05, 0.95) * s, foot_y(h), h))
                continue
            cx, cy, h, spread = groups[int(rng.integers(len(groups)))]
            y = cy + rng.normal(0, 0.12 * h)
            hh = h * rng.uniform(0.88, 1.12) * max(1 + 0.8 * (y - cy) / s, 0.5)  # nearer (lower) is taller
            out.append((cx + rng.normal(0, spread * h * (1 + 0.15 * len(out) ** 0.5)), y, hh))
    out.sort(key=lambda p: p[1])
    return out


def compose_scene(rng: np.random.Generator, preset: str, size: int, spec: KeypointSpec) -> Scene:
    """Render one image of `preset` and label its people with `spec`'s keypoints (see module doc)."""
    check_params(preset, size)
    size = int(size)
    joints = spec_to_joints(spec)
    face_slot = np.array([FACE.index(j) if j in FACE else -1 for j in joints])
    img = background(rng, size)
    owner = np.zeros((size, size), np.uint8)
    drawn: list[tuple[np.ndarray, np.ndarray, np.ndarray, int, int]] = []
    for x, y, h in _layout(rng, preset, size):
        body, look = sample_body(rng), sample_look(rng)
        pts, rgb, label, (ox, oy) = draw_person(body, look, h, (x, y), size)
        if rgb is None:
            continue
        m = cv2.compare(label, 0, cv2.CMP_GT)  # 255 on the person, as OpenCV masks are
        if not cv2.countNonZero(m):
            continue
        win = (slice(oy, oy + m.shape[0]), slice(ox, ox + m.shape[1]))
        cv2.copyTo(rgb, m, img[win])
        cv2.copyTo(np.full_like(m, len(drawn) + 1), m, owner[win])
        seen = np.where(face_slot >= 0, body.face_seen[np.maximum(face_slot, 0)], True)
        drawn.append((pts[joints], seen, m, ox, oy))
    img = finish(rng, img)
    people, ignored = [], []
    for layer, (xy, seen, m, ox, oy) in enumerate(drawn):
        xy = np.round(xy, 2).astype(np.float32)
        inside = (xy[:, 0] >= 0) & (xy[:, 1] >= 0) & (xy[:, 0] < size) & (xy[:, 1] < size) & seen
        px = np.where(inside[:, None], xy, 0).astype(np.int64)
        covered = owner[px[:, 1], px[:, 0]] > layer + 1
        v = np.where(inside, np.where(covered, 1, 2), 0).astype(np.float32)
        own = cv2.compare(owner[oy : oy + m.shape[0], ox : ox + m.shape[1]], layer + 1, cv2.CMP_EQ)
        area = cv2.countNonZero(own)
        if not area:
            continue  # fully hidden: nothing to label or to ignore
        bx, by, bw, bh = cv2.boundingRect(own)
        bbox = (float(ox + bx), float(oy + by), float(bw), float(bh))
        kp = np.concatenate([np.where(inside[:, None], xy, 0), v[:, None]], axis=1).astype(np.float32)
        if not inside.any() or area < max(8, 0.02 * cv2.countNonZero(m)):
            ignored.append(SynthPerson(keypoints=np.zeros_like(kp), bbox=bbox, area=area, layer=layer))
        else:
            people.append(SynthPerson(keypoints=kp, bbox=bbox, area=area, layer=layer))
    return Scene(img, people, owner, ignored, [(m, ox, oy) for _, _, m, ox, oy in drawn])


def render_scene(
    rng: np.random.Generator, preset: str, size: int, spec: KeypointSpec, return_masks: bool = False
) -> tuple[np.ndarray, list[SynthPerson]] | tuple[np.ndarray, list[SynthPerson], np.ndarray]:
    """Render one synthetic image.

    Returns:
        image `[S, S, 3]` uint8 RGB and the annotated people (back to front); with `return_masks`,
        also `[L, S, S]` bool unoccluded silhouettes of all L drawn people (`person.layer` indexes them).
    """
    scene = compose_scene(rng, preset, size, spec)
    if return_masks:
        return scene.image, scene.people, scene.full_masks()
    return scene.image, scene.people
