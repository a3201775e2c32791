"""Mixed precision: which autocast dtype to use and whether a gradient scaler is needed."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from grapepose.utils.device import DTYPES as _DTYPES
from grapepose.utils.device import resolve_dtype_name

__all__ = ["Precision", "resolve_precision"]


@dataclass(frozen=True)
class Precision:
    """Autocast settings for one device."""

    name: str  # fp32 | bf16 | fp16
    device_type: str

    @property
    def dtype(self) -> torch.dtype:
        return _DTYPES[self.name]

    @property
    def needs_scaler(self) -> bool:
        return self.name == "fp16"

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward-pass context (a no-op for fp32)."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, enabled only for fp16."""
        return torch.amp.GradScaler(self.device_type, enabled=self.needs_scaler)


def resolve_precision(amp: str, device: torch.device) -> Precision:
    """`train.amp` for `device`: auto is bf16 on CUDA when supported (else fp16) and fp32 elsewhere."""
    return Precision(resolve_dtype_name(amp, device, "train.amp"), device.type)
