import numpy as np
import pytest
import torch
import torchvision
from people_matching import pair_people
from torch import nn

from grapepose.cli.main import main
from grapepose.errors import CheckpointError, GrapeposeError
from grapepose.export.onnx import export_onnx
from grapepose.inference.onnx_runtime import OnnxModel
from grapepose.models import AdaptiveBlock, GrapeOutput, load_model
from grapepose.models.kernels import use_kernels


class _Deform(nn.Module):
    """Two deformable convolutions between ordinary ones (no mask, stride 1; mask, stride 2, 2 groups)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, stride=4, padding=1)
        self.offsets1 = nn.Conv2d(4, 18, 3, padding=1)
        self.offsets2 = nn.Conv2d(4, 36, 3, stride=2, padding=1)
        self.mask2 = nn.Conv2d(4, 18, 3, stride=2, padding=1)
        self.weight = nn.Parameter(torch.randn(6, 2, 3, 3))  # 2 weight groups of 2 input channels
        self.bias = nn.Parameter(torch.randn(6))

    def forward(self, x: torch.Tensor) -> GrapeOutput:
        f = self.stem(x)
        y1 = torchvision.ops.deform_conv2d(f, 3.0 * self.offsets1(f), self.weight, self.bias, padding=1)
        mask = torch.sigmoid(self.mask2(f))
        y2 = torchvision.ops.deform_conv2d(
            f, 3.0 * self.offsets2(f), self.weight, self.bias, stride=2, padding=1, mask=mask
        )
        return GrapeOutput(y1[:, :3], y1[:, 3:5], y2, None)


class _Adaptive(nn.Module):
    """A stride-4 stem, GrapeNet's adaptive block and four output slices (GrapeNet's output shape)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.block = AdaptiveBlock(8)
        with torch.no_grad():
            self.block.affine.weight.mul_(3.0)  # sampling positions well off the grid, some outside

    def forward(self, x: torch.Tensor) -> GrapeOutput:
        y = self.block(self.stem(x))
        return GrapeOutput(y[:, :3], y[:, 3:5], y[:, 5:7], y[:, 7:])


def _op_domains(path) -> dict[str, set[str]]:
    """Operator types by domain over the graph, its subgraphs and its local functions."""
    import onnx

    model = onnx.load(str(path))
    found: dict[str, set[str]] = {}

    def walk(nodes) -> None:
        for node in nodes:
            found.setdefault(node.domain, set()).add(node.op_type)
            for attr in node.attribute:
                for g in [attr.g] if attr.HasField("g") else list(attr.graphs):
                    walk(g.node)

    walk(model.graph.node)
    for function in model.functions:
        found.setdefault(f"function:{function.domain}", set()).add(function.name)
        walk(function.node)
    return found


def _assert_same_outputs(ort_model, model, sizes, atol=1e-4) -> None:
    for b, hw in sizes:
        x = torch.randn(b, 3, *hw, generator=torch.Generator().manual_seed(b))
        with torch.no_grad():
            ref = model(x)
        got = ort_model(x)
        for name, a, e in zip(GrapeOutput._fields, got, ref):
            if e is None:
                assert a is None, name
                continue
            assert a.shape == e.shape, name
            torch.testing.assert_close(a, e, atol=atol, rtol=atol, msg=name)


def test_adaptive_block_exports_as_standard_operators_or_deformconv(tmp_path):
    torch.manual_seed(0)
    model = _Adaptive().eval()
    portable = export_onnx(model, tmp_path / "portable.onnx", example_size=(64, 64))
    ops = _op_domains(portable)
    assert set(ops) == {""} and "GridSample" in ops[""] and "DeformConv" not in ops[""]
    deform = export_onnx(model, tmp_path / "deform.onnx", example_size=(64, 64), deform_op=True)
    ops = _op_domains(deform)
    assert set(ops) == {""} and "DeformConv" in ops[""] and "GridSample" not in ops[""]
    for path in (portable, deform):
        with use_kernels("torch"):  # torchvision's deform_conv2d as the reference for both files
            _assert_same_outputs(OnnxModel(path), model, [(2, (64, 64)), (1, (128, 192))])


def test_deform_conv2d_translates_to_onnx_deformconv(tmp_path):
    import onnx

    torch.manual_seed(0)
    model = _Deform().eval()
    path = export_onnx(model, tmp_path / "deform.onnx", example_size=(64, 64), deform_op=True)
    assert [n.op_type for n in onnx.load(str(path)).graph.node].count("DeformConv") == 2
    _assert_same_outputs(OnnxModel(path), model, [(2, (64, 64)), (2, (128, 192))])


def test_export_rejects_bad_arguments(tmp_path):
    model = _Adaptive()
    with pytest.raises(GrapeposeError, match="^opset 18 has no DeformConv; use --opset 19 or higher with --deform-op$"):
        export_onnx(model, tmp_path / "m.onnx", opset=18, deform_op=True)
    with pytest.raises(GrapeposeError, match="^opset 17 is older than the exporter writes; use --opset 18 or higher$"):
        export_onnx(model, tmp_path / "m.onnx", opset=17)
    with pytest.raises(GrapeposeError, match="^example size 100x64 must be positive multiples of 64$"):
        export_onnx(model, tmp_path / "m.onnx", example_size=(100, 64))
    assert not list(tmp_path.iterdir())


