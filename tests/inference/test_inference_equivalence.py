"""The fast decoder against the decoder it replaced (full-resolution maps) and its building blocks.

`oracles.reference_decode` is the previous decoder, unchanged: the fast one must find the
same people with joints within 0.01 px, on planted scenes and on real network outputs, with flip
and multi-scale. The loop oracle (test_inference_oracle.py) checks both against docs/DESIGN.md (Decoding).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grapepose.config import TestConfig as Cfg
from oracles.dense_maps import map_windows, merge_flip
from oracles.planted import plant_outputs, random_people
from oracles.reference_decode import reference_decode

from grapepose.inference.decode import decode
from grapepose.inference.decode.peaks import heatmap_peaks, lattice_peaks, lattice_step
from grapepose.inference.decode.reader import ScaleReader, probabilities, upsample_maps
from grapepose.inference.preprocess import flip_shift, image_transform, normalize_images, warp_image
from grapepose.io.files import read_image
from grapepose.keypoints import CROWDPOSE_KEYPOINTS
from grapepose.models import load_model

SPEC = CROWDPOSE_KEYPOINTS
K = SPEC.num_keypoints
SIZE = (384, 512)


def assert_same_people(fast, old, atol: float = 0.01) -> int:
    """Same number of people per image; each fast pose equals a distinct old one (joints, scores)."""
    total = 0
    for f, o in zip(fast, old, strict=True):
        assert f.keypoints.shape == o.keypoints.shape, f"{len(f.scores)} people vs {len(o.scores)}"
        if not len(f.scores):
            continue
        d = (f.keypoints[:, None, :, :2] - o.keypoints[None, :, :, :2]).abs().amax((2, 3))  # [N, N]
        match = d.argmin(1)
        assert len(set(match.tolist())) == len(match), "two poses matched the same old pose"
        assert float(d.min(1).values.max()) < atol
        torch.testing.assert_close(f.keypoints[..., 2], o.keypoints[match, :, 2], atol=1e-4, rtol=0)
        torch.testing.assert_close(f.scores, o.scores[match], atol=1e-4, rtol=0)
        total += len(f.scores)
    return total


def _planted(n: int, scale: float = 1.0, flipped: bool = False, seed: int = 0, noise: float = 0.02):
    people = random_people(n, K, SIZE, seed=seed, min_gap=40)
    return plant_outputs([people], SIZE, scale, flipped=flipped, flip_index=SPEC.flip_index, noise=noise,
                         seed=seed + int(flipped))  # fmt: skip


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("n", [1, 5, 15, 30])
def test_planted_scenes_equal_the_old_decoder(n, flip):
    out = _planted(n, seed=n)
    kw = {"flipped": _planted(n, flipped=True, seed=n), "flip_index": SPEC.flip_index} if flip else {}
    fast, old = decode(out, Cfg(flip=flip), **kw), reference_decode(out, Cfg(flip=flip), **kw)
    assert assert_same_people(fast, old) == n


@pytest.mark.parametrize("flip", [False, True])
def test_multiscale_planted_equals_the_old_decoder(flip):
    scales = (0.5, 1.0, 2.0)
    outs = [_planted(15, s, seed=3) for s in scales]
    kw = {"flipped": [_planted(15, s, True, seed=3) for s in scales], "flip_index": SPEC.flip_index} if flip else {}
    cfg = Cfg(scales=scales, flip=flip)
    assert assert_same_people(decode(outs, cfg, **kw), reference_decode(outs, cfg, **kw)) == 15


def test_off_lattice_scales_fall_back_and_agree():
    scales = (0.75, 1.0)  # 4 / 0.75 is not an integer: the peaks come from the full maps
    assert lattice_step([4 / s for s in scales], 5) is None
    outs = [_planted(5, s, seed=5) for s in scales]
    cfg = Cfg(scales=scales)
    assert assert_same_people(decode(outs, cfg), reference_decode(outs, cfg)) == 5


def test_empty_images_and_mixed_batch():
    empty = plant_outputs([np.zeros((0, K, 2))], SIZE)
    for kw in ({}, {"flipped": empty, "flip_index": SPEC.flip_index}):
        assert [r.keypoints.shape for r in decode(empty, Cfg(), **kw)] == [(0, K, 3)]
    assert decode(type(empty)(*(t[:0] for t in empty)), Cfg()) == []  # no images at all
    sets = [random_people(4, K, SIZE, seed=1, min_gap=48), np.zeros((0, K, 2)), random_people(7, K, SIZE, seed=2)]
    out = plant_outputs(sets, SIZE, noise=0.005)  # centre noise stays below the 0.01 threshold
    flipped = plant_outputs(sets, SIZE, noise=0.005, flipped=True, flip_index=SPEC.flip_index, seed=4)
    kw = {"flipped": flipped, "flip_index": SPEC.flip_index}
    fast = decode(out, Cfg(), **kw)
    assert [len(r.scores) for r in fast] == [4, 0, 7]
    assert_same_people(fast, reference_decode(out, Cfg(), **kw))


def _network_outputs(model, image: np.ndarray, scales, base_size: int = 128):
    t = image_transform(image.shape[0], image.shape[1], base_size)
    outs, flips = [], []
    with torch.no_grad():
        for s in scales:
            x = normalize_images(torch.from_numpy(warp_image(image, t, s)).permute(2, 0, 1)[None])
            y = model(torch.cat([x, flip_shift(x, 3)]))
            outs.append(type(y)(*(None if v is None else v[:1] for v in y)))
            flips.append(type(y)(*(None if v is None else v[1:] for v in y)))
    return outs, flips, t.input_size


def _perturbed(outputs, seed: int, eps: float = 1e-4):
    g = torch.Generator().manual_seed(seed)
    one = lambda o: type(o)(*(None if t is None else t * (1 + eps * (2 * torch.rand(t.shape, generator=g) - 1))
                              for t in o))  # fmt: skip
    return [one(o) for o in outputs] if isinstance(outputs, list) else one(outputs)


def _nearest(a, b) -> tuple[torch.Tensor, torch.Tensor]:
    """For each pose of `a`: the closest pose of `b` and the per-joint distance `[N, K]` to it."""
    match = (a.keypoints[:, None, :, :2] - b.keypoints[None, :, :, :2]).abs().amax((2, 3)).argmin(1)
    return match, (a.keypoints[..., :2] - b.keypoints[match, :, :2]).abs().amax(-1)


def test_real_network_outputs_equal_the_old_decoder(tiny_checkpoint, shared_data):
    """Same people, same scores, joints within 0.01 px wherever the old decoder's own answer is defined.

    On a random network many windows hold noise, and some Gaussian fits there are chaotic: they run
    far out of their window, or the old decoder itself moves them by more than 0.01 px when its
    inputs change by 1e-4 (relative). Those joints are left out of the comparison (and counted),
    as are joints that the two decoders snap to different pixels of the replicated last columns or
    rows of the upsampled maps, where equal peaks tie: which of them fill the last of the 30 peak
    slots is `topk`'s arbitrary choice.
    """
    model = load_model(tiny_checkpoint).eval()
    image = read_image(shared_data / "demo" / "crowd_01.jpg")
    scales = (0.5, 1.0, 2.0)
    outs, flips, size = _network_outputs(model, image, scales)
    compared = total = 0
    for cfg, kw in (
        (Cfg(flip=False), {"outputs": outs[1]}),
        (Cfg(), {"outputs": outs[1], "flipped": flips[1]}),
        (Cfg(scales=scales), {"outputs": outs, "flipped": flips}),
    ):
        kw = {**kw, "flip_index": SPEC.flip_index, "input_size": size}
        fast, old = decode(cfg=cfg, **kw)[0], reference_decode(cfg=cfg, **kw)[0]
        unfitted = reference_decode(cfg=Cfg(**{**cfg.__dict__, "refine": False}), **kw)[0]
        assert fast.keypoints.shape == old.keypoints.shape
        match, dist = _nearest(fast, old)
        torch.testing.assert_close(fast.scores, old.scores[match], atol=1e-4, rtol=0)
        torch.testing.assert_close(fast.keypoints[..., 2], old.keypoints[match, :, 2], atol=1e-4, rtol=0)
        chaotic = torch.zeros_like(old.scores[:, None].expand(-1, K), dtype=torch.bool)
        for seed in range(3):
            moved = {key: _perturbed(kw[key], seed) for key in ("outputs", "flipped") if key in kw}
            chaotic |= _nearest(old, reference_decode(cfg=cfg, **{**kw, **moved})[0])[1] > 0.01
        chaotic |= _nearest(old, unfitted)[1] > cfg.refine_window  # fits that left their window
        g = lattice_step([4 / s for s in cfg.scales], cfg.snap_pool_kernel)
        edge = torch.tensor([(size[1] - 1) // g * g, (size[0] - 1) // g * g])  # the tied border strip
        fast_unfitted = decode(cfg=Cfg(**{**cfg.__dict__, "refine": False}), **kw)[0]
        snap_old = unfitted.keypoints[_nearest(old, unfitted)[0], :, :2][match]
        snap_fast = fast_unfitted.keypoints[_nearest(fast, fast_unfitted)[0], :, :2]
        tied = (snap_old >= edge).any(-1) & (snap_fast >= edge).any(-1) & (snap_old != snap_fast).any(-1)
        keep = ~chaotic[match] & ~tied & (_nearest(fast, unfitted)[1] <= cfg.refine_window)
        assert float(torch.where(keep, dist, 0.0).max()) < 0.01
        compared += int(keep.sum())
        total += keep.numel()
    assert total > 3 * K and compared >= 0.85 * total  # the calibrated network "sees" people


# --------------------------------------------------------------------------- building blocks
def _smooth_maps(seed: int, shape=(2, 3, 24, 40)) -> torch.Tensor:
    """Random smooth heatmaps with peaks everywhere, including on the borders."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    for _ in range(2):
        x = torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    return x + 0.001 * torch.rand(shape, generator=g)


