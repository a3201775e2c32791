"""TrainingDataset: documented tensors, determinism per (seed, epoch, index), multi-worker loading, CLI, benches."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from grapepose.cli.main import main
from grapepose.config import DataConfig
from grapepose.data import Sample, TrainingDataset, build_targets
from grapepose.errors import ConfigError, DataError
from grapepose.keypoints import CROWDPOSE_KEYPOINTS

CFG = DataConfig(input_size=64, output_size=16)
K = 14


class RandomSource:
    """In-memory sample source (picklable, for DataLoader workers)."""

    def __len__(self) -> int:
        return 6

    def load(self, i: int) -> Sample:
        rng = np.random.default_rng(i)
        kp = np.zeros((3, K, 3), np.float32)
        kp[..., 0] = rng.uniform(0, 50, (3, K))
        kp[..., 1] = rng.uniform(0, 40, (3, K))
        kp[..., 2] = rng.integers(0, 3, (3, K))
        return Sample(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8), kp, image_id=i)


def _shapes(item: dict[str, torch.Tensor], batch: tuple[int, ...] = ()) -> None:
    s, g = CFG.input_size, CFG.output_size
    expected = {
        "image": (3, s, s), "heatmaps": (K + 1, g, g), "heatmap_weights": (K + 1, g, g),
        "offsets": (2 * K, g, g), "offset_weights": (2 * K, g, g), "visibility": (K, g, g),
    }  # fmt: skip
    assert {k: tuple(v.shape) for k, v in item.items()} == {k: batch + v for k, v in expected.items()}
    assert all(v.dtype == torch.float32 for v in item.values())


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_items_are_deterministic_per_seed_epoch_index() -> None:
    ds = TrainingDataset(RandomSource(), CROWDPOSE_KEYPOINTS, CFG, seed=3)
    a = ds[2]
    _shapes(a)
    assert _equal(a, TrainingDataset(RandomSource(), CROWDPOSE_KEYPOINTS, CFG, seed=3)[2])
    assert not _equal(a, TrainingDataset(RandomSource(), CROWDPOSE_KEYPOINTS, CFG, seed=4)[2])
    ds.set_epoch(1)
    assert not _equal(a, ds[2])
    ds.set_epoch(0)
    assert _equal(a, ds[2])
    ev = TrainingDataset(RandomSource(), CROWDPOSE_KEYPOINTS, CFG, train=False)
    ev.set_epoch(5)
    assert _equal(ev[1], TrainingDataset(RandomSource(), CROWDPOSE_KEYPOINTS, CFG, train=False)[1])


def test_items_match_targets_of_the_augmented_sample() -> None:
    ds = TrainingDataset(RandomSource(), CROWDPOSE_KEYPOINTS, CFG, seed=1)
    aug, t = ds.sample(4)
    item = ds[4]
    sigma = CFG.heatmap_sigma
    again = build_targets(
        aug.keypoints, (16, 16), sigma=sigma, center_sigma=sigma + 2, areas=aug.areas, ignore_mask=aug.ignore_mask
    )
    np.testing.assert_array_equal(item["offsets"].numpy(), again.offsets)
    np.testing.assert_array_equal(item["heatmap_weights"].numpy(), again.heatmap_weights)
    mean = item["image"].mean(dim=(1, 2))
    assert (mean.abs() < 3).all()  # normalised, not raw 0..255


def test_dataloader_two_workers() -> None:
    ds = TrainingDataset(RandomSource(), CROWDPOSE_KEYPOINTS, CFG, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)
    batches = list(loader)
    assert len(batches) == 2
    for b in batches:
        _shapes(b, (3,))
    assert _equal({k: v[1] for k, v in batches[1].items()}, ds[4])  # same item whatever process built it


def test_config_and_source_mismatches() -> None:
    with pytest.raises(ConfigError, match="output_size"):
        TrainingDataset(RandomSource(), CROWDPOSE_KEYPOINTS, DataConfig(input_size=256, output_size=128))

    class Bad(RandomSource):
        def load(self, i: int) -> Sample:
            s = super().load(i)
            return Sample(s.image, s.keypoints[:, :5], image_id=i)

    with pytest.raises(DataError, match="5 keypoints, expected 14"):
        TrainingDataset(Bad(), CROWDPOSE_KEYPOINTS, CFG)[0]


def test_show_targets_cli(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = shared_data / "crowdpose"
    args = ["show-targets", "--data", str(d), "--ann", str(d / "test_crowdpose.json"), "--num-images", "3", "--seed", "1",
            "--set", "data.input_size=128", "--set", "data.output_size=32", "--out", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(pngs) == 3 and "targets_002_image106848.png" in capsys.readouterr().out
    img = cv2.imread(str(pngs[0]))
    assert img.shape == (128, 3 * 128, 3) and img.std() > 10
    assert main(["show-targets", "--data", str(d), "--ann", str(tmp_path / "nope.json"), "--out", str(tmp_path)]) == 2


def test_benches_run(shared_data: Path) -> None:
    from grapepose.bench import loader, targets

    ns = argparse.Namespace(people=3, grid=32, keypoints=5, iters=2, seed=0)
    out = targets.run(ns)
    assert out["ms_per_image"] > 0
    d = shared_data / "crowdpose"
    ann = str(d / "test_crowdpose.json")
    ns = argparse.Namespace(workers=0, size=64, batch=2, batches=1, data=str(d), ann=ann, preset=None, seed=0)
    assert loader.run(ns)["images_per_s"] > 0
