"""Synthetic scenes: determinism, occlusion flags, boxes and crowd levels, checked independently."""

import numpy as np
import pytest

from grapepose.errors import GrapeposeError
from grapepose.keypoints import COCO_KEYPOINTS, CROWDPOSE_KEYPOINTS
from grapepose.synth import compose_scene, crowd_index, render_scene, scene_rng


def _crowd_index_loop(people):
    """CrowdPose's definition, written out plainly."""
    ratios = []
    for i, p in enumerate(people):
        own = [k for k in p.keypoints if k[2] > 0]
        if not own:
            continue
        x, y, w, h = p.bbox
        n = 0
        for j, q in enumerate(people):
            if j != i:
                n += sum(1 for k in q.keypoints if k[2] > 0 and x <= k[0] <= x + w and y <= k[1] <= y + h)
        ratios.append(n / len(own))
    return sum(ratios) / len(ratios) if ratios else 0.0


def test_same_seed_same_image_other_seed_differs():
    a_img, a_people = render_scene(scene_rng(5, 3), "crowd", 128, COCO_KEYPOINTS)
    b_img, b_people = render_scene(scene_rng(5, 3), "crowd", 128, COCO_KEYPOINTS)
    c_img, _ = render_scene(scene_rng(6, 3), "crowd", 128, COCO_KEYPOINTS)
    d_img, _ = render_scene(scene_rng(5, 4), "crowd", 128, COCO_KEYPOINTS)
    assert a_img.tobytes() == b_img.tobytes()
    assert len(a_people) == len(b_people)
    for p, q in zip(a_people, b_people):
        assert p.keypoints.tobytes() == q.keypoints.tobytes() and p.bbox == q.bbox and p.area == q.area
    assert a_img.tobytes() != c_img.tobytes() and a_img.tobytes() != d_img.tobytes()


@pytest.mark.parametrize("preset", ["sparse", "crowd", "hard"])
@pytest.mark.parametrize("spec", [COCO_KEYPOINTS, CROWDPOSE_KEYPOINTS], ids=["coco", "crowdpose"])
def test_flags_boxes_and_areas_match_masks(preset, spec):
    size = 160
    n_occluded = 0
    for i in range(4):
        img, people, masks = render_scene(scene_rng(11, i), preset, size, spec, return_masks=True)
        assert img.shape == (size, size, 3) and img.dtype == np.uint8
        assert masks.dtype == bool and masks.shape[1:] == (size, size)
        layers = [p.layer for p in people]
        assert layers == sorted(set(layers))
        for p in people:
            kp = p.keypoints
            assert kp.shape == (spec.num_keypoints, 3) and kp.dtype == np.float32
            in_front = masks[p.layer + 1 :].any(axis=0)
            for x, y, v in kp:
                if v == 0:
                    assert x == 0 and y == 0
                    continue
                assert 0 <= x < size and 0 <= y < size
                expected = 1 if in_front[int(y), int(x)] else 2
                assert v == expected
                n_occluded += v == 1
            visible = masks[p.layer] & ~in_front
            ys, xs = np.nonzero(visible)
            assert p.area == len(xs) > 0
            assert p.bbox == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
            assert (kp[:, 2] > 0).any()
    if preset == "hard":
        assert n_occluded > 0


def test_ignored_people_and_ignore_mask():
    for i in range(6):
        scene = compose_scene(scene_rng(2, i), "hard", 128, COCO_KEYPOINTS)
        mask = scene.ignore_mask()
        if not scene.ignored:
            assert mask is None
            continue
        expected = np.isin(scene.owner, [p.layer + 1 for p in scene.ignored])
        assert np.array_equal(mask, expected) and mask.any()
        for p in scene.ignored:
            assert not p.keypoints.any()


def test_crowd_index_matches_plain_loop():
    for i in range(5):
        scene = compose_scene(scene_rng(4, i), "crowd", 192, COCO_KEYPOINTS)
        assert crowd_index(scene.people) == pytest.approx(_crowd_index_loop(scene.people), abs=1e-9)


def test_presets_spread_over_crowd_levels():
    means = {}
    for preset in ("sparse", "crowd", "hard"):
        cis = [crowd_index(compose_scene(scene_rng(0, i), preset, 128, COCO_KEYPOINTS).people) for i in range(24)]
        means[preset] = np.mean(cis)
        if preset == "hard":
            assert np.mean(np.array(cis) >= 0.8) >= 0.7
        if preset == "sparse":
            assert np.mean(np.array(cis) < 0.2) >= 0.8
    assert means["sparse"] < 0.2 < means["crowd"] < means["hard"]
    assert means["hard"] > 0.8


@pytest.mark.parametrize("preset,size", [("bogus", 128), ("crowd", 63), ("crowd", 0)])
def test_bad_parameters_raise(preset, size):
    with pytest.raises(GrapeposeError):
        render_scene(scene_rng(0, 0), preset, size, COCO_KEYPOINTS)