@pytest.mark.parametrize("scales", [(1.0,), (0.5, 1.0, 2.0), (2.0,), (0.5,)])
def test_lattice_peaks_equal_the_full_map_peaks(scales):
    size = (96, 160)
    readers, full = [], 0.0
    for i, s in enumerate(scales):
        f = 4 / s
        h, w = -(-int(size[0] / f) // 8) * 8 + 2, -(-int(size[1] / f) // 8) * 8 + 3  # padded canvases
        heat = torch.cat([_smooth_maps(i, (2, 3, h, w)), torch.zeros(2, 1, h, w)], 1)
        mirrored = torch.cat([_smooth_maps(10 + i, (2, 3, h, w)), torch.zeros(2, 1, h, w)], 1)
        zeros = torch.zeros(2, 6, h, w)
        readers.append(ScaleReader(heat, zeros, None, f, size, mirrored=(mirrored, zeros, None), flip_index=[1, 0, 2]))
        merged = merge_flip(_out(heat), _out(mirrored), [1, 0, 2]).heatmaps[:, :3]
        full = full + upsample_maps(merged, f, size)
    full = full / len(scales)
    g = lattice_step([4 / s for s in scales], 5)
    assert g is not None
    for num in (5, 30, 200):  # few peaks, the reference's 30, more than a map has (validity false)
        got, got_ok = lattice_peaks(readers, size, g, num, 5)
        want, want_ok = heatmap_peaks(full, num, 5)
        assert torch.equal(got_ok, want_ok)
        for b in range(2):
            for k in range(3):
                a, w = got[b, k][got_ok[b, k]].long(), want[b, k][want_ok[b, k]].long()
                if num == 200:  # every maximum: the same pixels
                    assert {tuple(p) for p in a.tolist()} == {tuple(p) for p in w.tolist()}, (b, k)
                # the strongest ones: the same values (replicated border pixels tie, in any order)
                va, vw = full[b, k][a[:, 1], a[:, 0]], full[b, k][w[:, 1], w[:, 0]]
                torch.testing.assert_close(va.sort().values, vw.sort().values, atol=1e-6, rtol=0)


def _out(heat: torch.Tensor):
    from grapepose.models import GrapeOutput

    b, c, h, w = heat.shape
    off = torch.zeros(b, 2 * (c - 1), h, w)
    return GrapeOutput(heat, off, off, None)


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (4, 1), (2, 2), (2, 7), (6, 9)])
def test_axial_max_is_the_largest_of_the_four_neighbours(shape):
    from grapepose.inference.decode.peaks import _axial_max

    v = torch.rand(2, 3, *shape, generator=torch.Generator().manual_seed(sum(shape)))
    p = torch.nn.functional.pad(v, (1, 1, 1, 1), value=-torch.inf)
    want = torch.stack([p[..., 1:-1, :-2], p[..., 1:-1, 2:], p[..., :-2, 1:-1], p[..., 2:, 1:-1]]).amax(0)
    assert torch.equal(_axial_max(v), want)


