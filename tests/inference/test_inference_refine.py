"""The sub-pixel Gaussian fit behaves like the reference's curve_fit."""

import torch

from grapepose.inference.refine import fit_gaussians


def _peak(h: int, w: int, x: float, y: float, sigma: float) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))[None, None]


def test_fit_finds_subpixel_peak_and_follows_it_out_of_the_window():
    heat = _peak(64, 64, 30.3, 28.6, 8.0)
    coords = torch.tensor([[[[31.0, 29.0]], [[40.0, 28.6]]]])  # [B=1, N=2, K=1, 2]
    out = fit_gaussians(heat, coords, torch.ones(1, 2, 1, dtype=torch.bool), window=6, sigma=2.0, iterations=30)
    assert torch.allclose(out[0, 0, 0], torch.tensor([30.3, 28.6]), atol=0.05)
    # 9.7 px away (outside the ±6 window) the fit still converges onto the peak, as curve_fit does
    assert torch.allclose(out[0, 1, 0], torch.tensor([30.3, 28.6]), atol=0.5)


def test_unselected_and_empty_inputs_are_untouched():
    heat = _peak(32, 32, 10.0, 12.0, 2.0)
    coords = torch.tensor([[[[11.0, 12.0]]]])
    same = fit_gaussians(heat, coords, torch.zeros(1, 1, 1, dtype=torch.bool), window=6, sigma=2.0, iterations=30)
    assert torch.equal(same, coords)
    empty = torch.zeros(1, 0, 1, 2)
    assert fit_gaussians(heat, empty, torch.zeros(1, 0, 1, dtype=torch.bool), window=6, sigma=2.0, iterations=30).shape == (1, 0, 1, 2)
