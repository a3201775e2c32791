"""Test-time procedure: resizing, flip and multi-scale testing, decoding people, mapping back.

Example:
    >>> from grapepose.inference import Predictor
    >>> results = Predictor(model)(["a.jpg", "b.jpg"])     # list[Poses]
    >>> results[0].keypoints.shape                          # (N, K, 3): x, y, score in image pixels
"""

from grapepose.inference.decode import DecodedPoses, decode
from grapepose.inference.maps import PoseMaps, merge_flip, pose_field, to_pose_maps, upsample_maps
from grapepose.inference.precision import Precision, resolve_precision
from grapepose.inference.predictor import Predictor, model_keypoint_spec, resolve_dtype
from grapepose.inference.preprocess import ImageTransform, flip_shift, image_transform, warp_image
from grapepose.inference.result import Poses

__all__ = [
    "DecodedPoses", "ImageTransform", "PoseMaps", "Poses", "Precision", "Predictor", "decode", "flip_shift",
    "image_transform", "merge_flip", "model_keypoint_spec", "pose_field", "resolve_dtype", "resolve_precision",
    "to_pose_maps",
    "upsample_maps", "warp_image",
]  # fmt: skip
