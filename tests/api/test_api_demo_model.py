"""The bundled demo model: loads by name with its record, finds people in fresh synthetic scenes, the demo says so."""

from __future__ import annotations

from pathlib import Path

import pytest

import grapepose.api
from grapepose.api import DEMO_WEIGHTS, PoseEstimator
from grapepose.cli.main import main
from grapepose.errors import CheckpointError
from grapepose.evaluation import evaluate_results
from grapepose.keypoints import keypoint_spec
from grapepose.models import read_model_info
from grapepose.synth import generate_dataset


def test_demo_model_is_bundled_with_its_record():
    assert DEMO_WEIGHTS.is_file() and DEMO_WEIGHTS.stat().st_size <= 12 * 2**20  # 5.5 M parameters in fp16
    est = PoseEstimator.from_pretrained("demo", device="cpu")
    coco = keypoint_spec("coco")
    assert est.spec.names == coco.names and est.spec.flip_index == coco.flip_index
    assert est.model.backbone is not None and est.config.model.global_context  # GRAPE, not the ablation
    info = read_model_info(DEMO_WEIGHTS)
    assert info == est.info
    assert info["command"].startswith("grapepose train ") and "synthetic" in info["trained_on"]
    assert set(info["heldout_ap"]) >= {"sparse", "crowd"} and 0 < info["heldout_ap"]["sparse"] <= 1


def test_demo_model_finds_people_in_fresh_sparse_scenes(tmp_path):
    """On 8 sparse scenes of a seed never trained on, at least the recorded held-out AP less 0.15."""
    generate_dataset(tmp_path, "sparse", 8, size=256, seed=31337, keypoints="coco", progress=False)
    est = PoseEstimator.from_pretrained("demo", device="cpu")
    results = []
    for i, people in enumerate(est.predict([str(tmp_path / "images" / f"{i:06d}.jpg") for i in range(8)])):
        results += people.to_coco(i)
    metrics = evaluate_results(results, tmp_path / "annotations.json", kind="coco")
    assert metrics["AP"] >= est.info["heldout_ap"]["sparse"] - 0.15, metrics


@pytest.mark.parametrize("content", [None, b"", b"\x00" * 64, b"not a model at all"])
def test_missing_or_corrupt_demo_weights_are_one_line(tmp_path, monkeypatch, capsys, content):
    path = tmp_path / "weights" / "demo.safetensors"
    if content is not None:
        path.parent.mkdir()
        path.write_bytes(content)
    monkeypatch.setattr(grapepose.api, "DEMO_WEIGHTS", path)
    with pytest.raises(CheckpointError, match=f"^{path}: "):
        PoseEstimator.from_pretrained("demo", device="cpu")
    assert main(["predict", str(tmp_path), "--weights", "demo", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"grapepose predict: error: {path}: "), err


def test_demo_command_says_what_the_model_is_and_prints_its_ap(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--num-synthetic", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "model: the bundled demo model, coco_w18s" in out and "trained on synthetic" in out
    assert "not a real-photo model" in out and "held-out AP on synthetic scenes: sparse AP 0." in out
    assert "synthetic crowd: 2 images, " in out and " against their ground truth" in out
    assert "| demo model on synthetic crowd |" in out
    assert Path(tmp_path / "demo" / "synthetic" / "results.json").is_file()
