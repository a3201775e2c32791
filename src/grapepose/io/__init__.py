"""Files in and out: image files and atomic output (`files`), the inputs of `predict` (`sources`),
videos (`video`) and the names of drawn outputs (`drawings`). The predict job that uses them is
`grapepose.predict_job`.

Names are imported lazily: `from grapepose.io.files import read_image` loads OpenCV and NumPy only,
never the predict job.
"""

from __future__ import annotations

from grapepose._lazy import lazy_exports

_EXPORTS = {
    "read_image": "grapepose.io.files",
    "write_image": "grapepose.io.files",
    "atomic_path": "grapepose.io.files",
    "atomic_write_json": "grapepose.io.files",
    "IMAGE_SUFFIXES": "grapepose.io.files",
    "Source": "grapepose.io.sources",
    "expand_sources": "grapepose.io.sources",
    "prefetch": "grapepose.io.sources",
    "VIDEO_SUFFIXES": "grapepose.io.sources",
    "VideoReader": "grapepose.io.video",
    "VideoWriter": "grapepose.io.video",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
