"""Every `grapepose bench` topic runs at a tiny size and prints one JSON line of figures."""

import importlib
import json

import pytest

from grapepose.cli.main import main

TINY = {
    "forward": ["--preset", "crowdpose_w18", "--size", "128", "--iters", "1", "--warmup", "0", "--device", "cpu"],
    "targets": ["--people", "3", "--grid", "32", "--iters", "3"],
    "loader": ["--workers", "0", "--size", "128", "--batch-size", "2", "--batches", "1"],
    "decode": ["--people", "3", "--grid", "64", "--iters", "1", "--device", "cpu"],
    "predict": ["--preset", "crowdpose_w18", "--size", "128", "--iters", "1", "--no-flip", "--device", "cpu"],
    "train": ["--preset", "crowdpose_w18", "--size", "128", "--batch-size", "1", "--steps", "1", "--warmup", "0",
              "--device", "cpu"],
}  # fmt: skip
RATE = {"forward": "images_per_s", "targets": "ms_per_image", "loader": "images_per_s",
        "decode": "ms_per_image", "predict": "images_per_s", "train": "images_per_s"}  # fmt: skip


@pytest.mark.parametrize("topic", sorted(TINY))
def test_bench_prints_one_json_line(topic, capsys, shared_data):
    d = shared_data / "crowdpose"
    data = ["--data", str(d), "--ann", str(d / "test_crowdpose.json")] if topic == "loader" else []
    assert main(["bench", topic, *TINY[topic], *data]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    figures = json.loads(lines[0])
    assert figures["bench"] == topic and figures[RATE[topic]]


@pytest.mark.parametrize("flip", ["--flip", "--no-flip"])
def test_bench_decode_finds_every_planted_person(flip, capsys, monkeypatch):
    module = importlib.import_module("grapepose.inference.decode")
    calls = []
    real = module.decode
    monkeypatch.setattr(module, "decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    args = ["bench", "decode", "--people", "0", "--people", "4", "--people", "9", "--grid", "48", "--iters", "5", flip]
    assert main(args) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["people_found"] == {"0": 0, "4": 4, "9": 9}
    assert len(calls) == 3 * (2 + 5)  # per count of people: 2 warm-up calls, then the timed ones


@pytest.mark.parametrize("flag,heap", [(None, "retained"), ("--system-malloc", "system"), ("--baseline", "system")])
def test_bench_train_keeps_freed_memory_like_the_trainer(flag, heap, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr("grapepose.utils.memory.retain_freed_memory", lambda: calls.append(1) or True)
    assert main(["bench", "train", *TINY["train"], *([flag] if flag else [])]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["malloc"] == heap and len(calls) == (heap == "retained")


@pytest.mark.parametrize("topic", ["forward", "predict", "train", "serve", "joints", "decode", "targets", "loader"])
def test_topics_that_run_the_network_share_one_precision_flag(topic, capsys):
    from grapepose.config import PRECISIONS

    assert main(["bench", topic, "--help"]) == 0
    usage = " ".join(capsys.readouterr().out.split())
    runs_network = topic in ("forward", "predict", "train", "serve", "joints")
    assert ("[--precision {" + ",".join(PRECISIONS) + "}]" in usage) == runs_network
    assert "--dtype" not in usage


def test_bench_train_refuses_int8_in_one_line(capsys):
    assert main(["bench", "train", *TINY["train"], "--precision", "int8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "grapepose bench: error: precision int8 is for inference only; training runs auto, fp32, bf16, fp16"
