"""The one kernel switch (`grapepose.models.kernels`): GRAPEPOSE_KERNELS, `use_kernels`, the three ops it reaches."""

from __future__ import annotations

import json

import pytest
import torch

from grapepose.config import Config, config_from_dict
from grapepose.errors import ConfigError
from grapepose.models import AdaptiveBlock, blocks, build_model, load_model, save_model, transformer
from grapepose.models.kernels import kernel_choice, own_kernels, use_kernels
from grapepose.models.transformer import EncoderLayer

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_environment_variable_is_read_at_each_use(monkeypatch):
    monkeypatch.delenv("GRAPEPOSE_KERNELS", raising=False)
    assert kernel_choice() == "auto" and own_kernels(CPU) and not own_kernels(CUDA)
    monkeypatch.setenv("GRAPEPOSE_KERNELS", "torch")
    assert kernel_choice() == "torch" and not own_kernels(CPU)
    monkeypatch.setenv("GRAPEPOSE_KERNELS", " Own ")
    assert own_kernels(CPU) and own_kernels(CUDA)
    monkeypatch.setenv("GRAPEPOSE_KERNELS", "fast")
    with pytest.raises(ConfigError, match="^GRAPEPOSE_KERNELS='fast' is not one of auto, own, torch$"):
        kernel_choice()


def test_use_kernels_overrides_the_environment_for_its_block(monkeypatch):
    monkeypatch.setenv("GRAPEPOSE_KERNELS", "torch")
    with use_kernels("own"):
        assert own_kernels(CUDA)
        with use_kernels("auto"):
            assert own_kernels(CPU) and not own_kernels(CUDA)
        assert kernel_choice() == "own"
    assert kernel_choice() == "torch"
    with pytest.raises(ValueError, match="^kernels must be one of auto, own, torch, got 'sdpa'$"):
        with use_kernels("sdpa"):
            pass


def _spy(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def spy(*args, **kwargs):
        calls.append(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return calls


@pytest.mark.parametrize("choice,own", [("auto", True), ("own", True), ("torch", False)])
def test_the_choice_reaches_deform_conv_attention_and_dropout(monkeypatch, choice, own):
    torch.manual_seed(0)
    deform = _spy(monkeypatch, blocks, "deform_conv3x3")
    reference = _spy(monkeypatch, blocks, "deform_conv3x3_torchvision")
    attention = _spy(monkeypatch, transformer, "dropout_attention")
    masks = _spy(monkeypatch, transformer, "keep_mask")
    layer = EncoderLayer(8, 2, 16, dropout=0.1).train()
    with use_kernels(choice):
        AdaptiveBlock(4)(torch.randn(1, 4, 5, 6))
        layer(torch.randn(2, 6, 8), torch.zeros(6, 8))
    assert (len(deform), len(reference)) == ((1, 0) if own else (0, 1))
    assert bool(attention) == own and bool(masks) == own


def test_files_that_name_a_deformable_conv_kernel_still_load(tmp_path, caplog):
    """Saved configs may name a kernel (`model.deform_impl`): "auto" is dropped quietly, others with a warning."""
    assert config_from_dict({"model": {"deform_impl": "auto"}}) == Config() and not caplog.records
    assert config_from_dict({"model": {"deform_impl": "torchvision", "d_model": 64}}).model.d_model == 64
    assert caplog.records[-1].getMessage() == (
        "model.deform_impl='torchvision' is ignored: set GRAPEPOSE_KERNELS to choose the kernels (auto, own, torch)")
    from safetensors import safe_open
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = build_model("crowdpose_w18s").eval()
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    with safe_open(str(path), framework="pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    config = json.loads(metadata["config"])
    config["model"]["deform_impl"] = "auto"
    save_file(tensors, str(path), metadata={**metadata, "config": json.dumps(config)})
    loaded = load_model(path)
    assert loaded.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
