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
