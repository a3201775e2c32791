"""`SyntheticSource`: synthetic training samples rendered on demand, no files needed."""

from __future__ import annotations

import numpy as np

from grapepose.errors import GrapeposeError
from grapepose.keypoints import KeypointSpec, keypoint_spec
from grapepose.synth.coco import scene_rng
from grapepose.synth.scene import check_params, compose_scene
from grapepose.synth.skeleton import spec_to_joints

__all__ = ["SyntheticSource"]


class SyntheticSource:
    """A sample source (`__len__`, `load(i) -> Sample`) of synthetic crowd images.

    Sample i is rendered from (seed, i) alone, so any DataLoader worker can build any sample and
    `load(i)` equals image i of `generate_dataset(..., seed=seed)` (before image compression).

    Args:
        preset: "sparse", "crowd" or "hard".
        size: image side in pixels (>= 64).
        seed: dataset seed.
        length: number of samples.
        keypoints: keypoint set name ("coco", "crowdpose") or a KeypointSpec.
        spec: a KeypointSpec; overrides `keypoints` when given.
    """

    def __init__(
        self, preset: str, size: int, seed: int, length: int, keypoints: str | KeypointSpec = "coco",
        spec: KeypointSpec | None = None,
    ) -> None:  # fmt: skip
        check_params(preset, size)
        if int(length) != length or length < 1:
            raise GrapeposeError(f"synthetic data: length must be a positive integer, got {length}")
        if spec is None:
            spec = keypoint_spec(keypoints) if isinstance(keypoints, str) else keypoints
        spec_to_joints(spec)
        self.preset, self.size, self.seed, self.length = preset, int(size), int(seed), int(length)
        self.spec: KeypointSpec = spec

    def __len__(self) -> int:
        return self.length

    def load(self, i: int):  # noqa: ANN201 - grapepose.data.Sample, imported lazily (torch)
        """Render sample `i`: RGB image, `[N, K, 3]` keypoints, mask of unlabelled people's pixels."""
        from grapepose.data import Sample

        if not 0 <= i < self.length:
            raise IndexError(f"synthetic sample {i} out of range 0..{self.length - 1}")
        scene = compose_scene(scene_rng(self.seed, i), self.preset, self.size, self.spec)
        k = self.spec.num_keypoints
        kps = np.stack([p.keypoints for p in scene.people]) if scene.people else np.zeros((0, k, 3), np.float32)
        return Sample(image=scene.image, keypoints=kps, ignore_mask=scene.ignore_mask(), image_id=int(i))

    def __repr__(self) -> str:
        return (f"SyntheticSource(preset={self.preset!r}, size={self.size}, seed={self.seed}, "
                f"length={self.length}, K={self.spec.num_keypoints})")  # fmt: skip
