"""Checkpoints: our safetensors round trip, the authors' files, ImageNet backbone init, clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import timm
import torch
from torch import Tensor

from grapepose.cli.main import main
from grapepose.config import load_config
from grapepose.errors import CheckpointError
from grapepose.models import (
    GrapeNet,
    build_model,
    init_backbone_from_imagenet,
    load_model,
    read_checkpoint,
    read_model_info,
    save_model,
)

# Our top-level module -> the reference's, written from JBNU-VL/grape2dpose code/lib/models/grape_model.py:
# heads are ModuleList([Sequential(block), Conv2d]) ("X.0.0." block, "X.1." final conv), the 1x1/2x2
# input convs are Sequential(Conv2d, BatchNorm2d, ReLU), the upsampling is Sequential(BasicBlock_upsample)
# with `deconv` and `bn`, the adaptive block (DEKR's AdaptBlock) has transform_matrix_conv,
# translation_conv, adapt_conv (DeformConv2d) and a `regular_matrix` buffer.
_TO_REFERENCE = [
    ("backbone.hrnet.", "backbone."),
    ("neck.conv.", "bottleneck.0."),
    ("neck.bn.", "bottleneck.1."),
    ("heatmap_head.block.", "head_heatmap.0.0."),
    ("heatmap_head.out.", "head_heatmap.1."),
    ("offset_head.block.", "head_offset.0.0."),
    ("offset_head.out.", "head_offset.1."),
    ("encoder_input.conv.", "bottleneck_encoder.0."),
    ("encoder_input.bn.", "bottleneck_encoder.1."),
    ("decoder_input.conv.", "bottleneck_decoder.0."),
    ("decoder_input.bn.", "bottleneck_decoder.1."),
    ("encoder.layers.", "global_encoder.layers."),
    ("decoder.layers.", "global_decoder.layers."),
    ("upsample.conv.", "deconv.0.deconv."),
    ("upsample.bn.", "deconv.0.bn."),
    ("refined_offset_head.block.affine.", "head_offset_attention.0.0.transform_matrix_conv."),
    ("refined_offset_head.block.translation.", "head_offset_attention.0.0.translation_conv."),
    ("refined_offset_head.block.deform_conv.", "head_offset_attention.0.0.adapt_conv."),
    ("refined_offset_head.block.bn.", "head_offset_attention.0.0.bn."),
    ("refined_offset_head.out.", "head_offset_attention.1."),
    ("visibility_head.block.", "head_visibility_attention.0.0."),
    ("visibility_head.out.", "head_visibility_attention.1."),
]
_REGULAR_MATRIX = torch.tensor([[-1.0, -1, -1, 0, 0, 0, 1, 1, 1], [-1.0, 0, 1, -1, 0, 1, -1, 0, 1]])


def reference_state_dict(model: GrapeNet, prefix: str = "") -> dict[str, Tensor]:
    """What `torch.save(net.state_dict())` of the authors' fp16-wrapped network holds for these weights:
    reference names, fp16 weights, fp32 BatchNorm tensors, int64 counters, the adaptive grid buffer."""
    bn = {n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    out = {}
    for name, t in model.state_dict().items():
        ref = next(new + name[len(old) :] for old, new in _TO_REFERENCE if name.startswith(old))
        ref = ref.replace(".cross_attn.", ".multihead_attn.")
        half = t.is_floating_point() and name.rsplit(".", 1)[0] not in bn
        out[prefix + ref] = t.half() if half else t.clone()
        if name == "refined_offset_head.block.bn.weight":
            out[prefix + "head_offset_attention.0.0.regular_matrix"] = _REGULAR_MATRIX.half()
    return out


@pytest.fixture(scope="module")
def model() -> GrapeNet:
    torch.manual_seed(0)
    net = build_model("crowdpose_w18")
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so the test notices any mix-up
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.bias.normal_(0, 0.1, generator=g)
                m.num_batches_tracked.fill_(7)
    return net.eval()


@pytest.fixture(scope="module")
def images() -> Tensor:
    return torch.randn(2, 3, 64, 128, generator=torch.Generator().manual_seed(3))


def _outputs_equal(a: GrapeNet, b: GrapeNet, images: Tensor) -> None:
    with torch.inference_mode():
        for x, y in zip(a(images), b(images)):
            assert torch.equal(x, y)


def test_round_trip_is_bit_exact(model, images, tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    loaded = load_model(path)
    assert not loaded.training and loaded.config == model.config
    sd, sd2 = model.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)
    _outputs_equal(model, loaded, images)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary files left


def test_config_travels_with_the_file(tmp_path):
    cfg = load_config("coco_w18", ["model.global_context=false", "test.flip=false"])
    path = tmp_path / "abl.safetensors"
    save_model(build_model(cfg), path)
    loaded = load_model(path)
    assert loaded.config == cfg and not loaded.global_context


def test_info_record_round_trip(tmp_path, capsys):
    cfg = load_config("coco_w18s", ["model.d_model=32", "model.dim_feedforward=64", "model.nhead=2"])
    info = {"command": "grapepose train --preset coco_w18s", "trained_on": "synthetic crowds",
            "heldout_ap": {"sparse": 0.61, "crowd": 0.42}}  # fmt: skip
    src, dst = tmp_path / "plain.safetensors", tmp_path / "released.safetensors"
    save_model(build_model(cfg), src)
    assert read_model_info(src) == {} and load_model(src).info == {}
    (tmp_path / "info.json").write_text(__import__("json").dumps(info))
    assert main(["convert", str(src), "--out", str(dst), "--half", "--info", str(tmp_path / "info.json")]) == 0
    assert read_model_info(dst) == info
    loaded = load_model(dst)
    assert loaded.info == info and loaded.config == cfg
    again = tmp_path / "again.safetensors"
    save_model(loaded, again)  # the record travels with the model
    assert read_model_info(again) == info
    capsys.readouterr()
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert main(["convert", str(src), "--out", str(tmp_path / "x.safetensors"), "--info", str(tmp_path / "bad.json")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"grapepose convert: error: {tmp_path / 'bad.json'}: expected a JSON object, got a list"
    )
    assert not (tmp_path / "x.safetensors").exists()


def test_half_file_keeps_batchnorm_fp32(model, tmp_path):
    path = tmp_path / "half.safetensors"
    save_model(model, path, half=True)
    _, sd = read_checkpoint(path)
    assert sd["neck.conv.weight"].dtype == torch.float16 and sd["neck.bn.running_var"].dtype == torch.float32
    assert load_model(path).neck.conv.weight.dtype == torch.float32


def test_reference_names_cover_the_reference_network(model):
    sd = reference_state_dict(model)
    assert len(sd) == 1981  # the authors' OurNet state dict has 1981 entries (any width, any K)
    for name in [
        "backbone.stage4.2.fuse_layers.3.2.0.1.running_var", "backbone.transition3.3.0.0.weight",
        "global_decoder.layers.1.multihead_attn.in_proj_weight", "global_encoder.layers.2.norm2.bias",
        "head_offset_attention.0.0.adapt_conv.weight", "deconv.0.deconv.weight", "head_heatmap.1.bias",
        "bottleneck_encoder.0.weight", "head_visibility_attention.0.0.conv2.weight",
    ]:  # fmt: skip
        assert name in sd, name


@pytest.mark.parametrize("prefix,nest", [("1.", "best_state_dict"), ("module.1.", "state_dict"), ("", None)])
def test_authors_file_loads_strictly_and_matches(model, images, tmp_path, prefix, nest):
    ref = reference_state_dict(model, prefix)
    path = tmp_path / "model_crowdpose.pth.tar"
    torch.save({nest: ref, "epoch": 140, "model": "grape_model", "perf": 0.7} if nest else ref, path)
    loaded = load_model(path, preset="crowdpose_w18")
    direct = build_model("crowdpose_w18").eval()  # the same tensors (weights fp16-rounded), loaded directly
    bn = {n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    direct.load_state_dict(
        {k: v.half().float() if v.is_floating_point() and k.rsplit(".", 1)[0] not in bn else v
         for k, v in model.state_dict().items()}
    )  # fmt: skip
    _outputs_equal(loaded, direct, images)
    assert loaded.config.name == "crowdpose_w18"


def test_authors_file_architecture_is_inferred(model, tmp_path):
    path = tmp_path / "ref.pth"
    torch.save(reference_state_dict(model, "1."), path)
    loaded = load_model(path)
    assert loaded.config.name == "crowdpose_w18" and loaded.num_keypoints == 14


def test_convert_cli(model, images, tmp_path, capsys):
    src, dst = tmp_path / "ref.pth.tar", tmp_path / "out" / "crowdpose_w18.safetensors"
    torch.save({"state_dict": reference_state_dict(model, "module.1.")}, src)
    assert main(["convert", str(src), "--out", str(dst), "--preset", "crowdpose_w18"]) == 0
    assert "11,161,295 parameters" in capsys.readouterr().out
    _outputs_equal(load_model(dst), load_model(src, preset="crowdpose_w18"), images)
    assert main(["convert", str(src), "--out", str(dst), "--preset", "coco_w18"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "14 keypoints but preset coco_w18 expects 17" in err


def test_wrong_keypoint_count_is_one_clear_error(model, tmp_path):
    path = tmp_path / "cp.pth.tar"
    torch.save(reference_state_dict(model, "1."), path)
    with pytest.raises(CheckpointError) as e:
        load_model(path, preset="coco_w18")
    assert str(e.value) == f"{path}: the file has 14 keypoints but preset coco_w18 expects 17 (use a CrowdPose preset)"
    with pytest.raises(CheckpointError, match="hrnet_w18 backbone but preset crowdpose_w32 uses hrnet_w32"):
        load_model(path, preset="crowdpose_w32")


def test_missing_unexpected_and_misshapen_are_listed_together(model, tmp_path):
    sd = reference_state_dict(model, "1.")
    del sd["1.head_offset.1.bias"]
    sd["1.head_extra.weight"] = torch.zeros(3)
    sd["1.head_visibility_attention.1.weight"] = torch.zeros(13, 128, 1, 1)
    for i in range(6):  # many missing names: the message shows a few and the count
        del sd[f"1.global_encoder.layers.{i % 3}.linear{1 + i // 3}.weight"]
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as e:
        load_model(path, preset="crowdpose_w18")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{path}: weights do not fit the model; missing 7: ")
    assert "... (7 in all)" in msg and "unexpected 1: head_extra.weight" in msg
    assert "misshapen 1: visibility_head.out.weight [13, 128, 1, 1] (model [14, 128, 1, 1])" in msg


def test_nan_weights_are_named(model, tmp_path):
    path = tmp_path / "nan.safetensors"
    save_model(model, path)
    from safetensors.torch import load_file, save_file

    sd = load_file(path)
    sd["offset_head.out.weight"][0, 0] = float("nan")
    sd["neck.bn.running_var"][1] = float("inf")
    save_file(sd, path, metadata={"format": "grapepose", "version": "1", "config": '{"name": "x"}'})
    expected = "non-finite (NaN/Inf) weights in 2 tensors: neck.bn.running_var, offset_head.out.weight"
    with pytest.raises(CheckpointError, match=re.escape(expected)):
        load_model(path, preset="crowdpose_w18")


@pytest.mark.parametrize("suffix", [".safetensors", ".pth.tar"])
def test_truncated_file_is_one_line_error(model, tmp_path, suffix):
    path = tmp_path / f"m{suffix}"
    if suffix == ".safetensors":
        save_model(model, path)
    else:
        torch.save({"state_dict": reference_state_dict(model, "1.")}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as e:
        load_model(path, preset="crowdpose_w18")
    msg = str(e.value)
    assert msg.startswith(str(path)) and "truncated" in msg and "\n" not in msg


@pytest.mark.parametrize(
    "content,message",
    [
        (b"model: crowdpose_w32\nepochs: 140\n", "not a checkpoint (neither safetensors nor a PyTorch file)"),
        (b"", "empty file, not a checkpoint"),
    ],
)
def test_text_and_empty_files_are_rejected(tmp_path, content, message):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    assert str(e.value) == f"{path}: {message}"


def test_missing_file_and_non_weights(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        load_model(tmp_path / "nope.safetensors")
    path = tmp_path / "numbers.pth"
    torch.save({"epoch": 3, "perf": 0.5}, path)
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: no model weights found")):
        load_model(path)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "obj": Path("x")}, path)
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        load_model(path)


def test_imagenet_backbone_init(tmp_path):
    torch.manual_seed(0)
    classifier = timm.create_model("hrnet_w18", pretrained=False)  # HRNet's ImageNet classifier, same names
    sd = classifier.state_dict()
    assert any(k.startswith("incre_modules.") for k in sd) and "classifier.weight" in sd
    path = tmp_path / "hrnet_w18.pth"
    torch.save(sd, path)
    model = build_model("crowdpose_w18")
    init_backbone_from_imagenet(model, path)
    for k, v in model.backbone.hrnet.state_dict().items():
        assert torch.equal(v, sd[k]), k
    with pytest.raises(CheckpointError, match="misshapen"):
        init_backbone_from_imagenet(build_model("crowdpose_w32"), path)
    del sd["stage3.0.branches.0.0.conv1.weight"]
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="missing 1: stage3.0.branches.0.0.conv1.weight"):
        init_backbone_from_imagenet(model, path)


def test_convert_of_a_training_state_keeps_the_runs_config(tmp_path, capsys):
    """`grapepose convert runs/x/last.pt` (what docs/TRAINING.md ships the demo model with) keeps the run's
    test and input sizes; before, the config was guessed from the weights (the preset's base size 512)."""
    from grapepose.config import config_to_dict
    from grapepose.models import build_model, load_model

    cfg = load_config("coco_w18s", ["test.base_size=128", "data.input_size=128", "data.output_size=32"])
    model = build_model(cfg)
    state = {"version": 1, "model": model.state_dict(), "config": config_to_dict(cfg), "step": 7}
    torch.save(state, tmp_path / "last.pt")
    out = tmp_path / "model.safetensors"
    assert main(["convert", str(tmp_path / "last.pt"), "--out", str(out)]) == 0
    loaded = load_model(out)
    assert loaded.config.test.base_size == 128 and loaded.config.data.input_size == 128
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0)
