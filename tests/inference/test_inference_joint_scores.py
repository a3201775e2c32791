"""Per-joint confidence: the visibility map (else the heatmap) read at each final joint, carried by `Poses`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from inference_helpers import PERSON_640x425, BlobModel, draw_person
from oracles.planted import plant_outputs, random_people
from oracles.reference_decode import reference_decode

from grapepose.config import TestConfig as Cfg
from grapepose.inference import Poses, Predictor
from grapepose.inference.decode import decode
from grapepose.keypoints import CROWDPOSE_KEYPOINTS

SPEC = CROWDPOSE_KEYPOINTS
K = SPEC.num_keypoints
SIZE = (384, 512)


# --------------------------------------------------------------------------- the oracle
def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _merged(plain: np.ndarray, mirrored: np.ndarray | None, flip_index) -> np.ndarray:
    """`[K, h, w]` maps of the input, averaged with the mirrored input's maps, mirrored back and swapped."""
    if mirrored is None:
        return plain
    k, h, w = plain.shape
    out = np.empty_like(plain)
    for c in range(k):
        for x in range(w):
            out[c, :, x] = (plain[c, :, x] + mirrored[flip_index[c], :, w - 1 - x]) / 2
    return out


def _pixel(grid: np.ndarray, f: float, size: tuple[int, int], x: float, y: float) -> float:
    """Value of a `[h, w]` grid map upsampled to `size` (cell i at pixel f * i, bilinear, replicated
    past the last cell inside `size`), at the floor of (x, y) clamped into the image."""
    h, w = grid.shape
    px = min(max(math.floor(x), 0), size[1] - 1)
    py = min(max(math.floor(y), 0), size[0] - 1)

    def axis(p: int, n: int, n_out: int) -> tuple[int, int, float]:
        last = min(n, math.ceil(n_out / f)) - 1
        src = min(p / f, last)
        i0 = int(math.floor(src))
        return i0, min(i0 + 1, n - 1), src - i0

    x0, x1, ax = axis(px, w, size[1])
    y0, y1, ay = axis(py, h, size[0])
    top = grid[y0, x0] * (1 - ax) + grid[y0, x1] * ax
    bottom = grid[y1, x0] * (1 - ax) + grid[y1, x1] * ax
    return float(top * (1 - ay) + bottom * ay)


def oracle_joint_scores(keypoints, outputs, mirrored, scales, visibility: bool) -> np.ndarray:
    """`[N, K]`: per joint, the merged visibility probability (else heatmap, clipped to [0, 1]) at the
    joint, averaged over the scales; one loop per person, joint and scale."""
    kp = keypoints.numpy().astype(np.float64)
    out = np.zeros(kp.shape[:2])
    for i in range(kp.shape[0]):
        for k in range(K):
            values = []
            for s, o, m in zip(scales, outputs, mirrored):
                if visibility:
                    plain = _sigmoid(o.visibility[0].double().numpy())
                    mir = None if m is None else _sigmoid(m.visibility[0].double().numpy())
                else:
                    plain = o.heatmaps[0, :K].double().numpy()
                    mir = None if m is None else m.heatmaps[0, :K].double().numpy()
                grid = _merged(plain, mir, SPEC.flip_index)[k]
                values.append(_pixel(grid, 4 / s, SIZE, kp[i, k, 0], kp[i, k, 1]))
            v = sum(values) / len(values)
            out[i, k] = v if visibility else min(max(v, 0.0), 1.0)
    return out


def _outputs(people: np.ndarray, scale: float, flipped: bool, seed: int):
    """Planted outputs with random visibility logits and keypoint heatmaps scaled by a random factor
    per cell (0.4 to 1.4: some values above 1): any misplaced read gives another value."""
    out = plant_outputs([people], SIZE, scale, flipped=flipped, flip_index=SPEC.flip_index, noise=0.02, seed=seed)
    gen = torch.Generator().manual_seed(100 + seed)
    heat = out.heatmaps.clone()
    heat[:, :K] *= 0.4 + torch.rand(heat[:, :K].shape, generator=gen)
    return out._replace(heatmaps=heat, visibility=3.0 * torch.randn(out.visibility.shape, generator=gen))


# --------------------------------------------------------------------------- decode
@pytest.mark.parametrize("visibility", [True, False], ids=["visibility", "heatmap"])
@pytest.mark.parametrize(
    "scales, flip", [((1.0,), False), ((1.0,), True), ((0.5, 1.0, 2.0), True)], ids=["plain", "flip", "multi"]
)
def test_joint_scores_are_the_maps_read_at_the_final_joints(scales, flip, visibility):
    people = random_people(6, K, SIZE, seed=7, min_gap=48)
    outs = [_outputs(people, s, False, seed=i) for i, s in enumerate(scales)]
    mirrored = [_outputs(people, s, True, seed=10 + i) for i, s in enumerate(scales)] if flip else [None] * len(scales)
    if not visibility:
        outs = [o._replace(visibility=None) for o in outs]
        mirrored = [None if m is None else m._replace(visibility=None) for m in mirrored]
    kw = {"flipped": mirrored, "flip_index": SPEC.flip_index} if flip else {}
    (res,) = decode(outs, Cfg(scales=scales, flip=flip), scales=scales, **kw)
    assert len(res.scores) == 6 and res.joint_scores.shape == (6, K) and res.joint_scores.dtype == torch.float32
    want = oracle_joint_scores(res.keypoints, outs, mirrored, scales, visibility)
    np.testing.assert_allclose(res.joint_scores.numpy(), want, atol=1e-5, rtol=0)
    assert want.std() > 0.05  # the values vary from joint to joint: a read elsewhere would not match
    if visibility:
        # not the keypoints' third value, which rescoring makes the same for every joint of a person
        assert not np.allclose(res.joint_scores.numpy(), res.keypoints[..., 2].numpy(), atol=1e-3)


