import itertools

import numpy as np
import pytest

from grapepose.keypoints import COCO_KEYPOINTS
from grapepose.tracking import PoseTracker, linear_assignment, pose_oks

SIGMAS = np.array(COCO_KEYPOINTS.sigmas)


def _brute_force(cost: np.ndarray) -> float:
    r, c = cost.shape
    if r <= c:
        return min(sum(cost[i, p[i]] for i in range(r)) for p in itertools.permutations(range(c), r))
    return min(sum(cost[p[j], j] for j in range(c)) for p in itertools.permutations(range(r), c))


def test_linear_assignment_is_optimal():
    rng = np.random.default_rng(0)
    for t in range(200):
        r, c = (int(v) for v in rng.integers(1, 6, 2))
        cost = rng.random((r, c)) if t % 2 else rng.integers(0, 3, (r, c)).astype(float)
        rows, cols = linear_assignment(cost)
        assert len(rows) == min(r, c) == len(set(rows.tolist())) == len(set(cols.tolist()))
        assert list(rows) == sorted(rows)
        assert cost[rows, cols].sum() == pytest.approx(_brute_force(cost))


def test_linear_assignment_empty_and_bad_input():
    rows, cols = linear_assignment(np.zeros((0, 3)))
    assert rows.shape == cols.shape == (0,)
    with pytest.raises(ValueError):
        linear_assignment(np.array([[np.inf]]))


def _pose(cx: float, cy: float, height: float = 100.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """A person-like cloud of 17 joints around (cx, cy)."""
    base = np.random.default_rng(42).uniform(-0.5, 0.5, (17, 2)) * [height * 0.4, height]
    pose = np.concatenate([base + [cx, cy], np.full((17, 1), 0.9)], 1)
    if rng is not None:
        pose[:, :2] += rng.normal(0, 1.0, (17, 2))
    return pose


def test_oks_identical_and_far():
    a = _pose(100, 100)[None]
    b = np.stack([_pose(100, 100), _pose(400, 100)])
    oks = pose_oks(a, b, SIGMAS)
    assert oks.shape == (1, 2)
    assert oks[0, 0] == pytest.approx(1.0)
    assert oks[0, 1] < 1e-6
    assert pose_oks(a[:0], b, SIGMAS).shape == (0, 2)


def test_tracker_keeps_ids_of_moving_people():
    """Four people walk steadily over 10 frames, two of them through each other, in shuffled order.

    People are 100 px tall and move up to 8 px per frame (a brisk walk at 30 fps), with 1 px of joint noise.
    """
    rng = np.random.default_rng(0)
    starts = np.array([[200.0, 150], [320, 150], [250, 400], [600, 300]])
    velocity = np.array([[8.0, 0], [-8, 0], [0, -5], [6, 6]])
    tracker = PoseTracker(SIGMAS)
    seen: dict[int, int] = {}  # true person -> track id
    for t in range(10):
        order = rng.permutation(4)
        poses = np.stack([_pose(*(starts[p] + t * velocity[p]), rng=rng) for p in order])
        ids = tracker.update(poses)
        assert len(set(ids.tolist())) == 4
        for p, i in zip(order, ids):
            assert seen.setdefault(int(p), int(i)) == i, f"frame {t}: person {p} changed id"
    assert sorted(seen.values()) == [0, 1, 2, 3]


def test_tracker_new_people_get_new_ids_and_gaps_are_bridged():
    tracker = PoseTracker(SIGMAS, max_age=2)
    a, b = _pose(100, 100), _pose(500, 100)
    assert tracker.update(a[None]).tolist() == [0]
    assert tracker.update(np.stack([a, b])).tolist() == [0, 1]
    assert tracker.update(b[None]).tolist() == [1]  # a is missed for one frame
    assert tracker.update(np.stack([b, a])).tolist() == [1, 0]  # ... and keeps its id
    for _ in range(3):
        tracker.update(b[None])
    assert tracker.update(a[None]).tolist() == [2]  # gone longer than max_age: a new track
    assert tracker.update(np.zeros((0, 17, 3))).tolist() == []
    tracker.reset()
    assert tracker.update(a[None]).tolist() == [0]
