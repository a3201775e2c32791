"""ONNX export of the GRAPE network through the dynamo exporter.

By default the file holds standard ONNX operators only: the adaptive block's deformable convolution
is exported in its sampling form (`grapepose.models.deform`: `GridSample` + `MatMul`), so any
runtime with opset 18 runs it (GridSample exists from opset 16; the exporter writes 18 or newer).
`deform_op=True` (CLI `--deform-op`, opset >= 19) keeps the ONNX `DeformConv` operator instead,
through a custom translation of `torchvision::deform_conv2d` (the legacy TorchScript exporter
rejects that op). Batch, height and width stay dynamic (height and width multiples of 64). The
config of the model is stored in the file's metadata so the runtime can rebuild decoding settings
and keypoint metadata.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from grapepose.config import Config, config_to_dict
from grapepose.errors import GrapeposeError
from grapepose.io.files import atomic_path
from grapepose.models.kernels import use_kernels

__all__ = [
    "export_onnx", "FlatOutputs", "check_opset", "deform_conv2d_to_onnx", "OUTPUT_NAMES", "INPUT_NAME", "CONFIG_KEY",
    "DEFAULT_OPSET", "MIN_OPSET", "DEFORM_OP_MIN_OPSET",
]  # fmt: skip

INPUT_NAME = "images"
OUTPUT_NAMES = ("heatmaps", "offsets", "refined_offsets", "visibility")
CONFIG_KEY = "grapepose.config"
# The dynamo exporter writes opset 18 or newer (its down-conversion to 16/17 breaks LayerNormalization
# and Split), which has GridSample (from 16); DeformConv needs 19.
MIN_OPSET = 18
DEFAULT_OPSET = 18
DEFORM_OP_MIN_OPSET = 19
# Loggers of the exporter and its optimizer: hundreds of INFO lines per export (folded constants,
# rewritten patterns, deduplicated initializers).
_EXPORTER_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export", "torch._export")


def check_opset(opset: int, deform_op: bool = False) -> None:
    """Raise `GrapeposeError` when `opset` cannot hold the requested form of the network."""
    if deform_op and opset < DEFORM_OP_MIN_OPSET:
        raise GrapeposeError(
            f"opset {opset} has no DeformConv; use --opset {DEFORM_OP_MIN_OPSET} or higher with --deform-op"
        )
    if opset < MIN_OPSET:
        raise GrapeposeError(f"opset {opset} is older than the exporter writes; use --opset {MIN_OPSET} or higher")


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


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter's logging at WARNING and up, and its Python warnings off, unless grapepose logs DEBUG (`-v`)."""
    if logging.getLogger("grapepose").isEnabledFor(logging.DEBUG):
        yield
        return
    loggers = [logging.getLogger(name) for name in _EXPORTER_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.level, logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation chatter, not for our users
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class FlatOutputs(nn.Module):
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
    opset: int | None = None,
    example_size: tuple[int, int] = (256, 256),
    config: Config | None = None,
    deform_op: bool = False,
) -> Path:
    """Export `model` (a GrapeNet, or any module with the same outputs) to an ONNX file, atomically.

    Args:
        model: the network (unchanged; a copy is exported in eval mode, fp32, on CPU).
        path: output file.
        opset: ONNX opset, at least 18 (19 with `deform_op`); default 18, or 19 with `deform_op`.
        example_size: `(height, width)` of the traced example (multiples of 64); the file accepts
            any batch and any multiple-of-64 size.
        config: stored in the file's metadata (default: `model.config`).
        deform_op: export adaptive blocks as ONNX `DeformConv` instead of `GridSample` + `MatMul`.

    Returns:
        The written path.
    """
    _check_deps()
    if opset is None:
        opset = DEFORM_OP_MIN_OPSET if deform_op else DEFAULT_OPSET
    check_opset(opset, deform_op)
    h, w = example_size
    if h % 64 or w % 64 or h <= 0 or w <= 0:
        raise GrapeposeError(f"example size {h}x{w} must be positive multiples of 64")
    # torch.export specialises dimensions of size 1: trace at least two 64-pixel blocks per side.
    h, w = max(h, 128), max(w, 128)
    config = config if config is not None else getattr(model, "config", None)
    # A copy: the caller's model keeps its device, dtype and mode.
    wrapper = FlatOutputs(copy.deepcopy(model).float().cpu()).eval()
    example = torch.zeros(2, 3, h, w)
    with torch.no_grad():
        n_out = len(wrapper(example))
    dim = torch.export.Dim
    dims = {0: dim("batch", min=1), 2: 64 * dim("h64", min=1), 3: 64 * dim("w64", min=1)}
    table = {torch.ops.torchvision.deform_conv2d.default: deform_conv2d_to_onnx}
    # The deformable conv asked for, whatever GRAPEPOSE_KERNELS says: torchvision's op or the sampling form.
    with _quiet_exporter(), use_kernels("torch" if deform_op else "own"):
        program = torch.onnx.export(
            wrapper, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES[:n_out]), dynamic_shapes=(dims,),
            custom_translation_table=table, verbose=False,
        )  # fmt: skip
    if program is None:  # pragma: no cover - only without dynamo
        raise GrapeposeError("ONNX export produced no program")
    written = program.model.opset_imports.get("", None)
    if written != opset:  # the exporter falls back to its own opset when it cannot convert
        raise GrapeposeError(f"the ONNX exporter wrote opset {written} instead of {opset}; use --opset {MIN_OPSET}")
    if config is not None:
        program.model.metadata_props[CONFIG_KEY] = json.dumps(config_to_dict(config.resolved()))
    path = Path(path)
    try:
        with atomic_path(path) as tmp, _quiet_exporter():
            program.save(str(tmp))
    except OSError as e:
        raise GrapeposeError(f"{path}: cannot write ONNX file ({e.strerror or e})") from None
    return path
