"""The images an annotation file lists, read the way their annotations were made."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grapepose.data.image_io import read_image
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
    return read_image(path, apply_exif=False)
