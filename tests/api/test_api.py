import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from people_matching import assert_same_people, pair_people

import grapepose
import grapepose.api
from grapepose.api import PoseEstimator, Poses
from grapepose.errors import CheckpointError
from grapepose.io.files import read_image
from grapepose.keypoints import CROWDPOSE_KEYPOINTS

ROOT = Path(__file__).resolve().parents[2]


def python_api_example() -> str:
    """The first python block of the "Python API" section of README.md, else of docs/PREDICT.md."""
    for doc in (ROOT / "README.md", ROOT / "docs" / "PREDICT.md"):
        text = doc.read_text() if doc.is_file() else ""
        section = re.search(r"^(#+) Python API\s*$(.*?)(?=^#{1,%d} |\Z)" % 6, text, re.M | re.S)
        if section:
            block = re.search(r"```python\n(.*?)```", section.group(2), re.S)
            if block:
                return block.group(1)
    pytest.fail("no python block under a 'Python API' heading in README.md or docs/PREDICT.md")


def test_python_api_example_runs(tmp_path, shared_data, tiny_checkpoint, monkeypatch):
    """Runs the documented example as written: "demo" is pointed at a tiny random-weight model."""
    monkeypatch.setattr(grapepose.api, "DEMO_WEIGHTS", tiny_checkpoint)
    monkeypatch.chdir(tmp_path)
    for name in ("photo.jpg", "match.mp4"):
        src = shared_data / "demo" / ("crowd_03.jpg" if name.endswith("jpg") else "video.mp4")
        shutil.copy(src, tmp_path / name)
    namespace: dict = {}
    exec(compile(python_api_example(), "PREDICT.md", "exec"), namespace)
    people = namespace["people"]
    assert isinstance(people, Poses) and len(people) > 0
    assert namespace["drawn"].shape == read_image(tmp_path / "photo.jpg").shape


def test_demo_weights_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(grapepose.api, "DEMO_WEIGHTS", tmp_path / "weights" / "demo.safetensors")
    with pytest.raises(CheckpointError, match="the bundled demo model is missing from this installation"):
        PoseEstimator.from_pretrained("demo")
    with pytest.raises(CheckpointError, match=r"nope\.safetensors: no such checkpoint file"):
        PoseEstimator.from_pretrained(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="did you mean|presets: coco_w18"):
        PoseEstimator.from_pretrained("crowdpose_w19")


def test_preset_builds_an_untrained_network_with_a_warning(caplog):
    est = PoseEstimator.from_pretrained("crowdpose_w18", device="cpu", overrides=["test.flip=false"])
    assert "random weights" in caplog.text
    assert est.spec == CROWDPOSE_KEYPOINTS and est.config.test.flip is False
    assert grapepose.PoseEstimator is PoseEstimator


def test_call_single_and_batch(shared_data, tiny_checkpoint):
    est = PoseEstimator.from_pretrained(tiny_checkpoint, device="cpu", batch_size=2)
    path = shared_data / "demo" / "crowd_03.jpg"
    image = read_image(path)
    one = est(path)
    assert isinstance(one, Poses) and len(one) > 0
    assert one.keypoints.shape == (len(one), 14, 3) and one.scores.shape == (len(one),)
    assert one.track_ids is None
    many = est([image, path])
    assert isinstance(many, list) and len(many) == 2
    # array or path: same image; the Gaussian fit amplifies last-bit differences of batched convolutions,
    # which may also swap two people whose scores nearly tie: compared as matched sets
    assert_same_people(many[0].keypoints, many[1].keypoints, atol=1e-2)
    assert len(many[0]) == len(one)

    entries = one.to_coco(image_id=7, file_name="crowd_03.jpg")
    assert len(entries) == len(one)
    assert set(entries[0]) == {"image_id", "category_id", "keypoints", "score", "keypoint_scores", "file_name"}
    assert entries[0]["image_id"] == 7 and len(entries[0]["keypoints"]) == 42
    assert one.joint_scores.shape == (len(one), 14) and one.joint_scores.dtype == np.float32
    np.testing.assert_allclose(entries[0]["keypoint_scores"], one.joint_scores[0], atol=1e-5)
    top = one[one.scores >= np.median(one.scores)]
    assert 0 < len(top) <= len(one)
    drawn = one.draw(image)
    assert drawn.shape == image.shape and not np.array_equal(drawn, image)
    assert one.draw(path, black=True).shape == image.shape


def test_track_gives_stable_ids(shared_data, tiny_checkpoint):
    est = PoseEstimator.from_pretrained(tiny_checkpoint, device="cpu", batch_size=2)
    frame = read_image(shared_data / "demo" / "crowd_03.jpg")
    tracked = list(est.track([frame, frame]))  # a still scene: everyone keeps their id
    assert len(tracked) == 2
    first = tracked[0]
    assert first.track_ids is not None and sorted(first.track_ids.tolist()) == list(range(len(first)))
    for later in tracked[1:]:  # each person keeps the id of the same person (their order may differ)
        np.testing.assert_array_equal(later.track_ids, first.track_ids[pair_people(later.keypoints, first.keypoints)])
    assert [e["track_id"] for e in first.to_coco(0)] == first.track_ids.tolist()
