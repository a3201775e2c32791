"""Settings for the engine tests: a tiny but real GRAPE network on the CrowdPose fixture."""

from __future__ import annotations

from pathlib import Path

# HRNet-W18 with a slim transformer branch; every module of the real network is there.
TINY_MODEL = [
    "model.d_model=32", "model.dim_feedforward=64", "model.nhead=2",
    "model.num_encoder_layers=1", "model.num_decoder_layers=1",
]  # fmt: skip
NO_AUGMENTATION = [
    "data.max_rotation=0", "data.min_scale=1", "data.max_scale=1", "data.max_translate=0", "data.flip_prob=0",
]  # fmt: skip


def tiny_overrides(data_root: Path, size: int = 64, batch: int = 1, augment: bool = True) -> list[str]:
    """Overrides for a fast run on the two CrowdPose fixture images."""
    return [
        f"data.root={data_root}", f"data.ann={data_root / 'test_crowdpose.json'}",
        f"data.input_size={size}", f"data.output_size={size // 4}", "data.num_workers=0",
        f"train.batch_size={batch}", "train.warmup_steps=2", "train.log_interval=1",
        *TINY_MODEL, *([] if augment else NO_AUGMENTATION),
    ]  # fmt: skip
