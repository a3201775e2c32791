"""The batched decoder against a plain, loop-by-loop implementation of decoding steps 3-6 (docs/DESIGN.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from oracles.dense_maps import merge_flip, to_pose_maps
from oracles.planted import plant_outputs, random_people

from grapepose.config import TestConfig as Cfg
from grapepose.inference.decode import decode
from grapepose.inference.decode.nms import pose_nms
from grapepose.keypoints import CROWDPOSE_KEYPOINTS

SPEC = CROWDPOSE_KEYPOINTS
K = SPEC.num_keypoints


# --------------------------------------------------------------------------- the oracle
def _upsample(m: np.ndarray, f: float, size: tuple[int, int]) -> np.ndarray:
    """Cell i -> pixel f*i, bilinear between cells, replicated after the last one."""
    c, h, w = m.shape
    h, w = min(h, math.ceil(size[0] / f)), min(w, math.ceil(size[1] / f))  # padding cells are never read

    def axis(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.minimum(np.arange(n_out) / f, n_in - 1)
        i0 = np.floor(src).astype(int)
        return i0, np.minimum(i0 + 1, n_in - 1), src - i0

    y0, y1, ay = axis(size[0], h)
    x0, x1, ax = axis(size[1], w)
    rows = m[:, y0] * (1 - ay)[:, None] + m[:, y1] * ay[:, None]
    return rows[:, :, x0] * (1 - ax) + rows[:, :, x1] * ax


def _local_max(m: np.ndarray, kernel: int) -> np.ndarray:
    """Cells not smaller than any cell of their kernel x kernel neighbourhood (clipped at the border)."""
    r = kernel // 2
    padded = np.pad(m, r, constant_values=-np.inf)
    h, w = m.shape
    best = np.full_like(m, -np.inf)
    for dy in range(kernel):
        for dx in range(kernel):
            best = np.maximum(best, padded[dy : dy + h, dx : dx + w])
    return m >= best


def _at(m: np.ndarray, x: float, y: float) -> float:
    h, w = m.shape
    return float(m[min(max(int(math.floor(y)), 0), h - 1), min(max(int(math.floor(x)), 0), w - 1)])


def _fit(hm: np.ndarray, x: float, y: float, window: int, sigma: float) -> tuple[float, float] | None:
    """Gauss-Newton with step halving, float64; None if it does not settle."""
    h, w = hm.shape
    cx = min(max(int(x + 0.5), 0), w - 1)
    cy = min(max(int(y + 0.5), 0), h - 1)
    pts = [(px, py) for py in range(cy - window, cy + window + 1) for px in range(cx - window, cx + window + 1)
           if 0 <= px < w and 0 <= py < h]  # fmt: skip
    px = np.array([p[0] for p in pts], float)
    py = np.array([p[1] for p in pts], float)
    z = np.array([hm[int(b), int(a)] for a, b in pts], float)
    p = np.array([hm[cy, cx], cx, cy, sigma], float)

    def model(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d2 = (px - p[1]) ** 2 + (py - p[2]) ** 2
        e = np.exp(-d2 / (2 * p[3] ** 2))
        g = p[0] * e
        jac = np.stack([e, g * (px - p[1]) / p[3] ** 2, g * (py - p[2]) / p[3] ** 2, g * d2 / p[3] ** 3], 1)
        return g - z, jac

    settled = False
    for _ in range(200):
        r, jac = model(p)
        cost = r @ r
        step = np.linalg.lstsq(jac, -r, rcond=None)[0]
        t = 1.0
        while t > 1e-6 and (lambda q: (model(q)[0] @ model(q)[0]))(p + t * step) >= cost:
            t /= 2
        if t <= 1e-6:
            settled = True
            break
        p = p + t * step
        if np.abs(t * step[1:]).max() < 1e-9:
            settled = True
            break
    if not settled or not np.isfinite(p).all():
        return None
    return float(p[1]), float(p[2])


def oracle_decode(maps: list, scales: list[float], cfg: Cfg, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Decoding steps 3-6 for one image; `maps` = per scale (heat [K+1,h,w], poses [K,2,h,w], vis [K,h,w] | None)."""
    order = sorted(range(len(scales)), key=lambda i: -scales[i])
    heat = np.zeros((K, *size))
    vis = None if maps[0][2] is None else np.zeros((K, *size))
    props = []  # [coords [K,2], centre score, scale]
    for i in order:
        hm, poses, vm = maps[i]
        s = scales[i]
        f = 4.0 / s
        heat += _upsample(hm[:K], f, size)
        if vis is not None:
            vis += _upsample(vm, f, size)
        c = hm[K]
        h, w = c.shape
        side = (h + w) / 2
        kernel = 7 if side > 300 else 5 if side > 200 else 3
        peaks = [(c[y, x], y, x) for y, x in zip(*np.nonzero(_local_max(c, kernel))) if c[y, x] > 0]
        peaks.sort(key=lambda t: -t[0])
        for val, y, x in peaks[: cfg.max_people]:
            if val > cfg.center_threshold and x * f < size[1] and y * f < size[0]:
                props.append([poses[:, :, y, x] * f, float(val), s])
    heat /= len(scales)
    if vis is not None:
        vis /= len(scales)
    # multi-scale score renormalisation
    if len(scales) > 1:
        top1 = max([p[1] for p in props if p[2] == 1.0], default=1.0)
        for s in scales:
            if s != 1.0:
                tops = max([p[1] for p in props if p[2] == s], default=1.0)
                for p in props:
                    if p[2] == s:
                        p[1] = p[1] / tops * top1 * cfg.multiscale_score_factor
    props = [p for p in props if np.isfinite(p[0]).all()]
    scored = []
    for coords, cs, _ in props:
        hv = np.array([_at(heat[j], *coords[j]) for j in range(K)])
        js = cs * hv
        vv = np.array([_at(vis[j], *coords[j]) for j in range(K)]) if vis is not None else None
        if vv is not None and cs >= cfg.rescore_center_threshold:
            seen = [v for v in vv if v >= cfg.visibility_threshold]
            if len(seen) > cfg.min_visible_joints:
                js = np.full(K, sum(seen) / len(seen))
        scored.append((coords, js, hv.mean(), vv))
    # pose NMS walk (DESIGN: the whole group is suppressed)
    n = len(scored)
    suppressed, kept = set(), []
    for i in range(n):
        if i in suppressed:
            continue
        ci = scored[i][0]
        diag = math.hypot(*(ci.max(0) - ci.min(0)))
        group = [j for j in range(n) if j == i or
                 sum(np.linalg.norm(ci[t] - scored[j][0][t]) < cfg.nms_distance * diag for t in range(K)) > cfg.nms_joints]  # fmt: skip
        best = max(group, key=lambda j: (scored[j][2], -j))
        if best not in suppressed:
            kept.append(best)
        suppressed |= set(group)
    kept = sorted(kept, key=lambda j: -scored[j][2])[: cfg.max_people]
    # snapping and refinement
    peak_lists = []
    for j in range(K):
        lm = _local_max(heat[j], cfg.snap_pool_kernel)
        cand = sorted(((heat[j][y, x], x, y) for y, x in zip(*np.nonzero(lm))), key=lambda t: -t[0])
        peak_lists.append(cand[: cfg.snap_peaks])
    out_kp, out_sc = [], []
    for idx in kept:
        coords, js, _, vv = scored[idx]
        coords = coords.copy()
        for j in range(K):
            if vv is not None and vv[j] > cfg.snap_visibility_threshold:
                _, x, y = min(peak_lists[j], key=lambda t: math.hypot(t[1] - coords[j, 0], t[2] - coords[j, 1]))
                coords[j] = (x, y)
            if js[j] > cfg.refine_score_threshold:
                fit = _fit(heat[j], coords[j, 0], coords[j, 1], cfg.refine_window, cfg.refine_sigma)
                if fit is not None:
                    coords[j] = fit
        out_kp.append(np.concatenate([coords, js[:, None]], 1))
        out_sc.append(js.mean())
    o = np.argsort(-np.array(out_sc), kind="stable")
    return np.array(out_kp).reshape(-1, K, 3)[o], np.array(out_sc)[o]


