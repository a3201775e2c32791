"""Build a `GrapeNet` from a preset, a `Config` or a `ModelConfig` (the one place reading ModelConfig)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from torch import nn

from grapepose.config import Config, ModelConfig, config_to_dict, load_config
from grapepose.models.grape import GrapeNet

__all__ = ["build_model", "model_config_of", "model_metadata"]


def _as_config(spec: str | os.PathLike[str] | Config | ModelConfig | None) -> Config:
    if isinstance(spec, ModelConfig):
        return Config(model=spec)  # keypoints resolved for its K
    return load_config(spec)


def build_model(spec: str | os.PathLike[str] | Config | ModelConfig | None = "crowdpose_w32") -> GrapeNet:
    """An untrained `GrapeNet` for a preset name, YAML path, `Config` or `ModelConfig`.

    The resolved `Config` is attached as `model.config`.

    Example:
        >>> model = build_model("crowdpose_w18")
        >>> model.num_keypoints
        14
    """
    cfg = _as_config(spec)
    m = cfg.model
    model = GrapeNet(
        num_keypoints=m.num_keypoints,
        backbone=m.backbone,
        head_channels=m.head_channels,
        d_model=m.d_model,
        nhead=m.nhead,
        num_encoder_layers=m.num_encoder_layers,
        num_decoder_layers=m.num_decoder_layers,
        dim_feedforward=m.dim_feedforward,
        dropout=m.dropout,
        bn_momentum=m.bn_momentum,
        global_context=m.global_context,
    )
    model.config = cfg
    return model


def model_config_of(model: GrapeNet) -> Config:
    """The `Config` describing `model`: `model.config` when it matches the network, else a preset
    (CrowdPose for K=14, COCO otherwise) with the model section taken from the network itself."""
    h = model.hparams
    model_cfg = ModelConfig(**{f.name: h[f.name] for f in dataclasses.fields(ModelConfig) if f.name in h})
    cfg = getattr(model, "config", None)
    if isinstance(cfg, Config) and cfg.model == model_cfg:
        return cfg
    base = cfg if isinstance(cfg, Config) else load_config(f"{'crowdpose' if h['num_keypoints'] == 14 else 'coco'}_w32")
    keypoints = base.keypoints if base.model.num_keypoints == model_cfg.num_keypoints else None
    return dataclasses.replace(base, model=model_cfg, keypoints=keypoints)


def model_metadata(model: nn.Module) -> dict[str, Any]:
    """What a model file stores about `model` (a `GrapeNet`, possibly wrapped, or anything with a
    `.config`): `config_to_dict` of its config with the keypoint spec resolved (names, flip index,
    OKS sigmas, skeleton under `"keypoints"`). safetensors and ONNX files both write this."""
    while isinstance(getattr(model, "module", None) or getattr(model, "_orig_mod", None), nn.Module):
        model = getattr(model, "module", None) or model._orig_mod  # DDP / torch.compile wrappers
    cfg = model_config_of(model) if isinstance(model, GrapeNet) else getattr(model, "config", None)
    if not isinstance(cfg, Config):
        raise TypeError(f"{type(model).__name__} has no grapepose Config")
    return config_to_dict(cfg.resolved())
