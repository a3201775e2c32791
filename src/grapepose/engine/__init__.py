"""Training: losses, optimisation, resumable checkpoints and the (DDP-ready) training loop.

Heavy pieces are imported lazily so `import grapepose.engine` stays cheap.
"""

from __future__ import annotations

from grapepose._lazy import lazy_exports

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
    "setup_distributed": "grapepose.utils.distributed",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
