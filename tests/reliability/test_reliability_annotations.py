"""Faulty COCO-format ground truth: the same one-line error from train, show-targets and evaluate.

Before this validation, `evaluate --results` did not check the ground truth: duplicate annotation ids,
NaN keypoints or NaN areas scored AP 0.835 instead of 1.0 without a word; a wrong keypoint count, missing
`keypoints` or string values gave tracebacks; a malformed crowd RLE crashed training later without naming
the file; a `file_name` of ../../../../etc/hostname was read from outside --data.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
from reliability_meta_helpers import copy_crowdpose, fails, gt_as_results, write_json

from grapepose.cli.main import main

A = 123803  # first annotation of the CrowdPose fixture (image 106848)
NAN_KP = "keypoints contain NaN/inf, negative coordinates of labelled joints or negative visibility"


def _ann(d):
    return next(a for a in d["annotations"] if a["id"] == A)


def _crowd(d, segm):
    _ann(d).update(iscrowd=1, segmentation=segm)


FAULTS = {
    "duplicate_id": (lambda d: d["annotations"].append(dict(_ann(d))), "duplicate annotation id 123803"),
    "duplicate_image_id": (lambda d: d["images"].append(dict(d["images"][0])), "duplicate image id 106848"),
    "nan_keypoint": (lambda d: _ann(d)["keypoints"].__setitem__(3, math.nan), f"annotation {A}: {NAN_KP}"),
    "inf_keypoint": (lambda d: _ann(d)["keypoints"].__setitem__(4, math.inf), f"annotation {A}: {NAN_KP}"),
    "negative_visibility": (lambda d: _ann(d)["keypoints"].__setitem__(5, -1), f"annotation {A}: {NAN_KP}"),
    "wrong_count": (lambda d: _ann(d)["keypoints"].pop(), f"annotation {A}: 41 keypoint values, expected 42 (3 × 14 keypoints)"),
    "missing_keypoints": (lambda d: _ann(d).pop("keypoints"), f"annotation {A}: 'keypoints' is missing, expected 42 numbers"),
    "string_keypoints": (lambda d: _ann(d).__setitem__("keypoints", "12 3"), f"annotation {A}: 'keypoints' is a str, expected 42 numbers"),
    "string_value": (lambda d: _ann(d)["keypoints"].__setitem__(3, "208"), f"annotation {A}: keypoints are not all numbers"),
    "boolean_value": (lambda d: _ann(d)["keypoints"].__setitem__(5, True), f"annotation {A}: keypoints are not all numbers"),
    "nan_area": (lambda d: _ann(d).__setitem__("area", math.nan), f"annotation {A}: area must be a finite number >= 0, got nan"),
    "string_area": (lambda d: _ann(d).__setitem__("area", "big"), f"annotation {A}: area must be a finite number >= 0, got 'big'"),
    "negative_bbox": (lambda d: _ann(d)["bbox"].__setitem__(2, -5), f"annotation {A}: bbox width and height must be >= 0, got [106.01, 13.43, -5, 352.42]"),
    "bad_num_keypoints": (lambda d: _ann(d).__setitem__("num_keypoints", 99), f"annotation {A}: num_keypoints must be an integer in 0..14, got 99"),
    "bad_iscrowd": (lambda d: _ann(d).__setitem__("iscrowd", "no"), f"annotation {A}: iscrowd must be 0 or 1, got 'no'"),
    "rle_counts_sum": (lambda d: _crowd(d, {"size": [425, 640], "counts": [5, 5]}),
                       f"annotation {A}: RLE segmentation counts cover 10 pixels, not 425x640=272000"),
    "rle_garbage": (lambda d: _crowd(d, {"size": [425, 640], "counts": "!!garbage"}),
                    f"annotation {A}: RLE segmentation 'counts' is not a valid compressed RLE"),
    "rle_size": (lambda d: _crowd(d, {"size": [425], "counts": "PPYo0"}),
                 f"annotation {A}: RLE segmentation 'size' must be [height, width], got [425]"),
    "polygon": (lambda d: _crowd(d, [[1, 2, 3]]), f"annotation {A}: segmentation polygons must be lists of at least 3 (x, y) pairs"),
    "unknown_image": (lambda d: _ann(d).__setitem__("image_id", 5), f"annotation {A} refers to image id 5, which is not in 'images'"),
    "path_escape": (lambda d: d["images"][0].__setitem__("file_name", "../../../../etc/hostname"),
                    "image 106848: file_name '../../../../etc/hostname' points outside the image folder"),
    "absolute_path": (lambda d: d["images"][0].__setitem__("file_name", "/etc/hostname"),
                      "image 106848: file_name '/etc/hostname' points outside the image folder"),
    "bad_height": (lambda d: d["images"][0].__setitem__("height", -425), "image 106848: height must be a positive integer, got -425"),
    "category_sigmas": (lambda d: d["categories"][0].__setitem__("sigmas", ["a"] * 14),
                        "category 'sigmas' must list 14 finite numbers >= 0, got ['a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a']"),
}  # fmt: skip


@pytest.fixture
def dataset(shared_data, tmp_path):
    root, gt = copy_crowdpose(shared_data, tmp_path / "images")
    results = write_json(tmp_path / "results.json", gt_as_results(gt))
    return root, gt, results


def _command(cmd, root, ann, results, tmp_path):
    if cmd == "evaluate":
        return ["evaluate", "--results", str(results), "--ann", str(ann)]
    if cmd == "train":
        return ["train", "--preset", "crowdpose_w18s", "--data", str(root), "--ann", str(ann), "--device", "cpu",
                "--out", str(tmp_path / "run"), "--no-progress"]  # fmt: skip
    return ["show-targets", "--data", str(root), "--ann", str(ann), "--out", str(tmp_path / "targets")]


@pytest.mark.parametrize("cmd", ["evaluate", "train", "show-targets"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_is_one_line_naming_file_and_annotation(dataset, tmp_path, capsys, fault, cmd):
    root, gt, results = dataset
    bad = copy.deepcopy(gt)
    corrupt, message = FAULTS[fault]
    corrupt(bad)
    ann = write_json(tmp_path / "gt.json", bad)
    code, err = fails(_command(cmd, root, ann, results, tmp_path), capsys)
    assert (code, err) == (2, f"grapepose {cmd}: error: {ann}: {message}")
    assert not (tmp_path / "run" / "last.pt").exists() and not (tmp_path / "targets").exists()


def test_valid_ground_truth_still_scores_one(dataset, capsys):
    root, gt, results = dataset
    ann = write_json(root.parent / "gt.json", gt)
    assert fails(["evaluate", "--results", str(results), "--ann", str(ann)], capsys)[0] == 0


@pytest.mark.parametrize(
    "corrupt,kind,message",
    [
        (lambda d: d["images"][1].pop("crowdIndex"), "crowdpose",
         "image 103319 has no crowdIndex (needed by the crowdpose protocol)"),
        (lambda d: None, "coco", f"annotation {A}: no 'area' (the OKS of this protocol is scaled by it)"),
        (lambda d: d["images"][0].__setitem__("id", "x"), "crowdpose", "image entry #0: id must be an integer, got 'x'"),
    ],
)  # fmt: skip
def test_protocol_needs(dataset, tmp_path, capsys, corrupt, kind, message):
    """What only evaluation needs: crowdIndex (crowdpose), area (coco), integer ids."""
    _, gt, results = dataset
    bad = copy.deepcopy(gt)
    corrupt(bad)
    ann = write_json(tmp_path / "gt.json", bad)
    code, err = fails(["evaluate", "--results", str(results), "--ann", str(ann), "--kind", kind], capsys)
    assert (code, err) == (2, f"grapepose evaluate: error: {ann}: {message}")


def test_evaluate_weights_checks_ground_truth_before_running_the_model(dataset, tiny_checkpoint, tmp_path, capsys):
    root, gt, _ = dataset
    bad = copy.deepcopy(gt)
    bad["annotations"].append(dict(bad["annotations"][0]))
    ann = write_json(tmp_path / "gt.json", bad)
    out = tmp_path / "res.json"
    argv = ["evaluate", "--weights", str(tiny_checkpoint), "--data", str(root), "--ann", str(ann), "--out", str(out)]
    assert fails(argv, capsys) == (2, f"grapepose evaluate: error: {ann}: duplicate annotation id {A}")
    assert not out.exists()
    json.loads((root.parent / "results.json").read_text())  # the inputs are untouched


def test_training_data_without_a_labelled_keypoint_is_refused(dataset, tmp_path, capsys):
    """Before: training ran and exited 0 without a word, every keypoint loss exactly 0 (issue 22)."""
    root, gt, _ = dataset
    bad = copy.deepcopy(gt)
    for a in bad["annotations"]:
        a.update(keypoints=[0] * len(a["keypoints"]), num_keypoints=0)
    ann = write_json(tmp_path / "gt.json", bad)
    assert fails(_command("train", root, ann, None, tmp_path), capsys) == (
        2, f"grapepose train: error: {ann}: no person has a labelled keypoint (all 5 annotations are crowd regions or "
        "have visibility 0 everywhere); nothing to train on")  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_evaluate_limit_scores_only_the_images_it_ran_on(dataset, tiny_checkpoint, tmp_path, capsys, monkeypatch):
    """Before: `--limit 1` scored its one image against every image of the file: a perfect model got AP 0.505."""
    import numpy as np

    from grapepose.inference import Poses, Predictor
    from grapepose.keypoints import builtin_spec

    root, gt, _ = dataset
    spec = builtin_spec(14, "crowdpose")
    by_file = {im["file_name"]: im for im in gt["images"]}

    def ground_truth(self, paths, **kwargs):  # a model that finds exactly the annotated people
        for path in paths:
            im = by_file[path.name]
            kp = [a["keypoints"] for a in gt["annotations"] if a["image_id"] == im["id"] and a["num_keypoints"] > 0]
            yield Poses(np.array(kp, np.float32).reshape(-1, 14, 3), np.ones(len(kp)), spec,
                        image_size=(im["height"], im["width"]))  # fmt: skip

    monkeypatch.setattr(Predictor, "iter_predict", ground_truth)
    ann = write_json(tmp_path / "gt.json", gt)
    out = tmp_path / "limited.json"
    argv = ["evaluate", "--weights", str(tiny_checkpoint), "--data", str(root), "--ann", str(ann), "--limit", "1",
            "--out", str(out), "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert table[0] == "| Model | AP | AP50 | AP75 | AR | AR50 | AR75 | APeasy | APmed | APhard |"
    assert table[2] == "| w18 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | - | 1.000 | - |"
    assert {r["image_id"] for r in json.loads(out.read_text())} == {103319}  # the first image by id
    argv = ["evaluate", "--results", str(out), "--ann", str(ann), "--limit", "1"]  # the same with --results
    assert main(argv) == 0
    assert capsys.readouterr().out.strip().splitlines()[2] == table[2].replace("w18", "limited")


@pytest.mark.parametrize("cmd", ["evaluate", "evaluate --results", "train", "show-targets"])
def test_deeply_nested_json_is_one_line(dataset, tmp_path, capsys, cmd):
    """Before: a RecursionError traceback from the JSON parser."""
    root, gt, results = dataset
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    if cmd == "evaluate --results":
        argv = ["evaluate", "--results", str(deep), "--ann", str(write_json(tmp_path / "gt.json", gt))]
    else:
        argv = _command(cmd, root, deep, results, tmp_path)
    assert fails(argv, capsys) == (2, f"grapepose {cmd.split()[0]}: error: {deep}: not valid JSON (nested too deeply)")
    assert not (tmp_path / "run").exists() and not (tmp_path / "targets").exists()
