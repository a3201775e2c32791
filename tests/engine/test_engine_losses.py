"""Losses against straightforward reference formulas (docs/DESIGN.md, Losses)."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch

from grapepose.config import TrainConfig
from grapepose.engine.losses import GrapeLoss, heatmap_loss, offset_loss, visibility_loss


class Out(NamedTuple):
    heatmaps: torch.Tensor
    offsets: torch.Tensor
    refined_offsets: torch.Tensor
    visibility: torch.Tensor | None


def _batch(b: int = 2, k: int = 3, h: int = 8, seed: int = 0) -> tuple[Out, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = Out(torch.randn(b, k + 1, h, h, generator=g), torch.randn(b, 2 * k, h, h, generator=g),
              torch.randn(b, 2 * k, h, h, generator=g), torch.randn(b, k, h, h, generator=g))
    batch = {
        "heatmaps": torch.rand(b, k + 1, h, h, generator=g),
        "heatmap_weights": torch.where(torch.rand(b, k + 1, h, h, generator=g) > 0.5, 1.0, 0.1),
        "offsets": torch.randn(b, 2 * k, h, h, generator=g),
        "offset_weights": (torch.rand(b, 2 * k, h, h, generator=g) > 0.7).float() * 0.3,
        "visibility": (torch.rand(b, k, h, h, generator=g) > 0.6).float(),
    }
    return out, batch


def _ref_smooth_l1(x: torch.Tensor, beta: float) -> torch.Tensor:
    return torch.where(x.abs() < beta, 0.5 * x**2 / beta, x.abs() - 0.5 * beta)


def _ref_focal(logits: torch.Tensor, label: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    # the reference's formulation: signed log-likelihood times -|label - p|^gamma
    p = torch.sigmoid(logits)
    ce = alpha * label * torch.log(p) + (1 - alpha) * (1 - label) * torch.log(1 - p)
    return (ce * -(label - p).abs() ** gamma).mean()


def test_terms_match_reference_formulas() -> None:
    out, b = _batch()
    ref_hm = (((out.heatmaps - b["heatmaps"]) ** 2) * b["heatmap_weights"]).mean()
    assert torch.allclose(heatmap_loss(out.heatmaps, b["heatmaps"], b["heatmap_weights"]), ref_hm)
    w = b["offset_weights"]
    ref_off = (_ref_smooth_l1(out.offsets - b["offsets"], 1 / 9) * w).sum() / (w > 0).sum()
    assert torch.allclose(offset_loss(out.offsets, b["offsets"], w), ref_off)
    ref_vis = _ref_focal(out.visibility, b["visibility"], 0.25, 2.0)
    assert torch.allclose(visibility_loss(out.visibility, b["visibility"]), ref_vis, atol=1e-7)


def test_weighted_sum_and_names() -> None:
    out, b = _batch(seed=1)
    losses = GrapeLoss.from_config(TrainConfig())(out, b)
    assert list(losses) == ["heatmap", "offset", "refined_offset", "visibility", "total"]
    assert torch.allclose(losses["heatmap"], 10 * heatmap_loss(out.heatmaps, b["heatmaps"], b["heatmap_weights"]))
    assert torch.allclose(losses["refined_offset"],
                          0.3 * offset_loss(out.refined_offsets, b["offsets"], b["offset_weights"]))
    assert torch.allclose(losses["total"], sum(v for k, v in losses.items() if k != "total"))
    custom = GrapeLoss.from_config(TrainConfig(heatmap_loss_factor=1.0, visibility_loss_factor=0.0))(out, b)
    assert torch.allclose(custom["heatmap"] * 10, losses["heatmap"])
    assert custom["visibility"].item() == 0.0


def test_ablation_skips_visibility_and_refined_terms() -> None:
    out, b = _batch(seed=2)
    ablation = Out(out.heatmaps, out.offsets, out.offsets, None)
    losses = GrapeLoss()(ablation, b)
    assert set(losses) == {"heatmap", "offset", "total"}
    assert torch.allclose(losses["total"], losses["heatmap"] + losses["offset"])


def test_no_people_gives_zero_offset_loss_and_gradients_flow() -> None:
    out, b = _batch(seed=3)
    b["offset_weights"].zero_()
    assert offset_loss(out.offsets, b["offsets"], b["offset_weights"]).item() == 0.0
    pred = out.heatmaps.clone().requires_grad_(True)
    GrapeLoss()(out._replace(heatmaps=pred), b)["total"].backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_outputs_give_float32_losses(dtype: torch.dtype) -> None:
    out, b = _batch(seed=4)
    low = Out(*(t.to(dtype) for t in out))
    losses = GrapeLoss()(low, b)
    assert all(v.dtype == torch.float32 for v in losses.values())
    assert torch.allclose(losses["total"], GrapeLoss()(out, b)["total"], rtol=2e-2)
