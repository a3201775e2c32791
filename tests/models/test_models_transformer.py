"""SDPA transformer layers vs straightforward nn.MultiheadAttention layers with the same weights."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from grapepose.models.transformer import (
    Attention,
    DecoderLayer,
    EncoderLayer,
    TransformerDecoder,
    TransformerEncoder,
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
    # the mask is the default generator's bernoulli(1 - p), drawn after the seed: same draw here
    torch.manual_seed(5)
    out = dropout_attention(q, k, v, 0.3)
    torch.manual_seed(5)
    keep = torch.empty(2, 3, 12, 20, dtype=dtype).bernoulli_(0.7)
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
