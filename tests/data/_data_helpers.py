"""Helpers for the data tests: tiny COCO-format datasets written into a folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

FIVE = ["head", "left_hand", "right_hand", "left_foot", "right_foot"]


def write_dataset(
    root: Path,
    annotations: list[dict[str, Any]],
    images: list[dict[str, Any]] | None = None,
    names: list[str] | None = None,
    size: tuple[int, int] = (48, 64),
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write images (random pixels) and a JSON; return the JSON path. Defaults: one 48x64 image, id 1."""
    root.mkdir(parents=True, exist_ok=True)
    images = images if images is not None else [{"id": 1, "file_name": "a.png", "height": size[0], "width": size[1]}]
    rng = np.random.default_rng(0)
    for img in images:
        h, w = img.get("height", size[0]), img.get("width", size[1])
        cv2.imwrite(str(root / img["file_name"]), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    data: dict[str, Any] = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "keypoints": names or FIVE, "skeleton": [[1, 2], [1, 3]]}],
    }
    data.update(extra or {})
    path = root / "ann.json"
    path.write_text(json.dumps(data))
    return path


def person(ann_id: int, joints: list[tuple[float, float, int]], image_id: int = 1, **kw: Any) -> dict[str, Any]:
    kps = [float(v) for j in joints for v in j]
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "keypoints": kps, **kw}
