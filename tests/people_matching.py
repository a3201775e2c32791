"""Comparing two sets of people whose order is not defined (scores that tie to float precision).

Batch size, thread count and CPU kernels may change the last bits of a score, so two people whose
scores tie to the 6th digit may come out in either order: compare them as matched sets.
"""

from __future__ import annotations

import numpy as np


def pair_people(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each pose of `a` [N, K, >=2], the index of the distinct pose of `b` [N, K, >=2] closest to it.

    Greedy on the mean joint distance, closest pair first; fails when the counts differ.
    """
    assert a.shape == b.shape, f"{a.shape} people against {b.shape}"
    d = np.linalg.norm(a[:, None, :, :2] - b[None, :, :, :2], axis=-1).mean(-1)  # [N, N]
    owner = np.full(len(a), -1)
    for flat in np.argsort(d, axis=None, kind="stable"):
        i, j = divmod(int(flat), len(b))
        if owner[i] < 0 and j not in owner:
            owner[i] = j
    return owner


def assert_same_people(a_keypoints: np.ndarray, b_keypoints: np.ndarray, atol: float,
                       a_scores: np.ndarray | None = None, b_scores: np.ndarray | None = None,
                       score_atol: float = 1e-5) -> None:  # fmt: skip
    """The same people in any order: keypoints [N, K, 3] (and scores [N]) equal within the tolerances."""
    owner = pair_people(a_keypoints, b_keypoints)
    np.testing.assert_allclose(a_keypoints, b_keypoints[owner], atol=atol, rtol=0)
    if a_scores is not None and b_scores is not None:
        np.testing.assert_allclose(a_scores, b_scores[owner], atol=score_atol, rtol=0)
