"""`Predictor`: images in, people out (resizing, flip/multi-scale testing, decoding, mapping back)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import nn

from grapepose.config import Config, TestConfig
from grapepose.data.image_io import as_rgb_uint8, normalize_images, read_image
from grapepose.errors import ConfigError, DataError, GrapeposeError
from grapepose.inference.decode import decode_maps
from grapepose.inference.maps import merge_flip, to_pose_maps
from grapepose.inference.preprocess import ImageTransform, flip_shift, image_transform, warp_image
from grapepose.inference.result import PoseResult
from grapepose.keypoints import KeypointSpec, keypoint_spec
from grapepose.utils.device import resolve_device, resolve_dtype  # resolve_dtype re-exported for old imports

__all__ = ["Predictor", "ImageInput", "resolve_dtype", "model_keypoint_spec"]

log = logging.getLogger(__name__)

ImageInput = Union[str, os.PathLike, np.ndarray, torch.Tensor]


def model_keypoint_spec(model: nn.Module) -> KeypointSpec:
    """The keypoint spec a model describes itself with: `model.config.keypoint_spec`."""
    cfg = getattr(model, "config", None)
    if isinstance(cfg, Config):
        return cfg.keypoint_spec
    k = getattr(model, "num_keypoints", None)
    if k is None:
        raise ConfigError("model has neither `.config` nor `.num_keypoints`; pass `spec=` to the Predictor")
    return keypoint_spec(int(k))


def _test_config(config: Config | TestConfig | None, model: nn.Module) -> TestConfig:
    if isinstance(config, TestConfig):
        return config
    if isinstance(config, Config):
        return config.test
    cfg = getattr(model, "config", None)
    return cfg.test if isinstance(cfg, Config) else TestConfig()


def _name(item: Any, index: int) -> str:
    return str(item) if isinstance(item, (str, os.PathLike)) else f"image #{index}"


class Predictor:
    """Runs a GRAPE model on images and returns people in original-image pixels.

    Args:
        model: a `GrapeNet` (or any module mapping normalised `[B, 3, H, W]` to a `GrapeOutput`).
        config: test procedure (`Config` -> its `.test`, or a `TestConfig`); default `model.config.test`.
        device: where to run (default: CUDA if available, else CPU); the model is moved there.
        dtype: autocast dtype (`"fp32"`, `"bf16"`, `"fp16"`, a `torch.dtype`); default `config.dtype`.
        spec: keypoint metadata (flip permutation); default from `model.config` (K=14 CrowdPose, 17 COCO).
        batch_size: images per forward pass in `iter_predict` and `__call__`.

    Example:
        >>> results = Predictor(model)("photo.jpg")
        >>> results[0].keypoints.shape   # (N, K, 3)
    """

    def __init__(
        self,
        model: nn.Module,
        config: Config | TestConfig | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        spec: KeypointSpec | None = None,
        batch_size: int = 1,
    ) -> None:
        self.cfg = _test_config(config, model)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype if dtype is not None else self.cfg.dtype, self.device)
        self.model = model.to(self.device).eval()
        # channels_last lets cuDNN use its tensor-core convolution kernels (DESIGN §7 speed facts).
        self._channels_last = self.device.type == "cuda" and isinstance(model, nn.Module) and any(
            True for _ in model.parameters()
        )
        if self._channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.spec = spec if spec is not None else model_keypoint_spec(model)
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}")
        self.batch_size = batch_size

    # ---------------------------------------------------------------- public API
    def __call__(self, images: ImageInput | Sequence[ImageInput]) -> list[PoseResult]:
        """Poses for one image or a list of images (paths or RGB arrays); raises on the first bad image."""
        results = []
        for item in self.iter_predict(images):
            if isinstance(item, Exception):
                raise item
            results.append(item)
        return results

    def predict_batch(self, images: Sequence[ImageInput]) -> list[PoseResult]:
        """Poses for a list of images processed together (grouped by network input size)."""
        loaded = [self._load(x, i, read_image) for i, x in enumerate(_as_items(images))]
        return self._predict_loaded(loaded)

    def iter_predict(
        self,
        images: ImageInput | Iterable[ImageInput],
        batch_size: int | None = None,
        reader: Callable[[Path], np.ndarray] = read_image,
        progress: bool = False,
        workers: int = 2,
    ) -> Iterator[PoseResult | GrapeposeError]:
        """Yield, in input order, a `PoseResult` or the `GrapeposeError` that made an image unusable.

        Images are read ahead in `workers` threads; unreadable images do not stop the others.

        Args:
            images: paths, arrays, or an iterable of them.
            batch_size: images per forward pass (default: the predictor's).
            reader: reads a path to RGB uint8 (default `read_image`, which applies EXIF orientation).
            progress: show a tqdm progress bar.
        """
        bs = batch_size or self.batch_size
        items = _as_items(images)
        total = len(items) if isinstance(items, Sequence) else None
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, unit="img", desc="predict")
        pool = ThreadPoolExecutor(max_workers=max(1, workers)) if workers > 0 else None
        try:
            pending: deque[Future | Any] = deque()
            it = iter(enumerate(items))
            exhausted = False
            while True:
                while not exhausted and len(pending) < 2 * bs:
                    try:
                        i, x = next(it)
                    except StopIteration:
                        exhausted = True
                        break
                    pending.append(pool.submit(self._load_safe, x, i, reader) if pool else self._load_safe(x, i, reader))
                if not pending:
                    break
                batch = [pending.popleft() for _ in range(min(bs, len(pending)))]
                loaded = [f.result() if isinstance(f, Future) else f for f in batch]
                good = [x for x in loaded if not isinstance(x, GrapeposeError)]
                results = iter(self._predict_loaded(good))
                for x in loaded:
                    yield x if isinstance(x, GrapeposeError) else next(results)
                if bar is not None:
                    bar.update(len(loaded))
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            if bar is not None:
                bar.close()

    # ---------------------------------------------------------------- internals
    def _load(self, item: ImageInput, index: int, reader: Callable[[Path], np.ndarray]) -> tuple[
        np.ndarray, ImageTransform
    ]:
        if isinstance(item, (str, os.PathLike)):
            image = reader(Path(item))  # its errors name the file
        elif not isinstance(item, (np.ndarray, torch.Tensor)):
            raise DataError(f"image #{index}: expected a path or an array, got {type(item).__name__}")
        try:
            if not isinstance(item, (str, os.PathLike)):
                image = as_rgb_uint8(item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else item)
            return image, image_transform(image.shape[0], image.shape[1], self.cfg.base_size)
        except DataError as e:
            raise DataError(f"{_name(item, index)}: {e}") from None

    def _load_safe(self, item: ImageInput, index: int, reader: Callable[[Path], np.ndarray]) -> Any:
        try:
            return self._load(item, index, reader)
        except GrapeposeError as e:
            return e
        except (OSError, ValueError) as e:  # readers other than read_image
            return DataError(f"{_name(item, index)}: cannot read image ({e})")

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def _predict_loaded(self, loaded: Sequence[tuple[np.ndarray, ImageTransform]]) -> list[PoseResult]:
        results: list[PoseResult | None] = [None] * len(loaded)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (_, t) in enumerate(loaded):
            groups.setdefault(t.input_size, []).append(i)
        for size, idx in groups.items():
            images = [loaded[i][0] for i in idx]
            transforms = [loaded[i][1] for i in idx]
            for i, res in zip(idx, self._predict_group(images, transforms, size)):
                results[i] = res
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def _predict_group(
        self, images: list[np.ndarray], transforms: list[ImageTransform], size: tuple[int, int]
    ) -> list[PoseResult]:
        cfg = self.cfg
        maps = []
        for s in cfg.scales:
            batch = np.stack([warp_image(img, t, s) for img, t in zip(images, transforms)])
            x = normalize_images(torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2))
            if cfg.flip:
                x = torch.cat([x, flip_shift(x, cfg.flip_shift)])
            if self._channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                out = self.model(x)
            if cfg.flip:
                n = len(images)
                plain = type(out)(*(None if t is None else t[:n] for t in out))
                mirrored = type(out)(*(None if t is None else t[n:] for t in out))
                maps.append(merge_flip(plain, mirrored, self.spec.flip_index))
            else:
                maps.append(to_pose_maps(out))
        decoded = decode_maps(maps, cfg.scales, cfg, size)
        results = []
        for d, t in zip(decoded, transforms):
            kp = d.keypoints.float().cpu().numpy()
            kp[..., :2] = t.to_original(kp[..., :2])
            results.append(PoseResult(kp.astype(np.float32), d.scores.float().cpu().numpy(), t.image_size))
        return results


def _as_items(images: Any) -> Sequence[ImageInput] | Iterable[ImageInput]:
    """A single image (path, `[H, W(, C)]` array or tensor) becomes a one-item list."""
    if isinstance(images, (str, os.PathLike)):
        return [images]
    if isinstance(images, (np.ndarray, torch.Tensor)):
        return list(images) if images.ndim == 4 else [images]
    return images
