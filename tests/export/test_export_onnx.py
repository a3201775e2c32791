import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from grapepose.cli.main import main
from grapepose.errors import CheckpointError, GrapeposeError
from grapepose.export.onnx import export_onnx
from grapepose.export.runtime import OnnxModel
from grapepose.models import GrapeOutput, load_model


class _Deform(nn.Module):
    """A deformable convolution between ordinary convolutions, shaped like GrapeNet's outputs."""

    def __init__(self, use_mask: bool, stride: int, offset_groups: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, stride=4, padding=1)
        self.offsets = nn.Conv2d(4, 18 * offset_groups, 3, stride=stride, padding=1)
        self.mask = nn.Conv2d(4, 9 * offset_groups, 3, stride=stride, padding=1) if use_mask else None
        self.weight = nn.Parameter(torch.randn(6, 2, 3, 3))  # 2 weight groups of 2 input channels
        self.bias = nn.Parameter(torch.randn(6))
        self.stride = stride

    def forward(self, x: torch.Tensor) -> GrapeOutput:
        f = self.stem(x)
        mask = None if self.mask is None else torch.sigmoid(self.mask(f))
        y = torchvision.ops.deform_conv2d(
            f, 3.0 * self.offsets(f), self.weight, self.bias, stride=self.stride, padding=1, mask=mask
        )
        return GrapeOutput(y[:, :3], y[:, 3:5], y[:, 4:6], None)


@pytest.mark.parametrize("use_mask,stride,offset_groups", [(False, 1, 1), (True, 2, 2)])
def test_deform_conv2d_translates_to_onnx_deformconv(tmp_path, use_mask, stride, offset_groups):
    import onnx

    torch.manual_seed(0)
    model = _Deform(use_mask, stride, offset_groups).eval()
    path = export_onnx(model, tmp_path / "deform.onnx", example_size=(64, 64))
    assert [n.op_type for n in onnx.load(str(path)).graph.node].count("DeformConv") == 1
    ort_model = OnnxModel(path)
    for hw in ((64, 64), (128, 192)):
        x = torch.randn(2, 3, *hw)
        with torch.no_grad():
            ref = model(x)
        got = ort_model(x)
        assert got.visibility is None
        for a, b in zip(got[:3], ref[:3]):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_export_rejects_bad_arguments(tmp_path):
    model = _Deform(False, 1, 1)
    with pytest.raises(GrapeposeError, match="opset 17 has no DeformConv"):
        export_onnx(model, tmp_path / "m.onnx", opset=17)
    with pytest.raises(GrapeposeError, match="multiples of 64"):
        export_onnx(model, tmp_path / "m.onnx", example_size=(100, 64))
    assert not list(tmp_path.iterdir())


def test_onnx_matches_pytorch_on_two_sizes(tiny_checkpoint, exported):
    path, printed = exported
    assert "max abs difference" in printed
    model = load_model(tiny_checkpoint)
    ort_model = OnnxModel(path)
    assert ort_model.config == model.config
    torch.manual_seed(1)
    for hw in ((128, 128), (128, 192)):
        x = torch.randn(2, 3, *hw)
        with torch.no_grad():
            ref = model(x)
        got = ort_model(x)
        assert isinstance(got, GrapeOutput)
        for name, a, b in zip(GrapeOutput._fields, got, ref):
            assert a.shape == b.shape == (2, b.shape[1], hw[0] // 4, hw[1] // 4), name
            # The calibrated random network's maps reach ~10, so 1e-3 is absolute or relative.
            torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3, msg=name)


def test_export_cli_errors(tmp_path, capsys, monkeypatch):
    import grapepose.api

    monkeypatch.setattr(grapepose.api, "DEMO_WEIGHTS", tmp_path / "weights" / "demo.safetensors")
    assert main(["export", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "give --weights" in capsys.readouterr().err
    assert main(["export", "--weights", str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "none.safetensors: no such checkpoint file" in err
    assert main(["export", "--weights", "demo", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "demo weights are not bundled yet" in capsys.readouterr().err
    assert main(["export", "--preset", "crowdpose_w18", "--opset", "17", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "opset 17 has no DeformConv" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_onnx_model_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="bad.onnx: cannot load ONNX model"):
        OnnxModel(bad)
    with pytest.raises(CheckpointError, match="ONNX file not found"):
        OnnxModel(tmp_path / "missing.onnx")


def test_onnxruntime_predictions_equal_pytorch(tiny_checkpoint, exported, shared_data, tmp_path, capsys):
    import json
    from dataclasses import replace

    from grapepose.api import PoseEstimator
    from grapepose.io import VideoReader
    from grapepose.io.files import read_image

    path, _ = exported
    # Without the Gaussian fit: on an untrained network's noisy maps a converged fit may land far
    # away, so 1e-4 differences in the maps would move joints; the fit is the same code either way.
    no_fit = ["test.refine=false"]
    torch_est = PoseEstimator.from_pretrained(tiny_checkpoint, device="cpu", overrides=no_fit)
    ort_est = PoseEstimator.from_pretrained(path, device="cpu", overrides=no_fit)  # .onnx -> onnxruntime
    assert ort_est.config.test == replace(torch_est.config.test, dtype="fp32")  # ORT runs the fp32 graph
    with VideoReader(shared_data / "demo" / "video.mp4") as reader:
        frame = next(iter(reader))
    image = read_image(shared_data / "demo" / "crowd_03.jpg")
    for a, b in zip(ort_est([image, frame]), torch_est([image, frame])):
        _assert_same_people(a, b)

    # the CLI's onnxruntime backend gives the same JSON as the API's torch model
    out = tmp_path / "out"
    image_path = shared_data / "demo" / "crowd_03.jpg"
    args = ["predict", str(image_path), "--weights", str(path), "--backend", "onnxruntime", "--out", str(out),
            "--score-thr", "0", "--no-draw", "--device", "cpu", "--set", "test.refine=false"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    got = json.loads((out / "results.json").read_text())
    want = torch_est(image_path).to_coco(0, file_name="crowd_03.jpg")
    assert len(got) == len(want) and {g["file_name"] for g in got} == {"crowd_03.jpg"}
    got_kp = np.array([g["keypoints"] for g in got]).reshape(len(got), -1, 3)
    want_kp = np.array([w["keypoints"] for w in want]).reshape(len(want), -1, 3)
    assert np.mean(np.abs(got_kp - want_kp)[..., :2].max(-1) < 0.05) > 0.97


def _assert_same_people(a, b) -> None:
    """Same people, with a tolerance for decoding's discontinuities.

    Outputs differ by ~1e-4 relative (float32 summation order). Decoding is continuous almost
    everywhere, but reads maps at floor(coordinates) and snaps joints to the nearest of 30 heatmap
    peaks; in an untrained network many peaks are near-ties, so a few joints (~1%) jump. Trained
    networks have clear peaks.
    """
    assert len(a) == len(b) > 0
    close = np.abs(a.keypoints - b.keypoints)[..., :2].max(-1) < 0.05
    assert close.mean() > 0.97, f"{close.mean():.3f} of joints agree"
    assert np.mean(np.abs(a.scores - b.scores) < 1e-3) > 0.9
