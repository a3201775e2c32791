"""Keypoint metadata: names, left/right flip permutation, OKS sigmas and drawing skeleton."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grapepose.errors import DataError

__all__ = ["KeypointSpec", "COCO_KEYPOINTS", "CROWDPOSE_KEYPOINTS", "keypoint_spec", "flip_index_from_names"]


@dataclass(frozen=True)
class KeypointSpec:
    """What the K keypoints of a dataset are.

    Attributes:
        names: keypoint names, length K.
        flip_index: `flip_index[k]` is the keypoint that k becomes in a mirrored image.
        sigmas: per-keypoint OKS sigmas (COCO convention, already divided by 10).
        skeleton: 0-based (a, b) pairs of keypoints joined by a limb when drawing.
    """

    names: tuple[str, ...]
    flip_index: tuple[int, ...]
    sigmas: tuple[float, ...]
    skeleton: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        k = len(self.names)
        if len(self.flip_index) != k or len(self.sigmas) != k:
            raise DataError(
                f"keypoint spec: {k} names but {len(self.flip_index)} flip entries and {len(self.sigmas)} sigmas"
            )
        if sorted(self.flip_index) != list(range(k)):
            raise DataError(f"keypoint spec: flip_index {list(self.flip_index)} is not a permutation of 0..{k - 1}")
        for a, b in self.skeleton:
            if not (0 <= a < k and 0 <= b < k):
                raise DataError(f"keypoint spec: skeleton pair ({a}, {b}) is outside 0..{k - 1}")

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "flip_index": list(self.flip_index),
            "sigmas": list(self.sigmas),
            "skeleton": [list(p) for p in self.skeleton],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> KeypointSpec:
        return cls(
            names=tuple(d["names"]),
            flip_index=tuple(int(i) for i in d["flip_index"]),
            sigmas=tuple(float(s) for s in d["sigmas"]),
            skeleton=tuple((int(a), int(b)) for a, b in d.get("skeleton", ())),
        )


def flip_index_from_names(names: Sequence[str]) -> tuple[int, ...]:
    """Pair `left_*`/`right_*` (also `l_`/`r_`, `left`/`right` anywhere) names; others map to themselves."""
    lookup = {n: i for i, n in enumerate(names)}
    swaps = (("left_", "right_"), ("right_", "left_"), ("l_", "r_"), ("r_", "l_"), ("left", "right"), ("right", "left"))
    out = []
    for i, name in enumerate(names):
        partner = i
        low = name
        for a, b in swaps:
            if low.startswith(a) and (b + low[len(a):]) in lookup:
                partner = lookup[b + low[len(a):]]
                break
            if a in ("left", "right") and a in low and low.replace(a, b, 1) in lookup:
                partner = lookup[low.replace(a, b, 1)]
                break
        out.append(partner)
    return tuple(out)


_COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

COCO_KEYPOINTS = KeypointSpec(
    names=_COCO_NAMES,
    flip_index=(0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15),
    sigmas=tuple(s / 10.0 for s in (0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62,
                                     1.07, 1.07, 0.87, 0.87, 0.89, 0.89)),
    skeleton=((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
              (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)),
)  # fmt: skip

CROWDPOSE_KEYPOINTS = KeypointSpec(
    names=("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
           "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "neck"),
    flip_index=(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13),
    sigmas=tuple(s / 10.0 for s in (0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89,
                                     0.79, 0.79)),
    skeleton=((12, 13), (13, 0), (13, 1), (0, 2), (2, 4), (1, 3), (3, 5), (0, 6), (1, 7), (6, 7), (6, 8),
              (8, 10), (7, 9), (9, 11)),
)  # fmt: skip

_BUILTIN = {"coco": COCO_KEYPOINTS, "ochuman": COCO_KEYPOINTS, "crowdpose": CROWDPOSE_KEYPOINTS}


def keypoint_spec(name_or_k: str | int) -> KeypointSpec:
    """Built-in spec by dataset name (`coco`, `crowdpose`, `ochuman`) or keypoint count (17 or 14)."""
    if isinstance(name_or_k, int):
        for spec in (COCO_KEYPOINTS, CROWDPOSE_KEYPOINTS):
            if spec.num_keypoints == name_or_k:
                return spec
        raise DataError(f"no built-in keypoint spec with {name_or_k} keypoints (built-in: 17 COCO, 14 CrowdPose)")
    try:
        return _BUILTIN[name_or_k.lower()]
    except KeyError:
        raise DataError(f"unknown keypoint set {name_or_k!r}; built-in: {', '.join(sorted(_BUILTIN))}") from None
