"""What counts as an image for the Python API, and how each kind is read.

One image is:

- a path (`str` or `os.PathLike`) to an image file (EXIF orientation applied);
- a PIL image (any mode; converted to RGB);
- a numpy array or torch tensor, **RGB** channel order (not OpenCV's BGR):
  `[H, W, 3]` (channels last), `[3, H, W]` (channels first), `[H, W]` gray, or `[H, W, 1|4]`
  (gray, RGBA: alpha dropped). A 3-D input whose last dimension is 1, 3 or 4 is channels-last;
  otherwise a first dimension of 1 or 3 means channels-first. `[64, 64, 3]` is one image.

Values: uint8 is 0-255; float (any precision) is 0-1; uint16 is 0-65535; other integer types must
hold 0-255. Anything else (values out of range, NaN, bool, other shapes) is a `DataError`.

Many images are a list/tuple/iterable of the above, or a 4-D batch `[N, 3, H, W]` (or
`[N, H, W, 3]`) array or tensor.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from grapepose.errors import DataError
from grapepose.io.files import as_rgb_uint8

__all__ = ["as_items", "image_array", "is_single_image"]

_KINDS = "a path, a PIL image, or a [H, W, 3] / [3, H, W] numpy array or torch tensor"


def _is_pil(x: Any) -> bool:
    return type(x).__module__.startswith("PIL.") and hasattr(x, "convert") and hasattr(x, "size")


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach") and hasattr(x, "ndim")


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if _is_tensor(x) else np.asarray(x)


def is_single_image(x: Any) -> bool:
    """True for one image (path, PIL image, 2-D or 3-D array/tensor); False for a batch or a list."""
    if isinstance(x, (str, os.PathLike)) or _is_pil(x):
        return True
    return (isinstance(x, np.ndarray) or _is_tensor(x)) and x.ndim in (2, 3)


def as_items(images: Any) -> Sequence[Any] | Iterable[Any]:
    """The images in `images` (one image, a 4-D batch, or an iterable of images), one per item.

    Raises:
        DataError: `images` is none of these (None, a number, a 5-D array, ...), in one line.
    """
    if is_single_image(images):
        return [images]
    if isinstance(images, np.ndarray) or _is_tensor(images):
        if images.ndim != 4:
            raise DataError(f"images: a {images.ndim}-D array of shape {tuple(images.shape)} is not one image "
                            "([H, W, 3] or [3, H, W]) nor a batch ([N, 3, H, W] or [N, H, W, 3])")  # fmt: skip
        a = _numpy(images)
        if a.shape[1] == 3:
            a = a.transpose(0, 2, 3, 1)
        elif a.shape[3] != 3:
            raise DataError(f"images: batch of shape {tuple(a.shape)} is neither [N, 3, H, W] nor [N, H, W, 3]")
        return list(a)
    if isinstance(images, (bytes, bytearray, dict)) or not isinstance(images, Iterable):
        raise DataError(f"images: expected {_KINDS}, or a list of them; got {type(images).__name__}")
    return images


def image_array(item: Any) -> np.ndarray:
    """One in-memory image (PIL, array or tensor, see the module docstring) as `[H, W, 3]` uint8 RGB.

    Raises:
        DataError: not an image, in one line (without the image's name; the caller adds it).
    """
    if _is_pil(item):
        return np.asarray(item.convert("RGB"))
    if not (isinstance(item, np.ndarray) or _is_tensor(item)):
        raise DataError(f"expected {_KINDS}; got {type(item).__name__}")
    a = _numpy(item)
    if a.ndim == 3 and a.shape[2] not in (1, 3, 4) and a.shape[0] in (1, 3):
        a = a.transpose(1, 2, 0)  # channels first
    if a.size and a.dtype != np.uint8 and a.dtype != np.uint16:
        if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
            raise DataError(f"image of dtype {a.dtype}: expected uint8 (0-255) or float (0-1)")
        lo, hi = float(np.min(a)), float(np.max(a))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise DataError("image contains NaN or infinite values")
        if np.issubdtype(a.dtype, np.floating) and (lo < 0.0 or hi > 1.0):
            raise DataError(
                f"float image with values in [{lo:g}, {hi:g}]: float images must be in [0, 1] (uint8 for 0-255)"
            )
        if np.issubdtype(a.dtype, np.integer) and (lo < 0 or hi > 255):
            raise DataError(f"{a.dtype} image with values in [{lo:g}, {hi:g}]: integer images must be in 0-255")
    return as_rgb_uint8(a)
