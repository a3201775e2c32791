"""The sub-pixel Gaussian fit behaves like the reference's curve_fit; peaks come in a defined order."""

import pytest
import torch
from oracles.dense_maps import map_windows

from grapepose.inference.decode.peaks import _BLOCK, _block_topk, heatmap_peaks, rank_peaks
from grapepose.inference.decode.refine import fit_gaussians


def _peak(h: int, w: int, x: float, y: float, sigma: float) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))[None, None]


def test_fit_finds_subpixel_peak_and_follows_it_out_of_the_window():
    heat = _peak(64, 64, 30.3, 28.6, 8.0)
    coords = torch.tensor([[[[31.0, 29.0]], [[40.0, 28.6]]]])  # [B=1, N=2, K=1, 2]
    out = fit_gaussians(map_windows(heat), coords, torch.ones(1, 2, 1, dtype=torch.bool), heat.shape[2:], window=6,
                        sigma=2.0, iterations=30)  # fmt: skip
    assert torch.allclose(out[0, 0, 0], torch.tensor([30.3, 28.6]), atol=0.05)
    # 9.7 px away (outside the ±6 window) the fit still converges onto the peak, as curve_fit does
    assert torch.allclose(out[0, 1, 0], torch.tensor([30.3, 28.6]), atol=0.5)


def test_unselected_and_empty_inputs_are_untouched():
    heat = _peak(32, 32, 10.0, 12.0, 2.0)
    coords = torch.tensor([[[[11.0, 12.0]]]])
    same = fit_gaussians(map_windows(heat), coords, torch.zeros(1, 1, 1, dtype=torch.bool), heat.shape[2:], window=6,
                         sigma=2.0, iterations=30)  # fmt: skip
    assert torch.equal(same, coords)
    empty = torch.zeros(1, 0, 1, 2)
    assert fit_gaussians(map_windows(heat), empty, torch.zeros(1, 0, 1, dtype=torch.bool), heat.shape[2:], window=6,
                         sigma=2.0, iterations=30).shape == (1, 0, 1, 2)  # fmt: skip


def test_rank_peaks_orders_equal_scores_by_pixel():
    score = torch.tensor([[[0.5, 0.9, 0.5, 0.9, -torch.inf, 0.5]]])
    pixel = torch.tensor([[[40, 7, 3, 2, 0, 9]]])
    order = rank_peaks(score, pixel, 5)
    # 0.9 at pixels 2 then 7; 0.5 at pixels 3, 9, 40 (the -inf one is cut)
    assert order.tolist() == [[[3, 1, 2, 5, 0]]]
    assert rank_peaks(score, pixel, 10).shape == (1, 1, 6)


def test_heatmap_peaks_ties_come_in_row_major_order():
    maps = torch.zeros(1, 1, 12, 12)
    maps[0, 0, 1::3, 1::3] = 2.0  # 15 equal peaks (and a higher one): topk returns them in no particular order
    maps[0, 0, 10, 10] = 3.0
    xy, ok = heatmap_peaks(maps, 16, kernel=3)
    assert ok.all()
    want = [[10.0, 10.0]] + [[float(x), float(y)] for y in range(1, 12, 3) for x in range(1, 12, 3) if (x, y) != (10, 10)]
    assert xy[0, 0].tolist() == want


@pytest.mark.parametrize("t", [1, 7, 40, 200])
def test_block_topk_equals_topk(t):
    g = torch.Generator().manual_seed(t)
    values = torch.randn(2, 3, 12 * _BLOCK, generator=g)
    values[0, 1, : 5 * _BLOCK] = -torch.inf  # whole blocks of failed candidates
    top, index = _block_topk(values, t)
    want = values.topk(t, dim=2).values
    assert torch.equal(top, want)
    assert torch.equal(values.gather(2, index), top)  # indices point at those values