# --------------------------------------------------------------------------- inputs
def _random_outputs(seed: int, size: tuple[int, int], scale: float, flipped: bool = False):
    rng = np.random.default_rng(seed)
    people = random_people(4, K, size, seed=seed, min_gap=56)
    cs = rng.uniform(0.2, 1.0, size=4)
    cs[0] = 0.005  # below the centre threshold
    out = plant_outputs([people], size, scale, center_scores=[cs], flipped=flipped, flip_index=SPEC.flip_index)
    g = torch.Generator().manual_seed(seed + 7 + int(flipped))
    off = out.refined_offsets + 0.3 * torch.randn(out.refined_offsets.shape, generator=g)
    vis = out.visibility + 3.0 * torch.randn(out.visibility.shape, generator=g)  # some joints unseen
    noise = torch.rand(out.heatmaps.shape, generator=g)
    noise[:, K] *= 0.1  # centre noise stays below the centre threshold; keypoint noise makes many peaks
    heat = out.heatmaps + 0.05 * noise
    c = (people[1].mean(0) * scale / 4).round().astype(int)  # a weaker second centre near person 1: a duplicate
    x = int(np.clip(c[0] + 2, 1, heat.shape[-1] - 2))
    if flipped:
        x = heat.shape[-1] - 1 - x
    heat[0, K, int(c[1]) + 1, x] = 0.5
    return type(out)(heat, off, off, vis), people


