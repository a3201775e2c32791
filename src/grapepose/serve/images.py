"""Uploaded bytes -> RGB arrays, refusing what is not a whole, reasonably sized image.

Decoding matches `read_image` (OpenCV, EXIF orientation applied), so a photo posted to the service
gives the same poses as `PoseEstimator` on the file. The header is checked before decoding, so a
small file that declares a gigantic image is refused without allocating it.
"""

from __future__ import annotations

import io

import cv2
import numpy as np

from grapepose.io.image_header import header_size
from grapepose.limits import too_many_pixels
from grapepose.serve.errors import HTTPError, bad_request

__all__ = ["decode_image", "encode_image", "RAW_TYPES"]

# Content types accepted for a raw (non-multipart) body.
RAW_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "application/octet-stream")
# Pillow's format names of what OpenCV decodes.
_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP", "TIFF": "TIFF"}


def _header(data: bytes, what: str, max_megapixels: float) -> tuple[str, int, int]:
    """(format, width, height) from the image header only (no pixel data is decoded)."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies below
            with Image.open(io.BytesIO(data)) as im:
                fmt, (w, h) = im.format or "", im.size
    except Image.DecompressionBombError:
        raise HTTPError(413, f"{what}: the image exceeds the {max_megapixels:g} megapixel limit") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise bad_request(f"{what}: not an image (expected JPEG, PNG, WebP, BMP or TIFF data)") from None
    if fmt not in _FORMATS:
        raise HTTPError(415, f"{what}: unsupported image format {fmt} (send JPEG, PNG, WebP, BMP or TIFF)")
    return _FORMATS[fmt], w, h


def _is_truncated(data: bytes, fmt: str) -> bool:
    """A JPEG without its end marker or a PNG without its IEND chunk, confirmed by a full decode.

    The fast marker test misses nothing that was cut off; files with data appended after the end (e.g.
    motion photos) fail it too, so those are confirmed by Pillow, which raises on truncated data.
    """
    if fmt == "JPEG" and b"\xff\xd9" in data[-4096:]:
        return False
    if fmt == "PNG" and b"IEND" in data[-64:]:
        return False
    if fmt not in ("JPEG", "PNG"):
        return False
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except (OSError, ValueError, SyntaxError):
        return True
    return False


def decode_image(data: bytes, max_megapixels: float, what: str = "image") -> np.ndarray:
    """Decode uploaded bytes to `[H, W, 3]` uint8 RGB (EXIF orientation applied).

    Args:
        data: the file's bytes.
        max_megapixels: refuse larger images (413) before decoding them.
        what: how error messages name the upload (e.g. "image 'a.jpg'").

    Raises:
        HTTPError: 400 empty, not an image, truncated or undecodable; 413 too many pixels; 415 a format
            OpenCV cannot decode (e.g. GIF).
    """
    if not data:
        raise bad_request(f"{what}: empty (0 bytes)")
    declared = header_size(data)  # the header check of `read_image`, the same limit and message
    if declared is not None and (reason := too_many_pixels(*declared, max_megapixels)):
        raise HTTPError(413, f"{what}: {reason}")
    fmt, w, h = _header(data, what, max_megapixels)
    if w <= 0 or h <= 0:
        raise bad_request(f"{what}: zero-size image ({w}x{h})")
    if reason := too_many_pixels(w, h, max_megapixels):  # the limit of predict and the Python API
        raise HTTPError(413, f"{what}: {reason}")
    if _is_truncated(data, fmt):
        raise bad_request(f"{what}: truncated {fmt} data (the file ends before the image does)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise bad_request(f"{what}: cannot decode the {fmt} data (corrupt file)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def encode_image(rgb: np.ndarray, fmt: str) -> bytes:
    """`[H, W, 3]` uint8 RGB -> JPEG (quality 90) or PNG bytes."""
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    params = [] if fmt == "png" else [cv2.IMWRITE_JPEG_QUALITY, 90]
    ok, buf = cv2.imencode(".png" if fmt == "png" else ".jpg", bgr, params)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB array
        raise RuntimeError("cannot encode the drawn image")
    return buf.tobytes()
