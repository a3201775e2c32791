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
    # the bounds of --scales and --base-size hold for --set, YAML and the API too (grapepose.limits)
    "test.scales=[100]": "test.scales must list 1 to 3 scales from 0.25 to 2, got [100.0]",
    "test.scales=[0.5,1,1.5,2]": "test.scales must list 1 to 3 scales from 0.25 to 2, got [0.5, 1.0, 1.5, 2.0]",
    "test.base_size=100000": "test.base_size must be from 1 to 2048, got 100000",
    "test.center_threshold=1.5": "test.center_threshold must be in [0, 1], got 1.5",
    "test.center_pool_kernel=4": "test.center_pool_kernel must be 0 or an odd number, got 4",
    "test.max_people=0": "test.max_people must be >= 1, got 0",
    "test.dtype=fp8": "test.dtype must be one of auto, fp32, bf16, fp16, int8, got 'fp8'",
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


# --- YAML within bounds, quoted values short (issue 22 item 14) ------------------------------------------


def _alias_bomb(levels: int) -> str:
    """`name:` holding `levels` nested anchors of 9 aliases each: 9**levels values once expanded, ~400 bytes."""
    items = ["&a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    items += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "name: [" + ", ".join(items) + "]\n"


@pytest.mark.parametrize("text,problem", [
    (_alias_bomb(9), "YAML aliases expand to more than 100000 values"),  # before: MemoryError
    ("name: " + "[" * 60 + "]" * 60 + "\n", "nested more than 50 levels deep"),  # 5000 levels: RecursionError
    ("test: {scales: &a [1, *a]}\n", "a YAML alias refers to the value that contains it"),
    ("preset: [coco_w18s]\n", "preset: expected a preset name, got ['coco_w18s']"),  # before: TypeError traceback
    ("keypoints: {1: 2, a: 3}\n", "keypoints: unknown key 1 (keys: names, flip_index, sigmas, skeleton)"),  # TypeError
    ("\xff\xfe".encode("latin-1"), "not a text file (not valid UTF-8)"),  # before: UnicodeDecodeError traceback
    ("# padding\n" * 100_001, "1,000,010 bytes is too large for a config file (at most 1,000,000)"),
], ids=["alias bomb", "deep nesting", "recursive alias", "preset not a name", "mixed keys", "not UTF-8", "1 MB"])  # fmt: skip
def test_config_file_out_of_bounds_is_one_line(tmp_path, capsys, text, problem):
    path = tmp_path / "cfg.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    run = tmp_path / "run"
    argv = ["train", "--preset", str(path), "--scene", "crowd", "--out", str(run)]
    assert fails(argv, capsys) == (2, f"grapepose train: error: {path}: {problem}")
    assert not run.exists()


def test_alias_bomb_in_an_override_is_one_line(tmp_path, capsys):
    override = "test.scales=" + _alias_bomb(9).removeprefix("name: ").strip()
    argv = ["train", "--preset", "coco_w18s", "--scene", "crowd", "--out", str(tmp_path / "run"), override]
    assert fails(argv, capsys) == (2, "grapepose train: error: 'test.scales=[&a0 [lol, lol,...7, *a7, *a7, *a7, "
                                      "*a7, *a7]]': YAML aliases expand to more than 100000 values")


@pytest.mark.parametrize("text,message", [
    # before: the whole value in the line (an 8-level alias bomb printed 351 MB using 1.4 GB)
    ("name: [" + ", ".join(map(str, range(5000))) + "]\n",
     "name: expected a string, got [" + "".join(f"{i}, " for i in range(20)) + "...]"),
    ("model: {backbone: " + "x" * 10_000 + "}\n",
     "model.backbone must be one of hrnet_w18, hrnet_w32, hrnet_w48, hrnet_w18_small_v2, got "
     "'xxxxxxxxxxxxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxxxxxxxxxxxx'"),
    ("keypoints: {names: [a], sigmas: [" + ", ".join(["1"] * 3000) + ", .nan]}\n",
     "keypoints.sigmas must be finite numbers >= 0, got [" + "1.0, " * 20 + "...]"),
], ids=["long list", "long string", "keypoints section"])  # fmt: skip
def test_quoted_values_are_truncated(tmp_path, text, message):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}: {message}"
