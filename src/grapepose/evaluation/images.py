"""The images an annotation file lists, read the way their annotations were made."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from grapepose.errors import DataError

__all__ = ["AnnotatedImage", "annotated_images", "read_image_as_stored"]


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
    """The images of a parsed annotation file, with paths under `root`, sorted by id."""
    out = []
    for i, im in enumerate(ann.get("images", [])):
        if "id" not in im or "file_name" not in im:
            raise DataError(f"{ann_path}: images[{i}] lacks id or file_name")
        out.append(AnnotatedImage(int(im["id"]), Path(root) / im["file_name"], im.get("height"), im.get("width")))
    return sorted(out, key=lambda x: x.id)


def read_image_as_stored(path: Path) -> np.ndarray:
    """RGB uint8 of an image file WITHOUT applying its EXIF orientation.

    Keypoint benchmarks (COCO, CrowdPose, OCHuman) were annotated on the stored pixels, and the
    reference evaluation reads them with `IMREAD_IGNORE_ORIENTATION` too.
    """
    if not path.is_file():
        raise DataError(f"{path}: image file not found")
    buf = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if buf.size else None
    if img is None:
        raise DataError(f"{path}: cannot decode image (corrupt or unsupported format)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
