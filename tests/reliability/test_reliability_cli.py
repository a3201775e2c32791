"""CLI faults (issue 12 items 3 and 6): bad output paths and out-of-range flags are one line, exit 2,
before any work: no model is loaded, no data read, nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import grapepose.api
import grapepose.data
import grapepose.evaluation
import grapepose.models
import grapepose.synth
from grapepose.cli.main import main


def _no_work(*args, **kwargs):
    raise AssertionError("work started before the command line was checked")


@pytest.fixture
def no_work(monkeypatch):
    """Every entry point that loads a model, reads data or generates images fails the test if called."""
    import grapepose.engine.trainer

    for module, name in [(grapepose.models, "load_model"), (grapepose.models, "build_model"),
                         (grapepose.synth, "generate_dataset"), (grapepose.evaluation, "load_annotation"),
                         (grapepose.data, "KeypointDataset"), (grapepose.engine.trainer, "Trainer")]:  # fmt: skip
        monkeypatch.setattr(module, name, _no_work)
    monkeypatch.setattr(grapepose.api.PoseEstimator, "from_pretrained", _no_work)


@pytest.fixture
def afile(tmp_path) -> Path:
    path = tmp_path / "afile"
    path.write_text("x")
    return path


@pytest.fixture
def adir(tmp_path) -> Path:
    path = tmp_path / "adir"
    path.mkdir()
    return path


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _fails(argv: list[str], capsys, root: Path) -> str:
    """Run the CLI; it must exit 2 with one error line and leave `root` as it was. Returns the line."""
    before = _listing(root)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert _listing(root) == before
    return err


def _image(shared_data) -> str:
    return str(shared_data / "demo" / "crowd_03.jpg")


def _crowdpose(shared_data) -> list[str]:
    d = shared_data / "crowdpose"
    return ["--data", str(d), "--ann", str(d / "test_crowdpose.json")]


# --- output paths checked before work, the error names the path as given (12.3, 12.6) ----------------


def test_predict_out_is_a_file(shared_data, afile, tmp_path, capsys, no_work):
    err = _fails(["predict", _image(shared_data), "--out", str(afile)], capsys, tmp_path)
    assert err == f"grapepose predict: error: {afile}: is a file; give a folder"


def test_predict_out_inside_a_file(shared_data, afile, tmp_path, capsys, no_work):
    err = _fails(["predict", _image(shared_data), "--out", str(afile / "run")], capsys, tmp_path)
    assert err == f"grapepose predict: error: {afile / 'run'}: {afile} is a file, not a folder"


def test_evaluate_out_is_a_folder(shared_data, adir, tmp_path, capsys, no_work):
    argv = ["evaluate", "--weights", "w.safetensors", *_crowdpose(shared_data), "--out", str(adir)]
    assert _fails(argv, capsys, tmp_path) == f"grapepose evaluate: error: {adir}: is a folder; give a file name"


def test_evaluate_out_not_writable(shared_data, adir, tmp_path, capsys, no_work, monkeypatch):
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == adir else real(p, mode))
    out = adir / "sub" / "results.json"  # missing folders are fine; the nearest existing one must be writable
    argv = ["evaluate", "--weights", "w.safetensors", *_crowdpose(shared_data), "--out", str(out)]
    err = _fails(argv, capsys, tmp_path)
    assert err == f"grapepose evaluate: error: {out}: cannot write in {adir} (permission denied)"


def test_evaluate_out_with_results_is_refused(shared_data, tmp_path, capsys):
    d = shared_data / "crowdpose"
    argv = ["evaluate", "--results", "r.json", "--ann", str(d / "test_crowdpose.json"), "--out", str(tmp_path / "o")]
    err = _fails(argv, capsys, tmp_path)
    assert err == "grapepose evaluate: error: --out writes a model's results; with --results there is nothing to write"


def test_export_out_is_a_folder(adir, tmp_path, capsys, no_work):
    argv = ["export", "--preset", "crowdpose_w18", "--out", str(adir)]
    assert _fails(argv, capsys, tmp_path) == f"grapepose export: error: {adir}: is a folder; give a file name"


def test_export_out_inside_a_file(afile, tmp_path, capsys, no_work):
    out = afile / "model.onnx"
    argv = ["export", "--preset", "crowdpose_w18", "--out", str(out)]
    assert _fails(argv, capsys, tmp_path) == f"grapepose export: error: {out}: {afile} is a file, not a folder"


def test_convert_out_is_a_folder(adir, tmp_path, capsys, no_work):
    argv = ["convert", "model.pth.tar", "--out", str(adir)]
    assert _fails(argv, capsys, tmp_path) == f"grapepose convert: error: {adir}: is a folder; give a file name"


def test_show_targets_out_is_a_file(shared_data, afile, tmp_path, capsys, no_work):
    argv = ["show-targets", *_crowdpose(shared_data), "--out", str(afile)]
    assert _fails(argv, capsys, tmp_path) == f"grapepose show-targets: error: {afile}: is a file; give a folder"


def test_synth_out_inside_a_file(afile, tmp_path, capsys, no_work):
    out = afile / "ds"
    argv = ["synth", "--num-images", "1", "--out", str(out)]
    assert _fails(argv, capsys, tmp_path) == f"grapepose synth: error: {out}: {afile} is a file, not a folder"


def test_train_out_is_a_file(shared_data, afile, tmp_path, capsys, no_work):
    argv = ["train", "--preset", "crowdpose_w18", *_crowdpose(shared_data), "--out", str(afile)]
    assert _fails(argv, capsys, tmp_path) == f"grapepose train: error: {afile}: is a file; give a folder"


def test_demo_out_is_a_file(afile, tmp_path, capsys, no_work):
    err = _fails(["demo", "--out", str(afile)], capsys, tmp_path)
    assert err == f"grapepose demo: error: {afile}: is a file; give a folder"


def test_demo_photos_not_a_folder(tmp_path, capsys, no_work):
    argv = ["demo", "--out", str(tmp_path / "o"), "--photos", str(tmp_path / "none")]
    assert _fails(argv, capsys, tmp_path) == f"grapepose demo: error: --photos {tmp_path / 'none'}: not a folder"


# --- numeric flags range-checked while parsing (12.6) ----------------------------------------------------


@pytest.mark.parametrize(
    "argv,message",
    [
        (["predict", "x.jpg", "--batch-size", "0"], "grapepose predict: error: --batch-size must be >= 1, got 0"),
        (["predict", "x.jpg", "--score-thr", "nan"], "grapepose predict: error: --score-thr must be a number >= 0, got nan"),
        (["predict", "x.jpg", "--score-thr", "-1"], "grapepose predict: error: --score-thr must be a number >= 0, got -1"),
        (["predict", "x.jpg", "--scales", "0.5", "0"],
         "grapepose predict: error: --scales must be a number in [0.25, 2], got 0"),
        (["predict", "x.jpg", "--max-frames", "-1"], "grapepose predict: error: --max-frames must be >= 0, got -1"),
        (["predict", "x.jpg", "--device", "banana"],
         "grapepose predict: error: --device must be one of auto, cpu, cuda, cuda:N, got 'banana'"),
        (["evaluate", "--ann", "a.json", "--limit", "-1"], "grapepose evaluate: error: --limit must be >= 1, got -1"),
        (["evaluate", "--ann", "a.json", "--read-threads", "-1"],
         "grapepose evaluate: error: --read-threads must be >= 0, got -1"),
        (["evaluate", "--ann", "a.json", "--batch-size", "x"],
         "grapepose evaluate: error: --batch-size must be an integer, got 'x'"),
        (["evaluate", "--ann", "a.json", "--scales", "nan"],
         "grapepose evaluate: error: --scales must be a number in [0.25, 2], got nan"),
        (["train", "--batch-size", "0"], "grapepose train: error: --batch-size must be >= 1, got 0"),
        (["train", "--epochs", "-1"], "grapepose train: error: --epochs must be >= 1, got -1"),
        (["train", "--time-limit", "inf"], "grapepose train: error: --time-limit must be a number > 0, got inf"),
        (["synth", "--num-images", "1", "--out", "x", "--size", "100000"],
         "grapepose synth: error: --size must be in [64, 4096], got 100000"),
        (["synth", "--num-images", "1", "--out", "x", "--seed", "-5"],
         "grapepose synth: error: --seed must be in [0, 4294967295], got -5"),
        (["synth", "--num-images", "1", "--out", "x", "--workers", "0"], "grapepose synth: error: --workers must be >= 1, got 0"),
        (["show-targets", "--data", "d", "--ann", "a", "--out", "o", "--num-images", "0"],
         "grapepose show-targets: error: --num-images must be >= 1, got 0"),
        (["demo", "--num-synthetic", "0"], "grapepose demo: error: --num-synthetic must be >= 1, got 0"),
        (["bench", "forward", "--batch-size", "0"], "grapepose bench forward: error: --batch-size must be >= 1, got 0"),
    ],
)  # fmt: skip
def test_numeric_flag_out_of_range(argv, message, tmp_path, capsys, monkeypatch, no_work):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == message
    assert _listing(tmp_path) == []


def test_unknown_device_on_every_command_that_has_one(capsys):
    for argv in (["evaluate", "--ann", "a"], ["train"], ["demo"], ["bench", "decode"]):
        assert main([*argv, "--device", "gpu0"]) == 2
        assert "error: --device must be one of auto, cpu, cuda, cuda:N, got 'gpu0'" in capsys.readouterr().err


def test_evaluate_refuses_overrides_outside_test(shared_data, tmp_path, capsys, no_work):
    argv = ["evaluate", "--weights", "w.safetensors", *_crowdpose(shared_data), "model.dropout=0"]
    err = _fails(argv, capsys, tmp_path)
    assert err == ("grapepose evaluate: error: evaluate takes test.* overrides only (the model's own config is "
                   "used), got model.dropout=0")


def test_evaluate_applies_test_overrides_before_the_flags():
    from grapepose.cli.main import _build_parser
    from grapepose.cli.options import flag_overrides
    from grapepose.config import Config, apply_overrides

    argv = ["evaluate", "--ann", "a", "--mode", "fast", "--flip", "--set", "test.nms_distance=0.1",
            "--set", "test.flip=false"]  # fmt: skip
    cfg = apply_overrides(Config(), flag_overrides(_build_parser("evaluate").parse_args(argv))).test
    assert cfg.nms_distance == 0.1 and cfg.flip is True and cfg.scales == (1.0,)
