"""Test-time resizing: original image <-> network input, following the reference's conventions.

At scale 1 the short side becomes `base_size` (rounded up to a multiple of 64) and the long side
keeps the aspect ratio, rounded up to a multiple of 64. The image centre `(int(w/2+0.5),
int(h/2+0.5))` maps to the input centre. The input at scale `s` is exactly `s` times the scale-1
input (`x_s = s * x_1`), of size `int(W1*s) x int(H1*s)` (the reference's `get_multi_scale_size`
with its minimum scale 1); where that is not a multiple of `INPUT_MULTIPLE` (32) the canvas is
padded on the right/bottom. Scales 0.5, 1 and 2 never need it (a multiple of 64 halved is one of
32), so `reference` mode feeds the network exactly the reference's sizes; other scales (0.75, ...)
are padded, and the decoder ignores the padding. Decoded poses live in scale-1 input pixels;
`ImageTransform.to_original` maps them back.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from grapepose.backbones import IMAGENET_MEAN, IMAGENET_STD
from grapepose.errors import DataError

__all__ = [
    "ImageTransform", "INPUT_MULTIPLE", "MAX_INPUT_SIDE", "image_transform", "warp_image", "normalize_images",
    "flip_shift", "network_input",
]  # fmt: skip

# GrapeNet accepts multiples of 32 (its coarsest HRNet branch is 1/32 and the transformer runs on
# the 1/8 grid), as the reference, which feeds its scale-0.5 inputs at half a multiple of 64.
INPUT_MULTIPLE = 32
# Larger network inputs than this come only from absurd aspect ratios; refuse them clearly.
MAX_INPUT_SIDE = 8192


def _round_up(x: float, m: int) -> int:
    return int((x + m - 1) // m * m)


@dataclass(frozen=True)
class ImageTransform:
    """Uniform scaling + translation from original-image pixels to the scale-1 network input.

    Attributes:
        image_size: original `(height, width)`.
        input_size: scale-1 network input `(height, width)`, multiples of 64 (those of 32 at scale 0.5).
        center: original pixel `(x, y)` that lands on the input centre.
        ratio: input pixels per original pixel at scale 1.
    """

    image_size: tuple[int, int]
    input_size: tuple[int, int]
    center: tuple[float, float]
    ratio: float

    def matrix(self, scale: float = 1.0) -> np.ndarray:
        """The `[2, 3]` affine (for `cv2.warpAffine`) to the input at test scale `scale`."""
        k = self.ratio * scale
        h1, w1 = self.input_size
        return np.array(
            [[k, 0.0, scale * (w1 / 2.0 - self.ratio * self.center[0])],
             [0.0, k, scale * (h1 / 2.0 - self.ratio * self.center[1])]],
            dtype=np.float64,
        )  # fmt: skip

    def scaled_size(self, scale: float) -> tuple[int, int]:
        """`(height, width)` of the reference input at `scale` (before padding to the multiple)."""
        h1, w1 = self.input_size
        return int(h1 * scale), int(w1 * scale)

    def canvas_size(self, scale: float, multiple: int = INPUT_MULTIPLE) -> tuple[int, int]:
        """`(height, width)` of the network input at `scale`: `scaled_size` padded to `multiple`."""
        h, w = self.scaled_size(scale)
        return _round_up(max(h, 1), multiple), _round_up(max(w, 1), multiple)

    def to_original(self, xy: np.ndarray) -> np.ndarray:
        """Map `[..., 2]` scale-1 input pixel coordinates to original-image pixels."""
        h1, w1 = self.input_size
        out = np.array(xy, dtype=np.float64, copy=True)
        out[..., 0] = (out[..., 0] - w1 / 2.0) / self.ratio + self.center[0]
        out[..., 1] = (out[..., 1] - h1 / 2.0) / self.ratio + self.center[1]
        return out

    def to_input(self, xy: np.ndarray) -> np.ndarray:
        """Map `[..., 2]` original-image pixels to scale-1 input pixels (inverse of `to_original`)."""
        h1, w1 = self.input_size
        out = np.array(xy, dtype=np.float64, copy=True)
        out[..., 0] = (out[..., 0] - self.center[0]) * self.ratio + w1 / 2.0
        out[..., 1] = (out[..., 1] - self.center[1]) * self.ratio + h1 / 2.0
        return out


def image_transform(height: int, width: int, base_size: int = 512, max_side: int = MAX_INPUT_SIDE) -> ImageTransform:
    """The test-time transform of a `height x width` image (reference `get_multi_scale_size`, scale 1).

    Raises:
        DataError: empty image, or an aspect ratio so extreme that the input would exceed `max_side`.
    """
    if height < 1 or width < 1:
        raise DataError(f"image of size {width}x{height} is empty")
    short = _round_up(base_size, 64)
    if width < height:
        w1, h1 = short, _round_up(short / width * height, 64)
    else:
        h1, w1 = short, _round_up(short / height * width, 64)
    if max(h1, w1) > max_side:
        raise DataError(
            f"image of size {width}x{height}: aspect ratio {max(height, width) / min(height, width):.1f} is too "
            f"extreme (network input would be {w1}x{h1} px, limit {max_side})"
        )
    center = (float(int(width / 2.0 + 0.5)), float(int(height / 2.0 + 0.5)))
    return ImageTransform((height, width), (h1, w1), center, short / min(height, width))


def warp_image(
    image: np.ndarray, transform: ImageTransform, scale: float = 1.0, multiple: int = INPUT_MULTIPLE
) -> np.ndarray:
    """Resample an RGB uint8 `[H, W, 3]` image to the network canvas at `scale` (bilinear, black border).

    Returns:
        `[h, w, 3]` uint8 with `(h, w) = transform.canvas_size(scale, multiple)`.
    """
    h, w = transform.canvas_size(scale, multiple)
    return cv2.warpAffine(image, transform.matrix(scale), (w, h), flags=cv2.INTER_LINEAR)


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """Map uint8 RGB `[B, 3, H, W]` (or `[3, H, W]`) to float ImageNet-normalised input of the same shape."""
    x = images.float() / 255.0
    mean = x.new_tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def network_input(image: np.ndarray, base_size: int) -> np.ndarray:
    """An RGB uint8 `[H, W, 3]` image as the network sees it at scale 1: `[1, 3, h, w]` normalised float32."""
    t = image_transform(image.shape[0], image.shape[1], base_size)
    x = torch.from_numpy(warp_image(image, t, 1.0)[None]).permute(0, 3, 1, 2)
    return np.ascontiguousarray(normalize_images(x).numpy())


def flip_shift(images: torch.Tensor, shift: int) -> torch.Tensor:
    """Mirror `[B, C, H, W]` inputs and move them `shift` px left, as the reference's flip test does.

    The reference overwrites columns `:-shift` with columns `shift:` of the mirrored image and leaves
    the last `shift` columns as they were; with the network's stride of 4 a shift of 3 makes the
    mirrored outputs land back on the same grid cells.
    """
    flipped = torch.flip(images, dims=[3])
    if shift <= 0 or shift >= flipped.shape[3]:
        return flipped
    out = flipped.clone()
    out[..., :-shift] = flipped[..., shift:]
    return out
