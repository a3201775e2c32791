"""The Python API takes images in every documented form, unambiguously, and refuses the rest in one line."""

import numpy as np
import pytest
import torch
from people_matching import assert_same_people
from PIL import Image

from grapepose.api import PoseEstimator
from grapepose.errors import GrapeposeError
from grapepose.inference import Poses
from grapepose.io.files import read_image


@pytest.fixture(scope="module")
def est(tiny_checkpoint):
    return PoseEstimator.from_pretrained(
        # The Gaussian fit is off: on this calibrated net a few fits sit on noise and flip between
        # converged and not at last-bit differences of batched convolutions; these tests are about inputs.
        tiny_checkpoint, device="cpu", overrides=["test.base_size=64", "test.flip=false", "test.refine=false"],
        batch_size=2,
    )


@pytest.fixture(scope="module")
def photo(shared_data):
    return read_image(shared_data / "demo" / "crowd_03.jpg")[100:164, 200:264].copy()  # [64, 64, 3] uint8 RGB


def _same(a: Poses, b: Poses) -> None:
    # batched convolutions differ in the last bits, which may also swap people whose scores nearly tie
    assert_same_people(a.keypoints, b.keypoints, atol=1e-2, a_scores=a.scores, b_scores=b.scores, score_atol=1e-3)


def test_every_documented_form_is_one_image(est, photo):
    ref = est(photo)
    assert isinstance(ref, Poses) and ref.image_size == (64, 64)
    hwc = torch.from_numpy(photo)  # [64, 64, 3]: ONE image, channels last
    chw = hwc.permute(2, 0, 1).contiguous()  # [3, 64, 64]: one image, channels first
    for one in (hwc, chw, photo.transpose(2, 0, 1), Image.fromarray(photo), photo.astype(np.float32) / 255.0,
                chw.float() / 255.0):  # fmt: skip
        got = est(one)
        assert isinstance(got, Poses) and got.image_size == (64, 64)
        _same(got, ref)


def test_batches_and_lists_are_many_images(est, photo):
    nchw = torch.from_numpy(np.stack([photo, photo[::-1].copy()])).permute(0, 3, 1, 2)  # [2, 3, 64, 64]
    many = est(nchw)
    assert isinstance(many, list) and len(many) == 2
    _same(many[0], est(photo))
    _same(many[1], est(photo[::-1].copy()))
    assert len(est([photo, Image.fromarray(photo), torch.from_numpy(photo)])) == 3
    assert len(est.predict(nchw.numpy())) == 2  # the same batch as an array
    assert len(est(np.stack([photo] * 3))) == 3  # [N, H, W, 3]


@pytest.mark.parametrize(
    "bad, message",
    [
        (None, "images: expected a path, a PIL image, or a [H, W, 3] / [3, H, W] numpy array or torch tensor, or a "
               "list of them; got NoneType"),
        (5, "images: expected a path, a PIL image, or a [H, W, 3] / [3, H, W] numpy array or torch tensor, or a "
            "list of them; got int"),
        ([None], "image #0: expected a path, a PIL image, or a [H, W, 3] / [3, H, W] numpy array or torch tensor; "
                 "got NoneType"),
        (np.zeros((1, 2, 3, 64, 64), np.uint8), "images: a 5-D array of shape (1, 2, 3, 64, 64) is not one image "
                                                "([H, W, 3] or [3, H, W]) nor a batch ([N, 3, H, W] or [N, H, W, 3])"),
        (np.zeros((2, 5, 64, 64), np.uint8), "images: batch of shape (2, 5, 64, 64) is neither [N, 3, H, W] nor "
                                             "[N, H, W, 3]"),
        (np.zeros((64, 64, 7), np.uint8), "image #0: image array of shape (64, 64, 7) is not [H, W], [H, W, 1], "
                                          "[H, W, 3] or [H, W, 4]"),
        (np.full((64, 64, 3), 255.0, np.float32), "image #0: float image with values in [255, 255]: float images "
                                                  "must be in [0, 1] (uint8 for 0-255)"),
        (np.full((64, 64, 3), np.nan, np.float32), "image #0: image contains NaN or infinite values"),
        (torch.full((3, 64, 64), 300, dtype=torch.int64), "image #0: int64 image with values in [300, 300]: "
                                                          "integer images must be in 0-255"),
        (np.zeros((64, 64, 3), bool), "image #0: image of dtype bool: expected uint8 (0-255) or float (0-1)"),
        (b"\xff\xd8", "images: expected a path, a PIL image, or a [H, W, 3] / [3, H, W] numpy array or torch tensor, "
                      "or a list of them; got bytes"),
    ],
    ids=["None", "int", "list-of-None", "5-D", "5-channel-batch", "7-channels", "float-255", "nan", "int-300",
         "bool", "bytes"],
)  # fmt: skip
def test_anything_else_is_one_line(est, bad, message):
    with pytest.raises(GrapeposeError) as e:
        est(bad)
    assert str(e.value) == message


def test_bad_batch_size_is_one_line(tiny_checkpoint, est):
    for bad in (0, -1, 2.5, True):
        with pytest.raises(GrapeposeError) as e:
            PoseEstimator(est.model, est.config, device="cpu", batch_size=bad)
        assert str(e.value) == f"batch_size must be a positive integer, got {bad!r}"
    with pytest.raises(GrapeposeError) as e:
        list(est.predictor.iter_predict([np.zeros((8, 8, 3), np.uint8)], batch_size=0))
    assert str(e.value) == "batch_size must be a positive integer, got 0"
