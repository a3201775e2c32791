"""Joint refinement on the averaged keypoint heatmaps (docs/DESIGN.md, Decoding, step 6).

Snapping moves a joint to the nearest of the strongest local maxima of its heatmap (`peaks.py`
finds them); the sub-pixel fit is a batched Levenberg-Marquardt least-squares fit of
`A exp(-|p - c|^2 / (2 s^2))` to the heatmap in a square window, all joints at once. The fit reads
the averaged upsampled heatmap only on its windows, through a `windows(center, r)` function
(`decode` passes the mean of the scales' `ScaleReader.heat_windows`), so no input-resolution map
is built.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["LM_LAMBDA0", "XTOL", "Windows", "fit_gaussians", "snap_to_peaks"]

LM_LAMBDA0 = 0.1  # initial damping; from sigma 2 on the x4 upsampled maps this converges in ~5 steps
_FIT_DTYPE = torch.float32
_JOINT_BLOCK = 32  # the fit pads the joints to a multiple of this (two AVX-512 vectors)
_FAR = 1e9  # px: window pixels outside the map sit this far away, so exp(-d^2 / 2s^2) is exactly 0 there
XTOL = 1e-3  # px (and relative for the amplitude): a step this small means converged

Windows = Callable[[torch.Tensor, int], torch.Tensor]


def snap_to_peaks(coords: torch.Tensor, move: torch.Tensor, peaks: torch.Tensor, peak_ok: torch.Tensor) -> torch.Tensor:
    """Move selected joints to the nearest peak of their joint type, however far.

    Args:
        coords: `[B, N, K, 2]` joints.
        move: `[B, N, K]` bool, joints to snap.
        peaks: `[B, K, P, 2]`, peak_ok `[B, K, P]` from `peaks.heatmap_peaks` or `peaks.lattice_peaks`.

    Returns:
        `[B, N, K, 2]`.
    """
    if coords.numel() == 0 or peaks.shape[2] == 0:
        return coords
    dx = coords[..., 0, None] - peaks[:, None, :, :, 0]  # [B, N, K, P]; coordinates apart, so every op
    dy = coords[..., 1, None] - peaks[:, None, :, :, 1]  # runs along P rather than along an axis of 2
    d = (dx.square() + dy.square()).sqrt()
    d = torch.where(peak_ok[:, None], d, torch.full_like(d, torch.inf))
    nearest = d.min(dim=3).indices  # first minimum, like the reference
    b, n, k = nearest.shape
    target = peaks[:, None].expand(b, n, k, -1, 2).gather(3, nearest[..., None, None].expand(b, n, k, 1, 2))[:, :, :, 0]
    return torch.where((move & peak_ok.any(-1)[:, None])[..., None], target, coords)


# J^T J of the Gaussian in the separable basis: with per-axis moments u_0 = e, u_1 = e d, u_2 = e d^2
# (e = exp(-d^2 / 2s^2) along x and along y), the Jacobian columns (A, cx, cy, s) are, up to the
# factors (1, A/s^2, A/s^2, A/s^3), the window products b_0 = u_0 x u_0, b_1 = u_1 x u_0,
# b_2 = u_0 x u_1 and b_3 = u_2 x u_0 + u_0 x u_2. Every window sum is then a product of two 1-D
# sums: with X_m = sum_x e^2 d^m and Y_m along y (m = 0..4), <b_p, b_q> is a short sum of X_i Y_j.
# Written out elementwise (no matrix product over the joints), each joint's arithmetic is the same
# whatever its batch-mates: a GEMM may round the columns of its last block differently.
_GRAM = {  # (p, q): [(coef, i, j)] with <b_p, b_q> = sum coef X_i Y_j
    (0, 0): [(1, 0, 0)], (0, 1): [(1, 1, 0)], (0, 2): [(1, 0, 1)], (0, 3): [(1, 2, 0), (1, 0, 2)],
    (1, 1): [(1, 2, 0)], (1, 2): [(1, 1, 1)], (1, 3): [(1, 3, 0), (1, 1, 2)],
    (2, 2): [(1, 0, 2)], (2, 3): [(1, 2, 1), (1, 0, 3)],
    (3, 3): [(1, 4, 0), (2, 2, 2), (1, 0, 4)],
}  # fmt: skip


def _gram_tables() -> tuple[torch.Tensor, torch.Tensor]:
    """`[16, 3]` indices into the flattened X_i Y_j (`5 i + j`) and their coefficients (0: unused)."""
    index, coef = torch.zeros(16, 3, dtype=torch.long), torch.zeros(16, 3)
    for (p, q), terms in _GRAM.items():
        for slot, (c, i, j) in enumerate(terms):
            for row in {4 * p + q, 4 * q + p}:
                index[row, slot], coef[row, slot] = 5 * i + j, float(c)
    return index.flatten(), coef


_GRAM_INDEX, _GRAM_COEF = _gram_tables()


@functools.lru_cache(maxsize=8)
def _gram_constants(device: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The tables of `_gram_tables` on a device (copied once, not per call: no sync)."""
    return _GRAM_INDEX.to(device), _GRAM_COEF.to(device, dtype)[..., None]


