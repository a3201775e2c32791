"""ONNX export of the GRAPE network through the dynamo exporter.

The legacy TorchScript exporter rejects `torchvision::deform_conv2d` (the adaptive block of the
refined-offset head); the dynamo exporter (`torch.onnx.export(..., dynamo=True)`, needs
`onnxscript`) takes a custom translation of that op to the standard ONNX `DeformConv` (opset 19).
Batch, height and width stay dynamic (height and width multiples of 64). The config of the model is
stored in the file's metadata so the runtime can rebuild decoding settings and keypoint metadata.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from grapepose.config import Config, config_to_dict
from grapepose.errors import GrapeposeError
from grapepose.io.files import atomic_path

__all__ = ["export_onnx", "deform_conv2d_to_onnx", "OUTPUT_NAMES", "INPUT_NAME", "CONFIG_KEY", "MIN_OPSET"]

INPUT_NAME = "images"
OUTPUT_NAMES = ("heatmaps", "offsets", "refined_offsets", "visibility")
CONFIG_KEY = "grapepose.config"
MIN_OPSET = 19  # first opset with DeformConv


def deform_conv2d_to_onnx(
    input: Any, weight: Any, offset: Any, mask: Any, bias: Any,
    stride_h: int, stride_w: int, pad_h: int, pad_w: int, dilation_h: int, dilation_w: int,
    groups: int, offset_groups: int, use_mask: bool,
) -> Any:  # fmt: skip
    """onnxscript translation of `torchvision::deform_conv2d` to ONNX `DeformConv` (opset 19).

    Both use (dy, dx) pairs per kernel tap in the offset tensor, so the inputs map one to one.
    """
    from onnxscript import opset19 as op

    attrs = dict(
        dilations=[dilation_h, dilation_w], group=groups, offset_group=offset_groups,
        pads=[pad_h, pad_w, pad_h, pad_w], strides=[stride_h, stride_w],
    )  # fmt: skip
    if use_mask:
        return op.DeformConv(input, weight, offset, bias, mask, **attrs)
    return op.DeformConv(input, weight, offset, bias, **attrs)


class _Outputs(nn.Module):
    """Returns the network's outputs as a flat tuple (ONNX has no optional outputs)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        out = self.model(images)
        return tuple(t for t in out if t is not None)


def _check_deps() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise GrapeposeError(
            f"ONNX export needs the optional packages onnx and onnxscript ({e.name} is missing): "
            "pip install 'grapepose[export]'"
        ) from None


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    opset: int = MIN_OPSET,
    example_size: tuple[int, int] = (256, 256),
    config: Config | None = None,
) -> Path:
    """Export `model` (a GrapeNet, or any module with the same outputs) to an ONNX file, atomically.

    Args:
        model: the network (unchanged; a copy is exported in eval mode, fp32, on CPU).
        path: output file.
        opset: ONNX opset, at least 19.
        example_size: `(height, width)` of the traced example (multiples of 64); the file accepts
            any batch and any multiple-of-64 size.
        config: stored in the file's metadata (default: `model.config`).

    Returns:
        The written path.
    """
    _check_deps()
    if opset < MIN_OPSET:
        raise GrapeposeError(f"opset {opset} has no DeformConv; use --opset {MIN_OPSET} or higher")
    h, w = example_size
    if h % 64 or w % 64 or h <= 0 or w <= 0:
        raise GrapeposeError(f"example size {h}x{w} must be positive multiples of 64")
    # torch.export specialises dimensions of size 1: trace at least two 64-pixel blocks per side.
    h, w = max(h, 128), max(w, 128)
    config = config if config is not None else getattr(model, "config", None)
    # A copy: the caller's model keeps its device, dtype and mode.
    wrapper = _Outputs(copy.deepcopy(model).float().cpu()).eval()
    for m in wrapper.modules():  # the DeformConv form (the tracing device, CPU, would pick sampling)
        if hasattr(m, "deform_impl"):
            m.deform_impl = "torchvision"
    example = torch.zeros(2, 3, h, w)
    with torch.no_grad():
        n_out = len(wrapper(example))
    dim = torch.export.Dim
    dims = {0: dim("batch", min=1), 2: 64 * dim("h64", min=1), 3: 64 * dim("w64", min=1)}
    table = {torch.ops.torchvision.deform_conv2d.default: deform_conv2d_to_onnx}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter is not for our users
        program = torch.onnx.export(
            wrapper, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES[:n_out]), dynamic_shapes=(dims,),
            custom_translation_table=table, verbose=False,
        )  # fmt: skip
    if program is None:  # pragma: no cover - only without dynamo
        raise GrapeposeError("ONNX export produced no program")
    if config is not None:
        program.model.metadata_props[CONFIG_KEY] = json.dumps(config_to_dict(config.resolved()))
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            program.save(str(tmp))
    except OSError as e:
        raise GrapeposeError(f"{path}: cannot write ONNX file ({e.strerror or e})") from None
    return path
