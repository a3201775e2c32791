"""`grapepose bench joints` on a tiny synthetic set with the tiny random model: the figures' plumbing."""

from __future__ import annotations

import json

import numpy as np

from grapepose.cli.main import main
from grapepose.synth import generate_dataset


def test_bench_joints_reports_auc_and_hidden_shares(tmp_path, tiny_checkpoint, capsys):
    data = tmp_path / "synth"
    generate_dataset(data, "crowd", 3, size=128, seed=3, keypoints="crowdpose", progress=False)
    ann = json.loads((data / "annotations.json").read_text())
    flags = np.array([a["keypoints"][2::3] for a in ann["annotations"]])
    people = int((flags > 0).any(1).sum())
    args = ["bench", "joints", "--weights", str(tiny_checkpoint), "--data", str(data / "images"),
            "--ann", str(data / "annotations.json"), "--device", "cpu", "--min-oks", "0", "--min-joint-score", "0.4"]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    figures = json.loads(lines[0])
    assert figures["bench"] == "joints" and figures["images"] == 3 and figures["skipped"] == 0
    assert figures["people"] == people and 0 < figures["people_matched"] <= people
    assert sum(figures["joints"].values()) == 14 * figures["people_matched"]
    assert figures["joints"]["absent"] > 0 and figures["joints"]["visible"] > 0
    assert 0 <= figures["auc"] <= 1 and 0 <= figures["auc_keypoint_score"] <= 1
    assert figures["threshold"] == 0.4
    at_04 = next(s for s in figures["sweep"] if s["threshold"] == 0.4)
    assert {k: figures[k] for k in at_04} == at_04
    for key in ("absent_hidden", "labelled_hidden"):
        shares = [s[key] for s in figures["sweep"]]
        assert shares == sorted(shares) and 0 <= shares[0] and shares[-1] <= 1  # more hidden as T grows


def test_bench_joints_refuses_a_set_of_other_keypoints(tmp_path, tiny_checkpoint, capsys):
    data = tmp_path / "synth"
    generate_dataset(data, "sparse", 1, size=64, seed=0, keypoints="coco", progress=False)
    args = ["bench", "joints", "--weights", str(tiny_checkpoint), "--data", str(data / "images"),
            "--ann", str(data / "annotations.json"), "--device", "cpu"]
    assert main(args) != 0
    err = capsys.readouterr().err.strip()
    assert err.endswith("annotations.json: has 17 keypoints, the model 14"), err
