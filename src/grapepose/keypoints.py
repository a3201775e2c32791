"""Keypoint metadata: names, left/right flip permutation, OKS sigmas and drawing skeleton.

`resolve_keypoint_spec` is the one place a spec is worked out (from a dataset's JSON category, the
built-in tables and user overrides); the result travels in `Config.keypoints` and with every model
file, and every consumer reads it from there (`Config.keypoint_spec`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grapepose._config_checks import quote_value
from grapepose.errors import DataError

__all__ = [
    "KeypointSpec", "COCO_KEYPOINTS", "CROWDPOSE_KEYPOINTS", "DEFAULT_SIGMA", "builtin_spec", "keypoint_spec",
    "flip_index_from_names", "resolve_keypoint_spec",
]  # fmt: skip

log = logging.getLogger(__name__)


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
    def from_dict(cls, d: Mapping[str, Any], where: str = "keypoints") -> KeypointSpec:
        """Read `to_dict`'s output. `flip_index` may be omitted (pairs from left/right names), so may
        `skeleton` (no limbs). Raises DataError naming `where` and the field."""
        if not isinstance(d, Mapping):
            raise DataError(f"{where}: expected a mapping with names, flip_index, sigmas, skeleton, got {quote_value(d)}")
        unknown = sorted((k for k in d if k not in ("names", "flip_index", "sigmas", "skeleton")), key=str)
        if unknown:
            raise DataError(f"{where}: unknown key {quote_value(unknown[0])} (keys: names, flip_index, sigmas, skeleton)")
        for key in ("names", "sigmas"):
            if not isinstance(d.get(key), (list, tuple)) or not d[key]:
                raise DataError(f"{where}.{key}: expected a non-empty list, got {quote_value(d.get(key))}")
        names = tuple(str(n) for n in d["names"])
        try:
            flip = d.get("flip_index")
            flip = tuple(_int(i) for i in flip) if flip else flip_index_from_names(names)
            sigmas = tuple(float(s) for s in d["sigmas"])
            skeleton = tuple((_int(a), _int(b)) for a, b in d.get("skeleton") or ())
        except (TypeError, ValueError):
            raise DataError(f"{where}: flip_index, sigmas and skeleton must hold numbers (skeleton: pairs)") from None
        if not all(s >= 0 and s == s and s != float("inf") for s in sigmas):
            raise DataError(f"{where}.sigmas must be finite numbers >= 0, got {quote_value(list(sigmas))}")
        try:
            return cls(names=names, flip_index=flip, sigmas=sigmas, skeleton=skeleton)
        except DataError as e:
            raise DataError(f"{where}: {str(e).removeprefix('keypoint spec: ')}") from None


def _int(v: Any) -> int:
    if isinstance(v, bool) or not float(v).is_integer():
        raise ValueError(v)
    return int(v)


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


def builtin_spec(k: int, dataset: str | None = None) -> KeypointSpec | None:
    """The built-in spec for `dataset` when it has K keypoints, else the one with K keypoints, else None."""
    spec = _BUILTIN.get((dataset or "").lower())
    if spec is not None and spec.num_keypoints == k:
        return spec
    return next((s for s in (COCO_KEYPOINTS, CROWDPOSE_KEYPOINTS) if s.num_keypoints == k), None)


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


# OKS sigma for keypoint types no table knows (COCO's shoulder value, mid-range of the COCO table).
DEFAULT_SIGMA = 0.079


def _builtin_for(k: int, names: Sequence[str] | None, dataset: str | None) -> KeypointSpec | None:
    """The built-in table that applies: named dataset with matching K, or identical names."""
    if dataset and dataset.lower() in _BUILTIN and _BUILTIN[dataset.lower()].num_keypoints == k:
        return _BUILTIN[dataset.lower()]
    if names is not None:
        for spec in (COCO_KEYPOINTS, CROWDPOSE_KEYPOINTS):
            if tuple(names) == spec.names:
                return spec
    return None


def _skeleton(raw: Any, k: int) -> tuple[tuple[int, int], ...] | None:
    """A COCO (1-based) skeleton as 0-based pairs, or None when it does not fit K keypoints."""
    try:
        pairs = tuple((int(a) - 1, int(b) - 1) for a, b in raw)
    except (TypeError, ValueError):
        return None
    if any(not (0 <= a < k and 0 <= b < k) for a, b in pairs):
        return None  # e.g. the official CrowdPose files carry COCO's 17-keypoint skeleton
    return pairs


def _category_numbers(category: Mapping[str, Any] | None, key: str, k: int, where: str, kind: type) -> tuple | None:
    """The category's `key` list (K numbers: finite, >= 0; integers for `int`), or None when absent."""
    raw = category.get(key) if category is not None else None
    if raw is None:
        return None
    what = "integers" if kind is int else "finite numbers >= 0"
    if not isinstance(raw, list) or len(raw) != k:
        raise DataError(f"{where}: category '{key}' must list {k} {what}, got {quote_value(raw)}")
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 for v in raw)
    if not ok or (kind is int and not all(float(v).is_integer() for v in raw)):
        raise DataError(f"{where}: category '{key}' must list {k} {what}, got {quote_value(raw)}")
    return tuple(kind(v) for v in raw)


