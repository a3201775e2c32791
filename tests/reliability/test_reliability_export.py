"""ONNX files: a corrupt embedded config is one line naming the file; a successful export is quiet (issue 22).

Before: an embedded config that was not JSON raised a JSONDecodeError traceback (predict, serve and
the API alike), and every export printed ~387 lines of exporter chatter (folded constants, rewritten
patterns, deduplicated initializers) on success.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from reliability_meta_helpers import fails
from torch import nn

from grapepose.models import GrapeOutput

onnx = pytest.importorskip("onnx", reason="the export extra (onnx) is not installed")
pytest.importorskip("onnxruntime", reason="the export extra (onnxruntime) is not installed")


def _tiny_onnx(path: Path, config: str) -> Path:
    """A graph with a grapepose export's inputs and outputs (identities) and `config` as its stored config."""
    from onnx import TensorProto, helper

    names = ("heatmaps", "offsets", "refined_offsets")
    shape = ["b", 3, "h", "w"]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], [n]) for n in names], "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in names],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    helper.set_model_props(model, {"grapepose.config": config})
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("config,problem", [
    ('{"model": {"backbone": ', "Expecting value: line 1 column 24 (char 23)"),
    ("[1, 2]", "expected a JSON object, got a list"),
    ('{"model": {"backbon": "hrnet_w18"}}', "unknown config key model.backbon (did you mean 'backbone'?)"),
], ids=["not JSON", "not an object", "unknown key"])  # fmt: skip
def test_onnx_file_with_a_corrupt_config_is_one_line(tmp_path, shared_data, capsys, config, problem):
    path = _tiny_onnx(tmp_path / "model.onnx", config)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("earlier work")
    image = shared_data / "demo" / "crowd_03.jpg"
    argv = ["predict", str(image), "--weights", str(path), "--backend", "onnxruntime", "--out", str(out)]
    message = f"{path}: invalid config in the file's metadata ({problem})"
    assert fails(argv, capsys) == (2, f"grapepose predict: error: {message}")
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "earlier work"
    from grapepose.errors import CheckpointError
    from grapepose.inference.onnx_runtime import OnnxModel

    with pytest.raises(CheckpointError) as e:  # the API says the same
        OnnxModel(path)
    assert str(e.value) == message


class _Tiny(nn.Module):
    """One stride-4 convolution split into GrapeNet's four outputs: the fastest network to export."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=4, padding=1)

    def forward(self, x: torch.Tensor) -> GrapeOutput:
        y = self.conv(x)
        return GrapeOutput(y[:, :3], y[:, 3:5], y[:, 5:7], y[:, 7:])


def test_successful_export_is_quiet(tmp_path, caplog, capfd):
    from grapepose.export.onnx import export_onnx
    from grapepose.inference.onnx_runtime import OnnxModel

    caplog.set_level(logging.INFO)  # what `grapepose export` shows
    torch.manual_seed(0)
    model = _Tiny().eval()
    path = export_onnx(model, tmp_path / "tiny.onnx", example_size=(64, 64))
    assert [f"{r.name}: {r.getMessage()}" for r in caplog.records] == []
    assert capfd.readouterr() == ("", "")
    assert logging.getLogger("onnxscript").level == logging.NOTSET  # the exporter's loggers are as they were
    x = torch.randn(2, 3, 64, 128)
    with torch.no_grad():
        want = model(x)
    for got, ref in zip(OnnxModel(path)(x), want):  # the file is complete and right
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
