"""ONNX export (`export_onnx`) and running exported files with onnxruntime (`OnnxModel`)."""

from grapepose.export.onnx import export_onnx
from grapepose.export.runtime import OnnxModel

__all__ = ["export_onnx", "OnnxModel"]
