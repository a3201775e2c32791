"""`Poses`: the people found in one image, in original-image pixels: the one result type.

`Predictor`, `PoseEstimator` and `grapepose predict` all return it; it converts itself to COCO
results entries (`to_coco`) and draws itself (`draw`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from grapepose.keypoints import KeypointSpec

__all__ = ["Poses", "JOINT_SCORES_KEY"]

JOINT_SCORES_KEY = "keypoint_scores"  # the COCO results key of the per-joint confidences (evaluation ignores it)


@dataclass
class Poses:
    """The people found in one image.

    Attributes:
        keypoints: `[N, K, 3]` float32 (x, y, score) in the original image's pixels; the score is
            the one COCO evaluation ranks joints by (the reference's value; with visibility
            rescoring the same for every joint of a person).
        scores: `[N]` float32 person scores (mean joint score), descending.
        spec: what the K keypoints are (names, flip pairs, OKS sigmas, skeleton for drawing).
        track_ids: `[N]` int64 ids stable across frames (set by tracking), else None.
        image_size: the original image's `(height, width)`, if known.
        joint_scores: `[N, K]` float32 per-joint confidence in [0, 1]: how likely joint k of the
            person is really in the image (the visibility map at the joint; see docs/INFERENCE.md).
            Default: the keypoints' score column.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    spec: KeypointSpec
    track_ids: np.ndarray | None = None
    image_size: tuple[int, int] | None = None
    joint_scores: np.ndarray = None  # type: ignore[assignment]  # None -> the keypoints' scores

    def __post_init__(self) -> None:
        k = self.spec.num_keypoints
        self.keypoints = np.asarray(self.keypoints, np.float32).reshape(-1, k, 3)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        if len(self.scores) != len(self.keypoints):
            raise ValueError(f"{len(self.scores)} scores for {len(self.keypoints)} people")
        if self.joint_scores is None:
            self.joint_scores = self.keypoints[..., 2].copy()
        self.joint_scores = np.asarray(self.joint_scores, np.float32)
        if self.joint_scores.shape != self.keypoints.shape[:2]:
            raise ValueError(f"joint_scores of shape {self.joint_scores.shape} for keypoints {self.keypoints.shape}")
        if self.track_ids is not None:
            self.track_ids = np.asarray(self.track_ids, np.int64).reshape(-1)
            if len(self.track_ids) != len(self.scores):
                raise ValueError(f"{len(self.track_ids)} track ids for {len(self.scores)} people")

    @classmethod
    def empty(cls, spec: KeypointSpec, image_size: tuple[int, int] | None = None) -> Poses:
        """Nobody found."""
        k = spec.num_keypoints
        return cls(np.zeros((0, k, 3), np.float32), np.zeros((0,), np.float32), spec, image_size=image_size)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def __getitem__(self, index: Any) -> Poses:
        """A subset of the people (an index, slice or boolean mask)."""
        index = np.atleast_1d(np.arange(len(self))[index])
        ids = None if self.track_ids is None else self.track_ids[index]
        return Poses(
            self.keypoints[index], self.scores[index], self.spec, ids, self.image_size, self.joint_scores[index]
        )

    def to_coco(self, image_id: int = 0, category_id: int = 1, **extra: Any) -> list[dict[str, Any]]:
        """COCO keypoint results, one per person.

        Each entry is `{"image_id", "category_id", "keypoints": [x, y, s] * K, "score",
        "keypoint_scores": [c] * K}` (`c`: `joint_scores`, a key COCO evaluation ignores), plus
        `"track_id"` when tracked and the `extra` keys (e.g. `file_name=`).
        """
        out = []
        for i in range(len(self)):
            kp = self.keypoints[i].astype(np.float64)
            flat = [v for x, y, s in kp for v in (round(float(x), 3), round(float(y), 3), round(float(s), 5))]
            item: dict[str, Any] = {
                "image_id": int(image_id), "category_id": int(category_id), "keypoints": flat,
                "score": float(self.scores[i]),
                JOINT_SCORES_KEY: [round(float(c), 5) for c in self.joint_scores[i].astype(np.float64)],
            }  # fmt: skip
            if self.track_ids is not None:
                item["track_id"] = int(self.track_ids[i])
            item.update(extra)
            out.append(item)
        return out

    def draw(
        self, image: Any, black: bool = False, joint_threshold: float = 0.0, min_joint_score: float | None = None
    ) -> np.ndarray:
        """The image (array or path) with every person's skeleton drawn, as `[H, W, 3]` uint8 RGB.

        Each person has its own colour (its track id's, when tracked); joint scores set the opacity.
        Joints whose `joint_scores` are below `min_joint_score` (default
        `grapepose.visualize.MIN_JOINT_SCORE`; 0 draws all) are left out, with the limbs that touch
        them. `black=True` draws on a black canvas of the image's size.
        """
        from grapepose.io.files import read_image
        from grapepose.visualize import MIN_JOINT_SCORE, draw_poses

        img = read_image(image) if isinstance(image, (str, os.PathLike)) else np.asarray(image)
        return draw_poses(
            img, self.keypoints, self.spec.skeleton, ids=self.track_ids,
            labels=self.track_ids is not None, joint_threshold=joint_threshold, black=black,
            joint_scores=self.joint_scores,
            min_joint_score=MIN_JOINT_SCORE if min_joint_score is None else min_joint_score,
        )  # fmt: skip
