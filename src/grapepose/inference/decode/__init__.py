"""Network outputs -> people (docs/DESIGN.md, Decoding, steps 2-6), batched on the outputs' device.

`decode` takes one batch of outputs per test scale (optionally with the outputs of the mirrored
input) and returns, per image, poses in pixels of the scale-1 network input. Python loops run only
over scales, images (to split the result) and fixed iteration counts. The steps, in order:

- `reader`: each scale's outputs, flip-merged and upsampled, read only where the steps read them
  (step 2; no input-resolution map is built);
- `centers`: person centres, whose pose field cells are the proposals (step 3), scored here with
  the heatmaps and the visibility (step 4);
- `nms`: pose NMS, the reference's grouping walk as a batched fixed point (step 5);
- `peaks`: the snapping peaks of the averaged heatmaps, and `refine`: snapping joints to them and
  the sub-pixel Gaussian fit (step 6).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch

from grapepose.config import Config, TestConfig
from grapepose.inference.decode.centers import find_centers
from grapepose.inference.decode.nms import pose_nms
from grapepose.inference.decode.peaks import heatmap_peaks, lattice_peaks, lattice_step
from grapepose.inference.decode.reader import PoseMaps, ScaleReader, upsample_maps
from grapepose.inference.decode.refine import fit_gaussians, snap_to_peaks

__all__ = ["STRIDE", "DecodedPoses", "decode"]

STRIDE = 4  # input pixels per grid cell at scale 1


class DecodedPoses(NamedTuple):
    """People found in one image.

    Attributes:
        keypoints: `[N, K, 3]` (x, y, score) in scale-1 network-input pixels.
        scores: `[N]` person scores (mean joint score), descending.
        joint_scores: `[N, K]` per-joint confidence in [0, 1]: the flip-merged visibility at each
            final joint, mean over the test scales (without a visibility head: the heatmap value,
            clipped to [0, 1]).
    """

    keypoints: torch.Tensor
    scores: torch.Tensor
    joint_scores: torch.Tensor


def _as_list(x: Any) -> list[Any]:
    if x is None:
        return []
    if isinstance(x, (list, tuple)) and not hasattr(x, "_fields"):
        return list(x)
    return [x]


def decode(
    outputs: Any,
    cfg: TestConfig | Config | None = None,
    *,
    flipped: Any = None,
    flip_index: Sequence[int] | None = None,
    scales: Sequence[float] | None = None,
    input_size: tuple[int, int] | None = None,
) -> list[DecodedPoses]:
    """Decode a batch of network outputs into people.

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
    outs, flips, scales = list(outs), list(flips), [float(x) for x in scales]
    size = input_size or _scale_one_size([o.heatmaps.shape[-2:] for o in outs], scales)
    if flips and any(isinstance(out, PoseMaps) for out in outs):
        raise ValueError("decode: `flipped` cannot be combined with already merged PoseMaps")

    def run() -> list[DecodedPoses]:
        readers = []
        for i, (out, s) in enumerate(zip(outs, scales)):
            if isinstance(out, PoseMaps):
                readers.append(ScaleReader.from_maps(out, STRIDE / s, size))
            else:
                readers.append(ScaleReader.from_output(out, STRIDE / s, size, flips[i] if flips else None, flip_index))
        return _decode(readers, scales, test, size)

    return _without_autograd(run)


def _without_autograd(run: Callable[[], list[DecodedPoses]]) -> list[DecodedPoses]:
    """`run()` under inference mode, which drops autograd's bookkeeping from each of the decode's
    ~600 small tensor ops (about 10 % of a CPU decode); the results are cloned into ordinary
    tensors unless the caller is in inference mode itself (as `Predictor` is)."""
    if torch.is_inference_mode_enabled():
        return run()
    with torch.inference_mode():
        results = run()
    return [DecodedPoses(*(t.clone() for t in r)) for r in results]


def _scale_one_size(shapes: Sequence[Any], scales: Sequence[float]) -> tuple[int, int]:
    i = min(range(len(scales)), key=lambda j: abs(scales[j] - 1.0))
    h, w = shapes[i]
    f = STRIDE / scales[i]
    return int(round(h * f)), int(round(w * f))


def _mean(parts: list[torch.Tensor]) -> torch.Tensor:
    total = parts[0]
    for x in parts[1:]:
        total = total + x
    return total / len(parts)


