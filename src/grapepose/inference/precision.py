"""Inference precision: the one table of choices, the CPU capability check, and what each one runs on.

`test.dtype` (CLI `--precision`, API `precision=`) names a precision; `resolve_precision` turns it
into a `Precision`: the runtime that executes the network and, for PyTorch, the autocast dtype.

| name | CUDA | CPU |
|---|---|---|
| fp32 | PyTorch | PyTorch |
| bf16 | PyTorch autocast | OpenVINO, bf16 inference precision (needs avx512_bf16 or amx_bf16) |
| fp16 | PyTorch autocast | refused |
| int8 | refused | OpenVINO on a calibrated int8 ONNX file (needs avx512_vnni, avx_vnni or amx_int8) |
| auto | bf16 (fp16 without bf16) | int8 for an int8 file, else bf16 where supported, else fp32 |

`GRAPEPOSE_PRECISION` (when set) replaces `auto` by the precision it names (an int8 file stays int8).

docs/BENCHMARKS.md has the measurements behind the table.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from grapepose.config import PRECISIONS
from grapepose.errors import ConfigError
from grapepose.utils.device import DTYPES, resolve_dtype_name

__all__ = [
    "AUTO_ENV", "PRECISIONS", "CPU_INSTRUCTIONS", "Precision", "cpu_features", "cpu_supports", "openvino_available",
    "predictor_precision", "resolve_precision",
]  # fmt: skip

log = logging.getLogger(__name__)

# What `auto` means when set (e.g. GRAPEPOSE_PRECISION=fp32 keeps a fleet of CPUs on fp32 whatever they support).
AUTO_ENV = "GRAPEPOSE_PRECISION"
# The CPU flags (as /proc/cpuinfo spells them) of which one must be present for a precision to run fast.
CPU_INSTRUCTIONS = {"bf16": ("avx512_bf16", "amx_bf16"), "int8": ("avx512_vnni", "avx_vnni", "amx_int8")}


@dataclass(frozen=True)
class Precision:
    """What runs the network.

    Attributes:
        name: `fp32`, `bf16`, `fp16` or `int8`.
        runtime: `torch` (autocast to `dtype`) or `openvino` (CPU).
        note: why `auto` chose this, or why a faster one was not taken ("" when asked for by name).
    """

    name: str
    runtime: str
    note: str = ""

    @property
    def dtype(self) -> torch.dtype:
        """The autocast dtype of the PyTorch runtime (float32: no autocast); float32 for other runtimes."""
        return DTYPES[self.name] if self.runtime == "torch" else torch.float32


@functools.lru_cache(maxsize=1)
def cpu_features() -> frozenset[str]:
    """The CPU's instruction-set flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_supports(name: str) -> bool:
    """Whether this CPU has the instructions that make `name` (`bf16`, `int8`) fast; fp32 always."""
    needed = CPU_INSTRUCTIONS.get(name)
    return needed is None or any(flag in cpu_features() for flag in needed)


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def _missing(name: str) -> str:
    return f"this CPU has none of {', '.join(CPU_INSTRUCTIONS[name])}"


def resolve_precision(
    name: str | None, device: torch.device, file_precision: str | None = None, key: str = "--precision"
) -> Precision:
    """The `Precision` that runs `name` (None: `auto`) on `device`.

    Args:
        name: one of `PRECISIONS`, or None for `auto`.
        device: where the network runs.
        file_precision: the precision a model file was saved in (`int8` for a calibrated int8 file), if any.
        key: how error messages name the setting.

    Raises:
        ConfigError: one line: an unknown name, a precision the device or this CPU cannot run, or a
            missing runtime.
    """
    name = name or "auto"
    if name not in PRECISIONS:
        raise ConfigError(f"{key} must be one of {', '.join(PRECISIONS)}, got {name!r}")
    pinned = os.environ.get(AUTO_ENV, "").strip().lower()
    if name == "auto" and pinned not in ("", "auto") and file_precision != "int8":  # an int8 file runs as int8
        if pinned not in PRECISIONS:
            raise ConfigError(f"{AUTO_ENV} must be one of {', '.join(PRECISIONS)}, got {pinned!r}")
        name = pinned
    if file_precision == "int8" and name not in ("auto", "int8"):
        raise ConfigError(f"{key} {name}: the model file is quantized to int8; use --precision int8 or auto")
    if device.type != "cpu":
        if name == "int8" or file_precision == "int8":
            raise ConfigError(f"{key} int8 runs on the CPU only; on {device.type} use bf16, fp16 or fp32")
        return Precision(resolve_dtype_name(name, device, key), "torch")
    if name == "fp16":
        raise ConfigError(f"{key} fp16 needs CUDA; on the CPU use fp32, bf16 or int8")
    if name == "auto":
        if file_precision == "int8":
            return _cpu_precision("int8", key, "the model file is int8")
        if not cpu_supports("bf16"):
            return Precision("fp32", "torch", f"fp32 ({_missing('bf16')})")
        if not openvino_available():
            return Precision("fp32", "torch", "fp32 (bf16 on the CPU needs openvino: pip install 'grapepose[cpu]')")
        return Precision("bf16", "openvino", "bf16 (OpenVINO)")
    if name == "fp32":
        return Precision("fp32", "torch")
    return _cpu_precision(name, key)


def _cpu_precision(name: str, key: str, note: str = "") -> Precision:
    if not cpu_supports(name):
        hint = "use fp32 or int8" if name == "bf16" else "use fp32"
        raise ConfigError(f"{key} {name}: {_missing(name)}; {hint}")
    if not openvino_available():
        raise ConfigError(f"{key} {name} on the CPU runs with OpenVINO, which is not installed: "
                          "pip install 'grapepose[cpu]'")  # fmt: skip
    return Precision(name, "openvino", f"{name} ({note})" if note else "")


def predictor_precision(model: nn.Module, dtype: str | torch.dtype | None, device: torch.device) -> Precision:
    """The precision a `Predictor` runs `model` at, for a requested `dtype` (a name, a `torch.dtype`, None: auto).

    A compiled runtime module (`OpenVinoModel`, `OnnxModel`) runs at the precision it was made for,
    whatever was asked. Only a `GrapeNet` is converted for OpenVINO; any other module runs through
    PyTorch autocast (`grapepose.utils.device.resolve_dtype_name`).
    """
    from grapepose.models import GrapeNet

    made_for = getattr(model, "precision", None)
    if isinstance(made_for, str):
        return Precision(made_for, getattr(model, "runtime", "onnxruntime"))
    if isinstance(dtype, torch.dtype):
        names = {v: k for k, v in DTYPES.items()}
        if dtype not in names:
            raise ConfigError(f"dtype {dtype} is not one of torch.float32, torch.bfloat16, torch.float16")
        dtype = names[dtype]
    if not isinstance(model, GrapeNet):
        if dtype == "int8":
            raise ConfigError(f"precision int8 runs a GrapeNet only, not a {type(model).__name__}")
        return Precision(resolve_dtype_name(dtype, device), "torch")
    precision = resolve_precision(dtype, device, key="precision")
    if precision.note:
        log.info("precision %s", precision.note)
    return precision