@functools.lru_cache(maxsize=64)
def _map_limits(w: int, h: int, device: str) -> torch.Tensor:
    """`[2, 1, 1]` (w, h): the window pixels `< limit` lie inside the map."""
    return torch.tensor([w, h], device=device)[:, None, None]


@functools.lru_cache(maxsize=8)
def _below_xtol(device: str, dtype: torch.dtype) -> torch.Tensor:
    """The largest value below `XTOL` in `dtype`: `x < XTOL` as `x <= _below_xtol`, like the amplitude's `<=`."""
    return torch.nextafter(torch.tensor(XTOL, dtype=dtype), torch.tensor(0.0, dtype=dtype)).to(device)


def _normal_equations(params: torch.Tensor, pos: torch.Tensor, z: torch.Tensor,
                      tables: tuple[torch.Tensor, torch.Tensor], ones: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """`[25, J]`: `params` `[4, J]`, then J^T J (16), -J^T r (4) and |r|^2 (1) of the window residuals `g - z`.

    Joints run along the last axis (many small problems: every op is one vectorised pass).
    `pos`: `[2, S, J]` window pixel coordinates (x row, y row), `_FAR` outside the map (so that the
    Gaussian is exactly 0 there, as a mask would make it); `z`: `[S(y), S(x), J]` heatmap values
    (0 outside); `tables`: `_gram_constants`; `ones`: `[J]` ones.
    """
    index, coef = tables
    a, sd = params[0], params[3]  # [J]
    s2 = sd.square()
    d = pos - params[1:3, None, :]  # [2, S, J]
    # the window products, written into one buffer (no stacking copies): rows u_0, u_1, u_2
    # (e d^m) and then e^2 d^m, m = 0..4, each a [2, S, J] pair of per-axis vectors
    u = d.new_empty((8, *d.shape))
    e = torch.exp(d.square().mul_(-0.5 / s2), out=u[0])
    torch.mul(e, d, out=u[1])
    torch.mul(u[1], d, out=u[2])
    torch.mul(e, e, out=u[3])
    for m in range(4, 8):
        torch.mul(u[m - 1], d, out=u[m])
    moments = u[3:].sum(2)  # [5, 2, J]: X_m = sum e^2 d^m (axis 0), Y_m (axis 1)
    xy = (moments[:, 0, None] * moments[None, :, 1]).view(25, -1)  # [25, J]: X_i Y_j
    ratio = a / s2
    scale = torch.stack([ones, ratio, ratio, ratio / sd])  # [4, J] column factors
    jtj = (xy.index_select(0, index).view(16, 3, -1) * coef).sum(1)  # [16, J], unscaled
    jtj = (jtj.view(4, 4, -1) * scale[:, None] * scale[None]).view(16, -1)  # row factor, then column factor
    ux, uy = u[:3, 0], u[:3, 1]  # [3, S, J]
    # only the z-moments with u_0 along one of the axes are needed: two window passes, not three
    rows = (z * ux[0][None]).sum(1)  # [S(y), J]: sum over x of u_0(x) z(y, x)
    cols = (z * uy[0][:, None]).sum(0)  # [S(x), J]: sum over y of u_0(y) z(y, x)
    zb = (cols * ux).sum(1)  # [3, J]: with u_a(x) u_0(y)
    z0 = (rows * uy[1:]).sum(1)  # [2, J]: with u_0(x) u_1(y), u_0(x) u_2(y)
    proj = torch.stack([zb[0], zb[1], z0[0], zb[2] + z0[1]]) * scale  # <b_p, z>, scaled
    rhs = proj - a * jtj[0::4]  # -J^T r: the model is A b_0, column 0 is b_0
    # the cost straight from the residuals: the moment form a^2 X00 Y00 - 2 a zm00 + |z|^2 cancels
    cost = ((a * uy[0])[:, None] * ux[0][None] - z).square().sum((0, 1))
    return torch.cat([params, jtj, rhs, cost[None]], 0)


def fit_gaussians(
    windows: Windows,
    coords: torch.Tensor,
    select: torch.Tensor,
    size: tuple[int, int],
    *,
    window: int = 6,
    sigma: float = 2.0,
    iterations: int = 30,
) -> torch.Tensor:
    """Sub-pixel joints by fitting a 2D Gaussian around each selected joint.

    The window is `[-window, window]` px around the joint's rounded position (`int(x + 0.5)`,
    clipped to the map), cut at the map border; the fit starts from amplitude = heatmap value
    there, centre = that pixel, `sigma`. As in the reference, a fit is used whenever it converged
    (a step below 1e-3 px) and is finite, wherever its centre landed; otherwise the joint stays.
    The fit runs in float32 (`_FIT_DTYPE`) on the separable normal equations (13 + 13 values per
    axis instead of 169 per window). A converged fit is frozen; on the CPU the loop stops once
    every selected fit converged, elsewhere it runs `iterations` steps without syncing (same
    result either way).

    Args:
        windows: `windows(center, r)` giving the averaged heatmaps `[2r+1, 2r+1, B * N * K]` on the
            windows around `[B, N, K, 2]` long pixels (`ScaleReader.heat_windows`); positions outside
            the maps read the nearest border pixel and are masked here.
        coords: `[B, N, K, 2]` joints (x, y) in heatmap pixels.
        select: `[B, N, K]` bool, joints to refine.
        size: `(H, W)` of the maps.

    Returns:
        `[B, N, K, 2]`.
    """
    b, n, k = coords.shape[:3]
    if b * n * k == 0 or iterations <= 0:
        return coords
    h, w = size
    dev = coords.device
    pos = coords.float()
    c = pos.reshape(-1, 2).T  # [2, J]
    center = torch.stack([torch.trunc(c[0] + 0.5).clamp(0, w - 1), torch.trunc(c[1] + 0.5).clamp(0, h - 1)],
                         0).nan_to_num(0.0).long()  # [2, J]  # fmt: skip
    r = torch.arange(-window, window + 1, device=dev)
    win = center[:, None, :] + r[None, :, None]  # [2, S, J]
    dt = _FIT_DTYPE
    inside = (win >= 0) & (win < _map_limits(w, h, str(dev)))  # [2, S, J]
    mask = inside.to(dt)
    # the fit's layout: joints last, so each op is one pass over all of them
    z_t = windows(center.T.reshape(b, n, k, 2), window).to(dt)  # [S(y), S(x), J]
    z_t = (z_t * mask[1][:, None]).mul_(mask[0][None])  # 0 outside the map
    wpos = torch.where(inside, win.to(dt), _FAR)  # [2, S, J]
    c0 = center.to(dt)
    params = torch.cat([z_t[window, window][None], c0, torch.full_like(c0[:1], sigma)], 0)  # [4, J]
    sel = select.reshape(-1)
    # Vectorised kernels handle the last elements of a tensor apart (a scalar `exp`, another LU
    # batch): idle joints pad J to whole blocks, so every real joint gets the same arithmetic
    # wherever it sits in the batch.
    j_real = sel.shape[0]
    pad = -j_real % _JOINT_BLOCK
    if pad:
        z_t, wpos = F.pad(z_t, (0, pad)), F.pad(wpos, (0, pad), value=_FAR)
        params = F.pad(params, (0, pad), value=1.0)  # amplitude, centre and sigma of an idle fit
        sel = F.pad(sel, (0, pad))
    unselected = ~sel
    tables = _gram_constants(str(dev), dt)
    ones = torch.ones_like(params[0])
    state = _normal_equations(params, wpos, z_t, tables, ones)  # [25, J]
    lam = torch.full_like(params[0], LM_LAMBDA0)
    converged = torch.zeros_like(sel)
    stop_early = dev.type == "cpu"  # a host check is free there
    below_xtol = _below_xtol(str(dev), dt).expand(3, sel.shape[0])
    for _ in range(iterations):
        jtj = state[4:20].T.reshape(-1, 4, 4)
        system = jtj + torch.diag_embed((state[4:20:5].clamp_min(1e-12) * lam + 1e-12).T)  # LM damping
        step = torch.linalg.solve_ex(system, state[20:24].T)[0].T.nan_to_num_(0.0, 0.0, 0.0)  # [4, J]
        # |step| < XTOL for the centre and sigma, <= XTOL |A| + 1e-9 for the amplitude, in one test
        tol = torch.cat([(state[0].abs() * XTOL + 1e-9)[None], below_xtol])
        small = (step.abs() <= tol).all(0)
        # A converging step (below XTOL) is taken without a cost check (it moves the fit by less
        # than XTOL), and a converged fit is frozen (as curve_fit stops there), so a joint's result
        # never depends on which other joints share its batch or on when the loop stops.
        take = small & ~converged
        new_params = state[:4] + step
        converged = converged | small
        if stop_early and bool(torch.all(converged | unselected)):  # no cost needed for the last step
            state[:4] = torch.where(take, new_params, state[:4])
            break
        new = _normal_equations(new_params, wpos, z_t, tables, ones)
        better = (new[24] < state[24]) & ~converged | take  # a NaN cost is never better
        state = torch.where(better, new, state)
        lam = torch.where(better, lam / 10.0, lam * 10.0).clamp_(1e-9, 1e9)
    params = state[:4, :j_real].T
    ok = converged[:j_real] & sel[:j_real] & torch.isfinite(params).all(-1)
    fitted = params[:, 1:3].float()
    out = torch.where(ok[:, None], fitted, pos.reshape(-1, 2))
    return out.view(b, n, k, 2).to(coords.dtype)
