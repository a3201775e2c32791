"""Fakes for inference tests: images with colour-coded joints and a model that 'sees' them."""

from __future__ import annotations

import numpy as np
import torch
from oracles.planted import plant_outputs
from torch import nn

from grapepose.config import Config, ModelConfig
from grapepose.backbones import IMAGENET_MEAN, IMAGENET_STD
from grapepose.keypoints import KeypointSpec

# An upright CrowdPose person facing the camera (their left = image right) in a 640x425 image.
PERSON_640x425 = np.array(
    [[340, 130], [260, 130], [362, 190], [238, 190], [372, 240], [228, 240], [325, 250], [275, 250],
     [330, 320], [270, 320], [336, 388], [264, 388], [300, 70], [300, 112]], dtype=np.float64,
)  # fmt: skip


def _groups(spec: KeypointSpec) -> list[tuple[int, ...]]:
    """Left/right pairs (left first = the one drawn at larger x) and single joints."""
    seen, out = set(), []
    for k, j in enumerate(spec.flip_index):
        if k in seen:
            continue
        seen |= {k, j}
        out.append((k,) if k == j else (k, j))
    return out


def _code(g: int) -> int:
    return 40 + 20 * g


def draw_person(joints: np.ndarray, spec: KeypointSpec, height: int, width: int, radius: int = 5) -> np.ndarray:
    """Black RGB image with a disc per joint: R = B = 255, G = the code of the joint's left/right group."""
    img = np.zeros((height, width, 3), np.uint8)
    ys, xs = np.mgrid[0:height, 0:width]
    for g, members in enumerate(_groups(spec)):
        for k in members:
            x, y = joints[k]
            disc = (xs - x) ** 2 + (ys - y) ** 2 <= radius**2
            img[disc] = (255, _code(g), 255)
    return img


class BlobModel(nn.Module):
    """Locates the coded discs in its input and returns what a perfect network would output.

    Within a left/right pair the disc at larger x is called `left`, as a network would call the
    person's left side in a mirrored image too.
    """

    def __init__(self, spec: KeypointSpec) -> None:
        super().__init__()
        self.spec = spec
        self.num_keypoints = spec.num_keypoints
        self.config = Config(model=ModelConfig(num_keypoints=spec.num_keypoints))
        self.anchor = nn.Parameter(torch.zeros(1))
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor):  # noqa: ANN201
        self.calls.append(tuple(x.shape))
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        img = ((x.float().cpu() * std + mean) * 255.0).numpy()
        people = []
        for b in range(img.shape[0]):
            r, g = img[b, 0], img[b, 1]
            joints = np.zeros((self.num_keypoints, 2))
            for gi, members in enumerate(_groups(self.spec)):
                w = np.where((r > 40) & (np.abs(g / np.maximum(r, 1e-6) * 255 - _code(gi)) < 4), r, 0.0)
                ys, xs = np.nonzero(w)
                ws = w[ys, xs]
                if len(members) == 1:
                    joints[members[0]] = (xs @ ws / ws.sum(), ys @ ws / ws.sum())
                    continue
                right = xs > xs.mean()
                for k, side in zip(members, (right, ~right)):
                    joints[k] = (xs[side] @ ws[side] / ws[side].sum(), ys[side] @ ws[side] / ws[side].sum())
            people.append(joints[None])
        return plant_outputs(people, (x.shape[2], x.shape[3]))


class NullModel(nn.Module):
    """Sees nobody; records the input shapes it was called with."""

    def __init__(self, num_keypoints: int = 14) -> None:
        super().__init__()
        self.num_keypoints = num_keypoints
        self.config = Config(model=ModelConfig(num_keypoints=num_keypoints))
        self.anchor = nn.Parameter(torch.zeros(1))
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor):  # noqa: ANN201
        self.calls.append(tuple(x.shape))
        empty = np.zeros((0, self.num_keypoints, 2))
        return plant_outputs([empty] * x.shape[0], (x.shape[2], x.shape[3]))
