"""The images an annotation file lists, read the way their annotations were made."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grapepose.data.annotations import KeypointAnnotations, check_file_name
from grapepose.errors import DataError
from grapepose.evaluation.coco_eval import check_ground_truth, detect_kind, load_annotation
from grapepose.io.files import read_image

__all__ = ["AnnotatedImage", "annotated_images", "ground_truth_images", "read_image_as_stored"]


@dataclass(frozen=True)
class AnnotatedImage:
    """One `images` entry of a COCO-format annotation file."""

    id: int
    path: Path
    height: int | None
    width: int | None


def annotated_images(ann: dict[str, Any], root: str | os.PathLike[str], ann_path: str = "annotation") -> list[
    AnnotatedImage
]:
    """The images of a parsed annotation file, with paths under `root`, sorted by id (ids must be
    integers, file names stay inside `root`)."""
    out = []
    for i, im in enumerate(ann.get("images", [])):
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise DataError(f"{ann_path}: images[{i}] lacks id or file_name")
        if isinstance(im["id"], bool) or not isinstance(im["id"], int):
            raise DataError(f"{ann_path}: image entry #{i}: id must be an integer, got {im['id']!r}")
        check_file_name(im["file_name"], f"{ann_path}: image {im['id']}")
        out.append(AnnotatedImage(int(im["id"]), Path(root) / im["file_name"], im.get("height"), im.get("width")))
    return sorted(out, key=lambda x: x.id)


def ground_truth_images(
    ann_path: str | os.PathLike[str], root: str | os.PathLike[str], kind: str | None = None, limit: int | None = None
) -> tuple[KeypointAnnotations, list[AnnotatedImage]]:
    """A ground-truth file checked for protocol `kind` (None: `detect_kind`), and the first `limit` of its
    images (by id, under `root`): what a model runs on, read before the model is loaded."""
    ann = load_annotation(ann_path)
    gt = check_ground_truth(ann, ann_path, kind or detect_kind(ann_path, ann))
    return gt, annotated_images(ann, root, str(ann_path))[:limit]


def read_image_as_stored(path: Path) -> np.ndarray:
    """RGB uint8 of an image file WITHOUT applying its EXIF orientation.

    Keypoint benchmarks (COCO, CrowdPose, OCHuman) were annotated on the stored pixels, and the
    reference evaluation reads them with `IMREAD_IGNORE_ORIENTATION` too.
    """
    return read_image(path, apply_exif=False)
