"""COCO-format keypoint datasets (COCO, CrowdPose, OCHuman or any keypoint set) as a sample source."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from grapepose.config import DataConfig
from grapepose.data._masks import ignore_mask
from grapepose.data.annotations import check_keypoint_annotations
from grapepose.data.sample import Sample
from grapepose.errors import DataError
from grapepose.io.files import read_image, read_json
from grapepose.keypoints import KeypointSpec
from grapepose.keypoints import resolve_keypoint_spec as resolve_spec

__all__ = ["KeypointDataset"]

log = logging.getLogger(__name__)

# The reference (DEKR lineage) gives COCO/OCHuman people with a segmentation area below 32² no centre.
_REFERENCE_MIN_CENTER_AREA = {"coco": 32.0**2, "ochuman": 32.0**2}


def _read_json(path: Path) -> dict[str, Any]:
    data = read_json(path, "annotation")
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with 'images' and 'annotations'")
    return data


def _labelled(keypoints: Any) -> bool:
    """At least one keypoint of a `[x, y, v] * K` list has visibility v > 0 (as `KeypointDataset.load`)."""
    return bool(keypoints) and any(v > 0 for v in keypoints[2::3])


def _int_id(value: Any, fallback: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return fallback  # non-numeric ids (custom sets): the image's position


class KeypointDataset:
    """A parsed COCO-format keypoint JSON plus its image folder; a sample source for training.

    Images without annotations are kept (valid negatives; counted in `num_negatives`) unless
    `skip_negatives` (the training default, as in the reference). Non-crowd
    people with at least one labelled joint become `Sample.keypoints`; crowd regions and people
    without labelled joints become `Sample.ignore_mask` (their segmentation, else their bbox).

    Attributes:
        ann_path: the JSON file.
        image_root: folder that `file_name`s are relative to.
        images: the JSON's image records, in file order.
        annotations: the keypoint-category annotation records, in file order.
        spec: the keypoint metadata.
        num_negatives: images without any annotation.
        num_people: non-crowd annotations with at least one labelled keypoint (visibility > 0): the
            people that training targets are made of.

    Raises:
        DataError: on malformed annotations or missing image files, naming the file and annotation.
    """

    def __init__(
        self,
        ann_path: str | os.PathLike[str],
        image_root: str | os.PathLike[str],
        spec: KeypointSpec | None = None,
        dataset: str | None = None,
        *,
        keypoint_names: Sequence[str] = (),
        flip_index: Sequence[int] = (),
        sigmas: Sequence[float] = (),
        check_images: bool = True,
        min_center_area: float | None = None,
        skip_negatives: bool = False,
    ) -> None:
        """Parse and validate `ann_path`.

        Args:
            ann_path: COCO-format keypoint JSON.
            image_root: image folder.
            spec: explicit keypoint metadata (else from the JSON category / built-in tables / overrides).
            dataset: `coco`, `crowdpose`, `ochuman`, `custom` or None; picks built-in tables and recipe.
            keypoint_names, flip_index, sigmas: metadata overrides (`DataConfig` fields of the same names).
            check_images: verify at construction that every image file exists.
            min_center_area: people whose annotation `area` is below this get no centre target; None
                = the reference recipe (32² for coco/ochuman, else 0).
            skip_negatives: drop images without annotations (the reference trains only on images
                with at least one; COCO train2017 has ~54k without).
        """
        self.ann_path = Path(ann_path)
        self.image_root = Path(image_root)
        self.dataset = dataset.lower() if dataset else None
        if min_center_area is None:
            min_center_area = _REFERENCE_MIN_CENTER_AREA.get(self.dataset or "", 0.0)
        self.min_center_area = float(min_center_area)
        data = _read_json(self.ann_path)
        where = str(self.ann_path)
        checked = check_keypoint_annotations(data, where, num_keypoints=spec.num_keypoints if spec else None)
        self.images = checked.images
        category, k = checked.category, checked.num_keypoints
        if spec is None:
            spec = resolve_spec(category, k, self.dataset, where, keypoint_names, flip_index, sigmas)
        elif spec.num_keypoints != k:
            raise DataError(f"{where}: annotations have {k} keypoints but the given spec has {spec.num_keypoints}")
        self.spec = spec
        self.annotations = checked.annotations
        slot = {img["id"]: i for i, img in enumerate(self.images)}
        self._by_image: list[list[int]] = [[] for _ in self.images]
        for n, a in enumerate(self.annotations):
            self._by_image[slot[a["image_id"]]].append(n)
        self.num_negatives = sum(1 for anns in self._by_image if not anns)
        self.num_people = sum(1 for a in self.annotations if not a.get("iscrowd") and _labelled(a.get("keypoints")))
        if skip_negatives and self.num_negatives:
            keep = [i for i, anns in enumerate(self._by_image) if anns]
            self.images = [self.images[i] for i in keep]
            self._by_image = [self._by_image[i] for i in keep]
            log.info("%s: skipping %d images without annotations", where, self.num_negatives)
        if check_images:
            self._check_image_files()
        log.info(
            "%s: %d images (%d without annotations), %d annotations (%d people with labelled keypoints), "
            "%d keypoints", where, len(self.images), self.num_negatives, len(self.annotations), self.num_people, k,
        )  # fmt: skip

    @classmethod
    def from_config(cls, cfg: DataConfig, val: bool = False, check_images: bool = True) -> KeypointDataset:
        """The training (or, with `val`, validation) set that `cfg` names."""
        ann, root = (cfg.val_ann, cfg.val_root) if val else (cfg.ann, cfg.root)
        if not ann:
            raise DataError(f"no annotation file configured (set data.{'val_ann' if val else 'ann'})")
        return cls(
            ann, root or Path(ann).parent, dataset=cfg.dataset,
            keypoint_names=cfg.keypoint_names, flip_index=cfg.flip_index, sigmas=cfg.sigmas, check_images=check_images,
            skip_negatives=not val and not cfg.train_negatives,
        )  # fmt: skip

    def _check_image_files(self) -> None:
        missing = [img["file_name"] for img in self.images if not (self.image_root / str(img["file_name"])).is_file()]
        if missing:
            shown = ", ".join(map(str, missing[:5]))
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise DataError(
                f"{self.ann_path}: {len(missing)} of {len(self.images)} image files missing under "
                f"{self.image_root}: {shown}{more}"
            )

    # ---- sample source ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return (
            f"KeypointDataset({str(self.ann_path)!r}, {len(self)} images, {len(self.annotations)} annotations, "
            f"K={self.spec.num_keypoints})"
        )

    @property
    def image_ids(self) -> list[int]:
        return [img["id"] for img in self.images]

    def image_path(self, i: int) -> Path:
        """Path of image `i`."""
        return self.image_root / str(self.images[i]["file_name"])

    def annotations_of(self, i: int) -> list[dict[str, Any]]:
        """The annotation records of image `i`."""
        return [self.annotations[n] for n in self._by_image[i]]

    def load(self, i: int) -> Sample:
        """Read image `i` and its people.

        Raises:
            DataError: the image file is missing or cannot be decoded (names the file).
        """
        image = read_image(self.image_path(i), apply_exif=False)  # annotated on the stored pixels
        height, width = image.shape[:2]
        k = self.spec.num_keypoints
        people, ignored, has_center = [], [], []
        for a in self.annotations_of(i):
            kps = a.get("keypoints")
            kp = np.asarray(kps, dtype=np.float32).reshape(k, 3) if kps else None
            if a.get("iscrowd") or kp is None or not (kp[:, 2] > 0).any():
                ignored.append(a)
                continue
            kp[kp[:, 2] <= 0] = 0.0
            people.append(kp)
            area = a.get("area")
            small = isinstance(area, (int, float)) and math.isfinite(area) and area < self.min_center_area
            has_center.append(not small)
        keypoints = np.stack(people) if people else np.zeros((0, k, 3), np.float32)
        return Sample(
            image=image,
            keypoints=keypoints,
            ignore_mask=ignore_mask(ignored, height, width) if ignored else None,
            image_id=_int_id(self.images[i]["id"], i),
            has_center=np.asarray(has_center, dtype=bool) if self.min_center_area > 0 else None,
        )
