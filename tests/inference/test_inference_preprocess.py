"""Test-time resizing against the reference's conventions, and its inverse."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from grapepose.errors import DataError
from grapepose.inference.preprocess import flip_shift, image_transform, warp_image

SHAPES = [(425, 640), (640, 425), (333, 500), (1000, 665), (7, 3), (512, 512), (1, 1)]


def _reference(h: int, w: int, scale: float, min_scale: float = 1.0) -> tuple[tuple[int, int], np.ndarray]:
    """Size (w, h) and affine of the reference's `get_multi_scale_size` at `scale`: both sides are set
    at `min_scale` (short side 512*min_scale rounded up to 64, long side by aspect rounded up to 64)
    and scaled by scale/min_scale (its evaluation passes min_scale 1); the image centre (rounded half
    up) goes onto the output centre, the affine built from three point pairs."""
    centre = np.array([int(w / 2 + 0.5), int(h / 2 + 0.5)], np.float32)
    short = int((min_scale * 512 + 63) // 64 * 64)
    if w < h:
        out_w = int(short * scale / min_scale)
        out_h = int(int((short / w * h + 63) // 64 * 64) * scale / min_scale)
        src_w = w
    else:
        out_h = int(short * scale / min_scale)
        out_w = int(int((short / h * w + 63) // 64 * 64) * scale / min_scale)
        src_w = out_w / out_h * h
    dst_c = np.array([out_w / 2, out_h / 2], np.float32)
    src = np.stack([centre, centre + [0, -src_w / 2], centre + [-src_w / 2, 0]]).astype(np.float32)
    dst = np.stack([dst_c, dst_c + [0, -out_w / 2], dst_c + [-out_w / 2, 0]]).astype(np.float32)
    return (out_w, out_h), cv2.getAffineTransform(src, dst)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", [0.5, 1.0, 2.0])
def test_sizes_and_affine_follow_reference(shape, scale):
    h, w = shape
    t = image_transform(h, w)
    (ref_w, ref_h), ref_m = _reference(h, w, scale)
    assert t.scaled_size(scale) == (ref_h, ref_w)
    np.testing.assert_allclose(t.matrix(scale), ref_m, rtol=1e-5, atol=1e-3)
    # the network input is the reference's, unpadded, at every scale of `reference` mode
    assert t.canvas_size(scale) == (ref_h, ref_w) and ref_h % 32 == 0 and ref_w % 32 == 0
    img = np.zeros((h, w, 3), np.uint8)
    assert warp_image(img, t, scale).shape == (ref_h, ref_w, 3)
    assert min(t.input_size) == 512 and t.input_size[0] % 64 == 0 and t.input_size[1] % 64 == 0


@pytest.mark.parametrize("scale", [0.25, 0.75, 1.5])
def test_other_scales_are_padded_to_multiples_of_32(scale):
    t = image_transform(425, 640)
    (ref_w, ref_h), _ = _reference(425, 640, scale)
    ch, cw = t.canvas_size(scale)
    assert t.scaled_size(scale) == (ref_h, ref_w)
    assert ch % 32 == 0 and cw % 32 == 0 and 0 <= ch - ref_h < 32 and 0 <= cw - ref_w < 32


def test_round_trip_and_warp_positions():
    t = image_transform(425, 640)
    pts = np.array([[0.0, 0.0], [639.0, 424.0], [123.4, 56.7]])
    np.testing.assert_allclose(t.to_original(t.to_input(pts)), pts, atol=1e-9)
    ys, xs = np.mgrid[0:425, 0:640]
    blob = 255 * np.exp(-((xs - 201) ** 2 + (ys - 101) ** 2) / (2 * 8.0**2))  # smooth: no aliasing at 0.6x
    img = np.repeat(blob[..., None], 3, axis=2).round().astype(np.uint8)
    for s in (0.5, 1.0, 2.0):
        out = warp_image(img, t, s)[..., 0].astype(float)
        ys, xs = np.mgrid[0 : out.shape[0], 0 : out.shape[1]]
        got = np.array([(xs * out).sum(), (ys * out).sum()]) / out.sum()
        np.testing.assert_allclose(got, t.to_input(np.array([201.0, 101.0])) * s, atol=0.02)


def test_flip_shift_moves_mirrored_image_left():
    x = torch.arange(2 * 3 * 4 * 10, dtype=torch.float32).view(2, 3, 4, 10)
    out = flip_shift(x, 3)
    mirrored = torch.flip(x, dims=[3])
    torch.testing.assert_close(out[..., :7], mirrored[..., 3:])
    torch.testing.assert_close(out[..., 7:], mirrored[..., 7:])  # the reference leaves the last columns
    torch.testing.assert_close(flip_shift(x, 0), mirrored)


def test_bad_sizes():
    with pytest.raises(DataError, match="empty"):
        image_transform(0, 10)
    with pytest.raises(DataError, match="aspect ratio .* too extreme"):
        image_transform(10, 2000)
    assert image_transform(10, 80).input_size == (512, 4096)  # long but usable
