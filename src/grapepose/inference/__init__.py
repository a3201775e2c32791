"""Test-time procedure: resizing, flip and multi-scale testing, decoding people, mapping back.

Example:
    >>> from grapepose.inference import Predictor
    >>> results = Predictor(model)(["a.jpg", "b.jpg"])     # list[Poses]
    >>> results[0].keypoints.shape                          # (N, K, 3): x, y, score in image pixels

Decoding network outputs into people is the package `grapepose.inference.decode` (its function
`decode` is also `grapepose.decode`); `resolve_precision` says what each `--precision` name runs on.
"""

from grapepose.inference.precision import Precision, resolve_precision
from grapepose.inference.predictor import Predictor
from grapepose.inference.result import Poses

__all__ = ["Poses", "Precision", "Predictor", "resolve_precision"]
