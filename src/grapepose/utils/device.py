"""Where and in which precision to run: the one device resolver and the one dtype resolver.

Every command, the API and the trainer call these, so `--device banana` or `cuda` on a machine
without CUDA gives the same one-line `ConfigError` everywhere.
"""

from __future__ import annotations

import torch

from grapepose.errors import ConfigError

__all__ = ["DTYPE_NAMES", "DTYPES", "resolve_device", "resolve_dtype", "resolve_dtype_name"]

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPE_NAMES = ("auto", *DTYPES)


def resolve_device(spec: str | torch.device | None = None, local_rank: int | None = None) -> torch.device:
    """The `torch.device` for `spec`: None/`auto` is CUDA when available, else CPU.

    Args:
        spec: `cpu`, `cuda`, `cuda:N`, `auto`, a `torch.device` or None.
        local_rank: under torchrun, a bare `cuda` means the GPU at this rank (modulo the GPU count).

    Raises:
        ConfigError: not a device name, CUDA unavailable, or no GPU with that index.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "auto")):
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    text = str(spec)
    try:
        dev = torch.device(spec.strip() if isinstance(spec, str) else spec)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"device {text!r} is not one of auto, cpu, cuda, cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {text!r} is not one of auto, cpu, cuda, cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {text!r}: CUDA is not available on this machine")
        count = torch.cuda.device_count()
        if dev.index is None and local_rank is not None:
            dev = torch.device("cuda", local_rank % count)
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"device {text!r}: this machine has {count} CUDA device(s)")
    return dev


def resolve_dtype_name(name: str | None, device: torch.device, key: str = "test.dtype") -> str:
    """`auto` (None) -> `bf16` on CUDA (`fp16` where bf16 is unsupported), `fp32` elsewhere.

    Raises:
        ConfigError: `name` is not one of `DTYPE_NAMES` (the message names `key`).
    """
    name = name or "auto"
    if name not in DTYPE_NAMES:
        raise ConfigError(f"{key} must be one of {', '.join(DTYPE_NAMES)}, got {name!r}")
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    return name


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device, key: str = "test.dtype") -> torch.dtype:
    """The autocast dtype for a name (see `resolve_dtype_name`) or a `torch.dtype` (returned as is)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    return DTYPES[resolve_dtype_name(dtype, device, key)]