def _read_joints(
    readers: list[ScaleReader], coords: torch.Tensor, size: tuple[int, int], visibility: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Heatmap and (if asked) visibility at `[B, M, K, 2]` joints, each the mean over scales: `[B, M, K]`.

    Maps are read at the floor of each joint (as the reference does), clamped into the input.
    """
    channel = torch.arange(coords.shape[2], device=coords.device)
    px = coords[..., 0].floor().clamp(0, size[1] - 1).long()
    py = coords[..., 1].floor().clamp(0, size[0] - 1).long()
    read = [r.pixels(channel, px, py, visibility=visibility) for r in readers]  # one bilinear setup for both
    heat = _mean([h for h, _ in read])
    return heat, _mean([v for _, v in read]) if visibility else None  # type: ignore[misc]


def _decode(readers: list[ScaleReader], scales: list[float], cfg: TestConfig, size: tuple[int, int]) -> list[DecodedPoses]:
    """Decoding steps 3-6 (docs/DESIGN.md) on one `ScaleReader` per scale; `size` = `(H, W)` of the scale-1 input."""
    order = sorted(range(len(scales)), key=lambda i: -scales[i])  # the reference walks scales large to small
    readers = [readers[i] for i in order]
    scales = [scales[i] for i in order]
    b, k = readers[0].shape[0], readers[0].k
    dev = readers[0].heat.device
    if b == 0:
        return []
    has_vis = all(r.has_visibility for r in readers)

    def heat_windows(center: torch.Tensor, radius: int) -> torch.Tensor:
        return _mean([r.heat_windows(center, radius) for r in readers])

    coords, cscores, valid = [], [], []
    for r, s in zip(readers, scales):
        f = STRIDE / s
        w = r.shape[2]
        sc, idx, ok = find_centers(r.center_map(), cfg.max_people, cfg.center_threshold, cfg.center_pool_kernel)
        ok &= ((idx % w).float() * f < size[1]) & (torch.div(idx, w, rounding_mode="floor").float() * f < size[0])
        coords.append(r.poses_at(idx) * f)
        cscores.append(sc)
        valid.append(ok)

    cscores = _renormalize(cscores, valid, scales, cfg.multiscale_score_factor)
    coords_t = torch.cat(coords, dim=1)  # [B, M, K, 2]
    cscore = torch.cat(cscores, dim=1)  # [B, M]
    valid_t = torch.cat(valid, dim=1) & torch.isfinite(coords_t).all(-1).all(-1)
    coords_t = torch.where(valid_t[..., None, None], coords_t, torch.zeros_like(coords_t))
    m = coords_t.shape[1]
    if m == 0:
        empty = coords_t.new_zeros((0, k))
        return [DecodedPoses(coords_t.new_zeros((0, k, 3)), coords_t.new_zeros((0,)), empty) for _ in range(b)]

    heatval, visval = _read_joints(readers, coords_t, size, has_vis)  # [B, M, K] each
    heat_score = heatval.mean(-1)
    joint_score = cscore[..., None] * heatval
    if visval is not None:
        seen = visval >= cfg.visibility_threshold
        count = seen.sum(-1)
        mean_vis = (visval * seen).sum(-1) / count.clamp_min(1)
        use_vis = (cscore >= cfg.rescore_center_threshold) & (count > cfg.min_visible_joints)
        joint_score = torch.where(use_vis[..., None], mean_vis[..., None].expand_as(joint_score), joint_score)

    kept = pose_nms(coords_t, valid_t, heat_score, cfg.nms_distance, cfg.nms_joints, cfg.nms_suppress_unkept)
    counts_t = kept.sum(1).clamp(max=cfg.max_people)
    counts = None
    if dev.type == "cuda":  # no host sync until the results are split: decode max_people slots
        n = min(cfg.max_people, m)
    else:
        counts = counts_t.tolist()
        n = max(counts, default=0)
    by_heat = heat_score.nan_to_num(-torch.inf).argsort(dim=1, descending=True, stable=True)
    kept_first = kept.gather(1, by_heat).int().argsort(dim=1, descending=True, stable=True)
    top = by_heat.gather(1, kept_first)[:, :n]  # kept proposals by mean heat value, then the rest
    sel = torch.arange(n, device=dev)[None] < counts_t[:, None]  # [B, N], True on the kept prefix
    people = coords_t.gather(1, top[..., None, None].expand(-1, -1, k, 2))
    jscore = joint_score.gather(1, top[..., None].expand(-1, -1, k))

    if visval is not None and n > 0:
        g = lattice_step([STRIDE / s for s in scales], cfg.snap_pool_kernel)
        if g is not None:
            peaks, peak_ok = lattice_peaks(readers, size, g, cfg.snap_peaks, cfg.snap_pool_kernel)
        else:  # scales off the integer lattice: find the peaks on the full averaged maps
            full = _mean([upsample_maps(r.keypoint_maps(), r.factor, size) for r in readers])
            peaks, peak_ok = heatmap_peaks(full, cfg.snap_peaks, cfg.snap_pool_kernel)
        move = (visval.gather(1, top[..., None].expand(-1, -1, k)) > cfg.snap_visibility_threshold) & sel[..., None]
        people = snap_to_peaks(people, move, peaks, peak_ok)
    if cfg.refine and n > 0:
        chosen = (jscore > cfg.refine_score_threshold) & sel[..., None]
        people = fit_gaussians(heat_windows, people, chosen, size, window=cfg.refine_window, sigma=cfg.refine_sigma,
                               iterations=cfg.refine_iterations)

    keypoints = torch.cat([people, jscore[..., None]], dim=-1)
    scores = jscore.mean(-1)
    # per-joint confidence where each joint finally is: its visibility (the head is trained to be 1
    # around labelled joints and 0 for joint types without a label), else its heatmap value
    heat_final, vis_final = _read_joints(readers, people, size, has_vis)
    confidence = vis_final if vis_final is not None else heat_final.clamp(0.0, 1.0)
    if counts is None:
        counts = counts_t.tolist()  # the one host sync: split the batch into images
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
