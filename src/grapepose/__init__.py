"""grapepose: GRAPE multi-person 2D pose estimation.

Three lines from photo to poses::

    import grapepose
    est = grapepose.PoseEstimator.from_pretrained("demo")
    people = est("photo.jpg")          # .keypoints [N, K, 3], .scores [N]

Names are imported lazily so that `import grapepose` is fast and needs no GPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from grapepose._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Config": "grapepose.config",
    "load_config": "grapepose.config",
    "PRESETS": "grapepose.config",
    "KeypointSpec": "grapepose.keypoints",
    "keypoint_spec": "grapepose.keypoints",
    "GrapeposeError": "grapepose.errors",
    "GrapeNet": "grapepose.models",
    "GrapeOutput": "grapepose.models",
    "build_model": "grapepose.models",
    "load_model": "grapepose.models",
    "save_model": "grapepose.models",
    "decode": "grapepose.inference.decode",
    "Predictor": "grapepose.inference.predictor",
    "evaluate_results": "grapepose.evaluation",
    "PoseEstimator": "grapepose.api",
    "Poses": "grapepose.inference.result",
    "KeypointDataset": "grapepose.data",
    "TrainingDataset": "grapepose.data",
}

__all__ = ["__version__", *_EXPORTS]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:  # pragma: no cover
    from grapepose.config import PRESETS, Config, load_config
    from grapepose.errors import GrapeposeError
    from grapepose.keypoints import KeypointSpec, keypoint_spec
