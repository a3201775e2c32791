"""Vectorised training targets equal the plain-loop oracle (docs/DESIGN.md, Training targets) on awkward scenes."""

from __future__ import annotations

import numpy as np
import pytest

from oracles.reference_targets import reference_targets

from grapepose.data import Targets, build_targets, person_areas, person_centers

H, W, K = 24, 32, 6  # small, non-square grid so rows/columns cannot be mixed up
KW = {"sigma": 1.5, "center_sigma": 3.5, "bg_weight": 0.1, "offset_radius": 3, "visibility_radius": 2}


def _assert_same(a: Targets, b: Targets) -> None:
    for name, x, y in zip(Targets._fields, a, b):
        assert x.shape == y.shape, name
        assert x.dtype == np.float32, name
        np.testing.assert_allclose(x, y, atol=1e-6, rtol=0, err_msg=name)


def _random_scene(rng: np.random.Generator, n: int, margin: float = 6.0) -> np.ndarray:
    centers = rng.uniform(-margin, [W + margin, H + margin], size=(n, 2))
    j = np.empty((n, K, 3))
    j[..., :2] = centers[:, None] + rng.normal(size=(n, K, 2)) * rng.uniform(0.5, 6, size=(n, 1, 1))
    j[..., 2] = rng.choice([0, 1, 2], size=(n, K), p=[0.25, 0.25, 0.5])
    return j


@pytest.mark.parametrize("n", [0, 1, 5, 30])
def test_random_scenes_match_oracle(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(3):
        joints = _random_scene(rng, n)
        ignore = rng.random((H, W)) < 0.05
        areas = rng.choice([4.0, 9.0, 25.0], size=n)  # repeated values exercise the tie rule
        has_center = rng.random(n) < 0.8
        kw = dict(KW, ignore_mask=ignore, areas=areas, has_center=has_center)
        _assert_same(build_targets(joints, (H, W), **kw), reference_targets(joints, (H, W), **kw))
        _assert_same(build_targets(joints, (H, W), **KW), reference_targets(joints, (H, W), **KW))


def test_edge_cases_match_oracle() -> None:
    j = np.zeros((7, K, 3))
    j[..., 2] = 2
    # 0/1: same centre (overlapping), different sizes
    j[0, :, :2] = [[10, 10], [14, 10], [10, 14], [14, 14], [12, 12], [12, 12]]
    j[1, :, :2] = [[11, 11], [13, 11], [11, 13], [13, 13], [12, 12], [12, 12]]
    # 2: joints exactly on and just beyond every border
    j[2, :, :2] = [[0, 0], [W - 1, H - 1], [W, 5], [-1e-9, 5], [5, H], [W - 1e-9, H - 1e-9]]
    # 3: unlabelled joints (v=0) with garbage coordinates
    j[3, :, :2] = [[3, 3], [4, 4], [-50, 99], [5, 5], [1e6, 1e6], [6, 6]]
    j[3, 2:5:2, 2] = 0
    # 4: no labelled joint at all
    j[4, :, 2] = 0
    # 5: centre inside, most joints outside the grid
    j[5, :, :2] = [[-8, 2], [-6, 2], [W + 3, 2], [W + 5, 2], [2, 2], [1, 1]]
    # 6: centre outside the grid (joints partly inside)
    j[6, :, :2] = [[-20, -20], [-20, -18], [-18, -20], [1, 1], [-30, -30], [2, 0]]
    for kw in (KW, dict(KW, areas=np.array([9.0, 9.0, 4, 4, 4, 1, 1]))):
        _assert_same(build_targets(j, (H, W), **kw), reference_targets(j, (H, W), **kw))


def test_smaller_person_wins_and_weights() -> None:
    j = np.zeros((2, K, 3))
    j[..., 2] = 1
    j[0, :, :2] = [[2, 2], [20, 2], [2, 20], [20, 20], [11, 11], [11, 11]]  # big person, centre (11, 11)
    j[1, :, :2] = [[10, 10], [12, 10], [10, 12], [12, 12], [11, 11], [11, 11]]  # small person, same centre
    t = build_targets(j, (H, W), **KW)
    areas = person_areas(j)
    assert areas[1] < areas[0]
    # cell (11, 11): joint 0 of the small person, stored as cell - joint
    assert t.offsets[0, 11, 11] == pytest.approx(11 - 10) and t.offsets[1, 11, 11] == pytest.approx(11 - 10)
    assert t.offset_weights[0, 11, 11] == pytest.approx(1 / np.sqrt(areas[1]))
    # the 2r x 2r block around the centre, nothing else
    assert (t.offset_weights[0] > 0).sum() == (2 * KW["offset_radius"]) ** 2
    assert t.heatmaps[K].max() == pytest.approx(1.0) and t.heatmaps[K, 11, 11] == pytest.approx(1.0)


def test_empty_and_masks() -> None:
    ignore = np.zeros((H, W), bool)
    ignore[:5, :7] = True
    t = build_targets(np.zeros((0, K, 3)), (H, W), ignore_mask=ignore, **KW)
    assert t.heatmaps.shape == (K + 1, H, W) and t.offsets.shape == (2 * K, H, W) and t.visibility.shape == (K, H, W)
    assert not t.heatmaps.any() and not t.offsets.any() and not t.visibility.any()
    assert (t.heatmap_weights[:, :5, :7] == 0).all() and np.allclose(t.heatmap_weights[:, 5:], 0.1)


def test_centers_and_areas() -> None:
    j = np.array([[[0, 0, 2], [4, 3, 1], [100, 100, 0]], [[1, 1, 0], [2, 2, 0], [3, 3, 0]]], float)
    c, has = person_centers(j)
    np.testing.assert_allclose(c[0], [2, 1.5])
    assert has.tolist() == [True, False]
    np.testing.assert_allclose(person_areas(j), [25.0, 0.0])
