"""Building blocks of a training run: seeding, data sources and the initial network weights."""

from __future__ import annotations

import logging
import os
import random
from typing import Any

import numpy as np
import torch
from torch import nn

from grapepose.config import Config
from grapepose.errors import ConfigError, DataError

__all__ = ["seed_everything", "build_train_source", "check_people", "source_spec", "initialize_weights"]

log = logging.getLogger(__name__)


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch; in deterministic mode also pick deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this before its first call to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def build_train_source(cfg: Config) -> Any:
    """The `KeypointDataset` named by `cfg.data.root` / `cfg.data.ann`."""
    if not cfg.data.ann:
        raise ConfigError("no training data: give --data ROOT --ann ANN.json (data.root/data.ann) or --synthetic")
    from grapepose.data import KeypointDataset

    return KeypointDataset.from_config(cfg.data)


def check_people(source: Any, use: str = "train") -> None:
    """Refuse a dataset in which no person has a labelled keypoint: every keypoint loss would be 0,
    every validation AP undefined.

    Raises:
        DataError: naming the annotation file (`nothing to {use} on`).
    """
    if getattr(source, "num_people", None) == 0:
        n = len(source.annotations)
        raise DataError(f"{source.ann_path}: no person has a labelled keypoint (all {n} annotations are crowd "
                        f"regions or have visibility 0 everywhere); nothing to {use} on")  # fmt: skip


def source_spec(source: Any, cfg: Config) -> Any:
    """The `KeypointSpec` of a sample source (its own, else the config's `keypoint_spec`).

    Raises:
        ConfigError: the keypoint count differs from the network's `model.num_keypoints`.
    """
    spec = getattr(source, "spec", None)
    if spec is None:
        spec = cfg.keypoint_spec
    k = len(spec.names)
    if k != cfg.model.num_keypoints:
        where = getattr(source, "ann_path", None) or "the training data"
        raise ConfigError(f"{where}: has {k} keypoints but model.num_keypoints is {cfg.model.num_keypoints}")
    return spec


def initialize_weights(model: nn.Module, weights: str | os.PathLike[str] | None,
                       init_backbone: str | os.PathLike[str] | None) -> None:  # fmt: skip
    """Load a whole trained model (`weights`) and/or HRNet ImageNet weights into the backbone.

    Raises:
        CheckpointError: a file is unreadable or does not fit the network (strict check).
    """
    from grapepose.models import init_backbone_from_imagenet, load_model, load_state_dict_strict

    if weights:
        load_state_dict_strict(model, load_model(weights).state_dict(), weights)
        log.info("initialised from %s", weights)
    if init_backbone:
        init_backbone_from_imagenet(model, init_backbone)  # type: ignore[arg-type]
        log.info("backbone initialised from %s", init_backbone)
