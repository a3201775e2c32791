"""`Sample`: one annotated image, the unit every sample source hands to training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grapepose.errors import DataError

__all__ = ["Sample"]


@dataclass
class Sample:
    """One image with its people, in original-image pixels.

    Attributes:
        image: uint8 RGB `[H, W, 3]`.
        keypoints: float32 `[N, K, 3]` of (x, y, v); v = 0 means unlabelled (x, y are then ignored).
        ignore_mask: bool `[H, W]` (True = no heatmap loss there: crowd regions, people without
            keypoints) or None for nothing to ignore.
        image_id: the image's id in its dataset.
        has_center: bool `[N]`, False for people that get keypoint targets but no centre/offsets
            (COCO's reference recipe skips centres of people smaller than 32² px); None = all do.
    """

    image: np.ndarray
    keypoints: np.ndarray
    ignore_mask: np.ndarray | None = None
    image_id: int = 0
    has_center: np.ndarray | None = None

    def __post_init__(self) -> None:
        img = np.asarray(self.image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise DataError(f"sample {self.image_id}: image must be uint8 [H, W, 3], got {img.dtype} {img.shape}")
        kp = np.asarray(self.keypoints, dtype=np.float32)
        if kp.ndim != 3 or kp.shape[2] != 3:
            raise DataError(f"sample {self.image_id}: keypoints must be [N, K, 3], got shape {kp.shape}")
        self.image, self.keypoints = img, kp
        if self.ignore_mask is not None:
            mask = np.asarray(self.ignore_mask, dtype=bool)
            if mask.shape != img.shape[:2]:
                raise DataError(f"sample {self.image_id}: ignore_mask shape {mask.shape} != image {img.shape[:2]}")
            self.ignore_mask = mask
        if self.has_center is not None:
            hc = np.asarray(self.has_center, dtype=bool).reshape(-1)
            if hc.shape[0] != kp.shape[0]:
                raise DataError(
                    f"sample {self.image_id}: has_center has {hc.shape[0]} entries for {kp.shape[0]} people"
                )
            self.has_center = hc

    @property
    def num_people(self) -> int:
        return int(self.keypoints.shape[0])
