"""bf16 and int8 on the CPU through OpenVINO: outputs close to fp32, the int8 file's round trip, the cache.

A tiny network with the GRAPE outputs (convolutions, one attention, the four maps) keeps the
conversions fast. Tolerances (docs/INFERENCE.md): every output map stays within `BF16_TOL` (bf16)
or `INT8_TOL` (int8) of that map's largest fp32 magnitude.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from grapepose.config import load_config
from grapepose.errors import ConfigError, DataError
from grapepose.inference import precision as prec
from grapepose.models import GrapeOutput


pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")
needs_bf16 = pytest.mark.skipif(not prec.cpu_supports("bf16"), reason="needs a CPU with bf16 instructions")
needs_vnni = pytest.mark.skipif(not prec.cpu_supports("int8"), reason="needs a CPU with VNNI")

BF16_TOL = 0.03
INT8_TOL = 0.15  # a tiny random network; measured 0.03-0.05 on three maps, 0.12 on visibility
K = 14


class TinyNet(nn.Module):
    """[B, 3, H, W] -> `GrapeOutput` on the H/4 grid: two convolutions, self-attention, four 1x1 heads."""

    def __init__(self) -> None:
        super().__init__()
        self.config = load_config("crowdpose_w18s", ["test.base_size=64", "test.flip=false"])
        self.stem = nn.Conv2d(3, 16, 4, stride=4)
        self.body = nn.Conv2d(16, 16, 3, padding=1)
        self.qkv = nn.Linear(16, 48)
        self.heads = nn.Conv2d(16, (K + 1) + 2 * K + 2 * K + K, 1)

    def forward(self, images: Tensor) -> GrapeOutput:
        x = F.relu(self.body(F.relu(self.stem(images))))
        b, c, h, w = x.shape
        q, k, v = self.qkv(x.flatten(2).transpose(1, 2)).unflatten(-1, (3, 2, 8)).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)
        x = x + att.transpose(1, 2).reshape(b, c, h, w)
        return GrapeOutput(*self.heads(x).split([K + 1, 2 * K, 2 * K, K], 1))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    return TinyNet().eval(), x


def _check_close(got: GrapeOutput, ref: GrapeOutput, tol: float) -> None:
    """Each map's largest difference as a fraction of the map's largest fp32 magnitude, at most `tol`."""
    worst = [float((g.float() - r).abs().max() / r.abs().max()) for g, r in zip(got, ref)]
    assert max(worst) <= tol, worst


@pytest.mark.slow
@needs_bf16
def test_bf16_close_to_fp32_and_converted_once(tiny):
    from grapepose.inference.openvino import OpenVinoModel, cache_dir, openvino_ir, openvino_module

    model, x = tiny
    ir = openvino_ir(model)
    assert ir.parent.parent == cache_dir() / "openvino" and ir.is_file()
    ov = openvino_module(model, "bf16")
    assert isinstance(ov, OpenVinoModel) and ov.precision == "bf16" and ov.config is model.config
    with torch.no_grad():
        ref = model(x)
    got = ov(x)
    _check_close(got, ref, BF16_TOL)
    assert openvino_ir(model) == ir  # the cache: no second conversion
    torch.testing.assert_close(OpenVinoModel(ir, "bf16")(x).heatmaps, got.heatmaps, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def int8_files(tiny, tmp_path_factory):
    """The tiny net quantized on two synthetic scenes (the slow part: an ONNX export), and a third to test on."""
    from grapepose.export.quantize import calibration_images, quantize_int8
    from grapepose.inference.preprocess import network_input, normalize_images

    model, _ = tiny
    images, about = calibration_images(None, count=3, size=64)
    folder = tmp_path_factory.mktemp("int8")
    inputs = [network_input(im, model.config.test.base_size) for im in images[:2]]
    path = quantize_int8(model, folder / "tiny.int8.onnx", inputs, about=about)
    x = normalize_images(torch.from_numpy(images[2]).permute(2, 0, 1)[None])  # the network input `predict` makes
    return path, x


@pytest.mark.slow
@needs_vnni
def test_int8_file_round_trip(tiny, int8_files):
    from grapepose import PoseEstimator
    from grapepose.inference.openvino import OpenVinoModel
    from grapepose.export.quantize import CALIBRATION_KEY, PRECISION_KEY, onnx_metadata

    model, _ = tiny
    first, x = int8_files
    meta = onnx_metadata(first)
    assert meta[PRECISION_KEY] == "int8" and meta[CALIBRATION_KEY] == "3 synthetic crowd scenes (64 px, seed 2027)"
    est = PoseEstimator.from_pretrained(first, device="cpu")  # auto: the file's int8
    assert isinstance(est.predictor.model, OpenVinoModel) and est.predictor.precision.name == "int8"
    assert est.config.test.dtype == "int8"
    with torch.no_grad():
        ref = model(x)
    got = est.predictor.model(x)
    _check_close(got, ref, INT8_TOL)
    again = PoseEstimator.from_pretrained(first, device="cpu", precision="int8")  # loaded anew: the same outputs
    torch.testing.assert_close(again.predictor.model(x).refined_offsets, got.refined_offsets, rtol=0, atol=1e-6)
    people = est(np.zeros((64, 64, 3), np.uint8))
    assert people.keypoints.shape[1:] == (K, 3)
    with pytest.raises(ConfigError) as e:
        PoseEstimator.from_pretrained(first, device="cpu", precision="fp32")
    assert str(e.value) == "precision fp32: the model file is quantized to int8; use --precision int8 or auto"


@pytest.mark.slow
def test_int8_file_on_a_cpu_without_vnni_is_one_line(int8_files, monkeypatch):
    from grapepose import PoseEstimator

    path, _ = int8_files
    monkeypatch.setattr(prec, "cpu_features", lambda: frozenset({"avx2"}))
    with pytest.raises(ConfigError) as e:
        PoseEstimator.from_pretrained(path, device="cpu")
    assert str(e.value) == "precision int8: this CPU has none of avx512_vnni, avx_vnni, amx_int8; use fp32"


def test_other_modules_run_bf16_through_autocast(tiny):
    from grapepose.inference import Predictor

    model, _ = tiny
    pred = Predictor(model, device="cpu", dtype="bf16")
    assert pred.precision == prec.Precision("bf16", "torch") and pred.model is model
    assert pred.dtype == torch.bfloat16


def test_calibration_images_from_a_folder_in_name_order(tmp_path, shared_data):
    from grapepose.export.quantize import calibration_images

    for name in ("b.jpg", "a.jpg", "c.jpg"):
        shutil.copy(shared_data / "demo" / "crowd_01.jpg", tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    images, about = calibration_images(tmp_path, count=2)
    assert len(images) == 2 and about == f"2 images from {tmp_path.name}"
    synthetic_a, _ = calibration_images(None, count=2, size=64)
    synthetic_b, _ = calibration_images(None, count=2, size=64)
    assert all(np.array_equal(a, b) for a, b in zip(synthetic_a, synthetic_b))  # the default set is fixed
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as e:
        calibration_images(empty)
    assert str(e.value).startswith(f"{empty}: no images (")
