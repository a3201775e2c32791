"""Model and training files: a PyTorch file named .safetensors, half-written temporaries of a killed run."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from reliability_meta_helpers import fails

from grapepose.models import build_model


def test_pytorch_file_named_safetensors_is_read_by_its_content(tmp_path, capsys):
    """Before: a raw SafetensorError traceback (torch.load hands .safetensors paths to safetensors)."""
    model = build_model("coco_w18s")
    path = tmp_path / "model.safetensors"
    torch.save(model.state_dict(), path)
    out = tmp_path / "converted.safetensors"
    assert fails(["convert", str(path), "--out", str(out)], capsys)[0] == 0
    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(pickle.dumps({"x": Path("x")}, protocol=2))  # a plain pickle with a Python object
    assert fails(["convert", str(bad), "--out", str(out)], capsys) == (
        2, f"grapepose convert: error: {bad}: holds Python objects other than tensors and plain data; refusing to "
        "unpickle it")  # fmt: skip


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path, caplog):
    """Before: `.last.<random>.tmp.pt` files of runs killed mid-save (kill -9) stayed forever."""
    from grapepose.engine import Trainer
    from grapepose.synth import SyntheticSource

    run = tmp_path / "run"
    run.mkdir()
    stale = [run / ".last.x1y2.tmp.pt", run / ".final.abc.tmp.safetensors"]
    for p in stale:
        p.write_bytes(b"half")
    (run / "notes.tmp.pt").write_bytes(b"not ours")
    cfg = ["data.input_size=64", "data.output_size=16", "data.num_workers=0", "train.batch_size=1"]
    from grapepose.config import load_config

    source = SyntheticSource("sparse", size=64, seed=0, length=2)
    Trainer(load_config("coco_w18s", cfg), run, source=source, device="cpu", progress=False)
    assert not any(p.exists() for p in stale) and (run / "notes.tmp.pt").exists()
    assert "removed 2 half-written file(s) of an interrupted run" in caplog.text


def test_last_pt_with_python_objects_is_one_line(tmp_path, capsys):
    """Before: 7 lines ending in torch's documentation text (issue 22); the file is left as it was."""
    run = tmp_path / "run"
    run.mkdir()
    last = run / "last.pt"
    torch.save({"version": 1, "model": {}, "x": Path("x")}, last)  # a pickle that weights_only=True refuses
    before = last.read_bytes()
    argv = ["train", "--preset", "coco_w18s", "--scene", "crowd", "--num-images", "2", "--out", str(run),
            "--device", "cpu", "--no-progress", "--batch-size", "1", "data.input_size=64", "data.output_size=16",
            "data.num_workers=0"]  # fmt: skip
    assert fails(argv, capsys) == (
        2, f"grapepose train: error: {last}: holds Python objects other than tensors and plain data; refusing to "
        "unpickle it")  # fmt: skip
    assert [p.name for p in run.iterdir()] == ["last.pt"] and last.read_bytes() == before
