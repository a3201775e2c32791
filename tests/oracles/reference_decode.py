"""The reference decoder on full-resolution maps, a frozen oracle for `grapepose.decode`.

`reference_decode` has the signature and results of `grapepose.decode`; it upsamples every
keypoint heatmap to input resolution, finds snapping peaks with a max-pool over the full maps and
fits Gaussians on windows cut from them, as the method's description reads (docs/DESIGN.md,
"Decoding"). Tests compare `decode`, which reads the grid maps only where it needs them, against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from oracles.dense_maps import merge_flip, sample_upsampled, to_pose_maps

from grapepose.config import Config, TestConfig
from grapepose.inference.decode import STRIDE, DecodedPoses
from grapepose.inference.decode.centers import find_centers
from grapepose.inference.decode.nms import pose_nms
from grapepose.inference.decode.peaks import heatmap_peaks
from grapepose.inference.decode.reader import PoseMaps, upsample_maps
from grapepose.inference.decode.refine import LM_LAMBDA0, XTOL

__all__ = ["reference_decode"]


def _snap_to_peaks(coords: torch.Tensor, move: torch.Tensor, peaks: torch.Tensor, peak_ok: torch.Tensor) -> torch.Tensor:
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


def _fit_gaussians(
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
    lam = torch.full_like(cost, LM_LAMBDA0)
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
        small = (step[:, 1:].abs().amax(-1) < XTOL) & (step[:, 0].abs() <= XTOL * params[:, 0].abs() + 1e-9)
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


def _as_list(x: Any) -> list[Any]:
    if x is None:
        return []
    if isinstance(x, (list, tuple)) and not hasattr(x, "_fields"):
        return list(x)
    return [x]


def reference_decode(
    outputs: Any,
    cfg: TestConfig | Config | None = None,
    *,
    flipped: Any = None,
    flip_index: Sequence[int] | None = None,
    scales: Sequence[float] | None = None,
    input_size: tuple[int, int] | None = None,
) -> list[DecodedPoses]:
    """Today's `grapepose.decode` before it was rewritten (same arguments and results). Decode a batch of network outputs into people.

    Args:
        outputs: a `GrapeOutput` (or already flip-merged `PoseMaps`) for one test scale, or a
            sequence of them, one per scale.
        cfg: thresholds (`TestConfig`, or a `Config` whose `.test` is used; None: defaults).
        flipped: the outputs for the mirrored inputs (`preprocess.flip_shift`), same structure as
            `outputs`; they are merged as the flip test prescribes. Needs `flip_index`.
        flip_index: left/right permutation of the K keypoints (`KeypointSpec.flip_index`).
        scales: the test scale of each output (default: 1.0 for a single output, else `cfg.scales`).
        input_size: `(H, W)` of the scale-1 network input (default: 4x the scale-1 grid).

    Returns:
        one `DecodedPoses` per image, in scale-1 network-input pixels.
    """
    test = cfg.test if isinstance(cfg, Config) else cfg if cfg is not None else TestConfig()
    outs = _as_list(outputs)
    if not outs:
        raise ValueError("decode: no outputs given")
    if scales is None:
        if len(outs) == 1:
            scales = (1.0,)
        elif len(outs) == len(test.scales):
            scales = test.scales
        else:
            raise ValueError(f"decode: {len(outs)} outputs but no `scales` (cfg has {len(test.scales)})")
    if len(scales) != len(outs):
        raise ValueError(f"decode: {len(outs)} outputs for {len(scales)} scales")
    flips = _as_list(flipped)
    if flips and len(flips) != len(outs):
        raise ValueError(f"decode: {len(flips)} flipped outputs for {len(outs)} outputs")
    if flips and flip_index is None:
        raise ValueError("decode: `flipped` outputs need `flip_index`")
    maps = []
    for i, out in enumerate(outs):
        if isinstance(out, PoseMaps):
            if flips:
                raise ValueError("decode: `flipped` cannot be combined with already merged PoseMaps")
            maps.append(out)
        elif flips:
            maps.append(merge_flip(out, flips[i], flip_index))  # type: ignore[arg-type]
        else:
            maps.append(to_pose_maps(out))
    return _decode_maps(maps, scales, test, input_size)


def _scale_one_size(maps: Sequence[PoseMaps], scales: Sequence[float]) -> tuple[int, int]:
    i = min(range(len(scales)), key=lambda j: abs(scales[j] - 1.0))
    h, w = maps[i].heatmaps.shape[-2:]
    f = STRIDE / scales[i]
    return int(round(h * f)), int(round(w * f))


def _read_at(maps: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Values of `[B, K, H, W]` maps at the floor of `[B, M, K, 2]` joints (clamped) -> `[B, M, K]`."""
    b, k, h, w = maps.shape
    x = coords[..., 0].floor().clamp(0, w - 1).long()
    y = coords[..., 1].floor().clamp(0, h - 1).long()
    flat = maps.reshape(b, k, h * w).transpose(1, 2)  # [B, HW, K]
    return flat.gather(1, y * w + x)


