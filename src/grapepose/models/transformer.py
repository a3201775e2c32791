"""DETR-style pre-norm transformer on `scaled_dot_product_attention` (docs/DESIGN.md, Network).

Parameters use `nn.MultiheadAttention`'s layout (`in_proj_weight [3d, d]`, `in_proj_bias [3d]`,
`out_proj`) so the authors' weights load unchanged, but attention runs through PyTorch's fused SDPA
kernels instead of materialising [L, L] attention maps. Sequences are batch-first: [B, L, d].

Training on CPU with attention dropout is the exception: PyTorch's CPU SDPA kernels have no dropout,
so SDPA falls back to its math path (safe softmax, a float dropout mask, several [L, L] passes).
`dropout_attention` computes the same function (dropout on the softmax probabilities, kept ones
scaled by 1 / (1 - p)) with one 0/1 mask and a hand-written backward. Its mask comes from
`keep_mask`, which reads 16 random bits per element from whole 64-bit words of the default
generator: on CPU `bernoulli_` draws serially, one element at a time, which makes it a large share
of a training step. `grapepose.models.kernels` chooses between these forms and PyTorch's (SDPA,
`F.dropout`); both compute the same function.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from grapepose.models.kernels import own_kernels

__all__ = [
    "Attention", "DecoderLayer", "EncoderLayer", "TransformerDecoder", "TransformerEncoder",
    "dropout_attention", "keep_mask", "sine_position_encoding",
]  # fmt: skip

def sine_position_encoding(
    height: int,
    width: int,
    d_model: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    temperature: float = 10000.0,
) -> Tensor:
    """DETR's normalised 2D sine encoding of a height x width grid, row-major: [height * width, d_model].

    Row i (1-based) maps to y = i / height * 2pi, column j to x = j / width * 2pi. The first d/2
    channels encode y, the last d/2 encode x; within a half, channel pairs (2m, 2m + 1) hold
    sin and cos of y / temperature^(2m / (d/2)).
    """
    half = d_model // 2
    eps = 1e-6  # the reference divides by (size + eps)
    y = torch.arange(1, height + 1, dtype=torch.float32, device=device) / (height + eps) * (2 * math.pi)
    x = torch.arange(1, width + 1, dtype=torch.float32, device=device) / (width + eps) * (2 * math.pi)
    exponent = 2 * torch.div(torch.arange(half, device=device), 2, rounding_mode="floor") / half
    dim_t = temperature ** exponent.float()

    def encode(v: Tensor) -> Tensor:  # [n] -> [n, half], sin on even channels, cos on odd
        a = v[:, None] / dim_t
        return torch.stack((a[:, 0::2].sin(), a[:, 1::2].cos()), dim=2).flatten(1)

    pos_y = encode(y)[:, None, :].expand(height, width, half)
    pos_x = encode(x)[None, :, :].expand(height, width, half)
    return torch.cat((pos_y, pos_x), dim=2).reshape(height * width, d_model).to(dtype)


_KEEP_BITS = 24  # the resolution of keep_mask's probability, as float32's torch.rand


def keep_mask(shape: tuple[int, ...], keep: float, dtype: torch.dtype = torch.float32) -> Tensor:
    """A 0/1 mask of independent Bernoulli(`keep`) draws, from the default CPU generator.

    The probability is exactly round(keep * 2^24) / 2^24 (the resolution of float32 uniforms): an
    element is kept when its 16 random bits fall below the threshold's top 16 bits, and the
    1-in-65536 elements that tie with them read 8 more random bits.

    Args:
        shape: the mask's shape.
        keep: probability of a 1, in [0, 1].
        dtype: a floating dtype of the result.

    Returns:
        `shape`, `dtype`, on the CPU.
    """
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep must be in [0, 1], got {keep}")
    n = math.prod(shape)
    if n == 0:
        return torch.empty(shape, dtype=dtype)
    if dtype not in (torch.float32, torch.float64):  # 16-bit floats do not hold every int16 exactly
        return keep_mask(shape, keep).to(dtype)
    top, low = divmod(round(keep * 2**_KEEP_BITS), 2 ** (_KEEP_BITS - 16))
    # random_(-2**63, None) fills whole 64-bit words, four 16-bit draws each (int16 is their signed view).
    bits = torch.empty(-(-n // 4), dtype=torch.int64).random_(-(2**63), None).view(torch.int16)[:n]
    threshold = top - 2**15  # unsigned u < top  <=>  signed u - 2^15 < top - 2^15
    mask = bits.to(dtype).lt_(threshold)  # int16 values are exact in float32 and float64
    if low:
        tied = bits.eq(threshold)
        padded = -(-n // 8) * 8  # find the rare ties by words of 8 flags: a scan 8x shorter
        if padded != n:
            tied = torch.cat((tied, tied.new_zeros(padded - n)))
        words = tied.view(torch.int64).nonzero().squeeze(1)
        if words.numel():
            at = (words[:, None] * 8 + torch.arange(8)).flatten()
            at = at[tied[at]]
            extra = torch.empty(at.numel(), dtype=torch.int64).random_(0, 2 ** (_KEEP_BITS - 16))
            mask[at] = extra.lt(low).to(dtype)
    return mask.view(shape)


class _DropoutAttention(torch.autograd.Function):
    """softmax(q k^T / sqrt(dh)) with dropout (0/1 mask `keep`, scale 1 / (1 - p)), times v."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, p: float, keep: Tensor | None) -> Tensor:  # type: ignore
        scale = q.shape[-1] ** -0.5
        prob = torch.matmul(q * scale, k.transpose(-2, -1)).softmax(-1)  # [..., Lq, Lk]
        if keep is None:  # a float 0/1 mask: multiplying by it is the cheapest masking pass on CPU
            keep = keep_mask(prob.shape, 1 - p, prob.dtype)
        # The 1 / (1 - p) scale goes on the [Lq, dh] output instead of the [Lq, Lk] probabilities.
        out = torch.matmul(prob * keep, v).mul_(1 / (1 - p))
        ctx.save_for_backward(q, k, v, prob, keep)
        ctx.p, ctx.scale = p, scale
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        q, k, v, prob, keep = ctx.saved_tensors
        grad = grad * (1 / (1 - ctx.p))
        grad_v = torch.matmul((prob * keep).transpose(-2, -1), grad)  # recomputed: one [L, L] less to keep
        grad_prob = torch.matmul(grad, v.transpose(-2, -1)).mul_(keep)
        grad_logits = torch._softmax_backward_data(grad_prob, prob, -1, prob.dtype)
        grad_q = torch.matmul(grad_logits, k).mul_(ctx.scale)
        grad_k = torch.matmul(grad_logits.transpose(-2, -1), q).mul_(ctx.scale)
        return grad_q, grad_k, grad_v, None, None


