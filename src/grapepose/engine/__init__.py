"""Training: losses, optimisation, resumable checkpoints and the (DDP-ready) training loop.

Heavy pieces are imported lazily so `import grapepose.engine` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Trainer": "grapepose.engine.trainer",
    "FitResult": "grapepose.engine.trainer",
    "NonFiniteLossError": "grapepose.engine.trainer",
    "GrapeLoss": "grapepose.engine.losses",
    "heatmap_loss": "grapepose.engine.losses",
    "offset_loss": "grapepose.engine.losses",
    "visibility_loss": "grapepose.engine.losses",
    "build_optimizer": "grapepose.engine.optim",
    "build_scheduler": "grapepose.engine.optim",
    "lr_multiplier": "grapepose.engine.optim",
    "load_state": "grapepose.engine.checkpoint",
    "save_state": "grapepose.engine.checkpoint",
    "resolve_precision": "grapepose.engine.precision",
    "setup_distributed": "grapepose.engine.distributed",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'grapepose.engine' has no attribute {name!r}")
