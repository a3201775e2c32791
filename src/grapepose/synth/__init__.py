"""Synthetic crowd data: articulated figures with COCO/CrowdPose keypoints, rendered with OpenCV.

`generate_dataset` writes a COCO-format keypoint dataset (the `grapepose synth` command);
`SyntheticSource` renders training samples on the fly; `render_scene` draws one image.
See docs/SYNTH.md.
"""

from grapepose.synth.coco import categories, crowd_index, crowd_level, generate_dataset, scene_rng
from grapepose.synth.scene import MIN_SIZE, PRESETS, Scene, SynthPerson, compose_scene, render_scene
from grapepose.synth.source import SyntheticSource

__all__ = [
    "MIN_SIZE", "PRESETS", "Scene", "SynthPerson", "SyntheticSource", "categories", "compose_scene", "crowd_index",
    "crowd_level", "generate_dataset", "render_scene", "scene_rng",
]  # fmt: skip
