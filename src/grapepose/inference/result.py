"""`PoseResult`: the people found in one image, in original-image pixels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PoseResult"]


@dataclass
class PoseResult:
    """People found in one image.

    Attributes:
        keypoints: `[N, K, 3]` float32 (x, y, score) in original-image pixels.
        scores: `[N]` float32 person scores (mean joint score), descending.
        image_size: original `(height, width)`, if known.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    image_size: tuple[int, int] | None = None

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls, num_keypoints: int, image_size: tuple[int, int] | None = None) -> PoseResult:
        return cls(np.zeros((0, num_keypoints, 3), np.float32), np.zeros((0,), np.float32), image_size)

    def to_coco(
        self, image_id: int, track_ids: Sequence[int] | None = None, category_id: int = 1
    ) -> list[dict[str, Any]]:
        """COCO keypoint results: `{"image_id", "category_id", "keypoints": [x, y, s] * K, "score"}` per person.

        Args:
            image_id: the image's id in the annotation file.
            track_ids: optional per-person track ids, added as `"track_id"`.
            category_id: COCO category (1 = person).
        """
        if track_ids is not None and len(track_ids) != len(self):
            raise ValueError(f"{len(track_ids)} track ids for {len(self)} people")
        out = []
        for i in range(len(self)):
            kp = self.keypoints[i].astype(np.float64)
            flat = [v for x, y, s in kp for v in (round(float(x), 3), round(float(y), 3), round(float(s), 5))]
            item: dict[str, Any] = {
                "image_id": int(image_id),
                "category_id": int(category_id),
                "keypoints": flat,
                "score": float(self.scores[i]),
            }
            if track_ids is not None:
                item["track_id"] = int(track_ids[i])
            out.append(item)
        return out
