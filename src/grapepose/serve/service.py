"""The model side of the service: one `PoseEstimator`, its per-request test variants, the batcher."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from grapepose.config import apply_overrides, config_to_dict
from grapepose.serve.batcher import MicroBatcher, QueueFull
from grapepose.serve.errors import HTTPError
from grapepose.serve.schemas import RequestOptions, ServeSettings, spec_json
from grapepose.visualize import MIN_JOINT_SCORE

__all__ = ["PoseService"]

log = logging.getLogger(__name__)

_MAX_VARIANTS = 8  # estimators kept for non-default flip/scales settings (they share the model)
Key = tuple[bool, tuple[float, ...]]


class PoseService:
    """Runs an estimator for the HTTP layer: images in, `Poses` out, batched across requests.

    Args:
        estimator: a loaded `PoseEstimator` (its batch size should be at least `settings.max_batch`).
        settings: limits and batching.
        source: what was loaded (weights path or preset), reported by `GET /v1/model`.
    """

    def __init__(self, estimator: Any, settings: ServeSettings, source: str = "") -> None:
        self.estimator = estimator
        self.settings = settings
        self.source = source
        test = estimator.config.test
        self.default_key: Key = (bool(test.flip), tuple(float(s) for s in test.scales))
        self._variants: OrderedDict[Key, Any] = OrderedDict()
        self.batcher = MicroBatcher(self._run, settings.max_batch, settings.max_wait_ms, settings.max_queue)

    def key(self, opts: RequestOptions) -> Key:
        """The test settings a request runs with (its overrides, else the model's)."""
        flip, scales = self.default_key
        return (flip if opts.flip is None else opts.flip, scales if opts.scales is None else opts.scales)

    def _estimator_for(self, key: Key) -> Any:
        if key == self.default_key:
            return self.estimator
        est = self._variants.get(key)
        if est is None:
            from grapepose.api import PoseEstimator

            flip, scales = key
            overrides = [f"test.flip={str(flip).lower()}", f"test.scales=[{','.join(map(str, scales))}]"]
            config = apply_overrides(self.estimator.config, overrides)
            est = PoseEstimator(self.estimator.model, config, self.estimator.device, self.settings.max_batch)
            self._variants[key] = est
            if len(self._variants) > _MAX_VARIANTS:
                self._variants.popitem(last=False)
        self._variants.move_to_end(key)
        return est

    def _run(self, key: Key, images: list[np.ndarray]) -> list[Any]:
        # Runs in the batcher's single worker thread: the model is never used concurrently.
        return self._estimator_for(key).predict(images)

    async def predict(self, images: Sequence[np.ndarray], opts: RequestOptions) -> list[Any]:
        """`Poses` for each image, with people below `opts.score_thr` dropped.

        Raises:
            HTTPError: 503 when the queue is full.
        """
        try:
            futures = self.batcher.submit(self.key(opts), list(images))
        except QueueFull as e:
            raise HTTPError(503, f"server busy: {e}; retry later", {"Retry-After": "1"}) from None
        try:
            results = await asyncio.gather(*futures)
        except asyncio.CancelledError:
            for f in futures:
                f.cancel()
            raise
        if opts.score_thr > 0:  # 0 keeps everyone, as `grapepose predict --score-thr 0`
            results = [p[p.scores >= opts.score_thr] for p in results]
        return list(results)

    def model_info(self) -> dict[str, Any]:
        """`GET /v1/model`: version, weights, device, config, keypoint spec, defaults and limits."""
        import grapepose

        flip, scales = self.default_key
        return {
            "version": grapepose.__version__,
            "weights": self.source,
            "device": str(self.estimator.device),
            "keypoints": spec_json(self.estimator.spec),
            "defaults": {"flip": flip, "scales": list(scales), "score_thr": self.settings.score_threshold,
                         "min_joint_score": MIN_JOINT_SCORE},
            "limits": self.settings.limits(),
            "config": config_to_dict(self.estimator.config),
        }
