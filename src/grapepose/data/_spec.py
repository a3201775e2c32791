"""Resolve a dataset's keypoint metadata from its JSON category, built-in tables and user overrides."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from grapepose.errors import DataError
from grapepose.keypoints import COCO_KEYPOINTS, CROWDPOSE_KEYPOINTS, KeypointSpec, flip_index_from_names

log = logging.getLogger(__name__)

_BUILTIN = {"coco": COCO_KEYPOINTS, "ochuman": COCO_KEYPOINTS, "crowdpose": CROWDPOSE_KEYPOINTS}
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


def resolve_spec(
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
        category: the COCO category with `keypoints` (names) and maybe `skeleton` (1-based), or None.
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
    builtin = _builtin_for(k, cat_names, dataset)
    final_names = tuple(names) or cat_names or (builtin.names if builtin else tuple(f"keypoint_{i}" for i in range(k)))

    if flip_index:
        flip = tuple(int(i) for i in flip_index)
    elif builtin is not None and (not names or tuple(names) == builtin.names):
        # a named built-in dataset keeps its official pairs even when its JSON spells names differently
        flip = builtin.flip_index
    else:
        flip = flip_index_from_names(final_names)

    if sigmas:
        sig = tuple(float(s) for s in sigmas)
    elif builtin is not None:
        sig = builtin.sigmas
    elif category is not None and category.get("sigmas") and len(category["sigmas"]) == k:
        sig = tuple(float(s) for s in category["sigmas"])
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
