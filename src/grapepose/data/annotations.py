"""The one validation of COCO-format keypoint files (ground truth) and keypoint results files.

Training (`KeypointDataset`, hence `show-targets`), evaluation (the ground truth and the results)
and the synthetic writer all call these, so a fault gives the same one-line `DataError` everywhere,
naming the file and the image or annotation id: duplicate ids, NaN/inf/negative values, wrong
keypoint counts, non-numeric fields, malformed RLE, image paths that leave the image folder.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from grapepose.errors import DataError

__all__ = ["KeypointAnnotations", "check_keypoint_annotations", "check_results", "check_file_name"]


@dataclass(frozen=True)
class KeypointAnnotations:
    """A validated COCO-format keypoint file.

    Attributes:
        images: the image records, in file order.
        category: the keypoint category (with `keypoints` names), or None when the file has none.
        annotations: the records of that category, in file order.
        num_keypoints: K.
    """

    images: list[dict[str, Any]]
    category: dict[str, Any] | None
    annotations: list[dict[str, Any]]
    num_keypoints: int


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_id(v: Any, int_ids: bool) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (not int_ids and isinstance(v, str) and v != "")


def check_file_name(name: Any, where: str) -> str:
    """`name` as a relative path that stays inside the image folder (DataError otherwise)."""
    if not isinstance(name, str) or not name:
        raise DataError(f"{where}: file_name must be a non-empty string, got {name!r}")
    norm = os.path.normpath(name.replace("\\", "/"))
    if os.path.isabs(norm) or norm == ".." or norm.startswith("../") or (len(norm) > 1 and norm[1] == ":"):
        raise DataError(f"{where}: file_name {name!r} points outside the image folder")
    return name


def _check_images(data: dict[str, Any], where: str, int_ids: bool, need_crowd_index: bool) -> list[dict[str, Any]]:
    images = data.get("images")
    if not isinstance(images, list):
        raise DataError(f"{where}: no 'images' list (not a COCO-format keypoint file?)")
    seen: set[Any] = set()
    for n, img in enumerate(images):
        if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
            raise DataError(f"{where}: image entry #{n} needs 'id' and 'file_name'")
        iid = img["id"]
        if not _is_id(iid, int_ids):
            kind = "an integer" if int_ids else "an integer or a string"
            raise DataError(f"{where}: image entry #{n}: id must be {kind}, got {iid!r}")
        if iid in seen:
            raise DataError(f"{where}: duplicate image id {iid}")
        seen.add(iid)
        check_file_name(img["file_name"], f"{where}: image {iid}")
        for key in ("height", "width"):
            v = img.get(key)
            if v is not None and not (_is_number(v) and v > 0 and float(v).is_integer()):
                raise DataError(f"{where}: image {iid}: {key} must be a positive integer, got {v!r}")
        ci = img.get("crowdIndex")
        if ci is None and need_crowd_index:
            raise DataError(f"{where}: image {iid} has no crowdIndex (needed by the crowdpose protocol)")
        if ci is not None and not (_is_number(ci) and math.isfinite(ci) and ci >= 0):
            raise DataError(f"{where}: image {iid}: crowdIndex must be a finite number >= 0, got {ci!r}")
    return images


def _keypoint_category(data: dict[str, Any], where: str) -> dict[str, Any] | None:
    raw = data.get("categories", []) or []
    if not isinstance(raw, list):
        raise DataError(f"{where}: 'categories' must be a list")
    cats = [c for c in raw if isinstance(c, dict) and c.get("keypoints")]
    if not cats:
        return None
    if len(cats) > 1:
        persons = [c for c in cats if c.get("name") == "person"]
        if len(persons) != 1:
            names = ", ".join(repr(c.get("name")) for c in cats)
            raise DataError(f"{where}: several categories with keypoints ({names}); expected one")
        cats = persons
    cat = cats[0]
    if not isinstance(cat["keypoints"], list) or not all(isinstance(n, str) for n in cat["keypoints"]):
        raise DataError(f"{where}: category {cat.get('id')!r}: 'keypoints' must be a list of names")
    return cat


def _num_keypoints(category: dict[str, Any] | None, given: int | None, anns: list[Any], where: str) -> int:
    if category is not None:
        return len(category["keypoints"])
    if given is not None:
        return given
    for a in anns:
        if isinstance(a, dict) and isinstance(a.get("keypoints"), list) and a["keypoints"] and not a.get("iscrowd"):
            n = len(a["keypoints"])
            if n % 3:
                raise DataError(f"{where}: annotation {a.get('id')}: {n} keypoint values is not a multiple of 3")
            return n // 3
    raise DataError(f"{where}: cannot tell the number of keypoints (no category 'keypoints' and no annotations)")


def _check_rle(segm: dict[str, Any], where: str) -> None:
    size, counts = segm.get("size"), segm.get("counts")
    ok = isinstance(size, list) and len(size) == 2 and all(_is_number(v) and v > 0 and float(v).is_integer() for v in size)
    if not ok:
        raise DataError(f"{where}: RLE segmentation 'size' must be [height, width], got {size!r}")
    h, w = int(size[0]), int(size[1])
    if isinstance(counts, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise DataError(f"{where}: RLE segmentation 'counts' must be non-negative integers")
        if sum(counts) != h * w:
            raise DataError(f"{where}: RLE segmentation counts cover {sum(counts)} pixels, not {h}x{w}={h * w}")
        return
    if not isinstance(counts, (str, bytes)):
        raise DataError(f"{where}: RLE segmentation 'counts' must be a list or a string, got {type(counts).__name__}")
    from faster_coco_eval.core import mask as mask_api

    try:
        rle = {"size": [h, w], "counts": counts.encode() if isinstance(counts, str) else counts}
        area = float(mask_api.area(rle))
        m = mask_api.decode(rle)
    except Exception:  # noqa: BLE001 - the C decoder raises assorted types on garbage
        raise DataError(f"{where}: RLE segmentation 'counts' is not a valid compressed RLE") from None
    if m.shape[:2] != (h, w) or not math.isfinite(area) or area > h * w:
        raise DataError(f"{where}: RLE segmentation 'counts' is not a valid compressed RLE for {h}x{w}")


def _check_segmentation(segm: Any, where: str) -> None:
    if segm is None or segm == []:
        return
    if isinstance(segm, dict):
        _check_rle(segm, where)
        return
    if not isinstance(segm, list):
        raise DataError(f"{where}: segmentation must be a list of polygons or an RLE object")
    for poly in segm:
        if not isinstance(poly, list) or len(poly) % 2 or len(poly) < 6:
            raise DataError(f"{where}: segmentation polygons must be lists of at least 3 (x, y) pairs")
        try:
            arr = np.asarray(poly)  # one C pass: strings or None give a non-numeric dtype
        except ValueError:  # nested lists
            arr = np.zeros((0, 0))
        if arr.ndim != 1 or arr.dtype.kind not in "iuf" or not np.isfinite(arr).all():
            raise DataError(f"{where}: segmentation polygon holds a value that is not a finite number")


def _check_fields(a: dict[str, Any], where: str, k: int, need_area: bool, need_bbox: bool) -> None:
    area = a.get("area")
    if area is None and need_area and not a.get("iscrowd"):
        raise DataError(f"{where}: no 'area' (the OKS of this protocol is scaled by it)")
    if area is not None and not (_is_number(area) and math.isfinite(area) and area >= 0):
        raise DataError(f"{where}: area must be a finite number >= 0, got {area!r}")
    bbox = a.get("bbox")
    if bbox is None and need_bbox and not a.get("iscrowd"):
        raise DataError(f"{where}: no 'bbox' (the OKS of this protocol is scaled by it)")
    if bbox is not None:
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) and math.isfinite(v) for v in bbox)):
            raise DataError(f"{where}: bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}"[:300])
        if bbox[2] < 0 or bbox[3] < 0:
            raise DataError(f"{where}: bbox width and height must be >= 0, got {bbox!r}")
    crowd = a.get("iscrowd", 0)
    if crowd not in (0, 1) or isinstance(crowd, float):
        raise DataError(f"{where}: iscrowd must be 0 or 1, got {crowd!r}")
    nk = a.get("num_keypoints")
    if nk is not None and not (isinstance(nk, int) and not isinstance(nk, bool) and 0 <= nk <= k):
        raise DataError(f"{where}: num_keypoints must be an integer in 0..{k}, got {nk!r}")
    _check_segmentation(a.get("segmentation"), where)


def _check_keypoint_values(anns: list[dict[str, Any]], k: int, where: str) -> None:
    """Bulk check of the `keypoints` of `anns` (each a list of 3K entries)."""
    try:
        kp = np.asarray([a["keypoints"] for a in anns])  # without dtype=: "3" or None make it non-numeric
    except ValueError:  # a nested list among the values
        kp = np.zeros(0, dtype=object)
    # NumPy turns true/false into 1/0 among numbers, so booleans are looked for one by one
    if kp.dtype.kind not in "iuf" or any(v is True or v is False for a in anns for v in a["keypoints"]):
        for a in anns:
            if not all(_is_number(v) for v in a["keypoints"]):
                raise DataError(f"{where}: annotation {a['id']}: keypoints are not all numbers")
    kp = kp.astype(np.float64).reshape(len(anns), k, 3)
    labelled = kp[..., 2] > 0
    bad = ~np.isfinite(kp).all(axis=(1, 2)) | (kp[..., 2] < 0).any(axis=1)
    bad |= ((kp[..., :2] < 0).any(axis=2) & labelled).any(axis=1)
    if bad.any():
        n = int(np.argmax(bad))
        raise DataError(
            f"{where}: annotation {anns[n]['id']}: keypoints contain NaN/inf, negative coordinates of "
            "labelled joints or negative visibility"
        )


def check_keypoint_annotations(
    data: Any, where: str, *, num_keypoints: int | None = None, int_ids: bool = False, need_area: bool = False,
    need_bbox: bool = False, need_crowd_index: bool = False,
) -> KeypointAnnotations:  # fmt: skip
    """Validate a parsed COCO-format keypoint file.

    Args:
        data: the parsed JSON.
        where: the file name for messages.
        num_keypoints: K when the file has no keypoint category (else the category's name count).
        int_ids: image and annotation ids must be integers (the evaluators need them; training also
            takes strings).
        need_area, need_bbox: non-crowd people must have `area` / `bbox` (the OKS scale of the
            coco / crowdpose protocols).
        need_crowd_index: every image must have `crowdIndex` (the crowdpose protocol).

    Raises:
        DataError: the first problem, naming `where` and the image or annotation id.
    """
    if not isinstance(data, dict):
        raise DataError(f"{where}: expected a JSON object with 'images' and 'annotations'")
    images = _check_images(data, where, int_ids, need_crowd_index)
    category = _keypoint_category(data, where)
    raw = data.get("annotations", [])
    if not isinstance(raw, list):
        raise DataError(f"{where}: 'annotations' must be a list")
    cat_id = category.get("id") if category is not None else None
    k = _num_keypoints(category, num_keypoints, raw, where)
    slot = {img["id"] for img in images}
    seen: set[Any] = set()
    anns, checked = [], []
    for n, a in enumerate(raw):
        if not isinstance(a, dict) or "id" not in a:
            raise DataError(f"{where}: annotation #{n} is not an object with an 'id'")
        aid = a["id"]
        if not _is_id(aid, int_ids):
            raise DataError(f"{where}: annotation #{n}: id must be an integer, got {aid!r}")
        if aid in seen:
            raise DataError(f"{where}: duplicate annotation id {aid}")
        seen.add(aid)
        if category is not None and a.get("category_id", cat_id) != cat_id:
            continue  # another category (e.g. non-person boxes in a full COCO file)
        if a.get("image_id") not in slot:
            raise DataError(f"{where}: annotation {aid} refers to image id {a.get('image_id')!r}, which is not in 'images'")
        kps = a.get("keypoints")
        if kps is None and a.get("iscrowd"):
            pass  # crowd regions need no keypoints
        elif not isinstance(kps, list):
            kind = type(kps).__name__ if kps is not None else "missing"
            raise DataError(f"{where}: annotation {aid}: 'keypoints' is {'a ' + kind if kps is not None else kind}, "
                            f"expected {3 * k} numbers")  # fmt: skip
        elif len(kps) != 3 * k:
            raise DataError(f"{where}: annotation {aid}: {len(kps)} keypoint values, expected {3 * k} (3 × {k} keypoints)")
        else:
            checked.append(a)
        _check_fields(a, f"{where}: annotation {aid}", k, need_area, need_bbox)
        anns.append(a)
    if checked:
        _check_keypoint_values(checked, k, where)
    return KeypointAnnotations(images, category, anns, k)


def check_results(results: Any, where: str, num_keypoints: int, category_id: Any = 1) -> list[dict[str, Any]]:
    """Validate COCO keypoint results: a list of `{image_id, keypoints, score[, category_id]}`.

    Keypoints must be 3K finite numbers, scores finite numbers, image ids those of the ground
    truth's keypoint category (default 1). Image ids are checked by the caller against its ground truth.

    Returns:
        The results with `category_id` filled in.
    """
    if not isinstance(results, list):
        raise DataError(f"{where}: expected a JSON list of COCO results, got {type(results).__name__}")
    out = []
    for i, r in enumerate(results):
        if not isinstance(r, dict) or not {"image_id", "keypoints", "score"} <= r.keys():
            raise DataError(f"{where}: result #{i} lacks image_id, keypoints or score")
        kps, score = r["keypoints"], r["score"]
        if not isinstance(kps, list) or not all(_is_number(v) for v in kps):
            raise DataError(f"{where}: result #{i}: keypoints must be a list of numbers")
        if len(kps) != 3 * num_keypoints:
            raise DataError(f"{where}: result #{i} has {len(kps)} keypoint values, expected {3 * num_keypoints}")
        if not all(math.isfinite(v) for v in kps):
            raise DataError(f"{where}: result #{i}: keypoints contain NaN or inf")
        if not (_is_number(score) and math.isfinite(score)):
            raise DataError(f"{where}: result #{i}: score must be a finite number, got {score!r}")
        cat = r.get("category_id", category_id)
        if cat != category_id:
            raise DataError(f"{where}: result #{i}: category_id {cat!r} is not the keypoint category ({category_id})")
        out.append({**r, "category_id": cat})
    return out
