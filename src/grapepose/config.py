"""Configuration: frozen dataclasses, named presets, YAML files and `key=value` overrides.

A `Config` has four sections: `model` (the network), `data` (datasets, augmentation, targets),
`test` (decoding and test-time augmentation) and `train` (optimisation). Every number defaults to the
reference GRAPE recipe. Unknown keys are errors that suggest the nearest valid key.

Example:
    >>> cfg = load_config("crowdpose_w32", ["test.flip=false", "model.dropout=0.0"])
    >>> cfg.model.num_keypoints
    14
"""

from __future__ import annotations

import dataclasses
import logging
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from grapepose._config_checks import check_section, coerce_value, quote_value, suggest_key
from grapepose._config_yaml import load_yaml, read_config_yaml
from grapepose.backbones import BACKBONES
from grapepose.errors import ConfigError, DataError
from grapepose.keypoints import DEFAULT_SIGMA, KeypointSpec, builtin_spec, flip_index_from_names, resolve_keypoint_spec
from grapepose.limits import MAX_BASE_SIZE, MAX_TEST_SCALES, TEST_SCALE_RANGE

__all__ = [
    "Config", "ModelConfig", "DataConfig", "TestConfig", "TrainConfig",
    "PRECISIONS", "PRESETS", "TEST_MODES", "load_config", "config_from_dict", "config_to_dict", "apply_overrides",
    "preset_config",
]  # fmt: skip

log = logging.getLogger(__name__)

# The values of `test.dtype` (CLI `--precision`): what each runs on is `grapepose.inference.precision`.
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
# Keys that saved configs may carry but that configure no part of a model: read and dropped. `deform_impl`
# chose a kernel, which `grapepose.models.kernels` does for the process (GRAPEPOSE_KERNELS).
_DROPPED_KEYS = {"model": {"deform_impl": "auto"}}  # key -> the value that is dropped without a warning


@dataclass(frozen=True)
class ModelConfig:
    """The GRAPE network (docs/DESIGN.md, Network)."""

    backbone: str = "hrnet_w32"  # hrnet_w18 | hrnet_w32 | hrnet_w48 | hrnet_w18_small_v2 (small, not the reference)
    num_keypoints: int = 14
    head_channels: int = 32  # `bottleneck` output F
    d_model: int = 128
    nhead: int = 4
    num_encoder_layers: int = 3
    num_decoder_layers: int = 2
    dim_feedforward: int = 256
    dropout: float = 0.1
    bn_momentum: float = 0.1
    global_context: bool = True  # False: DEKR-style ablation without the transformer branch

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            names = ", ".join(BACKBONES)
            raise ConfigError(f"model.backbone must be one of {names}, got {quote_value(self.backbone)}")
        check_section("model", self)
        if self.d_model % self.nhead:
            raise ConfigError(f"model.d_model ({self.d_model}) must be divisible by model.nhead ({self.nhead})")


@dataclass(frozen=True)
class DataConfig:
    """Datasets, augmentation and training targets (docs/DESIGN.md, Training targets)."""

    dataset: str = "crowdpose"  # coco | crowdpose | ochuman | custom (keypoints from the JSON)
    root: str = ""  # image folder
    ann: str = ""  # COCO-format keypoint JSON
    val_root: str = ""
    val_ann: str = ""
    input_size: int = 512
    output_size: int = 128
    max_rotation: float = 30.0
    min_scale: float = 0.75
    max_scale: float = 1.5
    max_translate: float = 40.0
    flip_prob: float = 0.5
    sigma: float = 0.0  # 0: output_size / 64 (2 on a 128 grid)
    center_sigma_extra: float = 2.0  # centre heatmap sigma = sigma + this
    bg_weight: float = 0.1
    offset_radius: int = 4  # offsets fill the 2r x 2r block around each centre
    visibility_radius: int = 4
    keypoint_names: tuple[str, ...] = ()  # overrides of the keypoint metadata; empty = from JSON/built-in
    flip_index: tuple[int, ...] = ()
    sigmas: tuple[float, ...] = ()
    num_workers: int = 4
    train_negatives: bool = False  # train on images without annotations too (the reference drops them)

    def __post_init__(self) -> None:
        if self.input_size % 64 or self.input_size <= 0:
            raise ConfigError(f"data.input_size must be a positive multiple of 64, got {self.input_size}")
        check_section("data", self)
        if self.max_scale < self.min_scale:
            raise ConfigError(f"data.max_scale must be >= data.min_scale ({self.min_scale}), got {self.max_scale}")

    @property
    def heatmap_sigma(self) -> float:
        return self.sigma if self.sigma > 0 else self.output_size / 64.0


