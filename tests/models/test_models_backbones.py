"""The one backbone table: presets, sniffing and conversion agree on every variant (W18s included)."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from grapepose.backbones import BACKBONES, backbone_by_suffix, identify_backbone, stage1_blocks_of
from grapepose.cli.main import main
from grapepose.config import PRESETS
from grapepose.errors import CheckpointError
from grapepose.models import build_model, load_model, save_model
from grapepose.models.authors import infer_architecture


def test_every_preset_backbone_is_in_the_table():
    for name, cfg in PRESETS.items():
        suffix = name.rsplit("_", 1)[1]
        assert backbone_by_suffix(suffix).name == cfg.model.backbone, name


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_table_matches_timm(name):
    b = BACKBONES[name]
    sd = timm.create_model(b.timm_name, pretrained=False, features_only=True, feature_location="").state_dict()
    assert sd["transition1.0.0.weight"].shape[0] == b.width
    assert stage1_blocks_of(sd, prefix="") == b.stage1_blocks
    assert identify_backbone(b.width, b.stage1_blocks) is b


def test_unknown_block_count_prefers_the_reference_network():
    assert identify_backbone(18, None).name == "hrnet_w18"
    assert identify_backbone(18, 3) is None and identify_backbone(64, 4) is None


@pytest.fixture(scope="module")
def w18s(tmp_path_factory):
    """A coco_w18s network saved with metadata (safetensors) and as a bare state dict (.pth)."""
    torch.manual_seed(0)
    model = build_model("coco_w18s").eval()
    folder = tmp_path_factory.mktemp("w18s")
    save_model(model, folder / "meta.safetensors")
    torch.save(model.state_dict(), folder / "bare.pth")
    return model, folder


@pytest.mark.parametrize("file", ["meta.safetensors", "bare.pth"])
def test_w18s_round_trip(w18s, file, tmp_path, capsys, monkeypatch):
    model, folder = w18s
    path = folder / file
    assert infer_architecture(model.state_dict())[1] == "hrnet_w18_small_v2"
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want = model(x)
    # load with and without the preset
    for preset in (None, "coco_w18s"):
        loaded = load_model(path, preset=preset)
        assert loaded.config.model.backbone == "hrnet_w18_small_v2" and loaded.config.name == "coco_w18s"
        with torch.inference_mode():
            assert all(torch.equal(a, b) for a, b in zip(loaded(x), want))
    with pytest.raises(CheckpointError, match="hrnet_w18_small_v2 backbone but preset coco_w18 uses hrnet_w18$"):
        load_model(path, preset="coco_w18")
    # convert (no preset: sniffed)
    dst = tmp_path / "converted.safetensors"
    assert main(["convert", str(path), "--out", str(dst)]) == 0
    assert "coco_w18s" in capsys.readouterr().out
    assert load_model(dst).config.model.backbone == "hrnet_w18_small_v2"
    # export loads the same network (the ONNX writing itself is tested in tests/export)
    seen = {}

    def fake_export(net, out, **kw):
        seen["backbone"] = net.config.model.backbone
        out.write_bytes(b"onnx")
        return out

    monkeypatch.setattr("grapepose.export.onnx.export_onnx", fake_export)
    assert main(["export", "--weights", str(path), "--out", str(tmp_path / "m.onnx"), "--no-check"]) == 0
    assert seen["backbone"] == "hrnet_w18_small_v2"
    # predict
    from grapepose import PoseEstimator

    est = PoseEstimator.from_pretrained(path, device="cpu", overrides=["test.base_size=64", "test.flip=false"])
    people = est.predict([np.zeros((64, 64, 3), np.uint8)])[0]
    assert people.keypoints.shape[1:] == (17, 3)


def test_block_indices_are_ascii_digits_only():
    """A key such as `layer1.².conv` (str.isdigit is true for '²', int() refuses it) is not a block index."""
    keys = ["backbone.hrnet.layer1.0.conv1.weight", "backbone.hrnet.layer1.\u00b2.conv1.weight"]
    assert stage1_blocks_of(keys) == 1
