"""The one torchrun helper: RANK / LOCAL_RANK / WORLD_SIZE read in one place, one error for a bad value."""

from __future__ import annotations

import pytest
import torch

from grapepose.cli.main import main
from grapepose.errors import ConfigError
from grapepose.utils.distributed import DistInfo, setup_distributed, torchrun_env, world_size

VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@pytest.fixture
def env(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_env


def test_outside_torchrun_is_a_world_of_one(env):
    assert torchrun_env() == (0, 0, 1) and world_size() == 1
    assert setup_distributed("cpu") == DistInfo(0, 0, 1, torch.device("cpu"))
    env(RANK="", WORLD_SIZE=" ")  # set but empty: as if unset
    assert torchrun_env() == (0, 0, 1)


def test_reads_what_torchrun_sets(env):
    env(RANK="3", LOCAL_RANK="1", WORLD_SIZE="4")
    assert torchrun_env() == (3, 1, 4) and world_size() == 4


@pytest.mark.parametrize("values,message", [
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not an integer >= 1"),
    ({"WORLD_SIZE": "0"}, "WORLD_SIZE='0' is not an integer >= 1"),
    ({"WORLD_SIZE": "2", "RANK": "-1"}, "RANK='-1' is not an integer >= 0"),
    ({"WORLD_SIZE": "2", "LOCAL_RANK": "1.5"}, "LOCAL_RANK='1.5' is not an integer >= 0"),
    ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK=2 is not below WORLD_SIZE=2"),
])  # fmt: skip
def test_a_bad_environment_is_one_config_error(env, values, message):
    env(**values)
    with pytest.raises(ConfigError) as e:
        torchrun_env()
    assert str(e.value) == f"torchrun environment: {message}"


@pytest.mark.parametrize("argv", [
    ["predict", "a.jpg", "--device", "cpu"],
    ["train", "--scene", "crowd", "--device", "cpu"],
    ["evaluate", "--weights", "demo", "--data", "{data}", "--ann", "{data}/test_crowdpose.json", "--device", "cpu"],
])  # fmt: skip
def test_every_command_says_the_same_line(env, argv, shared_data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written: train's default run folder would land here
    env(WORLD_SIZE="two")
    argv = [a.format(data=shared_data / "crowdpose") for a in argv]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        f"grapepose {argv[0]}: error: torchrun environment: WORLD_SIZE='two' is not an integer >= 1")
    assert list(tmp_path.iterdir()) == []