def test_network_exports_standard_operators_matching_pytorch(tiny_checkpoint, exported):
    path, printed = exported
    assert "opset 18, standard operators" in printed and "max abs difference" in printed
    ops = _op_domains(path)
    assert set(ops) == {""}, ops  # the default ONNX domain only: no custom ops, no local functions
    assert "GridSample" in ops[""] and "DeformConv" not in ops[""]
    model = load_model(tiny_checkpoint)
    exact = load_model(tiny_checkpoint).double()
    ort_model = OnnxModel(path)
    assert ort_model.config == model.config
    for b, hw in [(2, (128, 128)), (1, (128, 192)), (3, (64, 64))]:  # dynamic batch, height and width
        x = torch.randn(b, 3, *hw, generator=torch.Generator().manual_seed(b))
        with torch.no_grad():
            ref, ref64 = model(x), exact(x.double())
        got = ort_model(x)
        for name, a, e, e64 in zip(GrapeOutput._fields, got, ref, ref64):
            assert a.shape == e.shape == (b, e.shape[1], hw[0] // 4, hw[1] // 4), name
            # This calibrated random network amplifies rounding: its fp32 outputs are ~1e-4 of their
            # scale (~5) away from fp64. onnxruntime must be as exact as PyTorch's fp32.
            ort_error, torch_error = (a.double() - e64).abs().max(), (e.double() - e64).abs().max()
            assert ort_error <= 2 * torch_error + 1e-5, (name, ort_error, torch_error)
            torch.testing.assert_close(a, e, atol=1e-3, rtol=1e-3, msg=name)


def test_export_cli_errors(tmp_path, capsys, monkeypatch):
    import grapepose.api

    monkeypatch.setattr(grapepose.api, "DEMO_WEIGHTS", tmp_path / "weights" / "demo.safetensors")
    assert main(["export", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "give --weights" in capsys.readouterr().err
    assert main(["export", "--weights", str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "none.safetensors: no such checkpoint file" in err
    assert main(["export", "--weights", "demo", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "the bundled demo model is missing from this installation" in capsys.readouterr().err
    out = ["--out", str(tmp_path / "x.onnx")]
    assert main(["export", "--preset", "crowdpose_w18", "--opset", "18", "--deform-op", *out]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("error: opset 18 has no DeformConv; use --opset 19 or higher with --deform-op")
    assert main(["export", "--preset", "crowdpose_w18", "--opset", "16", *out]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("error: opset 16 is older than the exporter writes; use --opset 18 or higher")
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
    owner = pair_people(got_kp, want_kp)  # people whose scores nearly tie may come in either order
    assert np.mean(np.abs(got_kp - want_kp[owner])[..., :2].max(-1) < 0.05) > 0.97
    got_joints, want_joints = (np.array([e["keypoint_scores"] for e in x]) for x in (got, want))
    assert np.mean(np.abs(got_joints - want_joints[owner]) < 1e-3) > 0.9


def _assert_same_people(a, b) -> None:
    """Same people, with a tolerance for decoding's discontinuities.

    Outputs differ by ~1e-4 relative (float32 summation order). Decoding is continuous almost
    everywhere, but reads maps at floor(coordinates) and snaps joints to the nearest of 30 heatmap
    peaks; in an untrained network many peaks are near-ties, so a few joints (~1%) jump. Trained
    networks have clear peaks. The rounding may also swap two people whose scores nearly tie, so
    people are paired by their joints first.
    """
    assert len(a) == len(b) > 0
    owner = pair_people(a.keypoints, b.keypoints)
    close = np.abs(a.keypoints - b.keypoints[owner])[..., :2].max(-1) < 0.05
    assert close.mean() > 0.97, f"{close.mean():.3f} of joints agree"
    assert np.mean(np.abs(a.scores - b.scores[owner]) < 1e-3) > 0.9
    assert np.mean(np.abs(a.joint_scores - b.joint_scores[owner])[close] < 1e-3) > 0.9  # the visibility head's, too


def test_export_doc_snippet_finds_the_people_of_the_decoder(exported, shared_data):
    """docs/EXPORT.md's plain-onnxruntime snippet, run as written on a real photo."""
    import re
    from pathlib import Path

    from grapepose.api import PoseEstimator

    path, _ = exported
    doc = (Path(__file__).resolve().parents[2] / "docs" / "EXPORT.md").read_text()
    snippets = [b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if "ort.InferenceSession" in b]
    assert len(snippets) == 1 and '"model.onnx"' in snippets[0] and '"photo.jpg"' in snippets[0]
    photo = shared_data / "demo" / "crowd_03.jpg"
    code = snippets[0].replace('"model.onnx"', repr(str(path))).replace('"photo.jpg"', repr(str(photo)))
    namespace: dict = {}
    exec(compile(code, "docs/EXPORT.md", "exec"), namespace)
    people = namespace["people"]
    assert 0 < len(people) <= 30 and all(j.shape == (14, 2) for _, j in people)

    # The full decoder with the steps the snippet leaves out switched off keeps a subset of its people.
    plain = ["test.flip=false", "test.refine=false", "test.snap_visibility_threshold=1", "test.base_size=512"]
    poses = PoseEstimator.from_pretrained(path, device="cpu", overrides=plain)(photo)
    assert len(poses) > 0
    joints = np.stack([j for _, j in people])  # [P, K, 2]
    for person in poses.keypoints[..., :2]:  # the same input to the bit: the same joints to rounding
        assert np.abs(joints - person).max(axis=(1, 2)).min() < 1e-3
