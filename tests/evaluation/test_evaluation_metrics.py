"""OKS evaluation on the real fixtures: ground truth scores 1, jitter matches pycocotools."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from grapepose.errors import DataError
from grapepose.evaluation import detect_kind, evaluate_results, format_metrics_table

ANNS = {
    "coco": "coco/test_coco.json",
    "crowdpose": "crowdpose/test_crowdpose.json",
    "ochuman": "ochuman/test_ochuman.json",
}


def _gt_as_results(ann: dict, score: float = 1.0) -> list[dict]:
    return [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": score}
        for a in ann["annotations"]
        if a.get("num_keypoints", 0) > 0
    ]


@pytest.mark.parametrize("kind", list(ANNS))
def test_ground_truth_scores_one(shared_data, kind):
    path = shared_data / ANNS[kind]
    assert detect_kind(path) == kind
    metrics = evaluate_results(_gt_as_results(json.loads(path.read_text())), path)
    expected = {
        "coco": {"AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL"},
        "crowdpose": {"AP", "AP50", "AP75", "AR", "AR50", "AR75", "APeasy", "APmed", "APhard"},
    }
    assert set(metrics) == expected.get(kind, expected["coco"])
    for name, value in metrics.items():
        assert value == pytest.approx(1.0) or value == -1.0, name  # -1: no ground truth in that range
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AR"] == pytest.approx(1.0)


def test_crowdpose_easy_medium_hard(shared_data, tmp_path):
    ann = json.loads((shared_data / ANNS["crowdpose"]).read_text())
    assert sorted(im["crowdIndex"] for im in ann["images"]) == [0.33, 0.39]  # both "medium" as shipped
    results = _gt_as_results(ann)
    assert evaluate_results(results, shared_data / ANNS["crowdpose"])["APeasy"] == -1.0
    ann["images"][0]["crowdIndex"], ann["images"][1]["crowdIndex"] = 0.1, 0.9  # one easy, one hard image
    path = tmp_path / "crowd.json"
    path.write_text(json.dumps(ann))
    bad = ann["images"][1]["id"]
    jittered = [dict(r, keypoints=[v + 40 * (i % 3 != 2) for i, v in enumerate(r["keypoints"])])
                if r["image_id"] == bad else r for r in results]  # fmt: skip
    metrics = evaluate_results(jittered, path)
    assert metrics["APeasy"] == pytest.approx(1.0)
    assert metrics["APmed"] == -1.0
    assert metrics["APhard"] < 0.5
    assert 0.0 < metrics["AP"] < 1.0


def test_jittered_predictions_match_pycocotools(shared_data):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    path = shared_data / ANNS["coco"]
    ann = json.loads(path.read_text())
    rng = np.random.default_rng(0)
    results = []
    for r in _gt_as_results(ann):
        kp = np.array(r["keypoints"], float).reshape(-1, 3)
        kp[:, :2] += rng.normal(0, 6, size=(len(kp), 2))
        kp[:, 2] = 1.0
        results.append(dict(r, keypoints=kp.ravel().tolist(), score=float(rng.uniform(0.1, 1))))
    results.append(dict(results[0], score=0.05))  # a duplicate: a false positive
    ours = evaluate_results(results, path)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
        ev = COCOeval(gt, gt.loadRes(results), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    names = ["AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL"]
    np.testing.assert_allclose([ours[n] for n in names], ev.stats, atol=1e-6)
    assert 0.1 < ours["AP"] < 0.99


def test_result_file_errors(shared_data, tmp_path):
    ann = shared_data / ANNS["coco"]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="bad.json: not valid JSON"):
        evaluate_results(bad, ann)
    with pytest.raises(DataError, match="results.json: results file not found"):
        evaluate_results(tmp_path / "results.json", ann)
    with pytest.raises(DataError, match="image ids not in"):
        evaluate_results([{"image_id": 999, "keypoints": [0] * 51, "score": 1}], ann)
    with pytest.raises(DataError, match="has 3 keypoint values, expected 51"):
        evaluate_results([{"image_id": 785, "keypoints": [0, 0, 0], "score": 1}], ann)
    with pytest.raises(DataError, match="unknown evaluation kind"):
        evaluate_results([], ann, kind="mpii")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_gt_as_results(json.loads(ann.read_text()))))
    assert evaluate_results(good, ann, kind="ochuman")["AP"] == pytest.approx(1.0)
    assert evaluate_results([], ann)["AP"] == 0.0


def test_markdown_table():
    table = format_metrics_table({"AP": 0.71234, "APeasy": -1.0}, "grape")
    assert table.splitlines() == ["| Model | AP | APeasy |", "|---|---|---|", "| grape | 0.712 | - |"]
    two = format_metrics_table({"a": {"AP": 0.5}, "b": {"AP": 0.25, "AR": 0.3}})
    assert two.splitlines()[0] == "| Model | AP | AR |" and two.splitlines()[2] == "| a | 0.500 | - |"
