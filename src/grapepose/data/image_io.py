"""Reading photos as 8-bit RGB arrays, and normalising them for the network."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch

from grapepose.errors import DataError

__all__ = ["read_image", "as_rgb_uint8", "normalize_images", "IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_SUFFIXES"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: str | os.PathLike[str], apply_exif: bool = True) -> np.ndarray:
    """Read an image file as `[H, W, 3]` uint8 RGB, with its EXIF orientation applied unless told not to.

    Grayscale, RGBA (alpha dropped) and 16-bit files become 8-bit RGB. Keypoint datasets (COCO,
    CrowdPose, OCHuman) were annotated on the stored pixels, so their readers pass `apply_exif=False`
    (as the reference does with `IMREAD_IGNORE_ORIENTATION`); photos from users want it applied.

    Raises:
        DataError: the file is missing or cannot be decoded, naming the file.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: image file not found")
    try:
        buf = np.fromfile(p, dtype=np.uint8)  # imdecode handles non-ASCII paths that imread does not
    except OSError as e:
        raise DataError(f"{p}: cannot read image ({e.strerror or e})") from None
    flags = cv2.IMREAD_COLOR if apply_exif else cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    img = cv2.imdecode(buf, flags) if buf.size else None
    if img is None:
        raise DataError(f"{p}: cannot decode image (corrupt or unsupported format)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Coerce an in-memory array (gray `[H,W]`, `[H,W,1|3|4]`, uint8/uint16/float in [0,1]) to uint8 RGB."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise DataError(f"image array of shape {tuple(a.shape)} is not [H, W], [H, W, 1], [H, W, 3] or [H, W, 4]")
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        a = (np.clip(np.nan_to_num(a), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] == 4:
        a = a[..., :3]
    return np.ascontiguousarray(a)


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """Map uint8 RGB `[B, 3, H, W]` (or `[3, H, W]`) to float ImageNet-normalised input of the same shape."""
    x = images.float() / 255.0
    shape = (3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(shape)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(shape)
    return (x - mean) / std