def test_reader_values_equal_the_upsampled_merged_maps():
    size = (192, 256)
    out = plant_outputs([random_people(2, K, size, seed=1, min_gap=30)], size, noise=0.05)
    mirrored = plant_outputs([random_people(2, K, size, seed=1, min_gap=30)], size, flipped=True, flip_index=SPEC.flip_index,
                             noise=0.05, seed=2)  # fmt: skip
    reader = ScaleReader.from_output(out, 4.0, size, mirrored, SPEC.flip_index)
    merged = merge_flip(out, mirrored, SPEC.flip_index)
    full = upsample_maps(merged.heatmaps[:, :K], 4.0, size)
    vis = upsample_maps(merged.visibility, 4.0, size)
    g = torch.Generator().manual_seed(0)
    px, py = torch.randint(0, size[1], (1, 40, K), generator=g), torch.randint(0, size[0], (1, 40, K), generator=g)
    ch = torch.arange(K)
    heat_at, vis_at = reader.pixels(ch, px, py, visibility=True)
    torch.testing.assert_close(heat_at, full[0][ch, py[0], px[0]][None], atol=1e-6, rtol=0)
    torch.testing.assert_close(vis_at, vis[0][ch, py[0], px[0]][None], atol=1e-6, rtol=0)
    centers = torch.stack([px, py], -1)[:, :6]  # [1, 6, K, 2], some near the borders
    centers[0, 0] = 0
    torch.testing.assert_close(reader.heat_windows(centers, 6), map_windows(full)(centers, 6), atol=1e-6, rtol=0)
    idx = torch.randint(0, 48 * 64, (1, 9), generator=g)
    want = merged.poses.flatten(3)[0][..., idx[0]].permute(2, 0, 1)[None]
    torch.testing.assert_close(reader.poses_at(idx), want, atol=1e-5, rtol=0)


