"""The one range check of every config field, run when a config section is made, and the
coercion of YAML / `key=value` values to the fields' types before it.

Each rule reads as the message says it: `test.base_size must be > 0, got -64`,
`data.flip_prob must be in [0, 1], got 2.0`, `train.amp must be one of auto, fp32, bf16, fp16, got 'x'`.
Every float field must also be finite. Values quoted in messages go through `quote_value`, so a
huge value (a YAML alias bomb, a 1 MB string) makes a short line.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import reprlib
import typing
from typing import Any

from grapepose.errors import ConfigError

__all__ = ["RULES", "check_section", "coerce_value", "quote_value", "suggest_key"]

_UNIT = "[0, 1]"
# key -> rule: ">0", ">=0", ">=1", "[0, 1]", "[0, 1)", "odd>=1", "0|odd>=1", or a tuple of allowed strings.
# Tuple-valued fields apply the rule to each item.
RULES: dict[str, Any] = {
    "model.num_keypoints": ">=1", "model.head_channels": ">=1", "model.d_model": ">=1", "model.nhead": ">=1",
    "model.num_encoder_layers": ">=1", "model.num_decoder_layers": ">=1", "model.dim_feedforward": ">=1",
    "model.dropout": "[0, 1)", "model.bn_momentum": _UNIT,
    "data.output_size": ">0", "data.max_rotation": ">=0", "data.min_scale": ">0", "data.max_scale": ">0",
    "data.max_translate": ">=0", "data.flip_prob": _UNIT, "data.sigma": ">=0", "data.center_sigma_extra": ">=0",
    "data.bg_weight": ">=0", "data.offset_radius": ">=0", "data.visibility_radius": ">=0",
    "data.flip_index": ">=0", "data.sigmas": ">=0", "data.num_workers": ">=0",
    "data.dataset": ("coco", "crowdpose", "ochuman", "custom"),
    "test.base_size": ">0", "test.scales": ">0", "test.flip_shift": ">=0", "test.max_people": ">=1",
    "test.dtype": ("auto", "fp32", "bf16", "fp16", "int8"),  # grapepose.config.PRECISIONS
    "test.center_threshold": _UNIT, "test.center_pool_kernel": "0|odd>=1", "test.multiscale_score_factor": ">=0",
    "test.rescore_center_threshold": _UNIT, "test.visibility_threshold": _UNIT, "test.min_visible_joints": ">=0",
    "test.nms_distance": ">=0", "test.nms_joints": ">=0", "test.snap_peaks": ">=0", "test.snap_pool_kernel": "odd>=1",
    "test.snap_visibility_threshold": _UNIT, "test.refine_score_threshold": _UNIT, "test.refine_window": ">=1",
    "test.refine_sigma": ">0", "test.refine_iterations": ">=0",
    "train.epochs": ">=1", "train.batch_size": ">=1", "train.lr": ">0", "train.transformer_lr": ">=0",
    "train.lr_split": ("global_context", "backbone"), "train.weight_decay": ">=0",
    "train.schedule": ("step", "cosine"), "train.lr_steps": ">=0", "train.lr_factor": ">0",
    "train.warmup_steps": ">=0", "train.grad_clip": ">=0", "train.amp": ("auto", "fp32", "bf16", "fp16"),
    "train.seed": ">=0", "train.heatmap_loss_factor": ">=0", "train.offset_loss_factor": ">=0",
    "train.refined_offset_loss_factor": ">=0", "train.visibility_loss_factor": ">=0", "train.smooth_l1_beta": ">0",
    "train.focal_alpha": _UNIT, "train.focal_gamma": ">=0", "train.val_interval": ">=0", "train.log_interval": ">=1",
    "train.steps_per_epoch": ">=0", "train.checkpoint_interval": ">=0",
}  # fmt: skip

_QUOTE_CHARS = 200
_REPR = reprlib.Repr()  # bounded work and length whatever the value: 20 items, 3 levels, 60 characters each
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, 60, 60, 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 20


def quote_value(value: Any) -> str:
    """`repr(value)` for an error message, shortened (`...`) to at most 200 characters without
    building the full repr (a YAML alias bomb expands to gigabytes)."""
    text = _REPR.repr(value)
    return text if len(text) <= _QUOTE_CHARS else text[: _QUOTE_CHARS - 3] + "..."


_TEXT = {">0": "> 0", ">=0": ">= 0", ">=1": ">= 1", "odd>=1": "an odd number >= 1", "0|odd>=1": "0 or an odd number"}


def _ok(rule: str, v: float) -> bool:
    if rule == ">0":
        return v > 0
    if rule == ">=0":
        return v >= 0
    if rule == ">=1":
        return v >= 1
    if rule == "[0, 1]":
        return 0 <= v <= 1
    if rule == "[0, 1)":
        return 0 <= v < 1
    if rule == "odd>=1":
        return v >= 1 and v % 2 == 1
    if rule == "0|odd>=1":
        return v == 0 or (v >= 1 and v % 2 == 1)
    raise AssertionError(rule)  # pragma: no cover


def _describe(rule: str) -> str:
    return _TEXT.get(rule, f"in {rule}")


def check_section(section: str, obj: Any) -> None:
    """Check every field of config section `obj` (a dataclass instance) against `RULES`.

    Raises:
        ConfigError: `<section>.<field> must be <rule>, got <value>` for the first bad field.
    """
    for f in dataclasses.fields(obj):
        key, value = f"{section}.{f.name}", getattr(obj, f.name)
        items = value if isinstance(value, tuple) else (value,)
        for v in items:
            if isinstance(v, float) and not math.isfinite(v):
                shown = quote_value(value if value is v else list(value))
                raise ConfigError(f"{key} must be a finite number, got {shown}")
        rule = RULES.get(key)
        if rule is None:
            continue
        for v in items:
            if isinstance(rule, tuple):
                if v not in rule:
                    raise ConfigError(f"{key} must be one of {', '.join(rule)}, got {quote_value(v)}")
            elif not _ok(rule, v):
                shown = quote_value(value if value is v else list(value))
                raise ConfigError(f"{key} must be {_describe(rule)}, got {shown}")


def suggest_key(key: str, valid: typing.Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the valid key nearest to `key`, or nothing."""
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def coerce_value(value: Any, hint: Any, where: str) -> Any:
    """A YAML or `key=value` value as the field's type `hint` (tuple, bool, int, float, str), or one clear error."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        if isinstance(value, (int, float, str)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {quote_value(value)}")
        (item,) = typing.get_args(hint)[:1]
        return tuple(coerce_value(v, item, where) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{where}: expected true/false, got {quote_value(value)}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {quote_value(value)}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads `1e-4` (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {quote_value(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {quote_value(value)}")
        return value
    return value
