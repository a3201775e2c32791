"""GrapeNet architecture: parameter counts, output shapes, ablation, blocks, input validation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import deform_conv2d

from grapepose.config import ModelConfig, load_config
from grapepose.errors import GrapeposeError
from grapepose.models import GLOBAL_CONTEXT_MODULES, AdaptiveBlock, GrapeNet, GrapeOutput, HRNetBackbone, build_model


@pytest.fixture(scope="module")
def w18s() -> GrapeNet:
    """The smallest preset: every shape and behaviour test below holds for any backbone."""
    torch.manual_seed(0)
    return build_model("crowdpose_w18s").eval()


@pytest.mark.parametrize("preset,k,total", [("crowdpose_w32", 14, 30_911_291), ("coco_w32", 17, 30_917_357)])
def test_parameter_counts_match_reference(preset, k, total):
    model = build_model(preset)
    assert model.num_keypoints == k
    assert sum(p.numel() for p in model.parameters()) == total
    assert sum(p.numel() for p in model.backbone.parameters()) == 29_305_536
    assert model.backbone.out_channels == 480 and model.backbone.branch_channels == (32, 64, 128, 256)
    assert model.config.name == preset


@pytest.mark.parametrize("preset,channels", [("crowdpose_w18", 270), ("crowdpose_w18s", 270), ("coco_w48", 720)])
def test_backbone_output_channels(preset, channels):
    model = build_model(preset)
    assert model.backbone.out_channels == channels and model.neck.conv.in_channels == channels


def test_build_from_config_and_model_config():
    cfg = load_config("coco_w18s", ["model.global_context=false"])
    assert build_model(cfg).config is cfg
    model = build_model(ModelConfig(backbone="hrnet_w18_small_v2", num_keypoints=5, global_context=False))
    assert model.num_keypoints == 5 and model.config.model.num_keypoints == 5


def test_forward_shapes_and_batch_independence(w18s):
    # 64 x 128: the smallest non-square input (HRNet's 1/32 branch is 2 x 4, the transformer 8 x 16
    # tokens), so rows and columns cannot be swapped unnoticed.
    torch.manual_seed(1)
    height, width = 64, 128
    images = torch.randn(2, 3, height, width)
    with torch.inference_mode():
        out = w18s(images)
        single = w18s(images[1:])
    h, w = height // 4, width // 4
    assert isinstance(out, GrapeOutput)
    assert out.heatmaps.shape == (2, 15, h, w)
    assert out.offsets.shape == out.refined_offsets.shape == (2, 28, h, w)
    assert out.visibility is not None and out.visibility.shape == (2, 14, h, w)
    assert single.heatmaps.shape == (1, 15, h, w) and single.visibility.shape == (1, 14, h, w)
    for a, b in zip(single, out):  # eval mode: an image's output does not depend on the batch
        torch.testing.assert_close(a[0], b[1], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(out.refined_offsets[0], out.refined_offsets[1])  # images do differ


def test_without_global_context():
    torch.manual_seed(0)
    model = build_model(load_config("coco_w18s", ["model.global_context=false"])).eval()
    assert not any(hasattr(model, name) for name in GLOBAL_CONTEXT_MODULES)
    assert list(model.global_context_parameters()) == []
    with torch.inference_mode():
        out = model(torch.randn(2, 3, 64, 128))
    assert out.heatmaps.shape == (2, 18, 16, 32) and out.offsets.shape == (2, 34, 16, 32)
    assert out.refined_offsets is out.offsets and out.visibility is None


def test_global_context_parameters_are_the_transformer_side(w18s):
    side = {id(p) for p in w18s.global_context_parameters()}
    expected = {id(p) for name in GLOBAL_CONTEXT_MODULES for p in getattr(w18s, name).parameters()}
    assert side == expected
    rest = {id(p) for p in w18s.parameters()} - side
    assert {id(p) for p in w18s.backbone.parameters()} <= rest
    assert {id(p) for p in w18s.heatmap_head.parameters()} <= rest


@pytest.mark.parametrize(
    "shape,message",
    [
        ((3, 64, 64), "3-D tensor of shape (3, 64, 64)"),
        ((1, 1, 64, 64), "got 1 in images of shape (1, 1, 64, 64)"),
        ((1, 3, 64, 100), "multiples of 32, got images of shape (1, 3, 64, 100)"),
        ((2, 3, 80, 64), "multiples of 32, got images of shape (2, 3, 80, 64)"),
    ],
)
def test_bad_input_shapes_are_rejected(w18s, shape, message):
    with pytest.raises(GrapeposeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        w18s(torch.zeros(shape))


def test_integer_images_are_rejected(w18s):
    with pytest.raises(ValueError, match="float images"):
        w18s(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


def _adaptive_reference(block: AdaptiveBlock, x: Tensor) -> Tensor:
    """DEKR's algorithm written plainly: per-pixel 2x2 matrix times the regular grid, minus the grid,
    plus the translation; (y, x) pairs per tap; deformable conv, BN, residual, ReLU."""
    n, _, h, w = x.shape
    grid = torch.tensor([[-1.0, -1, -1, 0, 0, 0, 1, 1, 1], [-1.0, 0, 1, -1, 0, 1, -1, 0, 1]])  # rows: y, x
    matrix = block.affine(x).permute(0, 2, 3, 1).reshape(n * h * w, 2, 2)
    offset = (matrix @ grid - grid).transpose(1, 2).reshape(n, h, w, 18).permute(0, 3, 1, 2).clone()
    t = block.translation(x)
    offset[:, 0::2] += t[:, 0:1]
    offset[:, 1::2] += t[:, 1:2]
    out = block.bn(deform_conv2d(x, offset, block.deform_conv.weight, padding=(1, 1)))
    return F.relu(out + x)


def test_adaptive_block_matches_dekr_formulation():
    torch.manual_seed(0)
    block = AdaptiveBlock(8).eval()
    with torch.no_grad():
        block.affine.weight.mul_(3.0)  # sampling positions well off the grid
        block.bn.running_mean.uniform_(-0.2, 0.2)
        block.bn.running_var.uniform_(0.5, 2.0)
        x = torch.randn(2, 8, 12, 10)
        torch.testing.assert_close(block(x), _adaptive_reference(block, x), atol=1e-5, rtol=1e-5)


def test_backbone_rejects_unknown_width():
    with pytest.raises(ValueError, match="HRNet backbone must be one of .*got 40"):
        HRNetBackbone(40)


def test_bf16_autocast_and_channels_last_on_cpu(w18s):
    torch.manual_seed(2)
    images = torch.randn(1, 3, 64, 128)
    with torch.inference_mode():
        ref = w18s(images)
        cl = w18s.to(memory_format=torch.channels_last)(images.contiguous(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = w18s(images)
    w18s.to(memory_format=torch.contiguous_format)
    for a, b, c in zip(ref, cl, low):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
        assert c.shape == a.shape and torch.isfinite(c.float()).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_autocast_channels_last_close_to_fp32(dtype):
    torch.manual_seed(0)
    model = build_model("crowdpose_w18").cuda().eval()
    images = torch.randn(2, 3, 128, 128, device="cuda")
    with torch.inference_mode():
        ref = model(images)
        model = model.to(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=dtype):
            low = model(images.contiguous(memory_format=torch.channels_last))
    for a, b in zip(ref, low):
        scale = a.abs().max().clamp_min(1e-3)
        assert ((b.float() - a).abs().max() / scale) < 0.05


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = build_model("coco_w18s").train()  # DDP without find_unused_parameters needs this
    out = model(torch.randn(2, 3, 64, 64))
    sum(t.float().square().mean() for t in out if t is not None).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_small_preset_fits_a_16_mib_fp16_release(tmp_path):
    from grapepose.models import load_model, save_model

    torch.manual_seed(0)
    model = build_model("coco_w18s").eval()
    assert model.backbone.variant == "hrnet_w18_small_v2" and model.backbone.out_channels == 270
    assert sum(p.numel() for p in model.parameters()) * 2 < 16 * 2**20
    path = tmp_path / "small.safetensors"
    save_model(model, path, half=True)
    assert path.stat().st_size < 16 * 2**20
    loaded = load_model(path)
    assert loaded.config.model.backbone == "hrnet_w18_small_v2"
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        out, ref = loaded(x), model(x)
    assert out.heatmaps.shape == (1, 18, 16, 32) and out.visibility.shape == (1, 17, 16, 32)
    for a, b in zip(out, ref):  # fp16 weights: close to the fp32 network
        assert (a - b).abs().max() < 1e-2 * b.abs().max()
