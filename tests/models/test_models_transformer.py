"""SDPA transformer layers vs straightforward nn.MultiheadAttention layers with the same weights."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from grapepose.models.kernels import use_kernels
from grapepose.models.transformer import (
    Attention,
    DecoderLayer,
    EncoderLayer,
    TransformerDecoder,
    TransformerEncoder,
    keep_mask,
    sine_position_encoding,
)

D, NHEAD, FF = 32, 4, 64


class RefEncoderLayer(nn.Module):
    """DETR pre-norm encoder layer on nn.MultiheadAttention (batch-first)."""

    def __init__(self) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(D, NHEAD, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(D, FF), nn.Linear(FF, D)
        self.norm1, self.norm2 = nn.LayerNorm(D), nn.LayerNorm(D)

    def forward(self, src: Tensor, pos: Tensor) -> Tensor:
        x = self.norm1(src)
        src = src + self.self_attn(x + pos, x + pos, x, need_weights=False)[0]
        return src + self.linear2(torch.relu(self.linear1(self.norm2(src))))


class RefDecoderLayer(nn.Module):
    """DETR pre-norm decoder layer: no position on self-attention, position on cross-attention keys."""

    def __init__(self) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(D, NHEAD, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(D, NHEAD, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(D, FF), nn.Linear(FF, D)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(D), nn.LayerNorm(D), nn.LayerNorm(D)

    def forward(self, tgt: Tensor, memory: Tensor, pos: Tensor) -> Tensor:
        x = self.norm1(tgt)
        tgt = tgt + self.self_attn(x, x, x, need_weights=False)[0]
        x = self.norm2(tgt)
        tgt = tgt + self.cross_attn(x, memory + pos, memory, need_weights=False)[0]
        return tgt + self.linear2(torch.relu(self.linear1(self.norm3(tgt))))


def _randomize(module: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # O(1) activations, so an absolute tolerance is meaningful
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.15)


def _randn(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_encoder_layer_matches_multihead_attention():
    ours = EncoderLayer(D, NHEAD, FF, dropout=0.1).eval()
    _randomize(ours, 0)
    ref = RefEncoderLayer().eval()
    ref.load_state_dict(ours.state_dict(), strict=True)  # same parameter names and layout
    src, pos = _randn(3, 20, D), _randn(20, D, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(ours(src, pos), ref(src, pos), atol=1e-5, rtol=0)


def test_decoder_layer_matches_multihead_attention():
    ours = DecoderLayer(D, NHEAD, FF, dropout=0.1).eval()
    _randomize(ours, 1)
    ref = RefDecoderLayer().eval()
    ref.load_state_dict(ours.state_dict(), strict=True)
    tgt, memory, pos = _randn(2, 12, D), _randn(2, 20, D, seed=1), _randn(20, D, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(ours(tgt, memory, pos), ref(tgt, memory, pos), atol=1e-5, rtol=0)


def test_stacks_chain_layers_without_final_norm():
    enc, dec = TransformerEncoder(2, D, NHEAD, FF).eval(), TransformerDecoder(2, D, NHEAD, FF).eval()
    _randomize(enc, 2)
    _randomize(dec, 3)
    refs_e, refs_d = [RefEncoderLayer().eval() for _ in range(2)], [RefDecoderLayer().eval() for _ in range(2)]
    for r, layer in zip(refs_e + refs_d, list(enc.layers) + list(dec.layers)):
        r.load_state_dict(layer.state_dict())
    src, tgt, pos = _randn(2, 16, D), _randn(2, 16, D, seed=1), _randn(16, D, seed=2)
    with torch.no_grad():
        memory = refs_e[1](refs_e[0](src, pos), pos)
        expected = refs_d[1](refs_d[0](tgt, memory, pos), memory, pos)
        torch.testing.assert_close(dec(tgt, enc(src, pos), pos), expected, atol=1e-5, rtol=0)


def test_attention_cross_and_self_paths_agree():
    attn = Attention(D, NHEAD).eval()
    x = _randn(2, 10, D)
    with torch.no_grad():  # `query is key` takes the fused q/k projection; a copy takes the general path
        torch.testing.assert_close(attn(x, x, x), attn(x, x.clone(), x), atol=1e-6, rtol=0)


def test_initialisation_follows_reference():
    torch.manual_seed(0)
    dec = TransformerDecoder(2, D, NHEAD, FF)
    for a, b in zip(dec.layers[0].parameters(), dec.layers[1].parameters()):
        assert torch.equal(a, b)  # the reference deep-copies one layer
    attn = Attention(D, NHEAD)
    assert not attn.in_proj_bias.any() and not attn.out_proj.bias.any()


def _detr_sine(h: int, w: int, d: int) -> Tensor:
    """DETR's PositionEmbeddingSine(normalize=True) on an all-valid mask, flattened to [h*w, d]."""
    not_mask = torch.ones(1, h, w)
    y = not_mask.cumsum(1)
    x = not_mask.cumsum(2)
    eps, scale, npf = 1e-6, 2 * math.pi, d // 2
    y = y / (y[:, -1:, :] + eps) * scale
    x = x / (x[:, :, -1:] + eps) * scale
    dim_t = torch.arange(npf, dtype=torch.float32)
    dim_t = 10000 ** (2 * (dim_t // 2) / npf)
    px, py = x[:, :, :, None] / dim_t, y[:, :, :, None] / dim_t
    px = torch.stack((px[:, :, :, 0::2].sin(), px[:, :, :, 1::2].cos()), dim=4).flatten(3)
    py = torch.stack((py[:, :, :, 0::2].sin(), py[:, :, :, 1::2].cos()), dim=4).flatten(3)
    return torch.cat((py, px), dim=3)[0].reshape(h * w, d)


@pytest.mark.parametrize("h,w,d", [(8, 8, 128), (6, 10, 32)])
def test_sine_position_encoding_matches_detr(h, w, d):
    torch.testing.assert_close(sine_position_encoding(h, w, d), _detr_sine(h, w, d), atol=1e-6, rtol=0)


def _reference_dropout_attention(q: Tensor, k: Tensor, v: Tensor, p: float, keep: Tensor) -> Tensor:
    """SDPA's math path written out: softmax(q k^T / sqrt(dh)), dropout with `keep`, times v."""
    prob = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return (prob * keep / (1 - p)) @ v


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_dropout_attention_values_and_gradients(dtype, tol):
    from grapepose.models.transformer import dropout_attention

    q, k, v = (_randn(2, 3, n, 8, seed=s).to(dtype).requires_grad_() for s, n in ((0, 12), (1, 20), (2, 20)))
    grad = _randn(2, 3, 12, 8, seed=3).to(dtype)
    # the mask is keep_mask(1 - p) from the default generator, drawn after the seed: same draw here
    torch.manual_seed(5)
    out = dropout_attention(q, k, v, 0.3)
    torch.manual_seed(5)
    keep = keep_mask((2, 3, 12, 20), 0.7, dtype)
    assert 0.5 < keep.mean() < 0.9 and set(keep.unique().tolist()) == {0.0, 1.0}
    got = [out, *torch.autograd.grad(out, (q, k, v), grad)]
    ref = _reference_dropout_attention(q, k, v, 0.3, keep)
    want = [ref, *torch.autograd.grad(ref, (q, k, v), grad)]
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, want):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol, msg=name)