@dataclass(frozen=True)
class TestConfig:
    """Test-time procedure (docs/DESIGN.md, Decoding). Defaults reproduce the reference at a single scale."""

    base_size: int = 512  # short side at scale 1
    scales: tuple[float, ...] = (1.0,)
    flip: bool = True
    flip_shift: int = 3  # the reference shifts the mirrored image left by 3 px
    dtype: str = "auto"  # precision: auto | fp32 | bf16 | fp16 | int8 (grapepose.inference.precision)
    max_people: int = 30
    center_threshold: float = 0.01
    center_pool_kernel: int = 0  # 0: 3, or 5/7 for maps whose mean side exceeds 200/300
    multiscale_score_factor: float = 0.8
    rescore_center_threshold: float = 0.4
    visibility_threshold: float = 0.1
    min_visible_joints: int = 2
    nms_distance: float = 0.05  # fraction of the joint-box diagonal
    nms_joints: int = 7  # duplicates share more than this many close joints
    # docs/DESIGN.md, Decoding, step 5: a group whose best member was already suppressed is suppressed
    # whole; the reference code instead leaves such a group alone (false reproduces it).
    nms_suppress_unkept: bool = True
    snap_peaks: int = 30
    snap_pool_kernel: int = 5
    snap_visibility_threshold: float = 0.25
    refine: bool = True
    refine_score_threshold: float = 0.05
    refine_window: int = 6
    refine_sigma: float = 2.0
    refine_iterations: int = 30  # Levenberg-Marquardt steps (the reference's curve_fit may take ~60)

    def __post_init__(self) -> None:
        if not self.scales:
            raise ConfigError("test.scales must list at least one scale > 0, got []")
        check_section("test", self)
        # The bounds of `--scales` and `--base-size` (grapepose.limits), here so that `--set`, YAML files
        # and the Python API cannot ask for a network input of a different order of memory.
        low, high = TEST_SCALE_RANGE
        if len(self.scales) > MAX_TEST_SCALES or not all(low <= s <= high for s in self.scales):
            raise ConfigError(f"test.scales must list 1 to {MAX_TEST_SCALES} scales from {low:g} to {high:g}, "
                              f"got {quote_value(list(self.scales))}")  # fmt: skip
        if not 1 <= self.base_size <= MAX_BASE_SIZE:
            raise ConfigError(f"test.base_size must be from 1 to {MAX_BASE_SIZE}, got {self.base_size}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation (docs/DESIGN.md, Losses)."""

    epochs: int = 140
    batch_size: int = 16
    lr: float = 1e-3
    transformer_lr: float = 0.0  # > 0: a second Adam group for the transformer-side modules
    lr_split: str = "global_context"  # which modules get transformer_lr: global_context | backbone (= all but it)
    weight_decay: float = 0.0
    schedule: str = "step"  # step | cosine
    lr_steps: tuple[int, ...] = (90, 120)
    lr_factor: float = 0.1
    warmup_steps: int = 500
    grad_clip: float = 0.1  # max total gradient norm, as the reference (0: off)
    amp: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16
    sync_bn: bool = False
    seed: int = 0
    deterministic: bool = False
    heatmap_loss_factor: float = 10.0
    offset_loss_factor: float = 0.3
    refined_offset_loss_factor: float = 0.3
    visibility_loss_factor: float = 1.0
    smooth_l1_beta: float = 1.0 / 9.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    val_interval: int = 0  # epochs between validations; 0: off
    log_interval: int = 20
    steps_per_epoch: int = 0  # 0: one pass over the dataset
    checkpoint_interval: int = 0  # steps between extra mid-epoch saves of last.pt; 0: end of each epoch only

    def __post_init__(self) -> None:
        check_section("train", self)


@dataclass(frozen=True)
class Config:
    """A complete experiment configuration.

    `keypoints` is what the K keypoints are (names, flip pairs, OKS sigmas, skeleton). It is
    resolved once: from the built-in tables when a config is made (COCO/OCHuman/CrowdPose presets,
    or the `data.keypoint_names/flip_index/sigmas` overrides), from the dataset's JSON when training
    starts; it is saved with every model file. None means not known yet (a custom K before training).
    Every consumer reads `keypoint_spec`.
    """

    name: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    test: TestConfig = field(default_factory=TestConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    keypoints: KeypointSpec | None = None

    def __post_init__(self) -> None:
        if self.keypoints is None:
            object.__setattr__(self, "keypoints", _builtin_keypoints(self.model, self.data))
        elif self.keypoints.num_keypoints != self.model.num_keypoints:
            raise ConfigError(
                f"keypoints lists {self.keypoints.num_keypoints} keypoints but model.num_keypoints is "
                f"{self.model.num_keypoints}"
            )

    @property
    def keypoint_spec(self) -> KeypointSpec:
        """The keypoint metadata every consumer uses (predictor, evaluation, drawing, export, tracking).

        `keypoints` when known; else `data.keypoint_names` (or generic names), flip pairs from
        `data.flip_index` (or the names) and one default OKS sigma.
        """
        if self.keypoints is not None:
            return self.keypoints
        k, d = self.model.num_keypoints, self.data
        names = tuple(d.keypoint_names) if len(d.keypoint_names) == k else tuple(f"keypoint_{i}" for i in range(k))
        flip = tuple(d.flip_index) if len(d.flip_index) == k else flip_index_from_names(names)
        try:
            return KeypointSpec(names, flip, (DEFAULT_SIGMA,) * k)
        except DataError as e:
            raise ConfigError(f"data.flip_index: {str(e).removeprefix('keypoint spec: ')}") from None

    def resolved(self) -> Config:
        """This config with `keypoints` filled in (what model files store)."""
        return self if self.keypoints is not None else dataclasses.replace(self, keypoints=self.keypoint_spec)


def _builtin_keypoints(model: ModelConfig, data: DataConfig) -> KeypointSpec | None:
    """The spec the built-in tables and `data.*` overrides give for K keypoints, or None."""
    k = model.num_keypoints
    if data.keypoint_names or data.flip_index or data.sigmas:
        if data.sigmas or builtin_spec(k, data.dataset) is not None:
            try:
                return resolve_keypoint_spec(None, k, data.dataset, "config", data.keypoint_names,
                                             data.flip_index, data.sigmas)  # fmt: skip
            except DataError as e:
                raise ConfigError(str(e).removeprefix("config: ")) from None
        return None  # no OKS sigmas known: resolved with the dataset when training starts
    return builtin_spec(k, data.dataset)


# Config fields whose change makes the built-in keypoint spec stale (it is then resolved again).
_KEYPOINT_SOURCES = (("model", "num_keypoints"), ("data", "dataset"), ("data", "keypoint_names"),
                     ("data", "flip_index"), ("data", "sigmas"))  # fmt: skip


_PRESET_BACKBONES = {b.suffix: b.name for b in BACKBONES.values()}


def _preset(dataset: str, size: str) -> Config:
    k = 14 if dataset == "crowdpose" else 17
    return Config(
        name=f"{dataset}_{size}",
        model=ModelConfig(backbone=_PRESET_BACKBONES[size], num_keypoints=k),
        data=DataConfig(dataset=dataset),
    )


# {coco,crowdpose,ochuman}_{w18,w32,w48} are the reference networks; *_w18s is a small model
# (HRNet-W18-small-v2 backbone) for CPUs and for shipping in the package.
PRESETS: dict[str, Config] = {
    f"{ds}_{size}": _preset(ds, size) for ds in ("coco", "crowdpose", "ochuman") for size in _PRESET_BACKBONES
}

# Named test modes: `reference` is what the authors' evaluation script really does.
TEST_MODES: dict[str, dict[str, Any]] = {
    "default": {"scales": (1.0,), "flip": True},
    "fast": {"scales": (1.0,), "flip": False},
    "reference": {"scales": (0.5, 1.0, 2.0), "flip": True, "dtype": "fp16"},
}


def preset_config(name: str) -> Config:
    """The preset called `name` (see `PRESETS`)."""
    if not isinstance(name, str):
        raise ConfigError(f"preset: expected a preset name, got {quote_value(name)}")
    if name not in PRESETS:
        hint = suggest_key(name, PRESETS)
        raise ConfigError(f"unknown preset {quote_value(name)}{hint}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def _section(cls: type, base: Any, values: Any, where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {quote_value(values)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    changes = {}
    for key, value in values.items():
        dropped = _DROPPED_KEYS.get(where, {})
        if key in dropped:
            if value != dropped[key]:
                log.warning("%s.%s=%s is ignored: set GRAPEPOSE_KERNELS to choose the kernels (auto, own, torch)",
                            where, key, quote_value(value))  # fmt: skip
            continue
        if key not in names:
            shown = key if isinstance(key, str) and len(key) <= 60 else quote_value(key)
            hint = suggest_key(key, names) if isinstance(key, str) else ""
            raise ConfigError(f"unknown config key {where}.{shown}{hint}".replace("config key .", "config key "))
        hint = hints[key]
        sub = f"{where}.{key}" if where else key
        if cls is Config and key == "keypoints":
            changes[key] = _keypoints_value(value)
        elif dataclasses.is_dataclass(hint):
            changes[key] = _section(hint, getattr(base, key), value, sub)
        else:
            changes[key] = coerce_value(value, hint, sub)
    if cls is Config and "keypoints" not in changes and base.keypoints is not None:
        for section, name in _KEYPOINT_SOURCES:
            if section in changes and getattr(changes[section], name) != getattr(getattr(base, section), name):
                changes["keypoints"] = None  # resolved again for the new keypoint set
                break
    try:
        return dataclasses.replace(base, **changes)
    except TypeError as e:  # pragma: no cover - guarded above
        raise ConfigError(f"{where}: {e}") from None


def _keypoints_value(value: Any) -> KeypointSpec | None:
    if value is None or isinstance(value, KeypointSpec):
        return value
    try:
        return KeypointSpec.from_dict(value, "keypoints")
    except DataError as e:
        raise ConfigError(str(e)) from None


def config_from_dict(d: dict[str, Any], base: Config | None = None) -> Config:
    """Build a `Config` from a (possibly partial) nested dict, on top of `base` or a `preset` key."""
    d = dict(d)
    preset = d.pop("preset", None)
    if base is None:
        base = preset_config(preset) if preset else Config()
    return _section(Config, base, d, "")


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Plain nested dict (lists, not tuples) that `config_from_dict` reads back to an equal config."""

    def plain(x: Any) -> Any:
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        return x

    return plain(dataclasses.asdict(cfg))


def apply_overrides(cfg: Config, overrides: typing.Iterable[str]) -> Config:
    """Apply `section.key=value` strings (values parsed as YAML: `scales=[0.5,1,2]`, `flip=false`)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {quote_value(item)} is not of the form section.key=value")
        path, raw = item.split("=", 1)
        try:
            value = load_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        except ConfigError as e:
            raise ConfigError(f"{quote_value(item)}: {e}") from None
        nested: Any = value
        for part in reversed(path.strip().split(".")):
            nested = {part: nested}
        cfg = config_from_dict(nested, base=cfg)
    return cfg


def load_config(spec: str | os.PathLike[str] | Config | None = None, overrides: typing.Iterable[str] = ()) -> Config:
    """Resolve a preset name, YAML file or `Config` (None: `crowdpose_w32`), then apply overrides."""
    if spec is None:
        cfg = PRESETS["crowdpose_w32"]
    elif isinstance(spec, Config):
        cfg = spec
    elif str(spec) in PRESETS:
        cfg = PRESETS[str(spec)]
    elif str(spec).endswith((".yaml", ".yml")) or Path(spec).is_file():
        path = Path(spec)
        data = read_config_yaml(path) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of config sections (model, data, test, train), "
                              f"got a {type(data).__name__}")  # fmt: skip
        try:
            cfg = config_from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    else:
        cfg = preset_config(str(spec))
    return apply_overrides(cfg, overrides)
