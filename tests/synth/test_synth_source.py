"""`SyntheticSource`: the on-the-fly sample source for training."""

import numpy as np
import pytest

from grapepose.data import Sample
from grapepose.errors import GrapeposeError
from grapepose.io.files import read_image
from grapepose.keypoints import CROWDPOSE_KEYPOINTS
from grapepose.synth import SyntheticSource, generate_dataset
from grapepose.synth.figure import sample_look
from grapepose.synth.skeleton import J, sample_body


def test_source_samples_match_written_dataset(tmp_path):
    src = SyntheticSource("hard", 96, seed=4, length=3)
    assert len(src) == 3 and src.spec.num_keypoints == 17
    generate_dataset(tmp_path, "hard", 3, size=96, seed=4, fmt="png", progress=False)
    for i in range(3):
        s = src.load(i)
        assert isinstance(s, Sample) and s.image_id == i
        assert s.image.dtype == np.uint8 and s.image.shape == (96, 96, 3)
        assert s.keypoints.dtype == np.float32 and s.keypoints.shape[1:] == (17, 3)
        assert s.ignore_mask is None or (s.ignore_mask.dtype == bool and s.ignore_mask.shape == (96, 96))
        assert np.array_equal(read_image(tmp_path / "images" / f"{i:06d}.png"), s.image)
        assert np.array_equal(src.load(i).image, s.image)


def test_source_keypoint_sets_and_errors():
    assert SyntheticSource("crowd", 64, 0, 2, "crowdpose").load(1).keypoints.shape[1] == 14
    src = SyntheticSource("crowd", 64, 0, 2, spec=CROWDPOSE_KEYPOINTS)
    assert src.spec is CROWDPOSE_KEYPOINTS
    with pytest.raises(IndexError):
        src.load(2)
    for bad in ({"preset": "x"}, {"size": 10}, {"length": 0}):
        kwargs = {"preset": "crowd", "size": 64, "seed": 0, "length": 1, **bad}
        with pytest.raises(GrapeposeError):
            SyntheticSource(**kwargs)


def test_left_and_right_are_decidable():
    """A face seen from the front puts the person's left eye on the image's right; accessory
    colours are blue-ish on the left, red-ish on the right."""
    rng = np.random.default_rng(0)
    fronts = 0
    for _ in range(300):
        b = sample_body(rng)
        nose, le, re = b.face_seen[:3]
        if nose and le and re:
            fronts += 1
            assert b.points[J["left_eye"], 0] > b.points[J["right_eye"], 0]
        if not (nose or le or re):  # back of the head
            assert b.head_axes[2, 2] < 0.2
        look = sample_look(rng)
        assert look.left[2] > look.left[0] and look.right[0] > look.right[2]
    assert fronts > 50


def test_standing_proportions_and_bone_lengths():
    rng = np.random.default_rng(1)
    for _ in range(50):
        b = sample_body(rng, "standing")
        p, d = b.points, b.dims
        assert 0.9 < p[J["head"], 1] < 1.1  # about one standing height from sole to crown
        assert min(p[J["left_ankle"], 1], p[J["right_ankle"], 1]) == pytest.approx(d["ankle"])
        for side in ("left", "right"):
            assert np.linalg.norm(p[J[f"{side}_elbow"]] - p[J[f"{side}_shoulder"]]) == pytest.approx(d["upper_arm"])
            assert np.linalg.norm(p[J[f"{side}_ankle"]] - p[J[f"{side}_knee"]]) == pytest.approx(d["shin"])
            assert p[J[f"{side}_hip"], 1] < p[J[f"{side}_shoulder"], 1] < p[J["head"], 1]