def test_attention_training_uses_dropout_on_the_probabilities():
    attn = Attention(D, NHEAD, dropout=0.5).train()
    x = _randn(2, 10, D)
    torch.manual_seed(0)
    a = attn(x, x, x)
    torch.manual_seed(0)
    b = attn(x, x, x)
    torch.testing.assert_close(a, b, atol=0, rtol=0)  # reproducible from the seed
    c = attn(x, x, x)
    assert (a - c).abs().max() > 1e-3  # and random
    with torch.no_grad():
        expected = attn.eval()(x, x, x)  # no dropout in eval: the mean of the training outputs
        mean = torch.stack([attn.train()(x, x, x) for _ in range(400)]).mean(0)
    assert (mean - expected).abs().max() < 0.1 * expected.abs().max()


def _reference_keep_mask(shape: tuple[int, ...], keep: float) -> Tensor:
    """keep_mask's rule in one line: a 24-bit uniform below round(keep * 2^24), from the same draws.

    The uniform's top 16 bits are the element's own draw; only the elements whose top bits equal the
    threshold's need the 8 low bits, which come next from the generator, in element order.
    """
    n, threshold = math.prod(shape), round(keep * 2**24)
    top = torch.empty(-(-n // 4), dtype=torch.int64).random_(-(2**63), None).view(torch.int16)[:n].long() + 2**15
    tied = top == threshold >> 8
    low = torch.zeros(n, dtype=torch.int64)
    if threshold % 256:
        low[tied] = torch.empty(int(tied.sum()), dtype=torch.int64).random_(0, 256)
    return (top * 256 + low < threshold).float().view(shape)


@pytest.mark.parametrize("shape,keep", [((4, 1 << 18), 0.9), ((3, 5, 7), 0.7), ((1 << 20,), 0.5 + 77.5 / 2**24),
                                        ((1000,), 1.0), ((1000,), 0.0), ((9, 1 << 17), 0.3)])  # fmt: skip
def test_keep_mask_is_a_24_bit_uniform_below_the_threshold(shape, keep):
    torch.manual_seed(11)
    got = keep_mask(shape, keep)
    torch.manual_seed(11)
    want = _reference_keep_mask(shape, keep)
    assert got.shape == shape and got.dtype == torch.float32
    assert torch.equal(got, want)
    n = got.numel()
    assert abs(got.mean().item() - keep) <= 5 * math.sqrt(keep * (1 - keep) / n) + 1e-12


def test_keep_mask_resolves_ties_with_more_bits():
    # 0.5 + 77.5/2^24: top 16 bits 32768 tie for 1 in 65536 elements, kept when their next 8 bits < 78
    shape, keep = (1 << 22,), 0.5 + 77.5 / 2**24
    torch.manual_seed(3)
    got = keep_mask(shape, keep)
    torch.manual_seed(3)
    top = torch.empty(1 << 20, dtype=torch.int64).random_(-(2**63), None).view(torch.int16).long() + 2**15
    tied = top == 32768
    assert 20 < tied.sum() < 200  # the case is exercised
    low = torch.empty(int(tied.sum()), dtype=torch.int64).random_(0, 256)
    assert torch.equal(got[tied], (low < 78).float())
    assert got[tied].sum() not in (0, tied.sum())  # both outcomes occur among the ties
    assert torch.equal(got[~tied], (top[~tied] < 32768).float())


def test_keep_mask_dtype_empty_and_errors():
    assert keep_mask((2, 0, 3), 0.5).shape == (2, 0, 3)
    assert keep_mask((5, 3), 0.5, torch.float64).dtype == torch.float64
    torch.manual_seed(2)
    half = keep_mask((64, 1024), 0.3, torch.bfloat16)  # drawn in float32: bf16 cannot hold every int16
    torch.manual_seed(2)
    assert half.dtype == torch.bfloat16 and torch.equal(half.float(), keep_mask((64, 1024), 0.3))
    with pytest.raises(ValueError, match=r"^keep must be in \[0, 1\], got 1.5$"):
        keep_mask((3,), 1.5)


@pytest.mark.parametrize("impl", ["auto", "torch"])
def test_layer_dropout_is_f_dropout_in_distribution_and_gradient(impl):
    layer = EncoderLayer(D, NHEAD, FF, dropout=0.25).train()
    x = _randn(2, 7, 1000).requires_grad_()
    torch.manual_seed(4)
    with use_kernels(impl):
        out = layer._dropout(x)
    torch.manual_seed(4)
    if impl == "auto":
        scale = keep_mask(x.shape, 0.75) / 0.75
    else:
        scale = torch.nn.functional.dropout(torch.ones_like(x), 0.25, True)
    exact = {"atol": 0, "rtol": 0} if impl == "auto" else {}  # F.dropout may round in another order
    torch.testing.assert_close(out, x * scale, **exact)
    (grad,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(grad, scale, **exact)
    assert abs((scale == 0).float().mean().item() - 0.25) < 0.01
    torch.testing.assert_close(layer.eval()._dropout(x), x, atol=0, rtol=0)
