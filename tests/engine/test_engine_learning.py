"""It learns: a tiny GRAPE trained from scratch on a few synthetic images finds the people in them.

End to end through the public commands (`grapepose synth`, `train`, `predict`, then the OKS
evaluation), so a sign, stride or offset bug anywhere in targets, losses or decoding fails it: the
trained model would then place its people away from where they are drawn.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from engine_helpers import NO_AUGMENTATION, TINY_MODEL

from grapepose.cli.main import main
from grapepose.evaluation import evaluate_results

pytestmark = pytest.mark.slow

SEED = 80  # two sparse 128x128 scenes: three people 72-88 px tall with 16-17 labelled joints each
STEPS = 180  # AP 0.86 / 0.89 / 0.94 after 60 / 120 / 180 steps of a 240-step schedule


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("learn") / "scenes"
    assert main(["synth", "--scene", "sparse", "--num-images", "2", "--size", "128", "--seed", str(SEED),
                 "--out", str(out), "--format", "png", "--no-progress"]) == 0  # fmt: skip
    return out


@pytest.mark.parametrize("global_context", [True, False], ids=["grape", "without_global_context"])
def test_a_tiny_grape_learns_to_find_the_people_it_was_shown(scenes: Path, tmp_path: Path, global_context: bool,
                                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    torch.set_num_threads(2)  # CI's two cores; the engine tests' fixture restores its setting afterwards
    run, out = tmp_path / "run", tmp_path / "predicted"
    argv = [
        "train", "--preset", "coco_w18s", "--data", str(scenes / "images"), "--ann", str(scenes / "annotations.json"),
        "--out", str(run), "--device", "cpu", "--workers", "0", "--batch-size", "2", "--epochs", "1",
        "--no-progress", "data.input_size=128", "data.output_size=32", *NO_AUGMENTATION, *TINY_MODEL,
        "model.dropout=0", f"model.global_context={str(global_context).lower()}", "train.amp=fp32",
        f"train.steps_per_epoch={STEPS}", "train.schedule=cosine", "train.lr=2e-3", "train.warmup_steps=10", "train.log_interval=1000",
        "test.base_size=128", "test.flip=false",  # trained without mirroring: its own test setting has no flip
    ]  # fmt: skip
    assert main(argv) == 0
    assert main(["predict", str(scenes / "images"), "--weights", str(run / "final.safetensors"), "--out", str(out),
                 "--no-draw", "--device", "cpu", "--score-thr", "0"]) == 0  # fmt: skip
    capsys.readouterr()
    results = json.loads((out / "results.json").read_text())
    metrics = evaluate_results(results, scenes / "annotations.json", kind="coco")
    assert metrics["AP"] >= 0.9, metrics
