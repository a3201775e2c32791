"""The Python API: load a model, call it on images, get poses.

    from grapepose import PoseEstimator
    est = PoseEstimator.from_pretrained("demo")     # or a checkpoint path, an .onnx file, a preset
    people = est("photo.jpg")                       # .keypoints [N, K, 3], .scores [N]
    drawn = people.draw("photo.jpg")                # RGB array with each skeleton drawn
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from grapepose.config import PRESETS, Config, apply_overrides
from grapepose.errors import CheckpointError, ConfigError
from grapepose.inference.images import is_single_image
from grapepose.inference.result import Poses
from grapepose.keypoints import KeypointSpec
from grapepose.tracking import PoseTracker

__all__ = ["PoseEstimator", "Poses", "DEMO_WEIGHTS", "resolve_weights", "spec_for_config"]

log = logging.getLogger(__name__)

DEMO_WEIGHTS = Path(__file__).resolve().parent / "weights" / "demo.safetensors"

ImageLike = Any  # a path, PIL image, numpy array or torch tensor: see grapepose.inference.images


def resolve_weights(source: str | os.PathLike[str]) -> Path:
    """The checkpoint file `source` names: "demo" is the bundled demo model, anything else a path."""
    if str(source) == "demo":
        if not DEMO_WEIGHTS.is_file():
            raise CheckpointError(
                f"{DEMO_WEIGHTS}: the bundled demo model is missing from this installation (reinstall grapepose); "
                "or pass a checkpoint file or a preset name instead"
            )
        return DEMO_WEIGHTS
    path = Path(source).expanduser()
    if not path.is_file():
        hint = f"; presets: {', '.join(PRESETS)}" if os.sep not in str(source) and not path.suffix else ""
        raise CheckpointError(f"{source}: no such checkpoint file (nor 'demo' or a preset name{hint})")
    return path


def spec_for_config(config: Config) -> KeypointSpec:
    """Keypoint metadata of a model's config (names, flip pairs, OKS sigmas, skeleton): `config.keypoint_spec`."""
    return config.keypoint_spec


class PoseEstimator:
    """A pose model with its test-time procedure: images in, `Poses` out.

    Args:
        model: a `GrapeNet`, an `OnnxModel`, or any module with the same input and outputs.
        config: model and test settings (default: `model.config`).
        device: "cpu", "cuda", ... (default: CUDA when available).
        batch_size: images per forward pass when called with many images.
    """

    def __init__(
        self, model: nn.Module, config: Config | None = None, device: str | torch.device | None = None,
        batch_size: int = 8,
    ) -> None:  # fmt: skip
        from grapepose.inference import Predictor

        config = config if config is not None else getattr(model, "config", None)
        if config is None:
            raise CheckpointError("model has no .config; pass config=")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.config = config
        self.spec = spec_for_config(config)
        self.batch_size = batch_size
        self.predictor = Predictor(model, config, device, spec=self.spec, batch_size=self.batch_size)
        self.model = model

    @classmethod
    def from_pretrained(
        cls, source: str | os.PathLike[str] = "demo", device: str | torch.device | None = None,
        preset: str | None = None, overrides: Sequence[str] = (), batch_size: int = 8,
    ) -> PoseEstimator:  # fmt: skip
        """Load "demo" (the bundled model), a checkpoint file, an exported `.onnx` file, or build a preset.

        Args:
            source: "demo", a path (`.safetensors`, the authors' `.pth`/`.pth.tar`, `.onnx`) or a preset name
                (an untrained network: its predictions are meaningless; a warning says so).
            device: where to run (default: CUDA when available).
            preset: config for checkpoints that carry none (the authors' files).
            overrides: `section.key=value` config overrides, e.g. `["test.flip=false"]`.
            batch_size: images per forward pass.
        """
        from grapepose.models import build_model, load_model

        if str(source) in PRESETS and not Path(source).is_file():
            log.warning("%s: untrained network with random weights; its predictions are meaningless", source)
            model = build_model(str(source))
        else:
            path = resolve_weights(source)
            if path.suffix.lower() == ".onnx":
                return cls.from_onnx(path, device=device, overrides=overrides, batch_size=batch_size)
            model = load_model(path, preset=preset)
        config = apply_overrides(model.config, overrides)
        return cls(model, config, device, batch_size)

    @classmethod
    def from_onnx(
        cls, path: str | os.PathLike[str], device: str | torch.device | None = None,
        overrides: Sequence[str] = (), batch_size: int = 8,
    ) -> PoseEstimator:  # fmt: skip
        """Run an exported ONNX file with onnxruntime (same resizing, flip test and decoding as torch)."""
        from grapepose.export.runtime import OnnxModel

        from grapepose.utils.device import resolve_device

        device = resolve_device(device)
        model = OnnxModel(path, device)
        if model.config is None:
            raise CheckpointError(f"{path}: the ONNX file carries no grapepose config; export it with grapepose export")
        # onnxruntime runs the file's fp32 graph; mixed precision settings do not apply.
        config = apply_overrides(replace(model.config, test=replace(model.config.test, dtype="fp32")), overrides)
        return cls(model, config, device, batch_size)

    @property
    def device(self) -> torch.device:
        return torch.device(self.predictor.device)

    @property
    def info(self) -> dict[str, Any]:
        """How the model was made (command, training data, held-out AP), as its file records it; {} if unknown."""
        return dict(getattr(self.model, "info", None) or {})

    def predict(self, images: ImageLike | Iterable[ImageLike]) -> list[Poses]:
        """Poses for every image, batched: a list, or a `[N, 3, H, W]` batch (see `grapepose.inference.images`).

        Raises:
            GrapeposeError: the first unusable image, in one line naming it.
        """
        return self.predictor(images)

    def __call__(self, images: ImageLike | Iterable[ImageLike]) -> Poses | list[Poses]:
        """`Poses` of one image (path, PIL image, `[H, W, 3]` / `[3, H, W]` array or tensor), or a list of
        them for a list of images or a `[N, 3, H, W]` batch."""
        if is_single_image(images):
            return self.predictor(images)[0]
        return self.predict(images)

    def track(self, frames: Iterable[ImageLike], tracker: PoseTracker | None = None) -> Iterator[Poses]:
        """Poses with stable `track_ids` for consecutive frames (e.g. `VideoReader(path)`), lazily, batched."""
        tracker = tracker or PoseTracker(self.spec.sigmas)
        for poses in self.predictor.iter_predict(frames):
            if isinstance(poses, Exception):
                raise poses
            poses.track_ids = tracker.update(poses.keypoints)
            yield poses