def _as_numpy(maps) -> tuple:
    return (maps.heatmaps[0].double().numpy(), maps.poses[0].double().numpy(),
            None if maps.visibility is None else maps.visibility[0].double().numpy())  # fmt: skip


def _compare(kp, sc, okp, osc) -> None:
    assert kp.shape == okp.shape, f"{kp.shape[0]} people vs oracle {okp.shape[0]}"
    for i in range(len(kp)):
        # people can share coordinates after snapping (one person proposed at two scales), not scores
        j = np.argmin(np.abs(okp - kp[i]).max(axis=(1, 2)))
        np.testing.assert_allclose(kp[i, :, :2], okp[j, :, :2], atol=1e-3)
        np.testing.assert_allclose(kp[i, :, 2], okp[j, :, 2], atol=1e-4)
    np.testing.assert_allclose(np.sort(sc), np.sort(osc), atol=1e-4)


@pytest.mark.parametrize("seed", [1, 2])
def test_single_scale_with_flip_matches_oracle(seed):
    size = (192, 256)
    out, _ = _random_outputs(seed, size, 1.0)
    out_f, _ = _random_outputs(seed, size, 1.0, flipped=True)
    cfg = Cfg()
    res = decode(out, cfg, flipped=out_f, flip_index=SPEC.flip_index)[0]
    okp, osc = oracle_decode([_as_numpy(merge_flip(out, out_f, SPEC.flip_index))], [1.0], cfg, size)
    assert len(okp) >= 3  # the threshold removed one centre, NMS removed the duplicate
    _compare(res.keypoints.numpy(), res.scores.numpy(), okp, osc)


def test_multiscale_matches_oracle():
    size = (192, 256)
    scales = [0.5, 1.0, 2.0]
    outs = [_random_outputs(3, size, s)[0] for s in scales]
    cfg = Cfg(scales=tuple(scales))
    res = decode(outs, cfg, scales=scales)[0]
    okp, osc = oracle_decode([_as_numpy(to_pose_maps(o)) for o in outs], scales, cfg, size)
    _compare(res.keypoints.numpy(), res.scores.numpy(), okp, osc)


def test_without_visibility_matches_oracle():
    size = (192, 192)
    out, _ = _random_outputs(4, size, 1.0)
    out = type(out)(out.heatmaps, out.offsets, out.refined_offsets, None)
    res = decode(out, Cfg())[0]
    okp, osc = oracle_decode([_as_numpy(to_pose_maps(out))], [1.0], Cfg(), size)
    _compare(res.keypoints.numpy(), res.scores.numpy(), okp, osc)


# --------------------------------------------------------------------------- NMS walk
def _walk(coords: np.ndarray, heat: np.ndarray, suppress_unkept: bool, dist: float = 0.05, joints: int = 7) -> set:
    n = len(coords)
    dup = np.zeros((n, n), bool)
    for i in range(n):
        diag = math.hypot(*(coords[i].max(0) - coords[i].min(0)))
        for j in range(n):
            close = np.linalg.norm(coords[i] - coords[j], axis=1) < dist * diag
            dup[i, j] = i == j or close.sum() > joints
    suppressed, kept = set(), set()
    for i in range(n):
        if i in suppressed:
            continue
        group = [j for j in range(n) if dup[i, j]]
        best = max(group, key=lambda j: (heat[j], -j))
        if best in suppressed:
            if suppress_unkept:
                suppressed |= set(group)
            continue
        kept.add(best)
        suppressed |= set(group)
    return kept


@pytest.mark.parametrize("suppress_unkept", [True, False])
def test_nms_fixed_point_equals_walk(suppress_unkept):
    rng = np.random.default_rng(0)
    differs = 0
    for trial in range(40):
        base = rng.uniform(0, 200, size=(4, 1, 2)) + rng.uniform(-30, 30, size=(4, K, 2))
        members = rng.integers(0, 4, size=24)
        coords = base[members] + rng.normal(0, rng.uniform(0.5, 4), size=(24, K, 2))  # chains of near-duplicates
        heat = rng.uniform(0, 1, size=24)
        valid = rng.uniform(size=24) > 0.1
        kept = pose_nms(torch.tensor(coords[None]).float(), torch.tensor(valid[None]), torch.tensor(heat[None]).float(),
                        suppress_unkept=suppress_unkept)[0].numpy()  # fmt: skip
        idx = np.nonzero(valid)[0]
        want = {int(idx[j]) for j in _walk(coords[idx], heat[idx], suppress_unkept)}
        assert set(np.nonzero(kept)[0].tolist()) == want, trial
        differs += want != {int(idx[j]) for j in _walk(coords[idx], heat[idx], not suppress_unkept)}
    assert differs > 0  # the inputs exercise the case where the two walks part ways
