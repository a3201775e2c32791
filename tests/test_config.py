import dataclasses

import pytest

from grapepose.config import PRESETS, Config, config_from_dict, config_to_dict, load_config
from grapepose.errors import ConfigError
from grapepose.keypoints import COCO_KEYPOINTS, CROWDPOSE_KEYPOINTS, KeypointSpec


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
    assert Config().model.num_keypoints == 14 and Config().keypoints == CROWDPOSE_KEYPOINTS


def test_small_presets_use_the_small_backbone():
    for ds in ("coco", "crowdpose", "ochuman"):
        assert PRESETS[f"{ds}_w18s"].model.backbone == "hrnet_w18_small_v2"


def test_presets_carry_their_keypoint_spec():
    assert PRESETS["coco_w18s"].keypoints == COCO_KEYPOINTS == PRESETS["ochuman_w32"].keypoint_spec
    assert PRESETS["crowdpose_w48"].keypoints == CROWDPOSE_KEYPOINTS
    assert config_to_dict(PRESETS["coco_w32"])["keypoints"]["skeleton"][0] == [15, 13]


def test_keypoints_follow_the_keypoint_count():
    cfg = load_config("coco_w32", ["model.num_keypoints=5"])
    assert cfg.keypoints is None  # unknown until a dataset says; consumers get a generic spec
    assert cfg.keypoint_spec.names == tuple(f"keypoint_{i}" for i in range(5)) and cfg.keypoint_spec.sigmas == (0.079,) * 5
    assert load_config(cfg, ["model.num_keypoints=14", "data.dataset=crowdpose"]).keypoints == CROWDPOSE_KEYPOINTS
    assert load_config("coco_w32", ["test.flip=false"]).keypoints is PRESETS["coco_w32"].keypoints


def test_declared_keypoints_round_trip(tmp_path):
    path = tmp_path / "k3.yaml"
    path.write_text(
        "preset: coco_w18s\nmodel: {num_keypoints: 3}\n"
        "keypoints: {names: [nose, left_eye, right_eye], sigmas: [0.1, 0.2, 0.2], skeleton: [[0, 1], [0, 2]]}\n"
    )
    cfg = load_config(path)
    assert cfg.keypoints == KeypointSpec(("nose", "left_eye", "right_eye"), (0, 2, 1), (0.1, 0.2, 0.2), ((0, 1), (0, 2)))
    assert config_from_dict(config_to_dict(cfg)) == cfg and cfg.resolved() is cfg
    with pytest.raises(ConfigError) as e:
        load_config(cfg, ["model.num_keypoints=4", "keypoints.names=[a]"])
    assert str(e.value) == "keypoints.sigmas: expected a non-empty list, got None"
    with pytest.raises(ConfigError) as e:
        Config(keypoints=COCO_KEYPOINTS)
    assert str(e.value) == "keypoints lists 17 keypoints but model.num_keypoints is 14"


def test_model_files_store_the_resolved_spec():
    from grapepose.models import build_model, model_metadata

    meta = model_metadata(build_model(load_config("coco_w18s", ["model.num_keypoints=2", "data.keypoint_names=[l_a, r_a]",
                                                                "data.sigmas=[0.1,0.1]"])))  # fmt: skip
    assert meta["keypoints"] == {"names": ["l_a", "r_a"], "flip_index": [1, 0], "sigmas": [0.1, 0.1], "skeleton": []}
