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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import nn

from grapepose.config import PRESETS, Config, apply_overrides
from grapepose.data.image_io import read_image
from grapepose.errors import CheckpointError
from grapepose.keypoints import KeypointSpec
from grapepose.tracking import PoseTracker
from grapepose.visualize import draw_poses

__all__ = ["PoseEstimator", "Poses", "DEMO_WEIGHTS", "resolve_weights", "spec_for_config"]

log = logging.getLogger(__name__)

DEMO_WEIGHTS = Path(__file__).resolve().parent / "weights" / "demo.safetensors"

ImageLike = Union[str, os.PathLike, np.ndarray]


def resolve_weights(source: str | os.PathLike[str]) -> Path:
    """The checkpoint file `source` names: "demo" is the bundled demo model, anything else a path."""
    if str(source) == "demo":
        if not DEMO_WEIGHTS.is_file():
            raise CheckpointError(
                f"the demo weights are not bundled yet ({DEMO_WEIGHTS} is missing); "
                "pass a checkpoint file or a preset name instead"
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


@dataclass
class Poses:
    """The people found in one image.

    Attributes:
        keypoints: `[N, K, 3]` float32 (x, y, score) in the image's pixels.
        scores: `[N]` float32 person scores.
        track_ids: `[N]` int64 ids stable across frames (only from `PoseEstimator.track`).
        spec: what the K keypoints are (names, skeleton for drawing).
    """

    keypoints: np.ndarray
    scores: np.ndarray
    spec: KeypointSpec
    track_ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: Any) -> Poses:
        """A subset of the people (an index, slice or boolean mask)."""
        index = np.atleast_1d(np.arange(len(self))[index])
        ids = None if self.track_ids is None else self.track_ids[index]
        return Poses(self.keypoints[index], self.scores[index], self.spec, ids)

    def to_coco(self, image_id: int = 0, **extra: Any) -> list[dict[str, Any]]:
        """COCO results entries, one per person (`track_id` when tracked; `extra` keys added to each)."""
        from grapepose.inference import PoseResult

        entries = PoseResult(self.keypoints, self.scores).to_coco(image_id, track_ids=self.track_ids)
        for entry in entries:
            entry.update(extra)
        return entries

    def draw(self, image: ImageLike, black: bool = False, joint_threshold: float = 0.0) -> np.ndarray:
        """The image (array or path) with every person's skeleton drawn, as `[H, W, 3]` uint8 RGB.

        Each person has its own colour (its track id's, when tracked); joint scores set the opacity.
        `black=True` draws on a black canvas of the image's size.
        """
        img = read_image(image) if isinstance(image, (str, os.PathLike)) else np.asarray(image)
        return draw_poses(
            img, self.keypoints, self.spec.skeleton, ids=self.track_ids,
            labels=self.track_ids is not None, joint_threshold=joint_threshold, black=black,
        )  # fmt: skip


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
        self.config = config
        self.spec = spec_for_config(config)
        self.batch_size = max(1, int(batch_size))
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

    def predict(self, images: Iterable[ImageLike]) -> list[Poses]:
        """Poses for every image (paths or `[H, W, 3]` RGB arrays), batched."""
        return [self._wrap(r) for r in self.predictor(list(images))]

    def __call__(self, images: ImageLike | Sequence[ImageLike]) -> Poses | list[Poses]:
        """Poses of one image (path or array) or a list of them (then a list of `Poses`)."""
        if isinstance(images, (str, os.PathLike)) or (isinstance(images, np.ndarray) and images.ndim in (2, 3)):
            return self.predict([images])[0]
        return self.predict(list(images))

    def track(self, frames: Iterable[ImageLike], tracker: PoseTracker | None = None) -> Iterator[Poses]:
        """Poses with stable `track_ids` for consecutive frames (e.g. `VideoReader(path)`), lazily, batched."""
        tracker = tracker or PoseTracker(self.spec.sigmas)
        batch: list[ImageLike] = []
        for frame in frames:
            batch.append(frame)
            if len(batch) == self.batch_size:
                yield from self._tracked(batch, tracker)
                batch = []
        if batch:
            yield from self._tracked(batch, tracker)

    def _tracked(self, batch: list[ImageLike], tracker: PoseTracker) -> Iterator[Poses]:
        for poses in self.predict(batch):
            poses.track_ids = tracker.update(poses.keypoints)
            yield poses

    def _wrap(self, result: Any) -> Poses:
        kpts = np.asarray(result.keypoints, np.float32).reshape(-1, self.spec.num_keypoints, 3)
        return Poses(kpts, np.asarray(result.scores, np.float32).reshape(-1), self.spec)
