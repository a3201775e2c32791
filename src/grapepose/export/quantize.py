"""int8 quantization: calibrate on images, write an ONNX file with int8 convolutions (QDQ form).

The network is exported to ONNX (`export_onnx`), then onnxruntime's static quantizer inserts
QuantizeLinear/DequantizeLinear pairs around every convolution: weights int8 per output channel,
activations uint8 with ranges from the calibration images (min/max: the same images give the
same file). The attention, the deformable sampling and the normalisations stay in floating point;
quantizing the attention's matrix products measured no faster and far less accurate
(docs/BENCHMARKS.md). OpenVINO runs the file with int8 convolutions (`inference.openvino`); the
config and `grapepose.precision = int8` are stored in its metadata.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import nn

from grapepose.config import Config
from grapepose.errors import DataError, GrapeposeError

__all__ = ["CALIBRATION_KEY", "DEFAULT_CALIBRATION_COUNT", "PRECISION_KEY", "calibration_images", "onnx_metadata",
           "quantize_int8"]  # fmt: skip

log = logging.getLogger(__name__)

PRECISION_KEY = "grapepose.precision"
CALIBRATION_KEY = "grapepose.calibration"
DEFAULT_CALIBRATION_COUNT = 8
_SYNTHETIC_SEED = 2027


def calibration_images(
    folder: str | os.PathLike[str] | None, count: int = DEFAULT_CALIBRATION_COUNT, size: int = 512
) -> tuple[list[np.ndarray], str]:
    """Calibration images (RGB uint8) and a line saying what they are.

    Args:
        folder: a folder of images, taken in name order (the first `count`); None: `count`
            synthetic crowd scenes of side `size` drawn from a fixed seed.
        count: how many images.
        size: side of the synthetic scenes.

    Raises:
        DataError: the folder is missing, holds no image, or an image cannot be read.
    """
    if folder is None:
        from grapepose.keypoints import keypoint_spec
        from grapepose.synth import render_scene, scene_rng

        spec = keypoint_spec(17)
        images = [render_scene(scene_rng(_SYNTHETIC_SEED, i), "crowd", size, spec)[0] for i in range(count)]
        return images, f"{count} synthetic crowd scenes ({size} px, seed {_SYNTHETIC_SEED})"
    from grapepose.io.files import IMAGE_SUFFIXES, read_image

    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder of calibration images")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())[:count]
    if not files:
        raise DataError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) to calibrate on")
    return [read_image(p) for p in files], f"{len(files)} images from {root.name}"


def quantize_int8(
    model: nn.Module, path: str | os.PathLike[str], inputs: Sequence[np.ndarray], config: Config | None = None,
    about: str = "",
) -> Path:  # fmt: skip
    """Write `model` as an int8 ONNX file calibrated on `inputs`, atomically.

    Args:
        model: the network (unchanged).
        path: output `.onnx` file.
        inputs: the calibration images as the network sees them, `[1, 3, H, W]` normalised float32
            (`grapepose.inference.preprocess.network_input` of each of `calibration_images`).
        config: stored in the file (default `model.config`).
        about: what the images were, stored in the file's metadata.

    Returns:
        The written path.
    """
    try:
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
        from onnxruntime.quantization import quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as e:
        raise GrapeposeError(f"int8 quantization needs onnx and onnxruntime ({e.name} is missing): "
                             "pip install 'grapepose[cpu]'") from None  # fmt: skip
    from grapepose.export.onnx import CONFIG_KEY, export_onnx
    from grapepose.io.files import atomic_path

    config = config if config is not None else getattr(model, "config", None)
    if config is None:
        raise GrapeposeError("int8 quantization needs the model's config (model.config or config=)")
    if not inputs:
        raise DataError("no calibration images")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.items, None)
            return None if x is None else {"images": x}

    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="grapepose-int8-") as tmp:
        fp32, pre, q = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        export_onnx(model, fp32, config=config)
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantizer warns on the root logger about every BatchNorm tensor
        try:
            quantize_static(
                str(pre), str(q), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, per_channel=True, calibrate_method=CalibrationMethod.MinMax,
                op_types_to_quantize=["Conv"],
            )  # fmt: skip
        finally:
            root.setLevel(level)
        proto = onnx.load(str(q))
        meta = onnx_metadata(fp32)
        meta.update({PRECISION_KEY: "int8", CALIBRATION_KEY: about or f"{len(inputs)} images"})
        del proto.metadata_props[:]
        for key, value in meta.items():
            proto.metadata_props.add(key=key, value=value)
        if CONFIG_KEY not in meta:  # pragma: no cover - export_onnx always stores it when given a config
            raise GrapeposeError("the exported file carries no config")
        try:
            with atomic_path(path) as out:
                onnx.save(proto, str(out))
        except OSError as e:
            raise GrapeposeError(f"{path}: cannot write ONNX file ({e.strerror or e})") from None
    return path


def onnx_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """An ONNX file's metadata (`grapepose.config`, `grapepose.precision`, ...); {} for a file onnx cannot parse
    (the runtime that opens it next reports it) or without the onnx package."""
    try:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError, OSError, ImportError
        return {}
    return {p.key: p.value for p in proto.metadata_props}
