"""Validation during training: predict every validation image and compute OKS AP."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from grapepose.config import Config
from grapepose.errors import ConfigError, GrapeposeError

__all__ = ["validate"]

log = logging.getLogger(__name__)


@torch.no_grad()
def validate(model: nn.Module, cfg: Config, source: Any, device: torch.device, progress: bool = True,
             batch_size: int | None = None) -> dict[str, float]:  # fmt: skip
    """Metrics (`AP`, `AP50`, ...) of `model` on a validation `KeypointDataset`, with `cfg.test`.

    Unreadable images count as images without detections (with a warning). The model is left in
    eval mode; the caller switches it back to training.
    """
    from grapepose.evaluation import evaluate_results
    from grapepose.inference.predictor import Predictor

    ann = getattr(source, "ann_path", None) or cfg.data.val_ann
    if not ann:
        raise ConfigError("validation needs the annotation file: set data.val_ann (--val-ann)")
    bs = batch_size or (8 if device.type == "cuda" else 1)
    predictor = Predictor(model, cfg, device=device, spec=getattr(source, "spec", None), batch_size=bs)
    ids = list(source.image_ids)
    paths = [source.image_path(i) for i in range(len(source))]
    results: list[dict] = []
    for image_id, item in zip(ids, predictor.iter_predict(paths, progress=progress), strict=True):
        if isinstance(item, GrapeposeError):
            log.warning("validation: %s", item)
            continue
        results.extend(item.to_coco(image_id))
    if not results:
        log.warning("validation produced no detections; AP 0")
        return {"AP": 0.0}
    kind = cfg.data.dataset if cfg.data.dataset in ("coco", "crowdpose", "ochuman") else None
    spec = getattr(source, "spec", None)
    metrics = evaluate_results(results, ann, kind=kind, sigmas=spec.sigmas if spec is not None else None)
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
