import dataclasses

import pytest

from grapepose.config import PRESETS, Config, config_from_dict, config_to_dict, load_config
from grapepose.errors import ConfigError


def test_presets_cover_datasets_and_widths():
    for ds in ("coco", "crowdpose", "ochuman"):
        for w in (18, 32, 48):
            cfg = PRESETS[f"{ds}_w{w}"]
            assert cfg.model.backbone == f"hrnet_w{w}"
            assert cfg.model.num_keypoints == (14 if ds == "crowdpose" else 17)


def test_round_trip_through_dict():
    cfg = load_config("coco_w18", ["test.scales=[0.5,1,2]", "train.lr=0.0005"])
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert cfg.test.scales == (0.5, 1.0, 2.0)


def test_overrides_do_not_mutate_presets():
    before = PRESETS["crowdpose_w32"]
    cfg = load_config("crowdpose_w32", ["model.dropout=0", "test.flip=false"])
    assert cfg.model.dropout == 0.0 and cfg.test.flip is False
    assert PRESETS["crowdpose_w32"] == before and before.model.dropout == 0.1
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.dropout = 0.5  # type: ignore[misc]


def test_unknown_key_suggests_nearest():
    with pytest.raises(ConfigError, match=r"unknown config key model\.num_keypoint.*did you mean 'num_keypoints'"):
        load_config("crowdpose_w32", ["model.num_keypoint=17"])
    with pytest.raises(ConfigError, match="did you mean 'crowdpose_w32'"):
        load_config("crowdpose_w23")


def test_bad_values_are_named():
    with pytest.raises(ConfigError, match="model.num_keypoints: expected an integer"):
        load_config(None, ["model.num_keypoints=abc"])
    with pytest.raises(ConfigError, match="data.input_size must be a positive multiple of 64"):
        load_config(None, ["data.input_size=500"])


def test_yaml_file_with_preset(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("preset: coco_w32\ntest:\n  flip: false\n")
    cfg = load_config(path)
    assert cfg.model.num_keypoints == 17 and cfg.test.flip is False
    bad = tmp_path / "bad.yaml"
    bad.write_text("tset:\n  flip: false\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown config key tset.*'test'"):
        load_config(bad)


def test_default_is_crowdpose_w32():
    assert load_config().name == "crowdpose_w32"
    assert isinstance(Config(), Config)


def test_small_presets_use_the_small_backbone():
    for ds in ("coco", "crowdpose", "ochuman"):
        assert PRESETS[f"{ds}_w18s"].model.backbone == "hrnet_w18_small_v2"
