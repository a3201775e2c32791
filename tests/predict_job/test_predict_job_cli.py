import json
import shutil

import cv2
import numpy as np

from grapepose.cli.main import main

K = 14  # the test model is a CrowdPose network
SMALL = "test.base_size=128"  # a config override: goes with the SOURCE arguments
FAST = ["--score-thr", "0"]


def _entries_ok(results):
    for r in results:
        assert r["category_id"] == 1 and isinstance(r["image_id"], int)
        assert len(r["keypoints"]) == 3 * K and all(np.isfinite(r["keypoints"]))
        assert np.isfinite(r["score"])
        assert len(r["keypoint_scores"]) == K and all(0 <= v <= 1 for v in r["keypoint_scores"])


def test_predict_images_and_video(tmp_path, shared_data, tiny_checkpoint, capsys):
    demo = shared_data / "demo"
    out = tmp_path / "out"
    args = ["predict", str(demo), SMALL, "--weights", str(tiny_checkpoint), "--out", str(out)]
    args += ["--show-black", "--track"]
    assert main(args + FAST) == 0
    stdout = capsys.readouterr().out
    assert "img/s" in stdout and "results.json" in stdout

    results = json.loads((out / "results.json").read_text())
    _entries_ok(results)
    images = [r for r in results if "file_name" in r]
    frames = [r for r in results if "video" in r]
    assert {r["file_name"] for r in images} == {"crowd_01.jpg", "crowd_02.jpg", "crowd_03.jpg"}
    assert {r["video"] for r in frames} == {"video.mp4"}
    assert {r["frame"] for r in frames} == set(range(5))
    assert all("track_id" in r for r in results)
    # a frame's people have distinct ids; every frame shares one image_id
    for f in range(5):
        people = [r for r in frames if r["frame"] == f]
        assert len({r["track_id"] for r in people}) == len(people)
        assert len({r["image_id"] for r in people}) == 1

    for name in ("crowd_01", "crowd_02", "crowd_03"):
        original = cv2.imread(str(demo / f"{name}.jpg"))
        for kind in ("pose", "black"):
            drawn = cv2.imread(str(out / f"{name}_{kind}.jpg"))
            assert drawn.shape == original.shape
    assert cv2.imread(str(out / "crowd_01_black.jpg")).max() > 0  # skeletons on black
    for kind in ("pose", "black"):
        cap = cv2.VideoCapture(str(out / f"video_{kind}.mp4"))
        n = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            assert frame.shape == (540, 960, 3)
            n += 1
        cap.release()
        assert n == 5
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_bad_inputs_are_reported_and_the_rest_processed(tmp_path, shared_data, tiny_checkpoint, capsys):
    good = tmp_path / "in" / "good.jpg"
    good.parent.mkdir()
    shutil.copy(shared_data / "demo" / "crowd_03.jpg", good)
    corrupt = tmp_path / "in" / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    broken_video = tmp_path / "broken.mp4"
    broken_video.write_bytes((shared_data / "demo" / "video.mp4").read_bytes()[:2000])
    out = tmp_path / "out"
    args = [
        "predict", str(tmp_path / "in" / "*.jpg"), str(broken_video), "97", str(tmp_path / "missing.png"), SMALL,
        "--weights", str(tiny_checkpoint), "--out", str(out), *FAST,
    ]  # fmt: skip
    assert main(args) == 1
    err = capsys.readouterr().err
    for needle in ("corrupt.jpg: cannot decode image", "broken.mp4: cannot open video",
                   "webcam 97: cannot open camera", "missing.png: no such file or folder"):  # fmt: skip
        assert sum(needle in line for line in err.splitlines()) == 2, needle  # as it happens + final list
    assert "4 input(s) failed" in err
    results = json.loads((out / "results.json").read_text())
    assert results and {r["file_name"] for r in results} == {"good.jpg"}
    assert sorted(p.name for p in out.iterdir()) == ["good_pose.jpg", "results.json"]


def test_unwritable_output_folder_is_one_line(tmp_path, shared_data, tiny_checkpoint, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    args = ["predict", str(shared_data / "demo" / "crowd_03.jpg"), SMALL, "--weights", str(tiny_checkpoint)]
    assert main(args + ["--out", str(blocker / "out"), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"grapepose predict: error: {blocker / 'out'}: {blocker} is a file, not a folder"


def test_options_and_missing_weights(tmp_path, shared_data, tiny_checkpoint, capsys):
    video = shared_data / "demo" / "video.mp4"
    out = tmp_path / "out"
    # --max-frames, --no-draw, --no-flip/--scales are accepted; only JSON is written
    args = ["predict", str(video), "--weights", str(tiny_checkpoint), "--out", str(out), "--no-draw"]
    args += ["--max-frames", "2", "--no-flip", "--scales", "1", "--batch-size", "2", "--set", SMALL, *FAST]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert {r["frame"] for r in results} == {0, 1} and "track_id" not in results[0]
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]
    capsys.readouterr()
    assert main(["predict", str(video), "--weights", str(tmp_path / "nope.safetensors"), "--out", str(out),
                 "--overwrite"]) == 2  # fmt: skip
    assert "nope.safetensors: no such checkpoint file" in capsys.readouterr().err
    args = ["predict", str(video), "--weights", str(tiny_checkpoint), "--backend", "onnxruntime", "--out", str(out)]
    args += ["--overwrite"]
    assert main(args) == 2
    assert "--backend onnxruntime runs an exported .onnx file" in capsys.readouterr().err


def test_preset_warns_about_random_weights(tmp_path, shared_data, caplog):
    image = shared_data / "demo" / "crowd_03.jpg"
    args = ["predict", str(image), SMALL, "--preset", "crowdpose_w18", "--out", str(tmp_path), "--no-draw", *FAST]
    assert main(args) == 0
    assert "random weights" in caplog.text and "meaningless" in caplog.text


def test_min_joint_score_leaves_joints_out_of_the_drawings(tmp_path, shared_data, tiny_checkpoint, capsys):
    from grapepose.api import PoseEstimator
    from grapepose.io.files import read_image

    png = tmp_path / "in" / "crowd.png"  # lossless output: the drawing can be compared exactly
    png.parent.mkdir()
    cv2.imwrite(str(png), cv2.imread(str(shared_data / "demo" / "crowd_03.jpg")))
    people = PoseEstimator.from_pretrained(tiny_checkpoint, device="cpu", overrides=[SMALL])(png)
    image = read_image(png)
    assert 0 < (people.joint_scores < 0.6).sum() < people.joint_scores.size
    for thr in (None, "0", "0.6"):
        out = tmp_path / f"out_{thr}"
        flag = [] if thr is None else ["--min-joint-score", thr]
        args = ["predict", str(png), SMALL, "--weights", str(tiny_checkpoint), "--out", str(out), *FAST, *flag]
        assert main(args) == 0
        want = people.draw(image, min_joint_score=None if thr is None else float(thr))  # None: the default
        np.testing.assert_array_equal(read_image(out / "crowd_pose.png"), want)
        results = json.loads((out / "results.json").read_text())
        got = np.array([r["keypoint_scores"] for r in results])
        np.testing.assert_allclose(got, people.joint_scores, atol=1e-5)  # the JSON keeps every joint
    capsys.readouterr()
    args = ["predict", str(png), "--weights", str(tiny_checkpoint), "--out", str(tmp_path / "x"), "--min-joint-score"]
    assert main(args + ["2"]) == 2
    assert capsys.readouterr().err.strip().endswith("--min-joint-score must be a number in [0, 1], got 2")
