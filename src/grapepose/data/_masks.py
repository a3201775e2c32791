"""Rasterise COCO segmentations (polygons, RLE) into the ignore mask, with faster-coco-eval's mask API."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import cv2
import numpy as np
from faster_coco_eval.core import mask as mask_api


def _segmentation_mask(segm: Any, height: int, width: int) -> np.ndarray | None:
    """Decode one segmentation (polygon list, compressed or uncompressed RLE) to bool `[H, W]`."""
    if isinstance(segm, list):
        polys = [p for p in segm if isinstance(p, (list, tuple)) and len(p) >= 6]
        if not polys:
            return None
        segm = polys
    elif not isinstance(segm, Mapping) or "counts" not in segm:
        return None
    rle = mask_api.segmToRle(segm, width, height)
    m = mask_api.decode(rle)
    if m.ndim == 3:
        m = m.max(axis=2)
    if m.shape != (height, width):  # RLE sized for another resolution of the same image
        m = cv2.resize(m, (width, height), interpolation=cv2.INTER_NEAREST)
    return m.astype(bool)


def _bbox_mask(bbox: Any, height: int, width: int) -> np.ndarray | None:
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        return None
    m = np.zeros((height, width), dtype=bool)
    x0, y0 = max(int(np.floor(x)), 0), max(int(np.floor(y)), 0)
    x1, y1 = min(int(np.ceil(x + w)), width), min(int(np.ceil(y + h)), height)
    if x1 > x0 and y1 > y0:
        m[y0:y1, x0:x1] = True
    return m


def ignore_mask(annotations: Iterable[Mapping[str, Any]], height: int, width: int) -> np.ndarray | None:
    """Union of the regions of `annotations` (their segmentation, else their bbox) as bool `[H, W]`.

    Returns None when no annotation has a usable region.
    """
    out: np.ndarray | None = None
    for ann in annotations:
        m = _segmentation_mask(ann.get("segmentation"), height, width)
        if m is None:
            m = _bbox_mask(ann.get("bbox"), height, width)
        if m is None:
            continue
        out = m if out is None else (out | m)
    return out
