"""OKS AP/AR of COCO-format keypoint results with faster-coco-eval.

COCO and OCHuman use the standard keypoint evaluation (OKS scale = GT area, max 20 people per
image). CrowdPose uses the `keypoints_crowd` protocol: OKS scale from the GT box (0.53 x w x h),
max 20 people, and AP easy/medium/hard over images split by `crowdIndex` at 0.2 and 0.8. A metric
whose range has no ground truth is -1 (the COCO convention).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from grapepose.data.annotations import KeypointAnnotations, check_keypoint_annotations, check_results
from grapepose.errors import DataError
from grapepose.io.files import read_json
from grapepose.keypoints import resolve_keypoint_spec

__all__ = ["KINDS", "METRICS", "check_ground_truth", "detect_kind", "evaluate_results", "load_annotation",
           "load_results"]  # fmt: skip

log = logging.getLogger(__name__)

KINDS = ("coco", "crowdpose", "ochuman")
# our metric names <- faster-coco-eval's `stats_as_dict` labels
METRICS: dict[str, dict[str, str]] = {
    "coco": {"AP": "AP_all", "AP50": "AP_50", "AP75": "AP_75", "APM": "AP_medium", "APL": "AP_large",
             "AR": "AR_all", "AR50": "AR_50", "AR75": "AR_75", "ARM": "AR_medium", "ARL": "AR_large"},
    "crowdpose": {"AP": "AP_all", "AP50": "AP_50", "AP75": "AP_75", "AR": "AR_all", "AR50": "AR_50",
                  "AR75": "AR_75", "APeasy": "AP_easy", "APmed": "AP_medium", "APhard": "AP_hard"},
}  # fmt: skip
METRICS["ochuman"] = METRICS["coco"]


def load_annotation(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a COCO-format annotation file (DataError naming the file if it is missing or not JSON)."""
    ann = read_json(path, "annotation")
    if not isinstance(ann, dict) or "images" not in ann:
        raise DataError(f"{path}: not a COCO-format annotation file (no 'images' list)")
    return ann


def _num_keypoints(ann: dict[str, Any]) -> int:
    for cat in ann.get("categories", []) or []:
        if isinstance(cat, dict) and isinstance(cat.get("keypoints"), list) and cat["keypoints"]:
            return len(cat["keypoints"])
    for a in ann.get("annotations", []) or []:
        if isinstance(a, dict) and isinstance(a.get("keypoints"), list) and a["keypoints"]:
            return len(a["keypoints"]) // 3
    return 17


def check_ground_truth(ann: dict[str, Any], ann_path: str | os.PathLike[str], kind: str) -> KeypointAnnotations:
    """Validate a ground-truth file for protocol `kind` (the same checks as training, plus integer
    ids, `area` for coco/ochuman, `bbox` and `crowdIndex` for crowdpose)."""
    if kind not in KINDS:
        raise DataError(f"unknown evaluation kind {kind!r}; expected one of {', '.join(KINDS)}")
    crowd = kind == "crowdpose"
    return check_keypoint_annotations(ann, str(ann_path), int_ids=True, need_area=not crowd, need_bbox=crowd,
                                      need_crowd_index=crowd)  # fmt: skip


def detect_kind(ann_path: str | os.PathLike[str], ann: dict[str, Any] | None = None) -> str:
    """`crowdpose` (14 keypoints or images with `crowdIndex`), `ochuman` (by file name) or `coco`."""
    path = Path(ann_path)
    ann = ann if ann is not None else load_annotation(path)
    images = ann.get("images", [])
    if not isinstance(images, list):
        raise DataError(f"{path}: 'images' must be a list")
    if _num_keypoints(ann) == 14 or (images and all(isinstance(im, dict) and "crowdIndex" in im for im in images)):
        return "crowdpose"
    if "ochuman" in path.name.lower():
        return "ochuman"
    return "coco"


def load_results(
    results: Sequence[dict[str, Any]] | str | os.PathLike[str], num_keypoints: int, category_id: Any = 1
) -> list[dict[str, Any]]:
    """Read and check COCO keypoint results (a list of dicts or a JSON file of one): 3K finite
    keypoint values, a finite score, the keypoint category (`category_id`, default 1)."""
    where = "results"
    if isinstance(results, (str, os.PathLike)):
        where = str(results)
        results = read_json(results, "results")
    return check_results(results, where, num_keypoints, category_id)


def evaluate_results(
    results: Sequence[dict[str, Any]] | str | os.PathLike[str],
    ann_path: str | os.PathLike[str],
    kind: str | None = None,
    sigmas: Sequence[float] | None = None,
    image_ids: Sequence[int] | None = None,
) -> dict[str, float]:
    """OKS metrics of keypoint results against a COCO-format annotation file.

    Args:
        results: COCO results (`image_id`, `category_id`, `keypoints` [x, y, s] * K, `score`), or a
            JSON file of them.
        ann_path: the ground-truth annotation JSON.
        kind: `coco`, `crowdpose` or `ochuman` (default: `detect_kind`).
        sigmas: per-keypoint OKS sigmas (default: the model's `config.keypoint_spec.sigmas` is what
            callers pass; without it, those of the ground truth's category, else the built-in table).
        image_ids: score these images only (e.g. those a model ran on), as if the annotation file
            listed no others; results for other images are left out. Default: every image.

    Returns:
        COCO/OCHuman: AP, AP50, AP75, APM, APL, AR, AR50, AR75, ARM, ARL.
        CrowdPose: AP, AP50, AP75, AR, AR50, AR75, APeasy, APmed, APhard.
    """
    from faster_coco_eval import COCO, COCOeval_faster

    ann_path = Path(ann_path)
    ann = load_annotation(ann_path)
    kind = kind or detect_kind(ann_path, ann)
    gt = check_ground_truth(ann, ann_path, kind)
    k = gt.num_keypoints
    if sigmas is None:
        sigmas = resolve_keypoint_spec(gt.category, k, kind, str(ann_path)).sigmas
    elif len(sigmas) != k:
        raise DataError(f"{ann_path}: has {k} keypoints but {len(sigmas)} OKS sigmas were given")
    category_id = gt.category.get("id", 1) if gt.category is not None else 1
    dets = load_results(results, k, category_id)
    known = {im["id"] for im in gt.images}
    unknown = sorted({r["image_id"] for r in dets} - known)
    if unknown:
        raise DataError(f"results name {len(unknown)} image ids not in {ann_path} (e.g. {unknown[:3]})")
    if image_ids is not None:
        keep = set(image_ids)
        absent = sorted(keep - known)
        if absent:
            raise DataError(f"{ann_path}: has no image with id {absent[0]} (of the {len(keep)} to score)")
        ann = {**ann, "images": [im for im in ann["images"] if im["id"] in keep],
               "annotations": [a for a in ann.get("annotations") or [] if a["image_id"] in keep]}  # fmt: skip
        dets = [r for r in dets if r["image_id"] in keep]
    names = METRICS[kind]
    if not dets:
        log.warning("no results to evaluate: AP and AR are 0")

    coco_gt = COCO(ann)  # the parsed (and maybe restricted) file; faster-coco-eval's crowd splits read it too
    dt = coco_gt.loadRes(dets)
    crowd = kind == "crowdpose"
    ev = COCOeval_faster(
        coco_gt, dt, "keypoints_crowd" if crowd else "keypoints",
        kpt_oks_sigmas=np.asarray(sigmas, dtype=np.float64), use_area=not crowd, print_function=log.debug,
    )  # fmt: skip
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    stats = ev.stats_as_dict
    return {name: float(stats[label]) for name, label in names.items()}
