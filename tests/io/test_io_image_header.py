"""`header_size`: the size a file's header declares is the size its decoder gives, for every format it reads."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from grapepose.io.image_header import header_size


def _encodings(img: np.ndarray) -> dict[str, bytes]:
    out = {ext: cv2.imencode(ext, img)[1].tobytes() for ext in (".jpg", ".png", ".bmp", ".tif")}
    out["webp-lossy"] = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 90])[1].tobytes()
    out["webp-lossless"] = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes()
    pil = Image.fromarray(img)
    for name, fmt, kw in [("jpeg-progressive", "JPEG", {"progressive": True}), ("gif", "GIF", {}),
                          ("tiff-lzw", "TIFF", {"compression": "tiff_lzw"}), ("webp-alpha", "WEBP", {}),
                          ("png-gray", "PNG", {})]:  # fmt: skip
        buf = io.BytesIO()
        (pil.convert("RGBA") if name == "webp-alpha" else pil.convert("L") if name == "png-gray" else pil).save(
            buf, fmt, **kw
        )
        out[name] = buf.getvalue()
    exif = Image.Exif()
    exif[274] = 6  # rotated: the stored size is still the header's
    buf = io.BytesIO()
    pil.save(buf, "JPEG", exif=exif.tobytes())
    out["jpeg-exif"] = buf.getvalue()
    return out


def test_the_declared_size_is_the_decoded_size():
    img = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    for name, data in _encodings(img).items():
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        assert header_size(data) == (decoded.shape[1], decoded.shape[0]) == (53, 37), name
        assert header_size(memoryview(np.frombuffer(data, np.uint8))) == (53, 37), name  # as read_image passes it


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM" + b"\0" * 10, b"RIFF\0\0\0\0WEBP",
                                  b"II*\x00\xff\xff\xff\x7f", b"GIF89a\x01", b"not an image at all"])  # fmt: skip
def test_a_cut_or_unknown_header_says_nothing(data):
    assert header_size(data) is None


def test_cut_and_damaged_headers_never_raise():
    img = np.random.default_rng(1).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    rng = np.random.default_rng(2)
    for data in _encodings(img).values():
        for cut in range(0, min(len(data), 120)):
            assert header_size(data[:cut]) in (None, (30, 20))
        for _ in range(50):
            damaged = bytearray(data)
            for at in rng.integers(0, min(len(data), 64), 3):
                damaged[at] = int(rng.integers(0, 256))
            size = header_size(bytes(damaged))
            assert size is None or (len(size) == 2 and all(isinstance(v, int) and v >= 0 for v in size))
