"""Running an exported ONNX file with onnxruntime behind the network's interface.

`OnnxModel` is an `nn.Module` whose forward takes the same normalised `[B, 3, H, W]` batch as
`GrapeNet` and returns a `GrapeOutput`, so the torch `Predictor` (resizing, flip test, decoding)
runs unchanged on top of it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from grapepose.config import Config
from grapepose.errors import CheckpointError, GrapeposeError
from grapepose.export.onnx import CONFIG_KEY, INPUT_NAME, OUTPUT_NAMES
from grapepose.models import config_from_json

__all__ = ["OnnxModel"]

log = logging.getLogger(__name__)


class OnnxModel(nn.Module):
    """An exported GRAPE network run by onnxruntime.

    Args:
        path: the `.onnx` file written by `grapepose export`.
        device: "cpu" or "cuda" (CUDA needs onnxruntime-gpu; falls back to CPU with a warning).

    Attributes:
        config: the `Config` stored at export time (None for files without it).
    """

    def __init__(self, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> None:
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError:
            raise GrapeposeError("the onnxruntime backend needs onnxruntime: pip install 'grapepose[export]'") from None
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: ONNX file not found")
        providers = ["CPUExecutionProvider"]
        if torch.device(device).type == "cuda":
            if "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            else:
                log.warning("onnxruntime has no CUDA provider here (install onnxruntime-gpu); running on CPU")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(f"{self.path}: cannot load ONNX model ({first})") from None
        inputs = [i.name for i in self.session.get_inputs()]
        self._outputs = [o.name for o in self.session.get_outputs()]
        if inputs != [INPUT_NAME] or tuple(self._outputs) not in (OUTPUT_NAMES, OUTPUT_NAMES[:3]):
            raise CheckpointError(
                f"{self.path}: not a grapepose ONNX export (inputs {inputs}, outputs {self._outputs})"
            )
        meta = self.session.get_modelmeta().custom_metadata_map
        self.config: Config | None = config_from_json(meta[CONFIG_KEY], self.path) if CONFIG_KEY in meta else None
        # A parameter-free module reports its device through this buffer.
        self.register_buffer("_device_anchor", torch.zeros(0), persistent=False)

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        """`[B, 3, H, W]` normalised float (H, W multiples of 64) -> `GrapeOutput` on the input's device."""
        from grapepose.models import GrapeOutput

        x = np.ascontiguousarray(images.detach().float().cpu().numpy())
        outs = self.session.run(self._outputs, {INPUT_NAME: x})
        tensors = [torch.from_numpy(o).to(images.device) for o in outs]
        if len(tensors) == 3:  # exported without the visibility head
            tensors.append(None)  # type: ignore[arg-type]
        return GrapeOutput(*tensors)
