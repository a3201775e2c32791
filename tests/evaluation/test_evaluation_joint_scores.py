"""COCO results carrying the per-joint confidences (`keypoint_scores`) score exactly as without them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from grapepose.api import PoseEstimator
from grapepose.cli.main import main
from grapepose.evaluation import evaluate_results
from grapepose.inference.result import JOINT_SCORES_KEY

ANNS = {
    "coco": "coco/test_coco.json",
    "crowdpose": "crowdpose/test_crowdpose.json",
    "ochuman": "ochuman/test_ochuman.json",
}


def _without_key(results: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != JOINT_SCORES_KEY} for r in results]


@pytest.mark.parametrize("kind", list(ANNS))
def test_jittered_results_score_the_same_with_the_key(shared_data, kind):
    path = shared_data / ANNS[kind]
    ann = json.loads(path.read_text())
    rng = np.random.default_rng(0)
    results = []
    for a in ann["annotations"]:
        if a.get("num_keypoints", 0) == 0:
            continue
        kp = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
        size = np.sqrt(a["bbox"][2] * a["bbox"][3])
        kp[:, :2] += rng.normal(0, 0.06 * size, kp[:, :2].shape)  # OKS around 0.5 to 0.9
        kp[:, 2] = rng.uniform(0.1, 1, len(kp))
        results.append({
            "image_id": a["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(),
            "score": float(rng.uniform(0.2, 1)), JOINT_SCORES_KEY: rng.uniform(0, 1, len(kp)).round(5).tolist(),
        })  # fmt: skip
    with_key = evaluate_results(results, path)
    assert 0.0 < with_key["AP"] < 1.0  # jitter makes the figures depend on every value
    assert with_key == evaluate_results(_without_key(results), path)


def test_model_results_score_the_same_with_the_key(shared_data, tiny_checkpoint, tmp_path, capsys):
    path = shared_data / ANNS["crowdpose"]
    ann = json.loads(path.read_text())
    est = PoseEstimator.from_pretrained(tiny_checkpoint, device="cpu", batch_size=2)
    results = []
    for im in ann["images"]:
        results += est(shared_data / "crowdpose" / im["file_name"]).to_coco(im["id"])
    assert results and all(len(r[JOINT_SCORES_KEY]) == 14 for r in results)
    assert evaluate_results(results, path) == evaluate_results(_without_key(results), path)
    # and the same through a results file and `grapepose evaluate --results`
    tables = []
    for name, entries in (("with", results), ("without", _without_key(results))):
        file = tmp_path / f"{name}.json"
        file.write_text(json.dumps(entries))
        assert main(["evaluate", "--results", str(file), "--ann", str(path)]) == 0
        tables.append(capsys.readouterr().out.replace(name, "NAME"))
    assert tables[0] == tables[1]
