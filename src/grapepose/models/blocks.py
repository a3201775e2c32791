"""Convolutional building blocks of the GRAPE heads (docs/DESIGN.md, Network).

Initialisation follows the reference: PyTorch's default for every head convolution (the reference
never re-initialises its heads; only the backbone gets HRNet's N(0, 0.001) init).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from grapepose.models.deform import deform_conv3x3, deform_conv3x3_torchvision
from grapepose.models.kernels import own_kernels

__all__ = ["AdaptiveBlock", "BasicBlock", "ConvBNReLU", "Head"]


class ConvBNReLU(nn.Module):
    """Convolution (optionally transposed, no bias), BatchNorm, ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        transposed: bool = False,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        conv_cls = nn.ConvTranspose2d if transposed else nn.Conv2d
        self.conv = conv_cls(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, momentum=bn_momentum)

    def forward(self, x: Tensor) -> Tensor:
        """[B, Cin, H, W] -> [B, Cout, H', W']."""
        return F.relu(self.bn(self.conv(x)), inplace=True)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv + BN with an identity shortcut (channels unchanged)."""

    def __init__(self, channels: int, bn_momentum: float = 0.1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels, momentum=bn_momentum)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels, momentum=bn_momentum)

    def forward(self, x: Tensor) -> Tensor:
        """[B, C, H, W] -> [B, C, H, W]."""
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + x, inplace=True)


def _offset_map() -> tuple[Tensor, Tensor]:
    """Linear map from (a, b, c, d, ty, tx) to the 18 deformable offsets of a 3x3 kernel.

    Tap k = 3i + j sits at r_k = (i - 1, j - 1) = (ry, rx). Its offset is A r_k - r_k + t with
    A = [[a, b], [c, d]], laid out (dy, dx) per tap as `torchvision.ops.deform_conv2d` expects:
    offset[2k] = a ry + b rx + ty - ry, offset[2k + 1] = c ry + d rx + tx - rx.
    """
    weight = torch.zeros(18, 6)
    bias = torch.zeros(18)
    for k in range(9):
        ry, rx = float(k // 3 - 1), float(k % 3 - 1)
        weight[2 * k, [0, 1, 4]] = torch.tensor([ry, rx, 1.0])
        weight[2 * k + 1, [2, 3, 5]] = torch.tensor([ry, rx, 1.0])
        bias[2 * k], bias[2 * k + 1] = -ry, -rx
    return weight, bias


class AdaptiveBlock(nn.Module):
    """DEKR's adaptive convolution block: a 3x3 deformable conv on a per-pixel affine-warped grid.

    A 3x3 conv predicts a 2x2 matrix A per pixel (`affine`, 4 channels) and another a translation t
    (`translation`, 2 channels); the kernel samples at A r + t for the regular grid positions r.
    Then BN, identity residual, ReLU. The deformable conv runs as `deform_conv3x3` (`grid_sample` +
    matmul, standard ONNX operators) or as torchvision's `deform_conv2d` (ONNX `DeformConv`), as
    `grapepose.models.kernels` chooses: same parameters, same results.

    Args:
        channels: input = output channels.
        bn_momentum: BatchNorm momentum.
    """

    def __init__(self, channels: int, bn_momentum: float = 0.1) -> None:
        super().__init__()
        self.affine = nn.Conv2d(channels, 4, 3, padding=1, bias=True)
        self.translation = nn.Conv2d(channels, 2, 3, padding=1, bias=True)
        # A plain holder for the [C, C, 3, 3] kernel (same init as torchvision's DeformConv2d).
        self.deform_conv = _DeformKernel(channels, channels)
        self.bn = nn.BatchNorm2d(channels, momentum=bn_momentum)
        weight, bias = _offset_map()
        self.register_buffer("offset_weight", weight[:, :, None, None], persistent=False)
        self.register_buffer("offset_bias", bias, persistent=False)

    def sampling_offsets(self, x: Tensor) -> Tensor:
        """[B, C, H, W] -> deformable offsets [B, 18, H, W] ((dy, dx) per 3x3 tap)."""
        weight = torch.cat([self.affine.weight, self.translation.weight]).to(x.dtype)
        bias = torch.cat([self.affine.bias, self.translation.bias]).to(x.dtype)
        params = F.conv2d(x, weight, bias, padding=1)  # [B, 6, H, W]: a, b, c, d, ty, tx
        return F.conv2d(params, self.offset_weight.to(x.dtype), self.offset_bias.to(x.dtype))

    def _deform(self, x: Tensor) -> Tensor:
        conv = deform_conv3x3 if own_kernels(x.device) else deform_conv3x3_torchvision
        return conv(x, self.sampling_offsets(x), self.deform_conv.weight.to(x.dtype))

    def forward(self, x: Tensor) -> Tensor:
        """[B, C, H, W] -> [B, C, H, W]."""
        # Offsets and the deformable conv run in fp32 at least whatever the surrounding precision:
        # bf16 would put ~0.03 px of error on sampling positions of a few pixels, and torchvision's
        # deform_conv2d kernels have no bf16 implementation. fp64 stays fp64.
        wide = x.to(torch.promote_types(x.dtype, torch.float32))
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(device_type=x.device.type, enabled=False):
                out = self._deform(wide)
        else:
            out = self._deform(wide)
        out = self.bn(out.to(x.dtype))
        return F.relu(out + x, inplace=True)


class _DeformKernel(nn.Module):
    """Weight of a 3x3 deformable convolution without bias (named `weight`)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 3, 3))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)


class Head(nn.Module):
    """A residual block followed by a 1x1 convolution (with bias) to the output channels."""

    def __init__(self, block: nn.Module, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.block = block
        self.out = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """[B, Cin, H, W] -> [B, Cout, H, W]."""
        return self.out(self.block(x))
