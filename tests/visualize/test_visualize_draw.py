import numpy as np
import pytest

from grapepose.keypoints import COCO_KEYPOINTS
from grapepose.visualize import draw_poses, person_color


def _person(x: float, y: float, score: float = 1.0) -> np.ndarray:
    """A 17-joint COCO person: joints on a vertical line starting at (x, y)."""
    k = np.zeros((17, 3), np.float32)
    k[:, 0] = x
    k[:, 1] = y + 6 * np.arange(17)
    k[:, 2] = score
    return k


def test_colors_are_distinct_and_stable():
    colors = [person_color(i) for i in range(12)]
    assert len(set(colors)) == 12
    assert person_color(5) == colors[5]
    assert all(0 <= c <= 255 for rgb in colors for c in rgb)


def test_draw_keeps_size_and_input_and_paints_joints():
    img = np.full((120, 90, 3), 50, np.uint8)
    before = img.copy()
    kpts = np.stack([_person(20, 5), _person(60, 5)])
    out = draw_poses(img, kpts, COCO_KEYPOINTS.skeleton, thickness=2)
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(img, before)
    # A confident joint is painted opaquely in its person's colour.
    np.testing.assert_array_equal(out[5, 20], person_color(0))
    np.testing.assert_array_equal(out[5, 60], person_color(1))
    # Far from every joint the image is untouched.
    np.testing.assert_array_equal(out[60, 85], img[60, 85])


def test_joint_score_sets_opacity():
    img = np.zeros((60, 60, 3), np.uint8)
    strong = draw_poses(img, _person(30, 5, 1.0)[None], thickness=2)[5, 30].astype(int)
    weak = draw_poses(img, _person(30, 5, 0.01)[None], thickness=2)[5, 30].astype(int)
    mid = draw_poses(img, _person(30, 5, 0.5)[None], thickness=2)[5, 30].astype(int)
    color = np.array(person_color(0))
    np.testing.assert_allclose(strong, color, atol=1)
    np.testing.assert_allclose(weak, 0.208 * color, atol=1)
    np.testing.assert_allclose(mid, 0.6 * color, atol=1)


def test_ids_pick_colors_and_black_canvas():
    img = np.full((60, 60, 3), 200, np.uint8)
    out = draw_poses(img, _person(30, 5)[None], ids=[7], labels=True, black=True, thickness=2)
    np.testing.assert_array_equal(out[5, 30], person_color(7))
    assert out[55, 5].tolist() == [0, 0, 0]


def test_threshold_nan_and_empty():
    img = np.zeros((40, 40, 3), np.uint8)
    k = _person(10, 2, 0.3)
    k[0, :2] = np.nan
    out = draw_poses(img, k[None], COCO_KEYPOINTS.skeleton, joint_threshold=0.5)
    assert out.max() == 0  # every joint is below the threshold
    out = draw_poses(img, k[None], COCO_KEYPOINTS.skeleton)
    assert out.max() > 0
    np.testing.assert_array_equal(draw_poses(img, np.zeros((0, 17, 3))), img)


@pytest.mark.parametrize("value", [1e9, -1e9])
def test_far_away_joints_do_not_crash(value):
    k = _person(10, 2)
    k[3, :2] = value
    out = draw_poses(np.zeros((30, 30, 3), np.uint8), k[None], COCO_KEYPOINTS.skeleton)
    assert out.shape == (30, 30, 3)


def test_joints_below_min_joint_score_are_left_out_with_their_limbs():
    img = np.full((50, 60, 3), 30, np.uint8)
    kp = np.array([[[10, 10, 0.8], [40, 10, 0.8], [40, 40, 0.8]]], np.float32)
    skeleton = [(0, 1), (1, 2)]
    joint_scores = np.array([[0.9, 0.29, 0.3]], np.float32)
    out = draw_poses(img, kp, skeleton, joint_scores=joint_scores, min_joint_score=0.3, thickness=2)
    absent = kp.copy()
    absent[0, 1, :2] = np.nan  # a joint that is not there: drawn neither as a dot nor in a limb
    np.testing.assert_array_equal(out, draw_poses(img, absent, skeleton, thickness=2))
    assert (out[10, 10] != 30).any() and (out[40, 40] != 30).any()  # 0.3 is not below 0.3: shown
    assert (out[10, 40] == 30).all() and (out[10, 25] == 30).all() and (out[25, 40] == 30).all()
    everything = draw_poses(img, kp, skeleton, joint_scores=joint_scores, min_joint_score=0.0, thickness=2)
    np.testing.assert_array_equal(everything, draw_poses(img, kp, skeleton, thickness=2))


def test_poses_draw_hides_joints_below_the_default_threshold():
    from grapepose.inference import Poses
    from grapepose.visualize import MIN_JOINT_SCORE

    kp = _person(30, 5)[None]
    joint_scores = np.full((1, 17), MIN_JOINT_SCORE + 0.1, np.float32)
    joint_scores[0, 5:] = MIN_JOINT_SCORE - 0.1  # the lower body is not in the picture
    people = Poses(kp, np.ones(1), COCO_KEYPOINTS, joint_scores=joint_scores)
    img = np.zeros((120, 60, 3), np.uint8)
    shown = kp.copy()
    shown[0, 5:, :2] = np.nan
    np.testing.assert_array_equal(people.draw(img), draw_poses(img, shown, COCO_KEYPOINTS.skeleton))
    np.testing.assert_array_equal(people.draw(img, min_joint_score=0), draw_poses(img, kp, COCO_KEYPOINTS.skeleton))
