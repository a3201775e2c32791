"""A custom COCO-format keypoint set (K=5): its spec travels from the JSON category into the model file
and is what prediction, drawing and evaluation use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from engine_helpers import NO_AUGMENTATION, TINY_MODEL

from grapepose.cli.main import main
from grapepose.config import load_config
from grapepose.engine import Trainer
from grapepose.keypoints import KeypointSpec

# CrowdPose joints reused as a 5-keypoint set whose names do not pair by left/right: the flip pairs
# must come from the category's flip_index.
_FROM_CROWDPOSE = (12, 4, 5, 10, 11)  # head, left/right wrist, left/right ankle
CATEGORY = {
    "id": 1, "name": "person", "keypoints": ["head", "hand_a", "hand_b", "foot_a", "foot_b"],
    "flip_index": [0, 2, 1, 4, 3], "sigmas": [0.05, 0.06, 0.06, 0.08, 0.08], "skeleton": [[1, 2], [1, 3], [1, 4]],
}  # fmt: skip
SPEC = KeypointSpec(
    names=("head", "hand_a", "hand_b", "foot_a", "foot_b"), flip_index=(0, 2, 1, 4, 3),
    sigmas=(0.05, 0.06, 0.06, 0.08, 0.08), skeleton=((0, 1), (0, 2), (0, 3)),
)  # fmt: skip


@pytest.fixture
def custom_set(crowdpose: Path, tmp_path: Path) -> tuple[Path, Path]:
    src = json.loads((crowdpose / "test_crowdpose.json").read_text())
    root = tmp_path / "images"
    root.mkdir()
    for im in src["images"]:
        shutil.copy(crowdpose / im["file_name"], root / im["file_name"])
    anns = []
    for a in src["annotations"]:
        kp = np.asarray(a["keypoints"], float).reshape(14, 3)[list(_FROM_CROWDPOSE)]
        anns.append({**a, "keypoints": kp.ravel().tolist(), "num_keypoints": int((kp[:, 2] > 0).sum())})
    ann = tmp_path / "custom.json"
    ann.write_text(json.dumps({"images": src["images"], "annotations": anns, "categories": [CATEGORY]}))
    return root, ann


def test_custom_keypoints_travel_with_the_model(custom_set, tmp_path, monkeypatch):
    root, ann = custom_set
    cfg = load_config("coco_w18s", [
        f"data.root={root}", f"data.ann={ann}", "data.dataset=custom", "model.num_keypoints=5",
        "data.input_size=64", "data.output_size=16", "data.num_workers=0", "train.batch_size=1", "train.epochs=1",
        "train.steps_per_epoch=2", "train.warmup_steps=0", "test.base_size=64", "test.flip=false",
        *TINY_MODEL, *NO_AUGMENTATION,
    ])  # fmt: skip
    assert cfg.keypoints is None  # not known before the dataset is read
    run = tmp_path / "run"
    assert Trainer(cfg, run, device="cpu", progress=False).fit().finished
    from grapepose import PoseEstimator
    from grapepose.engine.checkpoint import load_state

    assert load_config(run / "config.yaml").keypoints == SPEC
    assert load_state(run / "last.pt")["config"]["keypoints"]["flip_index"] == [0, 2, 1, 4, 3]
    est = PoseEstimator.from_pretrained(run / "final.safetensors", device="cpu")
    assert est.spec == SPEC and est.predictor.spec == SPEC and est.config.keypoints == SPEC
    people = est.predict([root / "106848.jpg"])[0]
    assert people.keypoints.shape[1:] == (5, 3) and people.spec == SPEC
    # drawing joins exactly the skeleton's pairs: limb 0-1 is drawn, the non-limb 1-2 is not
    from grapepose.api import Poses

    kp = np.array([[[20, 20, 1], [60, 20, 1], [20, 60, 1], [60, 60, 1], [70, 5, 1]]], np.float32)
    drawn = Poses(kp, np.ones(1, np.float32), people.spec).draw(np.zeros((80, 80, 3), np.uint8))
    assert drawn[20, 40].any() and drawn[40, 20].any() and drawn[40, 40].any()  # the three limbs from the head
    assert not drawn[60, 40].any() and not drawn[40, 60].any()  # hand_b-foot_a, hand_a-foot_a: no limbs
    # evaluation scores with the model's sigmas
    import grapepose.evaluation as evaluation

    seen = {}
    real = evaluation.evaluate_results

    def spy(*args, **kwargs):
        seen["sigmas"] = tuple(kwargs["sigmas"])
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_results", spy)
    assert main(["evaluate", "--weights", str(run / "final.safetensors"), "--data", str(root), "--ann", str(ann),
                 "--device", "cpu"]) == 0  # fmt: skip
    assert seen["sigmas"] == SPEC.sigmas


def test_results_file_is_scored_with_the_category_sigmas(custom_set):
    """Without a model, `evaluate --results` takes the sigmas from the ground truth's category."""
    from grapepose.evaluation import evaluate_results

    _, ann = custom_set
    gt = json.loads(ann.read_text())
    results = []
    for a in gt["annotations"]:
        kp = np.asarray(a["keypoints"], float).reshape(5, 3)
        kp[:, 0] += 6.0  # a shift whose OKS depends on the sigmas
        results.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 1.0})
    own = evaluate_results(results, ann)["AP"]
    assert own == evaluate_results(results, ann, sigmas=SPEC.sigmas)["AP"]
    assert own != evaluate_results(results, ann, sigmas=[0.3] * 5)["AP"]
