"""`Predictor`: images in, people out (resizing, flip/multi-scale testing, decoding, mapping back)."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import nn

from grapepose.config import Config, TestConfig
from grapepose.errors import ConfigError, DataError, GrapeposeError
from grapepose.inference.decode import decode
from grapepose.inference.images import as_items, image_array
from grapepose.inference.preprocess import ImageTransform, flip_shift, image_transform, warp_image
from grapepose.inference.result import Poses
from grapepose.io.files import normalize_images, read_image
from grapepose.keypoints import KeypointSpec, keypoint_spec
from grapepose.utils.device import resolve_device, resolve_dtype  # resolve_dtype re-exported for old imports

__all__ = ["Predictor", "ImageInput", "resolve_dtype", "model_keypoint_spec"]

log = logging.getLogger(__name__)

ImageInput = Union[str, os.PathLike, np.ndarray, torch.Tensor, Any]  # Any: a PIL image


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


def _name(item: Any, index: int, reader: Callable[[Any], np.ndarray]) -> str:
    """How errors name an input: a path or a custom reader's item by itself, an in-memory image by position."""
    custom = reader is not read_image and not isinstance(item, (np.ndarray, torch.Tensor))
    if isinstance(item, (str, os.PathLike)) or custom:
        return str(item)
    return f"image #{index}"


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
        >>> (people,) = Predictor(model)("photo.jpg")    # one `Poses` per image
        >>> people.keypoints.shape                        # (N, K, 3): x, y, score in image pixels
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
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size

    # ---------------------------------------------------------------- public API
    def __call__(self, images: ImageInput | Sequence[ImageInput]) -> list[Poses]:
        """Poses for one image or a list of images (see `grapepose.inference.images`); raises on the first bad one."""
        results = []
        for item in self.iter_predict(images):
            if isinstance(item, Exception):
                raise item
            results.append(item)
        return results

    def predict_batch(self, images: Sequence[ImageInput]) -> list[Poses]:
        """Poses for a list of images processed together (grouped by network input size)."""
        loaded = [self._load(x, i, read_image) for i, x in enumerate(as_items(images))]
        return self._predict_loaded(loaded)

    def iter_predict(
        self,
        images: ImageInput | Iterable[ImageInput],
        batch_size: int | None = None,
        reader: Callable[[Any], np.ndarray] = read_image,
        progress: bool = False,
        workers: int = 2,
        with_inputs: bool = False,
    ) -> Iterator[Any]:
        """Yield, in input order, the `Poses` of each image or the `GrapeposeError` that made it unusable.

        The one read-ahead: a background thread walks `images` (so decoding a video overlaps the
        forward passes) and hands files to `workers` reader threads, `2 * batch_size` images
        ahead. A bad image costs only itself; the others go on.

        Args:
            images: one image, a batch, or an iterable of images (see `grapepose.inference.images`).
            batch_size: images per forward pass (default: the predictor's).
            reader: reads a path (or any item that is not an in-memory image) to RGB uint8
                (default `read_image`, which applies EXIF orientation).
            progress: show a tqdm progress bar.
            workers: reader threads.
            with_inputs: yield `(item, rgb_image_or_None, poses_or_error)` instead.
        """
        from grapepose.io.sources import prefetch

        bs = self.batch_size if batch_size is None else batch_size
        if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {bs!r}")
        items = as_items(images)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(items) if isinstance(items, Sequence) else None, unit="img", desc="predict")
        pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="grapepose-read")

        def submitted() -> Iterator[tuple[Any, Any]]:
            for i, x in enumerate(items):
                yield x, pool.submit(self._load_safe, x, i, reader)

        ahead = prefetch(submitted(), depth=2 * bs)
        try:
            while batch := list(itertools.islice(ahead, bs)):
                loaded = [(x, f.result()) for x, f in batch]
                good = [lt for _, lt in loaded if not isinstance(lt, GrapeposeError)]
                results = iter(self._predict_loaded(good))
                for x, lt in loaded:
                    bad = isinstance(lt, GrapeposeError)
                    res = lt if bad else next(results)
                    yield (x, None if bad else lt[0], res) if with_inputs else res
                if bar is not None:
                    bar.update(len(loaded))
        finally:
            ahead.close()
            pool.shutdown(wait=True, cancel_futures=True)
            if bar is not None:
                bar.close()

    # ---------------------------------------------------------------- internals
    def _load(self, item: ImageInput, index: int, reader: Callable[[Any], np.ndarray]) -> tuple[
        np.ndarray, ImageTransform
    ]:
        in_memory = isinstance(item, (np.ndarray, torch.Tensor)) or reader is read_image
        if not in_memory or isinstance(item, (str, os.PathLike)):
            image = reader(Path(item) if isinstance(item, (str, os.PathLike)) else item)  # its errors name it
        try:
            if in_memory and not isinstance(item, (str, os.PathLike)):
                image = image_array(item)
            return image, image_transform(image.shape[0], image.shape[1], self.cfg.base_size)
        except DataError as e:
            raise DataError(f"{_name(item, index, reader)}: {e}") from None

    def _load_safe(self, item: ImageInput, index: int, reader: Callable[[Any], np.ndarray]) -> Any:
        try:
            return self._load(item, index, reader)
        except GrapeposeError as e:
            return e
        except (OSError, ValueError) as e:  # readers other than read_image
            return DataError(f"{_name(item, index, reader)}: cannot read image ({e})")

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def _predict_loaded(self, loaded: Sequence[tuple[np.ndarray, ImageTransform]]) -> list[Poses]:
        results: list[Poses | None] = [None] * len(loaded)
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
    ) -> list[Poses]:
        cfg = self.cfg
        n = len(images)
        outputs, mirrored = [], []
        for s in cfg.scales:
            batch = np.stack([warp_image(img, t, s) for img, t in zip(images, transforms)])
            x = normalize_images(torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2))
            if cfg.flip:
                x = torch.cat([x, flip_shift(x, cfg.flip_shift)])
            if self._channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                out = self.model(x)
            if cfg.flip:  # one forward pass for both; `decode` merges them (the one flip merge)
                outputs.append(type(out)(*(None if t is None else t[:n] for t in out)))
                mirrored.append(type(out)(*(None if t is None else t[n:] for t in out)))
            else:
                outputs.append(out)
        decoded = decode(
            outputs, cfg, flipped=mirrored or None, flip_index=self.spec.flip_index if cfg.flip else None,
            scales=cfg.scales, input_size=size,
        )  # fmt: skip
        results = []
        for d, t in zip(decoded, transforms):
            kp = d.keypoints.float().cpu().numpy()
            kp[..., :2] = t.to_original(kp[..., :2])
            results.append(Poses(kp, d.scores.float().cpu().numpy(), self.spec, image_size=t.image_size))
        return results
