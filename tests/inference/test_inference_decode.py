"""Decoding planted outputs: every person back, no duplicates, sub-pixel joints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grapepose.config import TestConfig as Cfg
from oracles.dense_maps import merge_flip, sample_upsampled, to_pose_maps
from oracles.planted import plant_outputs, random_people
from people_matching import assert_same_people

from grapepose.inference.decode import decode
from grapepose.inference.decode.centers import max_filter
from grapepose.inference.decode.reader import PoseMaps, upsample_maps
from grapepose.keypoints import COCO_KEYPOINTS, CROWDPOSE_KEYPOINTS

SPEC = CROWDPOSE_KEYPOINTS
SIZE = (512, 512)


def _match(found: np.ndarray, people: np.ndarray) -> np.ndarray:
    """Per-joint errors [N, K] after pairing each found pose with a distinct planted person."""
    assert found.shape[0] == people.shape[0], f"found {found.shape[0]} people, planted {people.shape[0]}"
    if not len(people):
        return np.zeros((0, people.shape[1]))
    d = np.linalg.norm(found[:, None, :, :2] - people[None], axis=-1)  # [N, P, K]
    owner = d.mean(-1).argmin(1)
    assert len(set(owner.tolist())) == len(owner), "a person was found twice"
    return d[np.arange(len(owner)), owner]


@pytest.mark.parametrize("n", [0, 1, 5, 15, 30])
def test_planted_people_are_recovered(n):
    people = random_people(n, SPEC.num_keypoints, SIZE, seed=n, min_gap=40, min_joint_gap=24)
    res = decode(plant_outputs([people], SIZE), Cfg(flip=False))
    assert len(res) == 1
    err = _match(res[0].keypoints.numpy(), people)
    assert err.size == 0 or err.mean() < 0.25
    assert res[0].keypoints.shape == (n, SPEC.num_keypoints, 3)
    assert torch.all(res[0].scores[:-1] >= res[0].scores[1:])  # sorted
    if n:
        assert res[0].scores.min() > 0.9  # centre score >= 0.4 and all joints visible: mean visibility


def test_flip_merge_is_consistent():
    people = random_people(6, SPEC.num_keypoints, SIZE, seed=3, min_gap=48)
    out = plant_outputs([people], SIZE)
    flipped = plant_outputs([people], SIZE, flipped=True, flip_index=SPEC.flip_index)
    merged = merge_flip(out, flipped, SPEC.flip_index)
    plain = to_pose_maps(out)
    # a mirrored, shifted input yields the same maps once mirrored back: averaging changes nothing
    torch.testing.assert_close(merged.heatmaps, plain.heatmaps, atol=1e-5, rtol=0)
    torch.testing.assert_close(merged.visibility, plain.visibility, atol=1e-5, rtol=0)
    torch.testing.assert_close(merged.poses, plain.poses, atol=1e-4, rtol=0)
    res = decode(out, Cfg(), flipped=flipped, flip_index=SPEC.flip_index)[0]
    assert _match(res.keypoints.numpy(), people).mean() < 0.25


def test_flip_shift_puts_mirrored_outputs_on_the_same_cells():
    people = random_people(3, SPEC.num_keypoints, SIZE, seed=4, min_gap=60)
    out = plant_outputs([people], SIZE)
    errors = {}
    for shift in (0, 3):  # the network input is shifted by `shift`; the decoder undoes a shift of 3 (stride - 1)
        mirrored = plant_outputs([people], SIZE, flipped=True, flip_index=SPEC.flip_index, flip_shift=shift)
        res = decode(out, Cfg(), flipped=mirrored, flip_index=SPEC.flip_index)[0]
        errors[shift] = _match(res.keypoints.numpy(), people).mean()
    assert errors[3] < 0.25 and errors[0] > 1.0  # half of the 3 px disagreement


@pytest.mark.parametrize("flip", [False, True])
def test_multiscale_planted(flip):
    scales = (0.5, 1.0, 2.0)
    people = random_people(4, SPEC.num_keypoints, (384, 512), seed=7, min_gap=80, min_joint_gap=64)
    outs = [plant_outputs([people], (384, 512), s) for s in scales]
    kw = {}
    if flip:
        kw = {"flipped": [plant_outputs([people], (384, 512), s, flipped=True, flip_index=SPEC.flip_index)
                          for s in scales], "flip_index": SPEC.flip_index}  # fmt: skip
    res = decode(outs, Cfg(scales=scales), **kw)[0]
    assert _match(res.keypoints.numpy(), people).mean() < 0.25


def test_scale_one_missing_still_decodes():
    people = random_people(3, SPEC.num_keypoints, (256, 256), seed=8, min_gap=60)
    outs = [plant_outputs([people], (256, 256), s) for s in (0.5, 2.0)]
    res = decode(outs, Cfg(), scales=(0.5, 2.0), input_size=(256, 256))[0]
    assert len(res.scores) >= 3


def test_no_visibility_branch():
    people = random_people(5, SPEC.num_keypoints, SIZE, seed=9, min_gap=48, min_joint_gap=24)
    out = plant_outputs([people], SIZE, visibility=False, center_scores=[np.full(5, 0.6)])
    assert out.visibility is None
    res = decode(out, Cfg())[0]
    assert _match(res.keypoints.numpy(), people).mean() < 0.25
    # score = centre score x heat value at the (proposal) joint: at most 0.6
    assert 0.4 < float(res.scores.max()) <= 0.6 + 1e-6


def test_empty_outputs():
    for kw in ({}, {"visibility": False}):
        out = plant_outputs([np.zeros((0, 14, 2))], (256, 384), **kw)
        assert decode(out, Cfg())[0].keypoints.shape == (0, 14, 3)
    out = plant_outputs([np.zeros((0, 14, 2))] * 2, (256, 384))
    res = decode(out, Cfg(), flipped=out, flip_index=SPEC.flip_index)
    assert [len(r.scores) for r in res] == [0, 0]


def test_results_are_ordinary_tensors_outside_inference_mode():
    out = plant_outputs([random_people(3, 14, (256, 256), seed=1, min_gap=48)], (256, 256))
    res = decode(out, Cfg())[0]
    assert not res.keypoints.is_inference() and not res.scores.is_inference()
    res.keypoints[..., :2] += 1.0  # callers may shift them in place
    with torch.inference_mode():
        inside = decode(out, Cfg())[0]
    assert inside.keypoints.is_inference()  # no copies inside inference mode (the predictor's case)
    torch.testing.assert_close(inside.keypoints[..., :2] + 1.0, res.keypoints[..., :2])


def test_batch_equals_one_by_one():
    sets = [random_people(n, 17, (256, 384), seed=n, min_gap=48) for n in (3, 0, 5)]
    outs = plant_outputs(sets, (256, 384), noise=0.01)
    flips = plant_outputs(sets, (256, 384), noise=0.01, flipped=True, flip_index=COCO_KEYPOINTS.flip_index)
    batch = decode(outs, Cfg(), flipped=flips, flip_index=COCO_KEYPOINTS.flip_index)
    for i in range(3):
        one = type(outs)(*(t[i : i + 1] for t in outs))
        one_f = type(flips)(*(t[i : i + 1] for t in flips))
        single = decode(one, Cfg(), flipped=one_f, flip_index=COCO_KEYPOINTS.flip_index)[0]
        # planted people tie in score exactly: their order is not defined (joints: float32 fit)
        got, want = batch[i], single
        assert_same_people(got.keypoints.numpy(), want.keypoints.numpy(), atol=1e-3,
                           a_scores=got.scores.numpy(), b_scores=want.scores.numpy(), score_atol=1e-6)  # fmt: skip


def test_low_precision_outputs_are_accepted():
    people = random_people(2, SPEC.num_keypoints, (256, 256), seed=1, min_gap=60)
    out = plant_outputs([people], (256, 256))
    half = type(out)(*(t.to(torch.bfloat16) for t in out))
    res = decode(half, Cfg(flip=False))[0]
    assert res.keypoints.dtype == torch.float32 and len(res.scores) == 2


def test_upsample_matches_reference_and_ignores_padding():
    maps = torch.rand(2, 3, 12, 20)
    for f in (2, 4, 8):
        up = upsample_maps(maps, float(f), (12 * f, 20 * f))
        ref = F.interpolate(maps, size=(12 * f - f + 1, 20 * f - f + 1), mode="bilinear", align_corners=True)
        torch.testing.assert_close(up, F.pad(ref, (0, f - 1, 0, f - 1), mode="replicate"))
        # padding cells beyond the image (a 64-padded canvas) are never read
        padded = torch.cat([torch.cat([maps, torch.rand(2, 3, 12, 5)], 3), torch.rand(2, 3, 3, 25)], 2)
        torch.testing.assert_close(upsample_maps(padded, float(f), (12 * f, 20 * f)), up, atol=1e-5, rtol=0)
        pts = torch.rand(2, 50, 3, 2) * torch.tensor([20.0 * f + 10, 12.0 * f + 10]) - 5
        x = pts[..., 0].floor().clamp(0, 20 * f - 1).long()
        y = pts[..., 1].floor().clamp(0, 12 * f - 1).long()
        want = up.permute(0, 2, 3, 1)[torch.arange(2)[:, None, None], y, x, torch.arange(3)]
        torch.testing.assert_close(sample_upsampled(maps, float(f), (12 * f, 20 * f), pts), want, atol=1e-5, rtol=0)


def test_max_filter_equals_max_pool():
    x = torch.rand(2, 3, 17, 23)
    x[0, 0, 3:6, 3:6] = 1.0  # plateaus
    for k in (3, 5, 7):
        torch.testing.assert_close(max_filter(x, k), F.max_pool2d(x, k, 1, k // 2))


def test_argument_errors():
    out = plant_outputs([np.zeros((0, 14, 2))], (256, 256))
    with pytest.raises(ValueError, match="flip_index"):
        decode(out, Cfg(), flipped=out)
    with pytest.raises(ValueError, match="scales"):
        decode([out, out], Cfg(), scales=(1.0,))
    with pytest.raises(ValueError, match="merged"):
        decode(PoseMaps(*to_pose_maps(out)), Cfg(), flipped=out, flip_index=SPEC.flip_index)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_decode_matches_cpu():
    people = random_people(8, SPEC.num_keypoints, SIZE, seed=11, min_gap=48)
    out = plant_outputs([people, people[:3]], SIZE, noise=0.01)
    flipped = plant_outputs([people, people[:3]], SIZE, noise=0.01, flipped=True, flip_index=SPEC.flip_index)
    cpu = decode(out, Cfg(), flipped=flipped, flip_index=SPEC.flip_index)
    on_gpu = [type(o)(*(t.cuda() for t in o)) for o in (out, flipped)]
    gpu = decode(on_gpu[0], Cfg(), flipped=on_gpu[1], flip_index=SPEC.flip_index)
    for a, g in zip(cpu, gpu):
        assert g.keypoints.is_cuda
        # planted people tie in score exactly: their order is not defined
        assert_same_people(g.keypoints.cpu().numpy(), a.keypoints.numpy(), atol=1e-3)
