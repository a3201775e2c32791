"""CUDA-only: mixed-precision training steps, channels_last, and the fused SDPA (flash) attention path.

Run on the GPU machine by `./dev gpu-run` (its `cuda_tests` phase selects `-k cuda`); skipped elsewhere.
"""

from __future__ import annotations

import pytest
import torch

from grapepose.bench.train import random_batch
from grapepose.config import load_config
from grapepose.engine.losses import GrapeLoss
from grapepose.engine.optim import build_optimizer
from grapepose.engine.precision import resolve_precision
from grapepose.engine.step import apply_update, forward_backward
from grapepose.models import build_model
from grapepose.models.transformer import Attention

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
SMALL = ["model.d_model=64", "model.dim_feedforward=128", "model.nhead=2", "data.input_size=128", "data.output_size=32"]


def train_steps(device: str, amp: str, steps: int = 3) -> tuple[list[dict[str, float]], float, torch.nn.Module]:
    """`steps` trainer steps (engine.step) of a small W18s network on random targets; (losses, weight change, net)."""
    torch.manual_seed(0)
    cfg = load_config("crowdpose_w18s", [*SMALL, f"train.amp={amp}", "train.lr=1e-3"])
    dev = torch.device(device)
    model = build_model(cfg).to(dev).train()
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    before = torch.cat([p.detach().flatten().float() for p in model.parameters()]).clone()
    precision = resolve_precision(cfg.train.amp, dev)
    optimizer, scaler = build_optimizer(model, cfg.train), precision.scaler()
    criterion = GrapeLoss.from_config(cfg.train)
    history = []
    for i in range(steps):
        batch = random_batch(2, 128, cfg.model.num_keypoints, seed=i)
        losses = forward_backward(model, batch, criterion, precision, scaler, optimizer, dev)
        apply_update(model, optimizer, scaler, None, cfg.train.grad_clip)
        history.append({k: float(v.detach()) for k, v in losses.items()})
    after = torch.cat([p.detach().flatten().float() for p in model.parameters()])
    return history, float((after - before).abs().max()), model


@needs_cuda
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_cuda_train_step_amp_updates_weights(amp):
    # fp16: the gradient scaler starts at 2**16 and skips the steps whose gradients overflow,
    # halving its scale each time; eight steps leave room for that.
    history, change, model = train_steps("cuda", amp, steps=3 if amp == "bf16" else 8)
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history), history
    assert change > 0
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast keeps fp32 master weights


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cuda_autocast_outputs_low_precision(dtype):
    torch.manual_seed(0)
    model = build_model(load_config("crowdpose_w18s", SMALL)).cuda().eval().to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 128, 128, device="cuda").contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cuda", dtype=dtype):
        out = model(x)
    assert out.heatmaps.dtype == dtype and torch.isfinite(out.heatmaps.float()).all()


def attention_outputs(device: str, backends: list) -> tuple[torch.Tensor, torch.Tensor]:
    """One bf16 self-attention (4096 tokens, as a 512² input gives) through `backends`, and the math kernel's."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    attn = Attention(128, 4).to(device).eval()
    x = torch.randn(2, 4096, 128, device=device)
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
        with sdpa_kernel(backends):
            fused = attn(x, x, x)
        with sdpa_kernel([SDPBackend.MATH]):
            math = attn(x, x, x)
    return fused.float(), math.float()


@needs_cuda
def test_cuda_sdpa_flash_attention_matches_math_kernel():
    from torch.nn.attention import SDPBackend

    fused, math = attention_outputs("cuda", [SDPBackend.FLASH_ATTENTION])  # raises if flash cannot run it
    torch.testing.assert_close(fused, math, atol=2e-2, rtol=2e-2)


@needs_cuda
def test_cuda_network_runs_on_flash_attention_only():
    """The whole network's attention is eligible for the flash kernel (else "No available kernel")."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    model = build_model(load_config("crowdpose_w18s", SMALL)).cuda().train()
    x = torch.randn(2, 3, 128, 128, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16), sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        out = model(x)  # training mode: dropout inside the fused kernel
        sum(t.float().square().mean() for t in out if t is not None).backward()
    grads = [p.grad for p in model.global_context_parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
