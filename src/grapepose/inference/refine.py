"""Joint refinement on the averaged keypoint heatmaps (DESIGN §5 step 6).

Snapping moves a joint to the nearest of the strongest local maxima of its heatmap; the sub-pixel
fit is a batched Levenberg-Marquardt least-squares fit of `A exp(-|p - c|^2 / (2 s^2))` to the
heatmap in a square window, all joints at once with a fixed iteration count.
"""

from __future__ import annotations

import torch

from grapepose.inference.centers import local_maxima

__all__ = ["heatmap_peaks", "snap_to_peaks", "fit_gaussians"]

_LM_LAMBDA0 = 0.1  # initial damping; from sigma 2 on the x4 upsampled maps this converges in ~5 steps
_XTOL = 1e-3  # px (and relative for the amplitude): a step this small means converged


def heatmap_peaks(heatmaps: torch.Tensor, num: int, kernel: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """The `num` highest local maxima (`kernel x kernel` max-pool, no threshold) per map.

    Args:
        heatmaps: `[B, K, H, W]`.

    Returns:
        positions `[B, K, P, 2]` (x, y) as float and validity `[B, K, P]` (False where a map has
        fewer than `P = min(num, H * W)` maxima).
    """
    b, k, h, w = heatmaps.shape
    p = min(num, h * w)
    if b * k * p == 0:
        return heatmaps.new_zeros((b, k, p, 2)), heatmaps.new_zeros((b, k, p), dtype=torch.bool)
    is_max = local_maxima(heatmaps, kernel)
    vals = torch.where(is_max, heatmaps, torch.full_like(heatmaps, -torch.inf))
    top, index = vals.view(b, k, h * w).topk(p, dim=2)
    xy = torch.stack([index % w, torch.div(index, w, rounding_mode="floor")], dim=-1).float()
    return xy, torch.isfinite(top)


def snap_to_peaks(coords: torch.Tensor, move: torch.Tensor, peaks: torch.Tensor, peak_ok: torch.Tensor) -> torch.Tensor:
    """Move selected joints to the nearest peak of their joint type, however far.

    Args:
        coords: `[B, N, K, 2]` joints.
        move: `[B, N, K]` bool, joints to snap.
        peaks: `[B, K, P, 2]`, peak_ok `[B, K, P]` from `heatmap_peaks`.

    Returns:
        `[B, N, K, 2]`.
    """
    if coords.numel() == 0 or peaks.shape[2] == 0:
        return coords
    d = (coords[:, :, :, None, :] - peaks[:, None]).square().sum(-1).sqrt()  # [B, N, K, P]
    d = torch.where(peak_ok[:, None], d, torch.full_like(d, torch.inf))
    nearest = d.argmin(dim=3)  # first minimum, like the reference
    b, n, k = nearest.shape
    target = peaks[:, None].expand(b, n, k, -1, 2).gather(3, nearest[..., None, None].expand(b, n, k, 1, 2))[:, :, :, 0]
    return torch.where((move & peak_ok.any(-1)[:, None])[..., None], target, coords)


def _gaussian(params: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Model values `[J, S]` and Jacobian `[J, S, 4]` for params `[J, 4]` = (A, cx, cy, s)."""
    a, cx, cy, s = (t[:, None] for t in params.unbind(-1))
    dx, dy = xs - cx, ys - cy
    d2 = dx.square() + dy.square()
    s2 = s.square()
    e = torch.exp(-d2 / (2 * s2))
    g = a * e
    jac = torch.stack([e, g * dx / s2, g * dy / s2, g * d2 / (s2 * s)], dim=-1)
    return g, jac


def fit_gaussians(
    heatmaps: torch.Tensor,
    coords: torch.Tensor,
    select: torch.Tensor,
    window: int = 6,
    sigma: float = 2.0,
    iterations: int = 30,
) -> torch.Tensor:
    """Sub-pixel joints by fitting a 2D Gaussian around each selected joint.

    The window is `[-window, window]` px around the joint's rounded position (`int(x + 0.5)`,
    clipped to the map), cut at the map border; the fit starts from amplitude = heatmap value
    there, centre = that pixel, `sigma`. As in the reference, a fit is used whenever it converged
    (last step below 1e-3 px) and is finite, wherever its centre landed; otherwise the joint stays.

    Args:
        heatmaps: `[B, K, H, W]` averaged keypoint heatmaps.
        coords: `[B, N, K, 2]` joints (x, y) in heatmap pixels.
        select: `[B, N, K]` bool, joints to refine.

    Returns:
        `[B, N, K, 2]`.
    """
    b, k, h, w = heatmaps.shape
    n = coords.shape[1]
    if b * n * k == 0 or iterations <= 0:
        return coords
    dev = heatmaps.device
    flat = heatmaps.float().reshape(-1)
    chosen = select.reshape(-1).nonzero()[:, 0]  # fit only the selected joints (one host sync)
    plane = (torch.arange(b, device=dev)[:, None, None] * k + torch.arange(k, device=dev)[None, None, :])
    plane = plane.expand(b, n, k).reshape(-1, 1)[chosen]
    all_pos = coords.reshape(-1, 2).float()
    pos = all_pos[chosen]
    center = torch.stack(
        [torch.trunc(pos[:, 0] + 0.5).clamp(0, w - 1), torch.trunc(pos[:, 1] + 0.5).clamp(0, h - 1)], dim=-1
    ).nan_to_num(0.0).long()  # [J, 2]
    r = torch.arange(-window, window + 1, device=dev)
    oy, ox = torch.meshgrid(r, r, indexing="ij")
    xs = center[:, :1] + ox.reshape(1, -1)  # [J, S]
    ys = center[:, 1:] + oy.reshape(1, -1)
    inside = ((xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)).float()
    index = (plane * h + ys.clamp(0, h - 1)) * w + xs.clamp(0, w - 1)
    z = flat[index] * inside
    xs_f, ys_f = xs.float(), ys.float()

    start_val = flat[(plane[:, 0] * h + center[:, 1]) * w + center[:, 0]]
    params = torch.stack([start_val, center[:, 0].float(), center[:, 1].float(), torch.full_like(start_val, sigma)], -1)

    def residuals(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g, jac = _gaussian(p, xs_f, ys_f)
        res = (g - z) * inside
        return res, jac * inside[..., None], res.square().sum(-1)

    res, jac, cost = residuals(params)
    lam = torch.full_like(cost, _LM_LAMBDA0)
    converged = torch.zeros_like(cost, dtype=torch.bool)
    eye = torch.eye(4, device=dev)
    for _ in range(iterations):
        jt = jac.transpose(1, 2)
        hess = jt @ jac
        grad = jt @ res[..., None]
        diag = hess.diagonal(dim1=1, dim2=2).clamp_min(1e-12)
        system = hess + lam[:, None, None] * torch.diag_embed(diag) + 1e-12 * eye
        step = -torch.linalg.solve_ex(system, grad)[0][..., 0]
        step = torch.where(torch.isfinite(step), step, torch.zeros_like(step))
        new_params = params + step
        new_res, new_jac, new_cost = residuals(new_params)
        better = torch.isfinite(new_cost) & (new_cost < cost)
        small = (step[:, 1:].abs().amax(-1) < _XTOL) & (step[:, 0].abs() <= _XTOL * params[:, 0].abs() + 1e-9)
        converged |= small
        params = torch.where(better[:, None], new_params, params)
        res = torch.where(better[:, None], new_res, res)
        jac = torch.where(better[:, None, None], new_jac, jac)
        cost = torch.where(better, new_cost, cost)
        lam = torch.where(better, lam / 10.0, lam * 10.0).clamp(1e-9, 1e9)

    fitted = params[:, 1:3]
    # As the reference's curve_fit: any converged fit is taken, even one whose centre left the window
    # (it pulls a joint several pixels away onto the nearby peak); only a failed fit leaves the joint.
    ok = converged & torch.isfinite(params).all(-1)
    out = all_pos.clone()
    out[chosen] = torch.where(ok[:, None], fitted, pos)
    return out.view(b, n, k, 2).to(coords.dtype)
