"""ONNX export (`export_onnx`) and int8 quantization (`quantize_int8`); the runtimes that run the files
are `grapepose.inference.onnx_runtime` (onnxruntime) and `grapepose.inference.openvino` (OpenVINO)."""

from grapepose.export.onnx import export_onnx
from grapepose.export.quantize import calibration_images, quantize_int8

__all__ = ["export_onnx", "calibration_images", "quantize_int8"]