def resolve_keypoint_spec(
    category: Mapping[str, Any] | None,
    k: int,
    dataset: str | None,
    where: str,
    names: Sequence[str] = (),
    flip_index: Sequence[int] = (),
    sigmas: Sequence[float] = (),
) -> KeypointSpec:
    """Keypoint metadata for K keypoints.

    Precedence per field: user override > JSON category > built-in table (when `dataset` names one
    with K keypoints, or the names equal a built-in table's) > generic default. Flip pairs come from
    left/right names when the names are not a built-in table's.

    Args:
        category: the COCO category with `keypoints` (names) and maybe `skeleton` (1-based pairs),
            `flip_index` (0-based: the keypoint each one becomes when mirrored) and `sigmas` (OKS), or None.
        k: number of keypoints in the annotations.
        dataset: `coco`, `crowdpose`, `ochuman`, `custom` or None.
        where: file name for messages.
        names, flip_index, sigmas: overrides (empty = not given).
    """
    cat_names = None
    if category is not None and category.get("keypoints"):
        cat_names = tuple(str(n) for n in category["keypoints"])
        if len(cat_names) != k:
            raise DataError(
                f"{where}: category lists {len(cat_names)} keypoint names but annotations have {k} keypoints"
            )
    for label, seq in (("keypoint_names", names), ("flip_index", flip_index), ("sigmas", sigmas)):
        if seq and len(seq) != k:
            raise DataError(f"{where}: data.{label} has {len(seq)} entries but the annotations have {k} keypoints")
    cat_flip = _category_numbers(category, "flip_index", k, where, int)
    cat_sigmas = _category_numbers(category, "sigmas", k, where, float)
    builtin = _builtin_for(k, cat_names, dataset)
    final_names = tuple(names) or cat_names or (builtin.names if builtin else tuple(f"keypoint_{i}" for i in range(k)))

    if flip_index:
        flip = tuple(int(i) for i in flip_index)
    elif cat_flip is not None:
        flip = cat_flip
    elif builtin is not None and (not names or tuple(names) == builtin.names):
        # a named built-in dataset keeps its official pairs even when its JSON spells names differently
        flip = builtin.flip_index
    else:
        flip = flip_index_from_names(final_names)

    if sigmas:
        sig = tuple(float(s) for s in sigmas)
    elif builtin is not None:
        sig = builtin.sigmas
    elif cat_sigmas is not None:
        sig = cat_sigmas
    else:
        log.warning("%s: no OKS sigmas known for these %d keypoints; using %.3f for each", where, k, DEFAULT_SIGMA)
        sig = (DEFAULT_SIGMA,) * k

    raw_skel = category.get("skeleton") if category is not None else None
    skel = _skeleton(raw_skel, k) if raw_skel else None
    if skel is None:
        skel = builtin.skeleton if builtin is not None else ()
        if raw_skel:
            how = "using the built-in one" if builtin is not None else "drawing no limbs"
            (log.info if builtin is not None else log.warning)(
                "%s: category skeleton does not fit %d keypoints (1-based pairs expected); %s", where, k, how
            )
    try:
        return KeypointSpec(names=final_names, flip_index=flip, sigmas=sig, skeleton=skel)
    except DataError as e:
        raise DataError(f"{where}: {e}") from None
