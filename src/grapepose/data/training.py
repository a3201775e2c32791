"""`TrainingDataset`: any sample source -> augmented image + training targets as tensors."""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np
import torch

from grapepose.backbones import IMAGENET_MEAN, IMAGENET_STD
from grapepose.config import DataConfig
from grapepose.data.augment import Augmentation, Augmented
from grapepose.data.sample import Sample
from grapepose.data.targets import Targets, build_targets
from grapepose.errors import ConfigError, DataError
from grapepose.keypoints import KeypointSpec

__all__ = ["SampleSource", "TrainingDataset"]

log = logging.getLogger(__name__)

# normalize_images' arithmetic as one multiply-add in NumPy: torch ops on single images are slow
# in the main process when its intra-op threads contend with DataLoader workers.
_SCALE = (1.0 / (255.0 * np.asarray(IMAGENET_STD))).astype(np.float32)[:, None, None]
_SHIFT = (-np.asarray(IMAGENET_MEAN) / np.asarray(IMAGENET_STD)).astype(np.float32)[:, None, None]


def _normalized_chw(image: np.ndarray) -> torch.Tensor:
    """uint8 `[S, S, 3]` -> float32 `[3, S, S]`, ImageNet-normalised like `normalize_images`."""
    x = image.transpose(2, 0, 1).astype(np.float32)
    x *= _SCALE
    x += _SHIFT
    return torch.from_numpy(x)


class SampleSource(Protocol):
    """What `TrainingDataset` reads: `KeypointDataset`, `grapepose.synth.SyntheticSource`, ..."""

    def __len__(self) -> int: ...

    def load(self, i: int) -> Sample: ...


class TrainingDataset(torch.utils.data.Dataset):
    """Augmented samples with their training targets, for a `DataLoader` (any number of workers).

    Item `i` is a dict of tensors: `image [3,S,S]` (ImageNet-normalised), `heatmaps [K+1,h,w]`,
    `heatmap_weights [K+1,h,w]`, `offsets [2K,h,w]`, `offset_weights [2K,h,w]`, `visibility [K,h,w]`.
    Randomness is drawn from (seed, epoch, i) only, so an item is reproducible whatever worker
    builds it; call `set_epoch` before each epoch (with `persistent_workers=True` the workers keep
    the epoch they were started with). A sample whose image cannot be read is replaced by the next
    readable one, with a warning, and counted in `skipped` (per process).
    """

    def __init__(
        self, source: SampleSource, spec: KeypointSpec, cfg: DataConfig, train: bool = True, seed: int = 0,
        max_skips: int = 10,
    ) -> None:  # fmt: skip
        """Wrap `source`.

        Args:
            source: sample source (`__len__`, `load(i) -> Sample`).
            spec: keypoint metadata (K and the flip permutation).
            cfg: sizes, augmentation and target parameters (the only place they are read).
            train: random augmentation; False: deterministic centred resize.
            seed: base seed.
            max_skips: unreadable samples tolerated in a row before giving up.

        Raises:
            ConfigError: `cfg.output_size` is not `cfg.input_size / 4`.
        """
        if cfg.input_size != 4 * cfg.output_size:
            raise ConfigError(
                f"data.output_size ({cfg.output_size}) must be data.input_size / 4 ({cfg.input_size // 4}): "
                "the network predicts on a 1/4 grid"
            )
        self.source = source
        self.spec = spec
        self.train = train
        self.seed = int(seed)
        self.max_skips = max_skips
        self.augmentation = Augmentation.from_config(cfg, train)
        sigma = cfg.heatmap_sigma
        self.target_args = {
            "sigma": sigma, "center_sigma": sigma + cfg.center_sigma_extra, "bg_weight": cfg.bg_weight,
            "offset_radius": cfg.offset_radius, "visibility_radius": cfg.visibility_radius,
        }  # fmt: skip
        self.epoch = 0
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draw of `epoch` (call before creating the epoch's iterator)."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        """The generator for item `index` of the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def _load(self, index: int) -> Sample:
        n = len(self.source)
        for attempt in range(self.max_skips + 1):
            i = (index + attempt) % n
            try:
                sample = self.source.load(i)
            except DataError as e:
                self.skipped += 1
                log.warning("skipping sample %d (%s); %d skipped so far in this process", i, e, self.skipped)
                continue
            if sample.keypoints.shape[1] != self.spec.num_keypoints:
                got, want = sample.keypoints.shape[1], self.spec.num_keypoints
                raise DataError(f"sample {sample.image_id}: {got} keypoints, expected {want}")
            return sample
        raise DataError(f"{self.max_skips + 1} unreadable samples in a row from index {index}; giving up")

    def sample(self, index: int) -> tuple[Augmented, Targets]:
        """Item `index` as NumPy arrays: the augmented sample and its targets (for inspection)."""
        sample = self._load(index)
        aug = self.augmentation.apply(sample, self.spec.flip_index, self.rng(index) if self.train else None)
        g = self.augmentation.output_size
        targets = build_targets(
            aug.keypoints, (g, g), areas=aug.areas, has_center=aug.has_center, ignore_mask=aug.ignore_mask,
            **self.target_args,
        )  # fmt: skip
        return aug, targets

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        aug, t = self.sample(index)
        return {
            "image": _normalized_chw(aug.image),
            "heatmaps": torch.from_numpy(t.heatmaps),
            "heatmap_weights": torch.from_numpy(t.heatmap_weights),
            "offsets": torch.from_numpy(t.offsets),
            "offset_weights": torch.from_numpy(t.offset_weights),
            "visibility": torch.from_numpy(t.visibility),
        }
