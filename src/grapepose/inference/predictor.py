"""`Predictor`: images in, people out (resizing, flip/multi-scale testing, decoding, mapping back)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import nn

from grapepose.config import Config, TestConfig
from grapepose.errors import ConfigError, DataError, GrapeposeError
from grapepose.inference.decode import decode
from grapepose.inference.images import as_items, image_array
from grapepose.inference.precision import Precision, predictor_precision
from grapepose.inference.preprocess import ImageTransform, flip_shift, image_transform, normalize_images, warp_image
from grapepose.inference.result import Poses
from grapepose.io.files import read_image
from grapepose.keypoints import KeypointSpec, keypoint_spec
from grapepose.limits import MAX_MEGAPIXELS
from grapepose.utils.device import resolve_device

__all__ = ["Predictor", "ImageInput", "READ_AHEAD_BYTES", "model_keypoint_spec"]

log = logging.getLogger(__name__)

ImageInput = Union[str, os.PathLike, np.ndarray, torch.Tensor, Any]  # Any: a PIL image


# Decoded images read ahead of the network (and in the batch in hand) stop the reading beyond this
# many bytes: large images make smaller batches instead of filling the memory.
READ_AHEAD_BYTES = 1 << 30
_FLUSH = object()  # in the read-ahead stream: end the batch in hand here


class _HeldBytes:
    """Bytes of decoded images read ahead and not yet handed out (the byte bound of `iter_predict`)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.held, self.closed = limit, 0, False
        self._cond = threading.Condition()

    def add(self, n: int) -> None:
        with self._cond:
            self.held += n

    def release(self, n: int) -> None:
        with self._cond:
            self.held -= n
            self._cond.notify_all()

    def full(self) -> bool:
        with self._cond:
            return self.held >= self.limit

    def wait_for_room(self) -> bool:
        """Block until the held bytes drop below the limit (True) or `close` is called (False)."""
        with self._cond:
            self._cond.wait_for(lambda: self.closed or self.held < self.limit)
            return not self.closed

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


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


def _runtime_model(model: nn.Module, precision: Precision, device: torch.device, base_size: int) -> nn.Module:
    """`model` ready to run at `precision`: on `device` in eval mode, or compiled by OpenVINO (int8
    calibrated at the test size `base_size`)."""
    if precision.runtime == "openvino" and not isinstance(getattr(model, "precision", None), str):
        from grapepose.inference.openvino import openvino_module

        return openvino_module(model, precision.name, base_size=base_size)
    return model.to(device).eval()


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
        dtype: precision (`"auto"`, `"fp32"`, `"bf16"`, `"fp16"`, `"int8"`, or a `torch.dtype` for autocast);
            default `config.dtype`. See `grapepose.inference.precision`: bf16 and int8 on the CPU
            run the network compiled by OpenVINO (`self.model` is then that module).
        spec: keypoint metadata (flip permutation); default from `model.config` (K=14 CrowdPose, 17 COCO).
        batch_size: images per forward pass in `iter_predict` and `__call__`.
        max_megapixels: an image file declaring more pixels is refused before decoding (a `DataError`
            naming it); images passed as arrays are not limited.

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
        max_megapixels: float = MAX_MEGAPIXELS,
    ) -> None:
        self.cfg = _test_config(config, model)
        self.device = resolve_device(device)
        self.precision = predictor_precision(model, dtype if dtype is not None else self.cfg.dtype, self.device)
        self.dtype = self.precision.dtype
        self.model = _runtime_model(model, self.precision, self.device, self.cfg.base_size)
        # channels_last lets cuDNN use its tensor-core convolution kernels (docs/DESIGN.md, Reference speed).
        self._channels_last = self.device.type == "cuda" and isinstance(self.model, nn.Module) and any(
            True for _ in self.model.parameters()
        )
        if self._channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.spec = spec if spec is not None else model_keypoint_spec(model)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        if isinstance(max_megapixels, bool) or not isinstance(max_megapixels, (int, float)) or not max_megapixels > 0:
            raise ConfigError(f"max_megapixels must be a number > 0, got {max_megapixels!r}")
        self.max_megapixels = float(max_megapixels)

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
        ahead and at most `READ_AHEAD_BYTES` of decoded pixels (large images make smaller batches).
        A bad image costs only itself; the others go on.

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
        pool_size = max(1, workers)
        pool = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="grapepose-read")
        held = _HeldBytes(READ_AHEAD_BYTES)

        def load(x: Any, i: int) -> Any:
            loaded = self._load_safe(x, i, reader)
            if not isinstance(loaded, GrapeposeError):
                held.add(loaded[0].nbytes)
            return loaded

        def submitted() -> Iterator[Any]:
            running: set[Future] = set()
            for i, x in enumerate(items):
                running = {f for f in running if not f.done()}
                if len(running) >= pool_size:  # count `held` once the images in decoding have their size
                    running = wait(running, return_when=FIRST_COMPLETED).not_done
                if held.full():  # the batch in hand ends here; reading goes on as it is handed out
                    yield _FLUSH
                    if not held.wait_for_room():
                        return
                future = pool.submit(load, x, i)
                running.add(future)
                yield x, future

        def batches() -> Iterator[list[tuple[Any, Future]]]:
            batch: list[tuple[Any, Future]] = []
            for entry in ahead:
                if entry is not _FLUSH:
                    batch.append(entry)
                if batch and (entry is _FLUSH or len(batch) == bs):
                    yield batch
                    batch = []
            if batch:
                yield batch

        ahead = prefetch(submitted(), depth=2 * bs)
        try:
            for batch in batches():
                loaded = [(x, f.result()) for x, f in batch]
                batch.clear()  # its futures hold the images too
                good = [lt for _, lt in loaded if not isinstance(lt, GrapeposeError)]
                results = iter(self._predict_loaded(good))
                good.clear()
                for k in range(len(loaded)):
                    # handed out one by one: no image of this batch is alive while the next is read
                    x, lt = loaded[k]
                    loaded[k] = None  # type: ignore[call-overload]
                    bad = isinstance(lt, GrapeposeError)
                    res = lt if bad else next(results)
                    if not bad:
                        held.release(lt[0].nbytes)
                    yield (x, None if bad else lt[0], res) if with_inputs else res
                    x = lt = res = None
                if bar is not None:
                    bar.update(len(loaded))
        finally:
            held.close()
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
            read = functools.partial(read_image, max_megapixels=self.max_megapixels) if reader is read_image else reader
            image = read(Path(item) if isinstance(item, (str, os.PathLike)) else item)  # its errors name it
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
            joint_scores = d.joint_scores.float().cpu().numpy()
            results.append(Poses(kp, d.scores.float().cpu().numpy(), self.spec, image_size=t.image_size,
                                 joint_scores=joint_scores))  # fmt: skip
        return results
