"""Datasets, augmentation and training targets.

Sample sources (`KeypointDataset`, synthetic sources) yield `Sample`s; `TrainingDataset` augments
them and builds the training targets (docs/DESIGN.md, Training targets) with `build_targets`.
"""

from grapepose.data.augment import Augmentation, Augmented, affine_points, flip_joints
from grapepose.data.coco import KeypointDataset
from grapepose.data.sample import Sample
from grapepose.data.targets import Targets, build_targets, person_areas, person_centers
from grapepose.data.training import SampleSource, TrainingDataset

__all__ = [
    "Augmentation", "Augmented", "KeypointDataset", "Sample", "SampleSource", "Targets", "TrainingDataset",
    "affine_points", "build_targets", "flip_joints", "person_areas", "person_centers",
]  # fmt: skip
