"""`Predictor`: poses come back in original pixels; batches, formats and bad images."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from inference_helpers import PERSON_640x425, BlobModel, NullModel, draw_person
from people_matching import assert_same_people
from PIL import Image

from grapepose.config import TestConfig as Cfg
from grapepose.errors import DataError, GrapeposeError
from grapepose.evaluation import read_image_as_stored
from grapepose.inference import Poses, Predictor
from grapepose.keypoints import CROWDPOSE_KEYPOINTS
from grapepose.utils.device import resolve_dtype

SPEC = CROWDPOSE_KEYPOINTS


@pytest.mark.parametrize(
    "cfg", [Cfg(flip=False), Cfg(flip=True), Cfg(scales=(0.5, 1.0, 2.0), flip=True)], ids=["plain", "flip", "multi"]
)
def test_planted_pose_comes_back_in_original_pixels(cfg):
    img = draw_person(PERSON_640x425, SPEC, 425, 640)
    model = BlobModel(SPEC)
    (res,) = Predictor(model, cfg, device="cpu")(img)
    assert isinstance(res, Poses) and len(res) == 1 and res.image_size == (425, 640)
    assert res.keypoints.dtype == np.float32 and res.keypoints.shape == (1, 14, 3)
    err = np.linalg.norm(res.keypoints[0, :, :2] - PERSON_640x425, axis=1)
    assert err.mean() < 0.25 and err.max() < 0.5
    assert res.scores[0] > 0.9
    shapes = {s[2:] for s in model.calls}
    assert (512, 832) in shapes and all(h % 32 == 0 and w % 32 == 0 for h, w in shapes)


def test_portrait_image_and_flip_shift():
    person = PERSON_640x425 + (-100, 150)
    img = draw_person(person, SPEC, 640, 425)  # portrait
    errs = {}
    for shift in (0, 3):
        (res,) = Predictor(BlobModel(SPEC), Cfg(flip=True, flip_shift=shift), device="cpu")(img)
        errs[shift] = np.linalg.norm(res.keypoints[0, :, :2] - person, axis=1).mean()
    assert errs[3] < 0.25 and errs[0] > 0.5  # without the shift, mirrored maps land 3 px off


def test_batch_groups_by_size_and_equals_one_by_one():
    images = [
        draw_person(PERSON_640x425, SPEC, 425, 640),
        draw_person(PERSON_640x425 + (-100, 150), SPEC, 640, 425),
        draw_person(PERSON_640x425 * 0.7, SPEC, 333, 500),
        draw_person(PERSON_640x425 + 10, SPEC, 440, 660),  # same input size as the first
    ]
    model = BlobModel(SPEC)
    cfg = Cfg(base_size=256)
    batch = Predictor(model, cfg, device="cpu").predict_batch(images)
    assert sorted(s[0] for s in model.calls) == [2, 2, 4]  # (image + mirror) per group; the 640x425 pair shares one
    for img, got in zip(images, batch):
        (one,) = Predictor(BlobModel(SPEC), cfg, device="cpu")(img)
        np.testing.assert_array_equal(got.keypoints, one.keypoints)
        np.testing.assert_array_equal(got.scores, one.scores)
        assert len(one) == 1
    streamed = list(Predictor(BlobModel(SPEC), cfg, device="cpu", batch_size=3).iter_predict(images))
    for a, b in zip(streamed, batch):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)


def _exif_rotated_jpeg(path, w=60, h=40):
    img = Image.new("RGB", (w, h), (10, 200, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    img.save(path, exif=exif.tobytes())


def test_image_formats_and_per_image_errors(tmp_path):
    paths = {}
    cv2.imwrite(str(tmp_path / "gray.png"), np.full((50, 70), 128, np.uint8))
    cv2.imwrite(str(tmp_path / "rgba.png"), np.full((30, 40, 4), 200, np.uint8))
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((45, 35, 3), 40000, np.uint16))
    cv2.imwrite(str(tmp_path / "tiny.png"), np.zeros((3, 5, 3), np.uint8))
    _exif_rotated_jpeg(tmp_path / "exif.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    for name in ("gray.png", "rgba.png", "deep.png", "tiny.png", "exif.jpg", "broken.jpg", "missing.jpg"):
        paths[name] = tmp_path / name
    inputs = [*paths.values(), np.zeros((20, 8000, 3), np.uint8), np.zeros((8200, 1100), np.uint8),
              np.zeros((4, 4, 5), np.uint8), "not_there.png"]  # fmt: skip
    model = NullModel()
    out = list(Predictor(model, Cfg(flip=False, base_size=128), device="cpu").iter_predict(inputs, batch_size=2))
    assert len(out) == len(inputs)
    sizes = [o.image_size if isinstance(o, Poses) else None for o in out]
    assert sizes[:5] == [(50, 70), (30, 40), (45, 35), (3, 5), (60, 40)]  # EXIF applied: 60 x 40 becomes 40 wide
    assert isinstance(out[5], DataError) and "broken.jpg: cannot decode" in str(out[5])
    assert isinstance(out[6], DataError) and "missing.jpg: image file not found" in str(out[6])
    assert isinstance(out[7], DataError) and "image #7" in str(out[7]) and "aspect ratio" in str(out[7])
    assert sizes[8] == (8200, 1100) and all(len(o) == 0 for o in out if isinstance(o, Poses))
    assert isinstance(out[9], DataError) and str(out[9]).startswith("image #9: image array of shape (4, 4, 5)")
    assert isinstance(out[10], DataError) and "not_there.png" in str(out[10])
    # the stored-pixels reader used for evaluation ignores the EXIF rotation
    assert read_image_as_stored(paths["exif.jpg"]).shape == (40, 60, 3)
    with pytest.raises(GrapeposeError, match="missing.jpg"):
        Predictor(NullModel(), Cfg(flip=False, base_size=128), device="cpu")([paths["gray.png"], paths["missing.jpg"]])


def test_to_coco_and_dtype():
    res = Poses(np.arange(2 * 14 * 3, dtype=np.float32).reshape(2, 14, 3), np.array([0.9, 0.5], np.float32), SPEC)
    res.track_ids = np.array([3, 4])
    items = res.to_coco(7)
    assert json.loads(json.dumps(items))[1]["track_id"] == 4
    assert items[0]["image_id"] == 7 and items[0]["category_id"] == 1 and len(items[0]["keypoints"]) == 42
    assert items[0]["score"] == pytest.approx(0.9)
    assert Poses.empty(SPEC).to_coco(1) == []
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("fp16", torch.device("cpu")) == torch.float16
    assert Predictor(NullModel(), Cfg(dtype="bf16"), device="cpu").dtype == torch.bfloat16


def test_real_network_runs_end_to_end():
    from grapepose.models import build_model

    torch.manual_seed(0)
    model = build_model("coco_w18")
    with torch.no_grad():
        model.heatmap_head.out.bias.add_(0.5)  # random weights find nobody otherwise
    pred = Predictor(model, Cfg(base_size=64, flip=True), device="cpu")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, size=(60, 90, 3), dtype=np.uint8) for _ in range(2)]
    batch = pred.predict_batch(images)
    for img, got in zip(images, batch):
        assert got.keypoints.shape[1:] == (17, 3) and len(got) > 0 and np.isfinite(got.keypoints).all()
        (one,) = pred(img)
        # the random network's people may tie in score to the 6th digit: their order is not defined
        assert_same_people(one.keypoints, got.keypoints, atol=1e-3, a_scores=one.scores, b_scores=got.scores)
