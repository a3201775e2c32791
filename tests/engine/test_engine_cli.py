"""`grapepose train` in one process: chunked runs resume, a NaN loss stops cleanly."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import yaml
from engine_helpers import tiny_overrides

from grapepose.cli.main import main
from grapepose.engine.checkpoint import load_state
from grapepose.models import load_model


def test_chunked_run_resume_and_nan_stop(crowdpose: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    caplog.set_level(logging.INFO)
    out = tmp_path / "run"
    base = ["train", "--preset", "crowdpose_w18", "--out", str(out), "--device", "cpu", "--no-progress",
            "--data", str(crowdpose), "--ann", str(crowdpose / "test_crowdpose.json"), "--batch-size", "1",
            *tiny_overrides(crowdpose)]  # fmt: skip

    assert main([*base, "--epochs", "1", "--max-steps", "1"]) == 0  # mid-epoch stop
    assert "stopped at step 1 (0.5 of 1 epochs)" in capsys.readouterr().out
    assert load_state(out / "last.pt")["step"] == 1
    assert not (out / "final.safetensors").exists()
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"]["epochs"] == 1 and saved["data"]["input_size"] == 64

    caplog.clear()
    assert main([*base, "--epochs", "1"]) == 0  # the same command finishes the run
    assert "resuming from" in caplog.text and "at epoch 0, step 1" in caplog.text
    assert "finished at step 2 (1 of 1 epochs)" in capsys.readouterr().out
    model = load_model(out / "final.safetensors")
    assert model.config.model.d_model == 32

    good = load_state(out / "last.pt")
    assert good["step"] == 2
    import grapepose.engine.trainer as trainer_module

    real = trainer_module.forward_backward

    def nan_heatmap_loss(*args, **kwargs):  # a diverging run (config values are range-checked, so not via them)
        losses = real(*args, **kwargs)
        return {**losses, "heatmap": losses["heatmap"] * float("nan")}

    monkeypatch.setattr(trainer_module, "forward_backward", nan_heatmap_loss)
    code = main([*base, "--epochs", "2"])  # a larger --epochs continues
    assert code == 2
    err = capsys.readouterr().err
    assert "grapepose train: error: non-finite loss at epoch 1, step 2" in err and "heatmap=nan" in err
    assert str(out / "last.pt") in err
    after = torch.load(out / "last.pt", weights_only=True)  # still the last good state
    assert after["step"] == 2
    assert all(torch.equal(after["model"][k], good["model"][k]) for k in good["model"])


def test_bad_inputs_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--preset", "crowdpose_w18", "--out", str(tmp_path), "--device", "cpu"]) == 2
    assert "no training data" in capsys.readouterr().err
    assert main(["train", "--ann", str(tmp_path / "missing.json"), "--out", str(tmp_path), "--device", "cpu"]) == 2
    assert "missing.json" in capsys.readouterr().err
    assert main(["train", "--ann", "x.json", "train.lr_typo=1"]) == 2
    assert "train.lr_typo" in capsys.readouterr().err


def test_synthetic_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from engine_helpers import TINY_MODEL

    code = main(["train", "--preset", "crowdpose_w18", "--scene", "crowd", "--num-images", "2",
                 "--out", str(tmp_path), "--device", "cpu", "--no-progress", "--workers", "0", "--batch-size", "2",
                 "--max-steps", "1", "data.input_size=64", "data.output_size=16", *TINY_MODEL])  # fmt: skip
    assert code == 0
    assert "stopped at step 1 (1 of 140 epochs)" in capsys.readouterr().out
    assert load_state(tmp_path / "last.pt")["step"] == 1