def _decode_maps(
    maps: Sequence[PoseMaps], scales: Sequence[float], cfg: TestConfig, input_size: tuple[int, int] | None = None
) -> list[DecodedPoses]:
    """`reference_decode` on maps already in `PoseMaps` form (one per scale)."""
    order = sorted(range(len(scales)), key=lambda i: -scales[i])  # the reference walks scales large to small
    maps = [maps[i] for i in order]
    scales = [float(scales[i]) for i in order]
    size = input_size or _scale_one_size(maps, scales)
    b, k1 = maps[0].heatmaps.shape[:2]
    k = k1 - 1
    dev = maps[0].heatmaps.device
    has_vis = all(m.visibility is not None for m in maps)

    heat = torch.zeros((b, k, *size), device=dev)
    coords, cscores, valid = [], [], []
    for m, s in zip(maps, scales):
        f = STRIDE / s
        heat += upsample_maps(m.heatmaps[:, :k], f, size)
        h, w = m.heatmaps.shape[-2:]
        sc, idx, ok = find_centers(m.heatmaps[:, k], cfg.max_people, cfg.center_threshold, cfg.center_pool_kernel)
        ok &= ((idx % w).float() * f < size[1]) & (torch.div(idx, w, rounding_mode="floor").float() * f < size[0])
        field = m.poses.reshape(b, k * 2, h * w)
        pose = field.gather(2, idx[:, None, :].expand(-1, k * 2, -1)).view(b, k, 2, -1).permute(0, 3, 1, 2) * f
        coords.append(pose)
        cscores.append(sc)
        valid.append(ok)
    heat /= len(scales)

    cscores = _renormalize(cscores, valid, scales, cfg.multiscale_score_factor)
    coords_t = torch.cat(coords, dim=1)  # [B, M, K, 2]
    cscore = torch.cat(cscores, dim=1)  # [B, M]
    valid_t = torch.cat(valid, dim=1) & torch.isfinite(coords_t).all(-1).all(-1)
    coords_t = torch.where(valid_t[..., None, None], coords_t, torch.zeros_like(coords_t))

    heatval = _read_at(heat, coords_t)  # [B, M, K]
    heat_score = heatval.mean(-1)
    joint_score = cscore[..., None] * heatval
    visval = None
    if has_vis:  # visibility is only read at the proposals: sample the upsampled maps there directly
        visval = sum(
            sample_upsampled(m.visibility, STRIDE / s, size, coords_t) for m, s in zip(maps, scales)  # type: ignore[arg-type]
        ) / len(scales)
        seen = visval >= cfg.visibility_threshold
        count = seen.sum(-1)
        mean_vis = (visval * seen).sum(-1) / count.clamp_min(1)
        use_vis = (cscore >= cfg.rescore_center_threshold) & (count > cfg.min_visible_joints)
        joint_score = torch.where(use_vis[..., None], mean_vis[..., None].expand_as(joint_score), joint_score)

    kept = pose_nms(coords_t, valid_t, heat_score, cfg.nms_distance, cfg.nms_joints, cfg.nms_suppress_unkept)
    counts = kept.sum(1).clamp(max=cfg.max_people).tolist()  # the one host sync of the batch
    n = max(counts, default=0)
    by_heat = heat_score.nan_to_num(-torch.inf).argsort(dim=1, descending=True, stable=True)
    kept_first = kept.gather(1, by_heat).int().argsort(dim=1, descending=True, stable=True)
    top = by_heat.gather(1, kept_first)[:, :n]  # kept proposals by mean heat value, then the rest
    sel = kept.gather(1, top)  # [B, N], True on a prefix of length counts[i]
    people = coords_t.gather(1, top[..., None, None].expand(-1, -1, k, 2))
    jscore = joint_score.gather(1, top[..., None].expand(-1, -1, k))

    if visval is not None:
        peaks, peak_ok = heatmap_peaks(heat, cfg.snap_peaks, cfg.snap_pool_kernel)
        move = (visval.gather(1, top[..., None].expand(-1, -1, k)) > cfg.snap_visibility_threshold) & sel[..., None]
        people = _snap_to_peaks(people, move, peaks, peak_ok)
    if cfg.refine:
        chosen = (jscore > cfg.refine_score_threshold) & sel[..., None]
        people = _fit_gaussians(heat, people, chosen, cfg.refine_window, cfg.refine_sigma, cfg.refine_iterations)

    keypoints = torch.cat([people, jscore[..., None]], dim=-1)
    scores = jscore.mean(-1)
    if has_vis:  # per-joint confidence: the visibility at the final joints, else the heatmap value
        confidence = sum(sample_upsampled(m.visibility, STRIDE / s, size, people)  # type: ignore[arg-type]
                         for m, s in zip(maps, scales)) / len(scales)  # fmt: skip
    else:
        confidence = _read_at(heat, people).clamp(0.0, 1.0)
    results = []
    for i, c in enumerate(counts):
        order_i = scores[i, :c].argsort(descending=True, stable=True)
        results.append(DecodedPoses(*(t[i, :c][order_i] for t in (keypoints, scores, confidence))))
    return results


def _renormalize(
    scores: list[torch.Tensor], valid: list[torch.Tensor], scales: Sequence[float], factor: float
) -> list[torch.Tensor]:
    """Rescale centre scores of non-1 scales to `factor` x the scale-1 maximum (reference multi-scale)."""
    if len(scales) < 2 or 1.0 not in scales:
        return scores
    ref = scales.index(1.0)

    def peak(i: int) -> torch.Tensor:
        if scores[i].shape[1] == 0:
            return scores[i].new_ones((scores[i].shape[0], 1))
        m = torch.where(valid[i], scores[i], torch.full_like(scores[i], -torch.inf)).amax(1, keepdim=True)
        return torch.where(torch.isfinite(m), m, torch.ones_like(m))

    top1 = peak(ref)
    return [s if i == ref else s / peak(i) * top1 * factor for i, s in enumerate(scores)]
