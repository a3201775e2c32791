"""`--precision` on predict, evaluate, serve and bench predict/forward: parsed once, read by the one resolver.

The CPU is simulated without bf16 instructions, so each command must stop with the resolver's line
(exit 2) when asked for bf16; and the thread-wait default set at start-up.
"""

from __future__ import annotations

import argparse
import os

import pytest

from grapepose.cli import options as opt
from grapepose.cli.main import main, passive_openmp_waits
from grapepose.inference import precision as prec


LINE = "precision bf16: this CPU has none of avx512_bf16, amx_bf16; use fp32 or int8"


@pytest.fixture
def no_bf16_cpu(monkeypatch):
    monkeypatch.setattr(prec, "cpu_features", lambda: frozenset({"avx2", "fma"}))


def _commands(tiny_checkpoint, shared_data, tmp_path) -> dict[str, list[str]]:
    ckpt, coco = str(tiny_checkpoint), shared_data / "coco"
    return {
        "predict": ["predict", str(coco / "000000040083.jpg"), "--weights", ckpt, "--out", str(tmp_path / "p")],
        "evaluate": ["evaluate", "--weights", ckpt, "--data", str(coco), "--ann", str(coco / "test_coco.json")],
        "serve": ["serve", "--weights", ckpt, "--port", "0"],
        "bench": ["bench", "predict", "--preset", "crowdpose_w18s", "--size", "64", "--iters", "1", "--no-flip"],
        "bench forward": ["bench", "forward", "--preset", "crowdpose_w18s", "--size", "64", "--iters", "1"],
    }


@pytest.mark.parametrize("command", ["predict", "evaluate", "serve", "bench", "bench forward"])
def test_unsupported_precision_stops_every_command_in_one_line(
    command, no_bf16_cpu, tiny_checkpoint, shared_data, tmp_path, capsys
):
    argv = _commands(tiny_checkpoint, shared_data, tmp_path)[command]
    assert main([*argv, "--device", "cpu", "--precision", "bf16"]) == 2
    name = "bench" if command.startswith("bench") else command
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"grapepose {name}: error: {LINE}"


def test_flag_writes_test_dtype_in_one_spelling():
    p = argparse.ArgumentParser()
    opt.add_precision(p)
    assert opt.flag_overrides(p.parse_args(["--precision", "int8"])) == ['test.dtype="int8"']
    assert opt.flag_overrides(p.parse_args(["--precision", "fp32"])) == ['test.dtype="fp32"']
    assert opt.flag_overrides(p.parse_args([])) == []
    with pytest.raises(SystemExit):  # the older `--dtype` is gone
        p.parse_args(["--dtype", "fp32"])


def test_bad_precision_is_a_parse_error(capsys):
    assert main(["predict", "x.jpg", "--precision", "fp8"]) == 2
    assert "--precision: invalid choice: 'fp8'" in capsys.readouterr().err


def test_openmp_threads_wait_passively_unless_the_user_chose(monkeypatch):
    import sys

    for key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(key, raising=False)
    passive_openmp_waits()  # torch is loaded in this process: too late to change anything
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.delitem(sys.modules, "torch")
    passive_openmp_waits()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    passive_openmp_waits()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setenv("GOMP_SPINCOUNT", "1000")
    passive_openmp_waits()
    assert "OMP_WAIT_POLICY" not in os.environ


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--precision", "int8", "--deform-op"],
         "--deform-op writes an fp32 file; int8 files keep the standard operators"),
        (["--calibrate", "photos"], "--calibrate is for --precision int8"),
        (["--precision", "int8", "--calibration-images", "0"], "--calibration-images must be >= 1, got 0"),
    ],
)
def test_export_int8_flags_are_checked_before_work(extra, message, tmp_path, capsys):
    argv = ["export", "--preset", "crowdpose_w18s", "--out", str(tmp_path / "m.onnx"), *extra]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"grapepose export: error: {message}"
    assert not (tmp_path / "m.onnx").exists()