def test_visibility_probabilities_do_not_depend_on_the_place_in_the_tensor():
    """`torch.sigmoid` on the CPU computes the elements after the last whole vector register apart
    (a few percent of them differ in the last bit); `probabilities` does not."""
    x = 6 * torch.randn(4096, generator=torch.Generator().manual_seed(0))
    whole = probabilities(x)
    # each value again as the last element of a 33-element tensor: the 32 before it fill whole registers
    last = torch.stack([probabilities(torch.cat([x[:32], x[i : i + 1]]))[32] for i in range(len(x))])
    assert torch.equal(last, whole)
    # the sigmoid: each side is within 2 ulp of it, so 4 ulp of values < 1 apart at most
    torch.testing.assert_close(whole, torch.sigmoid(x), atol=4 * 2**-24, rtol=0)


def test_reader_values_are_the_same_in_every_image_of_a_batch():
    """Odd batches of copies: the last image's last values are where a vectorised kernel goes its own way."""
    from grapepose.models import GrapeOutput

    g = torch.Generator().manual_seed(3)
    h, w = 32, 48
    maps = [GrapeOutput(torch.rand(1, K + 1, h, w, generator=g), off, off, 4 * torch.randn(1, K, h, w, generator=g))
            for off in (torch.randn(1, 2 * K, h, w, generator=g) for _ in range(2))]  # fmt: skip
    px, py = torch.randint(0, 4 * w, (1, 7, K), generator=g), torch.randint(0, 4 * h, (1, 7, K), generator=g)
    for n in (1, 3, 5):
        out, mirrored = (type(o)(*(t.expand(n, *t.shape[1:]).contiguous() for t in o)) for o in maps)
        reader = ScaleReader.from_output(out, 4.0, (4 * h, 4 * w), mirrored, SPEC.flip_index)
        heat, vis = reader.pixels(torch.arange(K), px.expand(n, -1, -1), py.expand(n, -1, -1), visibility=True)
        for i in range(1, n):
            assert torch.equal(heat[i], heat[0]) and torch.equal(vis[i], vis[0]), (n, i)


def test_copies_in_one_batch_decode_identically(tiny_checkpoint, shared_data):
    """Every image of a batch gets the same arithmetic: copies of one image give identical poses.

    On a random network some Gaussian fits are chaotic, so a last-bit difference (a vectorised
    kernel treating the last elements of a tensor apart) would show as pixels here.
    """
    model = load_model(tiny_checkpoint).eval()
    image = read_image(shared_data / "demo" / "crowd_01.jpg")
    outs, flips, size = _network_outputs(model, image, (1.0,))

    def copies(o, n):
        return type(o)(*(None if t is None else t[:1].expand(n, *t.shape[1:]).contiguous() for t in o))

    for n in (3, 4, 5):
        res = decode(copies(outs[0], n), Cfg(), flipped=copies(flips[0], n), flip_index=SPEC.flip_index, input_size=size)
        assert len(res[0].scores) > 0
        for r in res[1:]:
            assert torch.equal(r.keypoints, res[0].keypoints) and torch.equal(r.scores, res[0].scores)
            assert torch.equal(r.joint_scores, res[0].joint_scores)
