"""Faulty results files for `evaluate --results`: one line naming the file and the result.

Before: NaN keypoints were accepted and scored, a NaN score gave a traceback, `category_id` 2 silently
scored 0, string keypoints gave a traceback.
"""

from __future__ import annotations

import copy
import math

import pytest
from reliability_meta_helpers import copy_crowdpose, fails, gt_as_results, write_json


def _first(r):
    return r[0]


FAULTS = {
    "nan_keypoint": (lambda r: _first(r)["keypoints"].__setitem__(3, math.nan), "result #0: keypoints contain NaN or inf"),
    "inf_keypoint": (lambda r: _first(r)["keypoints"].__setitem__(0, -math.inf), "result #0: keypoints contain NaN or inf"),
    "nan_score": (lambda r: _first(r).__setitem__("score", math.nan), "result #0: score must be a finite number, got nan"),
    "string_score": (lambda r: _first(r).__setitem__("score", "0.9"), "result #0: score must be a finite number, got '0.9'"),
    "category_2": (lambda r: _first(r).__setitem__("category_id", 2), "result #0: category_id 2 is not the keypoint category (1)"),
    "string_keypoints": (lambda r: _first(r)["keypoints"].__setitem__(1, "x"), "result #0: keypoints must be a list of numbers"),
    "wrong_count": (lambda r: _first(r)["keypoints"].pop(), "result #0 has 41 keypoint values, expected 42"),
    "missing_score": (lambda r: _first(r).pop("score"), "result #0 lacks image_id, keypoints or score"),
}  # fmt: skip


@pytest.fixture
def gt(shared_data, tmp_path):
    _, data = copy_crowdpose(shared_data, tmp_path / "images")
    return write_json(tmp_path / "gt.json", data), data


@pytest.mark.parametrize("fault", list(FAULTS))
def test_bad_result_is_one_line(gt, tmp_path, capsys, fault):
    ann, data = gt
    results = copy.deepcopy(gt_as_results(data))
    corrupt, message = FAULTS[fault]
    corrupt(results)
    path = write_json(tmp_path / "results.json", results)
    assert fails(["evaluate", "--results", str(path), "--ann", str(ann)], capsys) == (
        2, f"grapepose evaluate: error: {path}: {message}")  # fmt: skip


def test_not_a_list(gt, tmp_path, capsys):
    ann, _ = gt
    path = write_json(tmp_path / "results.json", {"image_id": 1})
    assert fails(["evaluate", "--results", str(path), "--ann", str(ann)], capsys) == (
        2, f"grapepose evaluate: error: {path}: expected a JSON list of COCO results, got dict")  # fmt: skip


def test_unknown_image(gt, tmp_path, capsys):
    ann, data = gt
    results = gt_as_results(data)
    results[0]["image_id"] = 7
    path = write_json(tmp_path / "results.json", results)
    assert fails(["evaluate", "--results", str(path), "--ann", str(ann)], capsys) == (
        2, f"grapepose evaluate: error: results name 1 image ids not in {ann} (e.g. [7])")  # fmt: skip


def test_own_category_id_is_accepted(gt, tmp_path, capsys):
    """A ground truth whose keypoint category has id 3: results of category 3 score 1.0."""
    ann, data = gt
    data = copy.deepcopy(data)
    data["categories"][0]["id"] = 3
    for a in data["annotations"]:
        a["category_id"] = 3
    write_json(ann, data)
    results = [dict(r, category_id=3) for r in gt_as_results(data)]
    path = write_json(tmp_path / "results.json", results)
    from grapepose.evaluation import evaluate_results

    assert evaluate_results(str(path), ann)["AP"] == pytest.approx(1.0)
    assert fails(["evaluate", "--results", str(write_json(tmp_path / "r1.json", gt_as_results(data))),
                  "--ann", str(ann)], capsys)[1].endswith("category_id 1 is not the keypoint category (3)")  # fmt: skip