def test_reference_decoder_reads_the_same_joint_scores():
    people = random_people(8, K, SIZE, seed=2, min_gap=48)
    out, flipped = _outputs(people, 1.0, False, 0), _outputs(people, 1.0, True, 1)
    kw = {"flipped": flipped, "flip_index": SPEC.flip_index}
    (fast,), (old,) = decode(out, Cfg(), **kw), reference_decode(out, Cfg(), **kw)
    order = [int((old.keypoints[..., :2] - f[:, :2]).abs().amax((1, 2)).argmin()) for f in fast.keypoints]
    assert sorted(order) == list(range(len(old.scores)))
    same_pixel = (fast.keypoints[..., :2].floor() == old.keypoints[order, :, :2].floor()).all(-1)
    assert same_pixel.float().mean() > 0.9
    torch.testing.assert_close(fast.joint_scores[same_pixel], old.joint_scores[order][same_pixel], atol=1e-5, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_joint_scores_stay_on_the_device_and_match_cpu():
    people = random_people(8, K, SIZE, seed=11, min_gap=48)
    out, flipped = _outputs(people, 1.0, False, 0), _outputs(people, 1.0, True, 1)
    kw = {"flip_index": SPEC.flip_index}
    (cpu,) = decode(out, Cfg(), flipped=flipped, **kw)
    on_gpu = [type(o)(*(t.cuda() for t in o)) for o in (out, flipped)]
    (gpu,) = decode(on_gpu[0], Cfg(), flipped=on_gpu[1], **kw)
    assert gpu.joint_scores.is_cuda and gpu.joint_scores.shape == cpu.joint_scores.shape
    order = [int((cpu.keypoints[..., :2] - g[:, :2]).abs().amax((1, 2)).argmin()) for g in gpu.keypoints.cpu()]
    same_pixel = (gpu.keypoints[..., :2].cpu().floor() == cpu.keypoints[order, :, :2].floor()).all(-1)
    assert same_pixel.float().mean() > 0.9
    got, want = gpu.joint_scores.cpu()[same_pixel], cpu.joint_scores[order][same_pixel]
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


def test_empty_decode_has_empty_joint_scores():
    empty = plant_outputs([np.zeros((0, K, 2))], SIZE)
    (res,) = decode(empty, Cfg(flip=False))
    assert res.joint_scores.shape == (0, K)


# --------------------------------------------------------------------------- Predictor and Poses
class _HalfAbsentModel(BlobModel):
    """A perfect network for the coded discs that says the joints of `ABSENT` types are not there."""

    ABSENT = (0, 1, 12)  # closed under the left/right swap, as the flip test needs

    def forward(self, x: torch.Tensor):  # noqa: ANN201
        out = super().forward(x)
        vis = out.visibility.clone()
        vis[:, list(self.ABSENT)] = -6.0
        return out._replace(visibility=vis)


@pytest.mark.parametrize("cfg", [Cfg(flip=False), Cfg(flip=True)], ids=["plain", "flip"])
def test_predictor_poses_carry_the_joint_scores(cfg):
    img = draw_person(PERSON_640x425, SPEC, 425, 640)
    (res,) = Predictor(_HalfAbsentModel(SPEC), cfg, device="cpu")(img)
    assert len(res) == 1 and res.joint_scores.shape == (1, K) and res.joint_scores.dtype == np.float32
    absent = np.zeros(K, bool)
    absent[list(_HalfAbsentModel.ABSENT)] = True
    assert (res.joint_scores[0, absent] < 0.01).all() and (res.joint_scores[0, ~absent] > 0.99).all()
    # the keypoints' third value stays the person's rescored value, the same for every joint
    np.testing.assert_allclose(res.keypoints[0, :, 2], res.scores[0], atol=1e-6)


def test_poses_carry_joint_scores_through_every_path():
    kp = np.random.default_rng(0).uniform(0, 50, (3, K, 3)).astype(np.float32)
    joints = np.arange(3 * K, dtype=np.float32).reshape(3, K) / (3 * K)
    p = Poses(kp, np.array([0.9, 0.5, 0.2]), SPEC, image_size=(60, 60), joint_scores=joints)
    np.testing.assert_array_equal(p[1:].joint_scores, joints[1:])
    np.testing.assert_array_equal(p[np.array([True, False, True])].joint_scores, joints[[0, 2]])
    np.testing.assert_array_equal(p[2].joint_scores, joints[[2]])
    p.track_ids = np.array([4, 5, 6])
    np.testing.assert_array_equal(p[::-1].joint_scores, joints[::-1])
    assert Poses.empty(SPEC).joint_scores.shape == (0, K)
    np.testing.assert_array_equal(Poses(kp, np.ones(3), SPEC).joint_scores, kp[..., 2])  # default: the keypoints'
    with pytest.raises(ValueError, match=r"joint_scores of shape \(3, 2\) for keypoints \(3, 14, 3\)"):
        Poses(kp, np.ones(3), SPEC, joint_scores=np.ones((3, 2)))
    entries = p.to_coco(image_id=1)
    assert [e["keypoint_scores"] for e in entries] == [[round(float(v), 5) for v in row] for row in joints]
    assert [e["keypoints"][2::3] for e in entries] == [[round(float(v), 5) for v in row] for row in kp[..., 2]]
