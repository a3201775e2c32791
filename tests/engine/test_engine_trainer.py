"""The training loop on the real (tiny) network and the CrowdPose fixture, through the Python API."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from engine_helpers import tiny_overrides

from grapepose.config import load_config
from grapepose.engine import Trainer
from grapepose.engine.checkpoint import load_state
from grapepose.errors import ConfigError


def test_overfits_two_images(crowdpose: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config("crowdpose_w18", [*tiny_overrides(crowdpose, size=128, batch=2, augment=False),
                                        "train.epochs=40", "train.warmup_steps=0"])  # fmt: skip
    calls: list[bool] = []
    monkeypatch.setattr("grapepose.engine.trainer.retain_freed_memory", lambda: calls.append(True) or True)
    trainer = Trainer(cfg, None, device="cpu", progress=False)
    assert calls == [True]  # a CPU run keeps freed memory for reuse (grapepose.utils.memory)
    result = trainer.fit()
    losses = [h["total"] for h in trainer.history]
    assert len(losses) == 40 and result.finished and result.step == 40
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses
    assert set(trainer.history[0]) == {"heatmap", "offset", "refined_offset", "visibility", "total"}


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_interrupted_and_resumed_equals_uninterrupted(crowdpose: Path, tmp_path: Path) -> None:
    # batch 1 on two images: 2 steps per epoch, so the interruption at step 3 is mid-epoch;
    # augmentation and dropout stay on, their randomness must be restored
    cfg = load_config("crowdpose_w18", [*tiny_overrides(crowdpose), "train.epochs=3", "train.deterministic=true",
                                        "train.seed=3"])  # fmt: skip
    whole = Trainer(cfg, tmp_path / "whole", device="cpu", progress=False)
    whole.fit()
    assert whole.step == 6
    chunked = load_config(cfg, ["train.checkpoint_interval=3"])  # the mid-epoch save comes from the interval
    first = Trainer(chunked, tmp_path / "parts", device="cpu", progress=False)
    assert first.fit(max_steps=3).step == 3
    assert load_state(tmp_path / "parts" / "last.pt")["step"] == 3
    second = Trainer(cfg, tmp_path / "parts", device="cpu", progress=False)
    assert second.step == 3  # resumed
    assert second.fit().finished
    a, b = _weights(whole), _weights(second)
    assert a.keys() == b.keys()
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())
    assert worst <= 1e-6
    assert all(torch.equal(a[k], b[k]) for k in a if not a[k].is_floating_point())
    assert [h["total"] for h in whole.history][3:] == pytest.approx([h["total"] for h in second.history], abs=1e-6)
    for name in ("config.yaml", "last.pt", "final.safetensors"):
        assert (tmp_path / "parts" / name).is_file()
    assert any((tmp_path / "parts" / "tb").iterdir())


def test_validation_keeps_best_model(crowdpose: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from grapepose.models import load_model

    caplog.set_level(logging.INFO)
    ann = crowdpose / "test_crowdpose.json"
    cfg = load_config("crowdpose_w18", [*tiny_overrides(crowdpose), "train.epochs=1", "train.val_interval=1",
                                        f"data.val_root={crowdpose}", f"data.val_ann={ann}",
                                        "test.base_size=64", "test.flip=false"])  # fmt: skip
    trainer = Trainer(cfg, tmp_path, device="cpu", progress=False)
    result = trainer.fit()
    assert result.finished and 0.0 <= result.best_ap <= 1.0
    assert "validation at step 2: AP" in caplog.text
    assert load_model(tmp_path / "best.safetensors").config.model.d_model == 32
    assert load_state(tmp_path / "last.pt")["best_ap"] == result.best_ap
    assert trainer.model.training


def test_initialisation_from_weights_and_imagenet_backbone(crowdpose: Path, tmp_path: Path) -> None:
    from grapepose.errors import CheckpointError
    from grapepose.models import build_model, save_model

    cfg = load_config("crowdpose_w18", tiny_overrides(crowdpose))
    torch.manual_seed(123)
    donor = build_model(cfg)
    save_model(donor, tmp_path / "donor.safetensors")
    imagenet = {**donor.backbone.hrnet.state_dict(), "classifier.weight": torch.zeros(10, 4)}
    torch.save(imagenet, tmp_path / "hrnet_w18.pth")

    reference = donor.state_dict()
    whole = Trainer(cfg, None, device="cpu", weights=tmp_path / "donor.safetensors", progress=False)
    assert all(torch.equal(v, reference[k]) for k, v in whole.model.state_dict().items())
    backbone = Trainer(cfg, None, device="cpu", init_backbone=tmp_path / "hrnet_w18.pth", progress=False)
    own = backbone.model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in reference.items() if k.startswith("backbone."))
    heads = [k for k, v in reference.items() if k.startswith("heatmap_head") and v.ndim == 4]
    assert not any(torch.equal(own[k], reference[k]) for k in heads)  # only the backbone was loaded
    other = load_config("crowdpose_w18", [*tiny_overrides(crowdpose), "model.d_model=64"])
    with pytest.raises(CheckpointError, match="donor.safetensors"):
        Trainer(other, None, device="cpu", weights=tmp_path / "donor.safetensors", progress=False)


def test_time_limit_stops_after_a_step_and_resumes(crowdpose: Path, tmp_path: Path) -> None:
    cfg = load_config("crowdpose_w18", [*tiny_overrides(crowdpose), "train.epochs=2"])
    first = Trainer(cfg, tmp_path, device="cpu", progress=False)
    result = first.fit(max_seconds=1e-9)  # already past: stops after the first whole step
    assert result.step == 1 and not result.finished
    assert load_state(tmp_path / "last.pt")["step"] == 1
    second = Trainer(cfg, tmp_path, device="cpu", progress=False)
    assert second.step == 1 and second.seconds_per_step > 0  # the first chunk's step time is kept
    with pytest.raises(ConfigError, match=r"^a time limit of 1e-09 s is below one training step of this run \("):
        second.fit(max_seconds=1e-9)  # refused before it starts: no step taken, nothing written
    assert second.step == 1 and load_state(tmp_path / "last.pt")["step"] == 1
    assert second.fit().finished and second.step == 4


def test_ablation_without_global_context_trains_and_predicts(crowdpose: Path, tmp_path: Path) -> None:
    import numpy as np

    from grapepose.api import PoseEstimator

    cfg = load_config("crowdpose_w18", [*tiny_overrides(crowdpose), "train.epochs=1", "model.global_context=false"])
    trainer = Trainer(cfg, tmp_path, device="cpu", progress=False)
    assert trainer.fit().finished
    assert set(trainer.history[0]) == {"heatmap", "offset", "total"}  # no refined-offset or visibility loss
    est = PoseEstimator.from_pretrained(tmp_path / "final.safetensors", device="cpu",
                                        overrides=["test.base_size=64"])  # fmt: skip
    assert est.model.config.model.global_context is False
    people = est(np.zeros((80, 120, 3), np.uint8))
    assert people.keypoints.shape[1:] == (14, 3) and len(people.scores) == len(people.keypoints)
