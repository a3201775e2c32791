"""Frame-to-frame pose tracking by object keypoint similarity (OKS).

Each track remembers its last pose and velocity; a new frame's people are matched to the tracks'
predicted poses (last pose + velocity) by maximum total OKS (Hungarian), pairs below
`oks_threshold` are not matched, unmatched people start new tracks, and tracks unseen for more than
`max_age` frames are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from grapepose.tracking.assignment import linear_assignment

__all__ = ["PoseTracker", "pose_oks"]


def pose_oks(a: np.ndarray, b: np.ndarray, sigmas: Sequence[float] | np.ndarray) -> np.ndarray:
    """Confidence-weighted OKS between every pose of `a` and every pose of `b`.

    The scale of a pair is the area of `b`'s joint box (b holds the reference poses, e.g. the
    tracks), at least that of a 1:4 box of the same length. Joint k of a pair counts with weight
    sqrt(score_a * score_b), so unsure joints matter less; if all weights are zero every joint
    counts equally.

    Args:
        a: `[N, K, 3]` (x, y, score).
        b: `[M, K, 3]` (x, y, score).
        sigmas: `[K]` OKS sigmas (COCO convention, already divided by 10).

    Returns:
        `[N, M]` OKS in [0, 1].
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    var = (2.0 * np.asarray(sigmas, np.float64)) ** 2  # COCO: (2 sigma)^2
    span = b[..., :2].max(1) - b[..., :2].min(1)  # [M, 2]
    # A pose whose joints line up has no box area: count it at least as a 1:4 box.
    area = np.maximum(span[:, 0] * span[:, 1], np.maximum(span.max(1) ** 2 / 4.0, 1.0))  # [M]
    d2 = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(-1)  # [N, M, K]
    e = np.exp(-d2 / (2.0 * area[None, :, None] * var))
    w = np.sqrt(np.clip(a[:, None, :, 2], 0, 1) * np.clip(b[None, :, :, 2], 0, 1))
    wsum = w.sum(-1)
    weighted = (e * w).sum(-1) / np.maximum(wsum, 1e-12)
    return np.where(wsum > 1e-12, weighted, e.mean(-1))


@dataclass
class _Track:
    track_id: int
    pose: np.ndarray  # [K, 3] last matched pose
    velocity: np.ndarray  # [K, 2] per-frame motion
    age: int = 0  # frames since last match

    def predicted(self) -> np.ndarray:
        """`[K, 3]` pose expected in the next frame (constant velocity over the missed frames)."""
        return np.concatenate([self.pose[:, :2] + (self.age + 1) * self.velocity, self.pose[:, 2:]], 1)


class PoseTracker:
    """Gives each person a stable integer id across consecutive frames.

    Args:
        sigmas: `[K]` OKS sigmas of the keypoint set.
        oks_threshold: minimum OKS for a person to continue a track.
        max_age: frames a track survives without a match (brief occlusions, missed detections).
        momentum: weight of the newest motion in the velocity estimate (0 disables prediction).
    """

    def __init__(
        self, sigmas: Sequence[float], oks_threshold: float = 0.3, max_age: int = 5, momentum: float = 0.5
    ) -> None:
        self.sigmas = np.asarray(sigmas, np.float64)
        self.oks_threshold = oks_threshold
        self.max_age = max_age
        self.momentum = momentum
        self.reset()

    def reset(self) -> None:
        """Forget all tracks; ids start again at 0."""
        self._tracks: list[_Track] = []
        self._next_id = 0

    def update(self, keypoints: np.ndarray) -> np.ndarray:
        """Assign ids to the people of the next frame.

        Args:
            keypoints: `[N, K, 3]` (x, y, score) of this frame's people.

        Returns:
            `[N]` int64 track ids.
        """
        kpts = np.asarray(keypoints, np.float64).reshape(-1, len(self.sigmas), 3)
        ids = np.full(len(kpts), -1, np.int64)
        if self._tracks and len(kpts):
            predicted = np.stack([t.predicted() for t in self._tracks])
            oks = pose_oks(kpts, predicted, self.sigmas)
            # Pairs below the threshold must never be matched, whatever it does to the total.
            rows, cols = linear_assignment(np.where(oks >= self.oks_threshold, 1.0 - oks, 2.0))
            for r, c in zip(rows, cols):
                if oks[r, c] >= self.oks_threshold:
                    ids[r] = self._continue(self._tracks[c], kpts[r])
        matched = set(ids[ids >= 0].tolist())
        for t in self._tracks:
            if t.track_id not in matched:
                t.age += 1
        self._tracks = [t for t in self._tracks if t.age <= self.max_age]
        for r in np.flatnonzero(ids < 0):
            ids[r] = self._start(kpts[r])
        return ids

    def _continue(self, track: _Track, pose: np.ndarray) -> int:
        step = (pose[:, :2] - track.pose[:, :2]) / (track.age + 1)
        track.velocity = self.momentum * step + (1.0 - self.momentum) * track.velocity
        track.pose = pose.copy()
        track.age = 0
        return track.track_id

    def _start(self, pose: np.ndarray) -> int:
        track = _Track(self._next_id, pose.copy(), np.zeros((len(pose), 2)))
        self._tracks.append(track)
        self._next_id += 1
        return track.track_id