def dropout_attention(q: Tensor, k: Tensor, v: Tensor, p: float, keep: Tensor | None = None) -> Tensor:
    """Scaled dot-product attention with dropout `p` on the probabilities, as SDPA's math path.

    Args:
        q: [..., Lq, dh]; k, v: [..., Lk, dh].
        p: dropout probability, 0 <= p < 1.
        keep: optional [..., Lq, Lk] mask, 1 for kept probabilities and 0 for dropped ones (same
            dtype as q); default: `keep_mask(..., 1 - p)`.

    Returns:
        [..., Lq, dh].
    """
    return _DropoutAttention.apply(q, k, v, p, keep)


class Attention(nn.Module):
    """Multi-head attention with `nn.MultiheadAttention` parameters, computed with SDPA."""

    def __init__(self, d_model: int, nhead: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % nhead:
            raise ValueError(f"d_model ({d_model}) must be divisible by nhead ({nhead})")
        self.d_model, self.nhead, self.dropout = d_model, nhead, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        # nn.MultiheadAttention's initialisation.
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, t: Tensor) -> Tensor:  # [B, L, d] -> [B, nhead, L, d / nhead]
        return t.unflatten(-1, (self.nhead, -1)).transpose(1, 2)

    def forward(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        """Attend `query` [B, Lq, d] to `key`/`value` [B, Lk, d] -> [B, Lq, d]."""
        d = self.d_model
        w, b = self.in_proj_weight, self.in_proj_bias
        if query is key:  # self-attention: one projection for q and k
            q, k = F.linear(query, w[: 2 * d], b[: 2 * d]).chunk(2, dim=-1)
        else:
            q = F.linear(query, w[:d], b[:d])
            k = F.linear(key, w[d : 2 * d], b[d : 2 * d])
        v = F.linear(value, w[2 * d :], b[2 * d :])
        p = self.dropout if self.training else 0.0
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        cpu = q.device.type == "cpu"
        if p > 0 and cpu and not torch.is_autocast_enabled("cpu") and own_kernels(q.device):
            out = dropout_attention(q, k, v, p)  # SDPA's CPU kernels have no dropout (see the module doc)
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        return self.out_proj(out.transpose(1, 2).flatten(2))


class _FeedForward(nn.Module):
    """linear1 -> ReLU -> dropout -> linear2 (names as in DETR)."""

    def __init__(self, d_model: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.dropout = dropout

    def _dropout(self, x: Tensor) -> Tensor:
        """F.dropout(x, self.dropout, self.training), the same function with a faster CPU draw."""
        p = self.dropout
        if not self.training or p == 0 or x.device.type != "cpu" or not own_kernels(x.device):
            return F.dropout(x, p, self.training)
        if torch.is_autocast_enabled("cpu") or x.dtype not in (torch.float32, torch.float64):
            return F.dropout(x, p, self.training)
        return x * keep_mask(x.shape, 1 - p, x.dtype).mul_(1 / (1 - p))

    def feed_forward(self, x: Tensor) -> Tensor:
        return self.linear2(self._dropout(F.relu(self.linear1(x))))


class EncoderLayer(_FeedForward):
    """Pre-norm encoder layer; `pos` is added to queries and keys of the self-attention."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.1) -> None:
        super().__init__(d_model, dim_feedforward, dropout)
        self.self_attn = Attention(d_model, nhead, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, src: Tensor, pos: Tensor) -> Tensor:
        """src [B, L, d], pos [L, d] -> [B, L, d]."""
        x = self.norm1(src)
        qk = x + pos
        src = src + self._dropout(self.self_attn(qk, qk, x))
        return src + self._dropout(self.feed_forward(self.norm2(src)))


class DecoderLayer(_FeedForward):
    """Pre-norm decoder layer: self-attention (no position), cross-attention (`pos` on the keys), FFN."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.1) -> None:
        super().__init__(d_model, dim_feedforward, dropout)
        self.self_attn = Attention(d_model, nhead, dropout)
        self.cross_attn = Attention(d_model, nhead, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(self, tgt: Tensor, memory: Tensor, pos: Tensor) -> Tensor:
        """tgt [B, Lq, d], memory [B, Lk, d], pos [Lk, d] -> [B, Lq, d]."""
        x = self.norm1(tgt)
        tgt = tgt + self._dropout(self.self_attn(x, x, x))
        x = self.norm2(tgt)
        tgt = tgt + self._dropout(self.cross_attn(x, memory + pos, memory))
        return tgt + self._dropout(self.feed_forward(self.norm3(tgt)))


class TransformerEncoder(nn.Module):
    """A stack of `EncoderLayer`s (no final norm)."""

    def __init__(self, num_layers: int, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(d_model, nhead, dim_feedforward, dropout) for _ in range(num_layers))
        # The reference re-initialises every matrix of its encoder with Xavier-uniform.
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, src: Tensor, pos: Tensor) -> Tensor:
        """src [B, L, d], pos [L, d] -> [B, L, d]."""
        for layer in self.layers:
            src = layer(src, pos)
        return src


class TransformerDecoder(nn.Module):
    """A stack of `DecoderLayer`s (no final norm)."""

    def __init__(self, num_layers: int, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(d_model, nhead, dim_feedforward, dropout) for _ in range(num_layers))
        # The reference deep-copies one initialised layer, so all decoder layers start equal.
        for layer in self.layers[1:]:
            layer.load_state_dict(self.layers[0].state_dict())

    def forward(self, tgt: Tensor, memory: Tensor, pos: Tensor) -> Tensor:
        """tgt [B, Lq, d], memory [B, Lk, d], pos [Lk, d] -> [B, Lq, d]."""
        for layer in self.layers:
            tgt = layer(tgt, memory, pos)
        return tgt
