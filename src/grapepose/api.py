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
from pathlib import Path
from typing import Any

import torch
from torch import nn

from grapepose.config import PRESETS, Config, apply_overrides
from grapepose.errors import CheckpointError, ConfigError
from grapepose.inference.images import is_single_image
from grapepose.inference.result import Poses
from grapepose.keypoints import KeypointSpec
from grapepose.limits import MAX_MEGAPIXELS
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
        max_megapixels: an image file declaring more pixels is refused before decoding, in one line
            naming it (default `grapepose.limits.MAX_MEGAPIXELS`; arrays you pass are not limited).
    """

    def __init__(
        self, model: nn.Module, config: Config | None = None, device: str | torch.device | None = None,
        batch_size: int = 8, max_megapixels: float = MAX_MEGAPIXELS,
    ) -> None:  # fmt: skip
        from grapepose.inference.predictor import Predictor

        config = config if config is not None else getattr(model, "config", None)
        if config is None:
            raise CheckpointError("model has no .config; pass config=")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.config = config
        self.spec = spec_for_config(config)
        self.batch_size = batch_size
        self.predictor = Predictor(model, config, device, spec=self.spec, batch_size=self.batch_size,
                                   max_megapixels=max_megapixels)  # fmt: skip
        self.model = model

    @classmethod
    def from_pretrained(
        cls, source: str | os.PathLike[str] = "demo", device: str | torch.device | None = None,
        preset: str | None = None, overrides: Sequence[str] = (), batch_size: int = 8,
        max_megapixels: float = MAX_MEGAPIXELS, precision: str | None = None,
    ) -> PoseEstimator:  # fmt: skip
        """Load "demo" (the bundled model), a checkpoint file, an exported `.onnx` file, or build a preset.

        Args:
            source: "demo", a path (`.safetensors`, the authors' `.pth`/`.pth.tar`, `.onnx`) or a preset name
                (an untrained network: its predictions are meaningless; a warning says so).
            device: where to run (default: CUDA when available).
            preset: config for checkpoints that carry none (the authors' files).
            overrides: `section.key=value` config overrides, e.g. `["test.flip=false"]`.
            batch_size: images per forward pass.
            max_megapixels: the largest image file read (see the class).
            precision: `auto`, `fp32`, `bf16`, `fp16` or `int8` (`test.dtype`; see
                `grapepose.inference.precision`); default: the config's.
        """
        from grapepose.models import build_model, load_model

        if precision is not None:
            overrides = [*overrides, f"test.dtype={precision}"]

        if str(source) in PRESETS and not Path(source).is_file():
            log.warning("%s: untrained network with random weights; its predictions are meaningless", source)
            model = build_model(str(source))
        else:
            path = resolve_weights(source)
            if path.suffix.lower() == ".onnx":
                return cls.from_onnx(path, device=device, overrides=overrides, batch_size=batch_size,
                                     max_megapixels=max_megapixels)  # fmt: skip
            model = load_model(path, preset=preset)
        config = apply_overrides(model.config, overrides)
        return cls(model, config, device, batch_size, max_megapixels=max_megapixels)

    @classmethod
    def from_onnx(
        cls, path: str | os.PathLike[str], device: str | torch.device | None = None,
        overrides: Sequence[str] = (), batch_size: int = 8, max_megapixels: float = MAX_MEGAPIXELS,
        precision: str | None = None,
    ) -> PoseEstimator:  # fmt: skip
        """Run an exported ONNX file (same resizing, flip test and decoding as torch).

        An fp32 file runs with onnxruntime, or with OpenVINO in bf16 when asked for (`precision="bf16"`);
        an int8 file (`grapepose export --precision int8`) runs with OpenVINO.
        """
        from grapepose.export.onnx import CONFIG_KEY
        from grapepose.export.quantize import PRECISION_KEY, onnx_metadata
        from grapepose.inference.onnx_runtime import OnnxModel
        from grapepose.inference.precision import resolve_precision
        from grapepose.models import config_from_json
        from grapepose.utils.device import resolve_device

        if precision is not None:
            overrides = [*overrides, f"test.dtype={precision}"]
        device = resolve_device(device)
        model = None
        meta = onnx_metadata(path)
        stored = meta.get(PRECISION_KEY, "fp32")
        if stored == "fp32":
            model = OnnxModel(path, device)  # checks the file; reads its config
            file_config = model.config
        else:
            file_config = config_from_json(meta[CONFIG_KEY], path) if CONFIG_KEY in meta else None
        if file_config is None:
            raise CheckpointError(f"{path}: the ONNX file carries no grapepose config; export it with grapepose export")
        wanted = apply_overrides(file_config, overrides).test.dtype
        if stored == "fp32" and wanted == "auto":
            wanted = "fp32"  # an fp32 file runs as exported (onnxruntime) unless bf16 is asked for
        precision = resolve_precision(wanted, device, file_precision=stored, key="precision")
        if precision.runtime == "openvino":
            from grapepose.inference.openvino import OpenVinoModel

            model = OpenVinoModel(path, precision.name, file_config)
        elif precision.name != "fp32" or model is None:
            raise ConfigError(f"{path}: an ONNX file runs in fp32 (onnxruntime), bf16 or int8 (OpenVINO, CPU), "
                              f"not {precision.name} on {device}")  # fmt: skip
        config = apply_overrides(file_config, [*overrides, f"test.dtype={precision.name}"])
        return cls(model, config, device, batch_size, max_megapixels=max_megapixels)

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
