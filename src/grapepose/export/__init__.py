"""ONNX export (`export_onnx`), running exported files with onnxruntime (`OnnxModel`), int8 quantization
(`quantize_int8`) and OpenVINO on the CPU (`OpenVinoModel`, bf16 and int8)."""

from grapepose.export.onnx import export_onnx
from grapepose.export.openvino import OpenVinoModel
from grapepose.export.quantize import calibration_images, quantize_int8
from grapepose.export.runtime import OnnxModel

__all__ = ["export_onnx", "OnnxModel", "OpenVinoModel", "calibration_images", "quantize_int8"]
