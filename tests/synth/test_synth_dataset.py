"""`generate_dataset` / `grapepose synth`: COCO validity, evaluation round trip, determinism, errors."""

import json
import os

import numpy as np
import pytest
from faster_coco_eval import COCO, COCOeval_faster

from grapepose.cli.main import main
from grapepose.keypoints import COCO_KEYPOINTS, CROWDPOSE_KEYPOINTS
from grapepose.synth import generate_dataset


def _evaluate_gt_as_prediction(ann_path, iou_type, sigmas):
    data = json.loads(ann_path.read_text())
    gt = COCO(str(ann_path))
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in data["annotations"] if a["num_keypoints"] > 0]  # fmt: skip
    ev = COCOeval_faster(gt, gt.loadRes(results), iou_type, kpt_oks_sigmas=list(sigmas), print_function=lambda *a: None)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats


@pytest.mark.parametrize("keypoints,spec", [("coco", COCO_KEYPOINTS), ("crowdpose", CROWDPOSE_KEYPOINTS)])
def test_dataset_is_valid_coco_and_gt_scores_ap_one(tmp_path, keypoints, spec):
    summary = generate_dataset(tmp_path, "crowd", 6, size=160, seed=3, keypoints=keypoints, progress=False)
    ann = tmp_path / "annotations.json"
    assert summary["annotations"] == str(ann) and summary["images"] == 6
    data = json.loads(ann.read_text())
    (cat,) = data["categories"]
    assert cat["id"] == 1 and cat["keypoints"] == list(spec.names)
    assert cat["skeleton"] == [[a + 1, b + 1] for a, b in spec.skeleton]
    ids = [a["id"] for a in data["annotations"]]
    assert sorted(ids) == list(range(1, len(ids) + 1))
    image_ids = {im["id"] for im in data["images"]}
    for im in data["images"]:
        assert (tmp_path / "images" / im["file_name"]).is_file()
        assert im["width"] == im["height"] == 160 and 0 <= im["crowdIndex"]
    for a in data["annotations"]:
        kp = np.array(a["keypoints"], np.float64).reshape(-1, 3)
        assert kp.shape[0] == spec.num_keypoints and set(kp[:, 2]) <= {0, 1, 2}
        assert a["num_keypoints"] == int((kp[:, 2] > 0).sum())
        assert (kp[kp[:, 2] == 0, :2] == 0).all()
        assert a["iscrowd"] == 0 and a["category_id"] == 1 and a["image_id"] in image_ids
        x, y, w, h = a["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 160 and y + h <= 160 and 0 < a["area"] <= w * h
        assert all(len(poly) >= 6 for poly in a["segmentation"])
    assert sum(a["num_keypoints"] > 0 for a in data["annotations"]) == summary["people"] > 0
    iou_type = "keypoints" if keypoints == "coco" else "keypoints_crowd"
    stats = _evaluate_gt_as_prediction(ann, iou_type, spec.sigmas)
    assert stats[0] == pytest.approx(1.0)  # AP
    assert stats[1] == pytest.approx(1.0)  # AP50


def test_crowd_index_in_json_recomputed_from_annotations(tmp_path):
    generate_dataset(tmp_path, "hard", 4, size=128, seed=1, progress=False)
    data = json.loads((tmp_path / "annotations.json").read_text())
    for im in data["images"]:
        anns = [a for a in data["annotations"] if a["image_id"] == im["id"] and a["num_keypoints"] > 0]
        ratios = []
        for a in anns:
            x, y, w, h = a["bbox"]
            others = 0
            for b in anns:
                if b is not a:
                    kp = np.array(b["keypoints"]).reshape(-1, 3)
                    lab = kp[kp[:, 2] > 0]
                    inside = (lab[:, 0] >= x) & (lab[:, 0] <= x + w) & (lab[:, 1] >= y) & (lab[:, 1] <= y + h)
                    others += int(inside.sum())
            ratios.append(others / a["num_keypoints"])
        assert im["crowdIndex"] == pytest.approx(np.mean(ratios) if ratios else 0.0, abs=1e-4)


def test_deterministic_and_independent_of_workers(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_dataset(a, "crowd", 4, size=96, seed=9, fmt="png", progress=False)
    generate_dataset(b, "crowd", 4, size=96, seed=9, fmt="png", workers=2, progress=False)
    generate_dataset(c, "crowd", 4, size=96, seed=10, fmt="png", progress=False)
    assert (a / "annotations.json").read_bytes() == (b / "annotations.json").read_bytes()
    names = sorted(p.name for p in (a / "images").iterdir())
    assert names == [f"{i:06d}.png" for i in range(4)]
    for n in names:
        assert (a / "images" / n).read_bytes() == (b / "images" / n).read_bytes()
    assert (a / "annotations.json").read_bytes() != (c / "annotations.json").read_bytes()


def test_cli_writes_dataset(tmp_path, capsys):
    out = tmp_path / "ds"
    argv = ["synth", "--scene", "sparse", "--num-images", "2", "--size", "64", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["images"] == 2 and (out / "annotations.json").is_file()
    assert sorted(p.name for p in (out / "images").iterdir()) == ["000000.jpg", "000001.jpg"]


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--size", "32"], "--size must be in [64, 4096], got 32"),
        (["--num-images", "0"], "--num-images must be >= 1, got 0"),
        (["--num-images", "-3"], "--num-images must be >= 1, got -3"),
        (["--scene", "bogus"], "--scene: invalid choice: 'bogus'"),
        (["--workers", "0"], "--workers must be >= 1, got 0"),
        (["--keypoints", "hands"], "unknown keypoint set 'hands'"),
        (["--format", "gif"], "unknown image format 'gif'"),
    ],
)
def test_cli_bad_parameters_one_line_exit_2(tmp_path, capsys, extra, message):
    argv = ["synth", "--num-images", "1", "--size", "64", "--out", str(tmp_path / "x"), "--no-progress"]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("grapepose synth: error:") and message in err


def test_cli_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["synth", "--num-images", "1", "--size", "64", "--out", str(f), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == f"grapepose synth: error: {f}: is a file; give a folder"


def test_folders_of_killed_runs_are_removed_and_running_ones_kept(tmp_path, caplog):
    import subprocess
    import sys

    from grapepose.utils.process import this_host

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs
    out = tmp_path / "synth"
    host = this_host()
    dead = tmp_path / f".synth.synth-{host}-{gone.pid}-abc123"
    running = tmp_path / f".synth.synth-{host}-{os.getpid()}-def456"
    elsewhere = tmp_path / f".synth.synth-other-host-{gone.pid}-ghi789"  # cannot be checked from here
    other = tmp_path / f".other.synth-{host}-{gone.pid}-jkl012"  # another dataset's build
    for d in (dead, running, elsewhere, other):
        (d / "images").mkdir(parents=True)
    with caplog.at_level("WARNING", logger="grapepose.synth.coco"):
        generate_dataset(out, "sparse", 1, size=64, seed=0, progress=False)
    assert not dead.exists() and running.exists() and elsewhere.exists() and other.exists()
    assert f"removed {dead}, the unfinished folder of an interrupted run (process {gone.pid})" in caplog.text
    assert (out / "annotations.json").is_file()
