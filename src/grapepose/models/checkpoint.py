"""Model checkpoints: our safetensors format, the authors' `.pth`/`.pth.tar` files, HRNet ImageNet weights.

Our format is a safetensors file of the `GrapeNet` state dict with metadata
`{"format": "grapepose", "version": "1", "config": <JSON of config_to_dict>}` and, for a released
model, `"info"`: JSON of how it was made (the command, the data, its held-out AP). Files are only ever
read as tensors and plain data (safetensors, or `torch.load(weights_only=True)`); every problem is
one `CheckpointError` line naming the file.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from grapepose.backbones import backbone_info
from grapepose.config import Config, config_from_dict, config_to_dict, load_config
from grapepose.errors import CheckpointError, ConfigError
from grapepose.io.files import atomic_save
from grapepose.models.authors import (
    from_reference_names,
    infer_architecture,
    is_reference_state_dict,
    unwrap_state_dict,
)
from grapepose.models.build import build_model, model_config_of
from grapepose.models.grape import GrapeNet

__all__ = [
    "FORMAT", "FORMAT_VERSION", "config_from_json", "init_backbone_from_imagenet", "load_model",
    "load_state_dict_strict", "read_checkpoint", "read_model_info", "read_torch_file", "save_model",
]  # fmt: skip

log = logging.getLogger(__name__)

FORMAT = "grapepose"
FORMAT_VERSION = "1"
# Parts of HRNet's ImageNet classifier that the pose backbone does not have.
_IMAGENET_CLASSIFIER = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")
_SHOW = 5  # names listed per problem in error messages


def _unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DDP/DataParallel (`.module`) or `torch.compile` (`._orig_mod`)."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def save_model(
    model: nn.Module, path: str | os.PathLike[str], config: Config | None = None, half: bool = False,
    info: Mapping[str, Any] | None = None,
) -> None:
    """Write `model` (a `GrapeNet`, possibly DDP-wrapped or compiled) to `path` in our safetensors format.

    Args:
        model: the network.
        path: output file, written atomically.
        config: stored with the weights; default `model.config` (or one derived from the network).
        half: store floating weights as fp16 (BatchNorm tensors stay fp32, as in the authors' files).
        info: plain data on how the model was made (JSON); default `model.info` when it has one.
    """
    from safetensors.torch import save_file

    net = _unwrap_model(model)
    if not isinstance(net, GrapeNet):
        raise TypeError(f"save_model expects a GrapeNet, got {type(net).__name__}")
    cfg = config if config is not None else model_config_of(net)
    bn_names = {f"{n}." for n, m in net.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    tensors = {}
    for name, t in net.state_dict().items():
        t = t.detach().to("cpu")
        if half and t.is_floating_point() and name.rsplit(".", 1)[0] + "." not in bn_names:
            t = t.half()
        tensors[name] = t.contiguous()
    metadata = {"format": FORMAT, "version": FORMAT_VERSION, "config": json.dumps(config_to_dict(cfg.resolved()))}
    info = getattr(net, "info", None) if info is None else info
    if info:
        metadata["info"] = json.dumps(dict(info))
    atomic_save(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def _read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, Tensor]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no items()
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{path}: unreadable safetensors file, truncated or corrupt ({_first_line(e)})") from None
    return metadata, tensors


def read_model_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The `"info"` record of our safetensors file (how the model was made); {} when it has none.

    Raises:
        CheckpointError: naming `path`, when the file is unreadable or its record is not a JSON object.
    """
    from safetensors import safe_open

    path = Path(path)
    if _sniff(path) != "safetensors":
        return {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            text = (f.metadata() or {}).get("info")
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{path}: unreadable safetensors file, truncated or corrupt ({_first_line(e)})") from None
    if text is None:
        return {}
    try:
        info = json.loads(text)
    except ValueError as e:
        raise CheckpointError(f"{path}: invalid info record in the file's metadata ({_first_line(e)})") from None
    if not isinstance(info, dict):
        raise CheckpointError(f"{path}: invalid info record in the file's metadata (not a JSON object)")
    return info


def config_from_json(text: str, path: str | os.PathLike[str]) -> Config:
    """The `Config` a model file (safetensors, ONNX) stores as JSON in its metadata.

    Raises:
        CheckpointError: naming `path`, when the text is not JSON of a valid config.
    """
    try:
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ConfigError(f"expected a JSON object, got a {type(d).__name__}")
        return config_from_dict(d)
    except (ValueError, RecursionError, ConfigError) as e:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{path}: invalid config in the file's metadata ({_first_line(e)})") from None


def read_torch_file(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Any:
    """`torch.load(path, weights_only=True)`: tensors and plain data only.

    Raises:
        CheckpointError: one line naming the file when it holds other Python objects or is unreadable.
    """
    path = Path(path)
    try:
        # A file object, not the path: torch.load hands `*.safetensors` paths to safetensors, and a
        # PyTorch file given that name must still be read by its content (sniffed by the caller).
        with open(path, "rb") as f:
            return torch.load(f, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise CheckpointError(
                f"{path}: holds Python objects other than tensors and plain data; refusing to unpickle it"
            ) from None
        raise CheckpointError(f"{path}: unreadable PyTorch file, truncated or corrupt ({_first_line(e)})") from None
    except (RuntimeError, EOFError, ValueError, OSError, struct.error) as e:
        raise CheckpointError(f"{path}: unreadable PyTorch file, truncated or corrupt ({_first_line(e)})") from None


def _sniff(path: Path) -> str:
    """'safetensors', 'torch' or 'unknown' from the first bytes of the file."""
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(16)
    if size == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    if len(head) >= 9 and head[8:9] == b"{":
        (n,) = struct.unpack("<Q", head[:8])
        if n > size - 8:
            raise CheckpointError(f"{path}: truncated safetensors file (header of {n} bytes, file of {size})")
        return "safetensors"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # zip (torch >= 1.6) or legacy pickle
        return "torch"
    return "unknown"


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[Config | None, dict[str, Tensor]]:
    """Read any supported checkpoint as (stored config or None, state dict with `GrapeNet` names).

    Our safetensors files and a training run's `last.pt` carry their config; the authors' files (and
    bare state dicts) do not.
    Wrapper prefixes (`module.`, `1.`) and nesting (`state_dict`, ...) are removed, the authors'
    names mapped to ours. Tensors keep their stored dtype.
    """
    path = Path(path)
    kind = _sniff(path)
    config = None
    if kind == "safetensors":
        metadata, obj = _read_safetensors(path)
        if metadata.get("format") == FORMAT:
            if "config" not in metadata:
                raise CheckpointError(f"{path}: invalid config in the file's metadata (no 'config' entry)")
            config = config_from_json(metadata["config"], path)
    elif kind == "torch":
        obj = read_torch_file(path)
        if isinstance(obj, dict) and isinstance(obj.get("config"), dict) and isinstance(obj.get("model"), dict):
            # A training run's `last.pt`: its config is the run's (input and test sizes, keypoints), not a preset's.
            try:
                config = config_from_dict(obj["config"])
            except (ConfigError, RecursionError) as e:
                raise CheckpointError(f"{path}: invalid config in the training state ({_first_line(e)})") from None
            obj = obj["model"]
    else:
        raise CheckpointError(f"{path}: not a checkpoint (neither safetensors nor a PyTorch file)")
    sd = unwrap_state_dict(obj)
    if sd is None:
        raise CheckpointError(f"{path}: no model weights found (expected a state dict of tensors)")
    if is_reference_state_dict(sd):
        sd = from_reference_names(sd)
    return config, sd


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOW])
    return f"{shown}, ... ({len(names)} in all)" if len(names) > _SHOW else shown


def _non_finite(state_dict: Mapping[str, Tensor]) -> list[str]:
    """Names of floating tensors holding NaN or Inf.

    One float64 sum per tensor finds them (any NaN/Inf makes the sum non-finite, and float64 cannot
    overflow on fp32/fp16 values) at a fraction of the cost of an elementwise isfinite pass.
    """
    names = [k for k, t in state_dict.items() if t.is_floating_point() and t.numel()]
    if not names:
        return []
    sums = torch.stack([state_dict[k].detach().sum(dtype=torch.float64).cpu() for k in names])
    return [k for k, ok in zip(names, torch.isfinite(sums).tolist()) if not ok]


def load_state_dict_strict(module: nn.Module, state_dict: Mapping[str, Tensor], source: str | os.PathLike[str]) -> None:
    """Copy `state_dict` into `module`, converting dtypes, after checking every tensor.

    Missing, unexpected and misshapen names are reported together in one `CheckpointError`
    (BatchNorm's `num_batches_tracked` counters may be absent); so are NaN/Inf values.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in own]
    misshapen = [
        f"{k} {list(state_dict[k].shape)} (model {list(own[k].shape)})"
        for k in own
        if k in state_dict and state_dict[k].shape != own[k].shape
    ]
    problems = [
        f"{label} {len(names)}: {_listing(names)}"
        for label, names in (("missing", missing), ("unexpected", unexpected), ("misshapen", misshapen))
        if names
    ]
    if problems:
        raise CheckpointError(f"{source}: weights do not fit the model; " + "; ".join(problems))
    bad = _non_finite(state_dict)
    if bad:
        raise CheckpointError(f"{source}: non-finite (NaN/Inf) weights in {len(bad)} tensors: {_listing(bad)}")
    converted = {k: t.to(dtype=own[k].dtype) for k, t in state_dict.items()}
    module.load_state_dict(converted, strict=False)


def _config_for(path: Path, sd: Mapping[str, Tensor], stored: Config | None, preset: str | Config | None) -> Config:
    arch = infer_architecture(sd)
    if preset is not None:
        cfg = load_config(preset)
        name = preset if isinstance(preset, str) else cfg.name
        if arch is not None:
            k, backbone, _ = arch
            if k != cfg.model.num_keypoints:
                hint = {14: " (use a CrowdPose preset)", 17: " (use a COCO preset)"}.get(k, "")
                raise CheckpointError(
                    f"{path}: the file has {k} keypoints but preset {name} expects {cfg.model.num_keypoints}{hint}"
                )
            if backbone != cfg.model.backbone:
                raise CheckpointError(
                    f"{path}: the file has a {backbone} backbone but preset {name} uses {cfg.model.backbone}"
                )
        if stored is not None and stored.keypoints is not None and stored.model.num_keypoints == cfg.model.num_keypoints:
            cfg = dataclasses.replace(cfg, keypoints=stored.keypoints)  # the file knows its keypoints best
        return cfg
    if stored is not None:
        return stored
    if arch is None:
        raise CheckpointError(f"{path}: cannot tell the architecture from the weights; pass a preset")
    k, backbone, global_context = arch
    cfg = load_config(f"{'crowdpose' if k == 14 else 'coco'}_{backbone_info(backbone).suffix}")
    model_cfg = dataclasses.replace(cfg.model, num_keypoints=k, global_context=global_context)
    log.info("%s: no config stored; using %s (K=%d, %s)", path, cfg.name, k, backbone)
    keypoints = cfg.keypoints if cfg.model.num_keypoints == k else None
    return dataclasses.replace(cfg, model=model_cfg, keypoints=keypoints)


def load_model(
    path: str | os.PathLike[str], preset: str | Config | None = None, map_location: str | torch.device = "cpu"
) -> GrapeNet:
    """Load a `GrapeNet` from our safetensors file or the authors' `.pth`/`.pth.tar` (strictly).

    Args:
        path: checkpoint file.
        preset: preset name or `Config` giving the architecture; default: the file's stored config,
            else one inferred from the weights (K from the heatmap head, width from the backbone).
        map_location: device of the returned model.

    Returns:
        The network in eval mode, float32, with `.config` set and `.info` (how it was made; {} when
        the file does not say).
    """
    path = Path(path)
    stored, sd = read_checkpoint(path)
    cfg = _config_for(path, sd, stored, preset)
    model = build_model(cfg)
    load_state_dict_strict(model, sd, path)
    model.info = read_model_info(path)
    return model.to(map_location).eval()


def init_backbone_from_imagenet(model: GrapeNet, path: str | os.PathLike[str]) -> None:
    """Load HRNet's ImageNet classification weights (e.g. `hrnet_w32.pth`) into `model.backbone`.

    The classifier parts (incre_modules, downsamp_modules, final_layer, classifier) are ignored;
    every backbone tensor must be present with the right shape.
    """
    path = Path(path)
    net = _unwrap_model(model)
    kind = _sniff(path)
    if kind == "unknown":
        raise CheckpointError(f"{path}: not a checkpoint (neither safetensors nor a PyTorch file)")
    obj = _read_safetensors(path)[1] if kind == "safetensors" else read_torch_file(path)
    sd = unwrap_state_dict(obj)
    if sd is None:
        raise CheckpointError(f"{path}: no model weights found (expected a state dict of tensors)")
    if all(k.startswith("backbone.") for k in sd):  # a pose model's backbone saved on its own
        sd = {k[len("backbone.") :]: v for k, v in sd.items()}
    sd = {k: v for k, v in sd.items() if not k.startswith(_IMAGENET_CLASSIFIER)}
    load_state_dict_strict(net.backbone.hrnet, sd, path)
