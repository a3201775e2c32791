"""A resumable stream of training batches.

Training reads one endless stream of batches made of passes over the dataset; pass `p` is
shuffled by a `DistributedSampler` seeded with (seed, p), so the order is a pure function of the
seed and the pass number. Optimisation step `g` reads batch `g % L` of pass `g // L` (L batches per
pass and rank), which makes resuming at any step exact: the sampler skips the batches already
seen instead of loading them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from grapepose.errors import ConfigError

__all__ = ["ResumableSampler", "BatchStream"]


class ResumableSampler(DistributedSampler):
    """A `DistributedSampler` that can start a pass part-way through (`set_start`)."""

    def __init__(self, dataset: Sized, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
                 seed: int = 0) -> None:  # fmt: skip
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,  # type: ignore[arg-type]
                         seed=seed, drop_last=False)  # fmt: skip
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip this rank's first `start` samples of the current pass."""
        self.start = start

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start :])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)


class BatchStream:
    """Batches for optimisation steps `start_step, start_step + 1, ...` on this rank.

    Args:
        dataset: map-style dataset whose items `default_collate` stacks.
        batch_size: images per step on this rank.
        rank, world_size: this process's place in the job.
        seed: shuffling seed (shared by every rank).
        workers: DataLoader worker processes.
        pin_memory: pin host memory (CUDA training).
    """

    def __init__(self, dataset: Dataset, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0,
                 workers: int = 0, pin_memory: bool = False) -> None:  # fmt: skip
        self.sampler = ResumableSampler(dataset, world_size, rank, shuffle=True, seed=seed)  # type: ignore[arg-type]
        if self.sampler.num_samples < batch_size:
            raise ConfigError(
                f"train.batch_size {batch_size} exceeds the {self.sampler.num_samples} images each of the "
                f"{world_size} process(es) gets from a dataset of {len(dataset)}; "  # type: ignore[arg-type]
                "use a smaller batch"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.batches_per_pass = self.sampler.num_samples // batch_size
        # A private generator keeps DataLoader from drawing worker seeds from the global torch RNG,
        # whose state the checkpoint restores for dropout.
        self._generator = torch.Generator().manual_seed(seed * 1000003 + rank)
        # Workers are restarted each pass so they see the dataset's new epoch.
        kwargs: dict[str, Any] = {"persistent_workers": False}
        if workers > 0:
            kwargs["prefetch_factor"] = 2
        self.loader = DataLoader(
            dataset, batch_size=batch_size, sampler=self.sampler, num_workers=workers, drop_last=True,
            pin_memory=pin_memory, generator=self._generator, **kwargs,
        )  # fmt: skip

    def iterate(self, start_step: int) -> Iterator[dict[str, torch.Tensor]]:
        """Endless batches, the first one being the batch of step `start_step`."""
        pass_index, offset = divmod(start_step, self.batches_per_pass)
        while True:
            self.sampler.set_epoch(pass_index)
            if hasattr(self.dataset, "set_epoch"):  # augmentation draws from (seed, pass, index)
                self.dataset.set_epoch(pass_index)
            self.sampler.set_start(offset * self.batch_size)
            # Worker seeds depend only on (seed, pass), not on how the run was interrupted.
            self._generator.manual_seed(self.sampler.seed * 1000003 + pass_index * 7919 + self.sampler.rank)
            yield from self.loader
            pass_index, offset = pass_index + 1, 0
