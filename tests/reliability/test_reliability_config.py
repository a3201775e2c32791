"""Config values out of range: one line naming the key and the allowed range, exit 2, nothing written.

Before: `test.base_size=0|-64`, `train.lr=-1|nan`, `train.batch_size=0` and `--device banana` gave
tracebacks; `train.epochs=-1` "finished" and wrote an untrained model; `data.sigma=-2` and
`data.flip_prob=2` were accepted; a YAML config that is a plain string gave a traceback.
"""

from __future__ import annotations

import pytest
from reliability_meta_helpers import fails

from grapepose.config import load_config
from grapepose.errors import ConfigError

FAULTS = {
    "test.base_size=0": "test.base_size must be > 0, got 0",
    "test.base_size=-64": "test.base_size must be > 0, got -64",
    "train.lr=-1": "train.lr must be > 0, got -1.0",
    "train.lr=nan": "train.lr must be a finite number, got nan",
    "train.lr=.inf": "train.lr must be a finite number, got inf",
    "train.batch_size=0": "train.batch_size must be >= 1, got 0",
    "train.epochs=-1": "train.epochs must be >= 1, got -1",
    "train.epochs=0": "train.epochs must be >= 1, got 0",
    "data.sigma=-2": "data.sigma must be >= 0, got -2.0",
    "data.flip_prob=2": "data.flip_prob must be in [0, 1], got 2.0",
    "data.num_workers=-1": "data.num_workers must be >= 0, got -1",
    "data.min_scale=0": "data.min_scale must be > 0, got 0.0",
    "data.input_size=100": "data.input_size must be a positive multiple of 64, got 100",
    "model.dropout=1": "model.dropout must be in [0, 1), got 1.0",
    "test.scales=[0.5,-1]": "test.scales must be > 0, got [0.5, -1.0]",
    "test.center_threshold=1.5": "test.center_threshold must be in [0, 1], got 1.5",
    "test.center_pool_kernel=4": "test.center_pool_kernel must be 0 or an odd number, got 4",
    "test.max_people=0": "test.max_people must be >= 1, got 0",
    "test.dtype=fp8": "test.dtype must be one of auto, fp32, bf16, fp16, got 'fp8'",
    "train.amp=int8": "train.amp must be one of auto, fp32, bf16, fp16, got 'int8'",
    "train.grad_clip=-0.1": "train.grad_clip must be >= 0, got -0.1",
    "train.seed=-5": "train.seed must be >= 0, got -5",
    "model.backbone=resnet50": "model.backbone must be one of hrnet_w18, hrnet_w32, hrnet_w48, hrnet_w18_small_v2, got 'resnet50'",
    "data.dataset=cocoo": "data.dataset must be one of coco, crowdpose, ochuman, custom, got 'cocoo'",
    "train.lr=abc": "train.lr: expected a number, got 'abc'",
}  # fmt: skip


@pytest.mark.parametrize("override", list(FAULTS))
def test_out_of_range_is_one_line(override, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--preset", "coco_w18s", "--scene", "crowd", "--out", str(run), "--device", "cpu", override]
    assert fails(argv, capsys) == (2, f"grapepose train: error: {FAULTS[override]}")
    assert not run.exists()
    with pytest.raises(ConfigError) as e:  # the Python API says the same
        load_config("coco_w18s", [override])
    assert str(e.value) == FAULTS[override]


@pytest.mark.parametrize("text,kind", [("crowdpose_w32\n", "str"), ("- 1\n- 2\n", "list"), ("3\n", "int")])
def test_yaml_that_is_not_a_mapping(tmp_path, capsys, text, kind):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    argv = ["train", "--preset", str(path), "--scene", "crowd", "--out", str(tmp_path / "run")]
    message = f"{path}: expected a mapping of config sections (model, data, test, train), got a {kind}"
    assert fails(argv, capsys) == (2, f"grapepose train: error: {message}")


def test_keypoints_section_is_checked(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("preset: coco_w18s\nmodel: {num_keypoints: 2}\nkeypoints: {names: [a, b], sigmas: [0.1, nan]}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}: keypoints.sigmas must be finite numbers >= 0, got [0.1, nan]"


@pytest.mark.parametrize("device", ["banana", "cuda:x"])
def test_unknown_device(device, tmp_path, capsys, shared_data, tiny_checkpoint):
    message = f"--device must be one of auto, cpu, cuda, cuda:N, got {device!r}"  # checked while parsing
    run = tmp_path / "run"
    argv = ["train", "--preset", "coco_w18s", "--scene", "crowd", "--out", str(run), "--device", device]
    assert fails(argv, capsys) == (2, f"grapepose train: error: {message}")
    ann = shared_data / "crowdpose" / "test_crowdpose.json"
    argv = ["evaluate", "--weights", str(tiny_checkpoint), "--data", str(ann.parent), "--ann", str(ann), "--device", device]
    assert fails(argv, capsys) == (2, f"grapepose evaluate: error: {message}")
