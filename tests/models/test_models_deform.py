"""The sampling form of the deformable conv against torchvision's `deform_conv2d` (values and gradients)."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import deform_conv2d

from grapepose.models import AdaptiveBlock
from grapepose.models.deform import deform_conv3x3
from grapepose.models.kernels import use_kernels


def _inputs(b: int, c: int, cout: int, h: int, w: int, dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    """x, offsets, weight, bias; offsets of a few pixels, so many taps fall partly or fully outside."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, h, w, generator=g)
    offsets = torch.randn(b, 18, h, w, generator=g) * 3
    weight = torch.randn(cout, c, 3, 3, generator=g) / (9 * c) ** 0.5
    bias = torch.randn(cout, generator=g)
    return [t.to(dtype).requires_grad_() for t in (x, offsets, weight, bias)]


def _value_and_grads(fn, inputs: list[torch.Tensor], grad_out: torch.Tensor) -> list[torch.Tensor]:
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    out.backward(grad_out)
    return [out.detach()] + [t.grad for t in leaves]


def _torchvision(x, offsets, weight, bias):
    return deform_conv2d(x, offsets, weight, bias, padding=(1, 1))


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("b,c,cout,h,w", [(2, 8, 6, 12, 10), (1, 3, 4, 1, 7), (3, 5, 5, 9, 1)])
def test_sampling_equals_deform_conv2d_values_and_gradients(dtype, tol, b, c, cout, h, w):
    inputs = _inputs(b, c, cout, h, w, dtype)
    # Where the taps land: the test must cover samples inside, straddling the border and outside.
    offsets = inputs[1].detach()
    for pos, size in ((torch.arange(h)[:, None] + offsets[:, 0::2], h), (torch.arange(w) + offsets[:, 1::2], w)):
        assert (pos < -1).any() and ((pos > -1) & (pos < 0)).any() and ((pos > size - 1) & (pos < size)).any()
        assert (pos > size).any() and (size == 1 or ((pos > 0) & (pos < size - 1)).any())
    grad_out = torch.randn(b, cout, h, w, generator=torch.Generator().manual_seed(1), dtype=dtype)
    got = _value_and_grads(deform_conv3x3, inputs, grad_out)
    want = _value_and_grads(_torchvision, inputs, grad_out)
    for name, a, e in zip(("value", "d input", "d offsets", "d weight", "d bias"), got, want):
        torch.testing.assert_close(a, e, atol=tol, rtol=tol, msg=name)


def test_sampling_without_bias_and_on_empty_batch():
    x, offsets, weight, _ = _inputs(2, 4, 3, 5, 6, torch.float32)
    torch.testing.assert_close(deform_conv3x3(x, offsets, weight), _torchvision(x, offsets, weight, None))
    empty = deform_conv3x3(x[:0], offsets[:0], weight)
    assert empty.shape == (0, 3, 5, 6)


def test_adaptive_block_is_the_same_function_either_way():
    torch.manual_seed(0)
    block = AdaptiveBlock(8).train()
    with torch.no_grad():
        block.affine.weight.mul_(3.0)  # sampling positions well off the grid
    x = torch.randn(2, 8, 12, 10)
    grads = {}
    for kernels in ("own", "torch"):
        block.zero_grad()
        xi = x.clone().requires_grad_()
        with use_kernels(kernels):
            out = block(xi)
        out.square().sum().backward()
        grads[kernels] = [out.detach(), xi.grad] + [p.grad.clone() for p in block.parameters()]
    names = ["value", "d input"] + [f"d {n}" for n, _ in block.named_parameters()]
    for name, a, b in zip(names, grads["own"], grads["torch"]):
        # Parameter gradients sum hundreds of terms of ~1e2: compare relative to the tensor's scale
        # (fp32 rounding of either implementation against float64 is ~5e-7 of it).
        assert (a - b).abs().max() <= 1e-5 * b.abs().max(), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sampling_equals_deform_conv2d_on_cuda():
    inputs = [t.detach().cuda() for t in _inputs(2, 16, 16, 24, 20, torch.float32)]
    grad_out = torch.randn(2, 16, 24, 20, device="cuda")
    got = _value_and_grads(deform_conv3x3, inputs, grad_out)
    want = _value_and_grads(_torchvision, inputs, grad_out)
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e, atol=1e-4, rtol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_adaptive_block_under_cuda_autocast(dtype):
    torch.manual_seed(0)
    block = AdaptiveBlock(16).cuda().eval()
    x = torch.randn(2, 16, 24, 20, device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype):
        with use_kernels("own"):
            a = block(x.to(dtype))
        with use_kernels("torch"):
            b = block(x.to(dtype))
    assert a.dtype == b.dtype == dtype
    scale = b.float().abs().max()
    assert ((a.float() - b.float()).abs().max() / scale) < 1e-2

