"""The 3x3 deformable convolution of the adaptive block, two ways (docs/DESIGN.md, Network).

`deform_conv3x3` computes `torchvision.ops.deform_conv2d(x, offsets, weight, bias, padding=1)`
(stride 1, no mask) as bilinear sampling of the nine taps with `grid_sample`, then one batched
matrix product with the same `[Cout, C, 3, 3]` weight. It is built from standard operators only,
so it exports to ONNX as `GridSample` + `MatMul`, and its backward is `grid_sample`'s and a matmul's,
several times faster on CPU than torchvision's CPU kernels.

Sampling convention (both implementations): tap k = 3i + j of output pixel (y, x) reads the input
at (y + i - 1 + dy_k, x + j - 1 + dx_k) in pixel-index coordinates (integer = pixel centre),
bilinearly, with zeros outside the image (a sample between the border pixel and the outside blends
with zero). `grid_sample(align_corners=False)` puts pixel i's centre at (2i + 1) / size - 1, which
is the map used below. The two agree to float rounding in values and in every gradient, except on
the measure-zero set where a sample lands exactly on a pixel row or column: there the bilinear
interpolant has a kink, and rounding in the coordinate normalisation may pick the other one-sided
derivative for the offset gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import deform_conv2d

__all__ = ["deform_conv3x3", "deform_conv3x3_torchvision"]


def _sampling_grid(offsets: Tensor) -> Tensor:
    """[B, 18, H, W] (dy, dx) per tap -> `grid_sample` grid [B, 9H, W, 2] ((x, y) in [-1, 1], tap-major)."""
    b, _, h, w = offsets.shape
    tap = torch.arange(3, device=offsets.device, dtype=offsets.dtype) - 1
    ys = torch.arange(h, device=offsets.device, dtype=offsets.dtype)
    xs = torch.arange(w, device=offsets.device, dtype=offsets.dtype)
    rows = ys[:, None] + tap.repeat_interleave(3)[:, None, None]  # [9, H, 1]: y + i - 1
    cols = xs[None, :] + tap.repeat(3)[:, None, None]  # [9, 1, W]: x + j - 1
    off = offsets.unflatten(1, (9, 2))  # [B, 9, 2, H, W]
    py = off[:, :, 0] + rows  # [B, 9, H, W] pixel-index coordinates of every tap
    px = off[:, :, 1] + cols
    grid = torch.stack(((2 * px + 1) / w - 1, (2 * py + 1) / h - 1), dim=-1)  # align_corners=False centres
    return grid.reshape(b, 9 * h, w, 2)


def deform_conv3x3(x: Tensor, offsets: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """3x3 deformable convolution, stride 1, padding 1, as `grid_sample` + one matrix product.

    Equal to `torchvision.ops.deform_conv2d(x, offsets, weight, bias, padding=(1, 1))`.

    Args:
        x: [B, C, H, W] input.
        offsets: [B, 18, H, W], (dy, dx) for tap k = 3i + j at channels 2k, 2k + 1 (torchvision's layout).
        weight: [Cout, C, 3, 3].
        bias: [Cout] or None.

    Returns:
        [B, Cout, H, W].
    """
    b, c, h, w = x.shape
    cout = weight.shape[0]
    if x.numel() == 0:
        return x.new_zeros(b, cout, h, w)
    # [B, C, 9H, W] = [B, C, 9, H, W]: the nine taps of every output pixel, tap-major.
    sampled = F.grid_sample(x, _sampling_grid(offsets), mode="bilinear", padding_mode="zeros", align_corners=False)
    # (c, k) flattened c-major on both sides; bmm with an expanded weight (not matmul's 2-D @ 3-D
    # folding, whose backward transposes the [C*9, H*W] samples).
    out = torch.bmm(weight.reshape(1, cout, c * 9).expand(b, -1, -1), sampled.reshape(b, c * 9, h * w))
    out = out.view(b, cout, h, w)
    return out if bias is None else out + bias[:, None, None]


def deform_conv3x3_torchvision(x: Tensor, offsets: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """The same convolution through torchvision's kernel (exports to ONNX `DeformConv`)."""
    return deform_conv2d(x, offsets, weight, bias, padding=(1, 1))
