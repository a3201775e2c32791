"""A full disk on every command (issue 22 part A, item 5): one line naming the file, exit 2, nothing
half-written (no temporary file, no empty lock), and what was there before left as it was.

The disk fills for real: `RLIMIT_FSIZE` (set in this process for the one command, then restored)
makes the kernel refuse every write past N bytes with EFBIG ("File too large"), whichever library
writes (Python, torch's C++ zip writer, safetensors' Rust writer, OpenCV); it is deterministic, as a
full disk is not.
"""

from __future__ import annotations

import resource
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest

from grapepose.cli.main import main

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="RLIMIT_FSIZE needs POSIX")


@contextmanager
def disk_full_after(nbytes: int):
    """Every write past `nbytes` of a file fails (Python ignores SIGXFSZ, so the write gets EFBIG)."""
    assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)


def _listing(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def test_predict_on_a_full_disk_leaves_no_empty_lock(tmp_path, tiny_checkpoint, shared_data, capsys):
    """Before: an OSError traceback while taking the lock, and an empty lock file left behind."""
    out = tmp_path / "out"
    with disk_full_after(0):
        code = main(["predict", str(shared_data / "demo" / "crowd_01.jpg"), "--weights", str(tiny_checkpoint),
                     "--out", str(out), "--device", "cpu"])  # fmt: skip
    assert code == 2
    assert _one_line(capsys) == f"grapepose predict: error: {out}: output folder is not writable (File too large)"
    assert list(out.iterdir()) == []


def test_evaluate_prints_its_metrics_before_failing_to_write(tmp_path, tiny_checkpoint, shared_data, capsys):
    """Before: the traceback came after the whole evaluation, and its metrics were never printed."""
    data = shared_data / "crowdpose"
    target = tmp_path / "results.json"
    target.write_text("[]")  # an earlier file stays whole
    argv = ["evaluate", "--weights", str(tiny_checkpoint), "--data", str(data), "--ann",
            str(data / "test_crowdpose.json"), "--device", "cpu", "--out", str(target), "test.base_size=64",
            "test.flip=false"]  # fmt: skip
    with disk_full_after(0):
        code = main(argv)
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].startswith("| Model | AP | AP50 |")  # the metrics table
    assert captured.err.strip().splitlines()[-1] == f"grapepose evaluate: error: {target}: File too large"
    assert _listing(tmp_path) == {"results.json": b"[]"}


def test_convert_on_a_full_disk_keeps_the_earlier_file(tmp_path, tiny_checkpoint, capsys):
    """Before: a SafetensorError traceback."""
    out = tmp_path / "converted.safetensors"
    out.write_bytes(b"earlier")
    with disk_full_after(1_000_000):  # the model is 45 MB
        code = main(["convert", str(tiny_checkpoint), "--out", str(out)])
    assert code == 2
    assert _one_line(capsys) == f"grapepose convert: error: {out}: File too large"
    assert _listing(tmp_path) == {"converted.safetensors": b"earlier"}


def test_synth_on_a_full_disk_names_the_file_not_its_build_folder(tmp_path, capsys):
    """Before: an OSError traceback naming nothing."""
    out = tmp_path / "synth"
    with disk_full_after(100):
        code = main(["synth", "--scene", "sparse", "--num-images", "1", "--size", "64", "--workers", "1",
                     "--no-progress", "--out", str(out)])  # fmt: skip
    assert code == 2
    assert _one_line(capsys) == f"grapepose synth: error: {out / 'images' / '000000.jpg'}: File too large"
    assert _listing(tmp_path) == {}  # no half-built dataset, hidden or not


def test_train_on_a_full_disk_names_the_checkpoint(tmp_path, shared_data, capsys):
    """Before: `RuntimeError: [enforce fail at inline_container.cc] unexpected pos` from torch.save."""
    data = shared_data / "crowdpose"
    run = tmp_path / "run"
    argv = ["train", "--preset", "crowdpose_w18", "--out", str(run), "--device", "cpu", "--no-progress",
            "--data", str(data), "--ann", str(data / "test_crowdpose.json"), "--batch-size", "1", "--epochs", "1",
            "--max-steps", "1", "data.input_size=64", "data.output_size=16", "data.num_workers=0",
            "model.d_model=32", "model.dim_feedforward=64", "model.nhead=2", "model.num_encoder_layers=1",
            "model.num_decoder_layers=1"]  # fmt: skip
    with disk_full_after(200_000):  # config.yaml and the TensorBoard log fit, the training state does not
        code = main(argv)
    assert code == 2
    assert _one_line(capsys) == f"grapepose train: error: {run / 'last.pt'}: File too large"
    assert not [p for p in run.iterdir() if p.name.startswith(".") or p.suffix in (".pt", ".safetensors")]


def test_show_targets_on_a_full_disk_says_the_disk_is_full(tmp_path, shared_data, capsys):
    """Before: OpenCV's write failed quietly ("libpng error: Write Error"), then the rename of the file it
    never wrote said "No such file or directory"."""
    data = shared_data / "crowdpose"
    out = tmp_path / "targets"
    with disk_full_after(1000):
        code = main(["show-targets", "--data", str(data), "--ann", str(data / "test_crowdpose.json"),
                     "--preset", "crowdpose_w18", "--num-images", "1", "--out", str(out), "data.input_size=128",
                     "data.output_size=32"])  # fmt: skip
    assert code == 2
    err = _one_line(capsys)
    assert err.startswith(f"grapepose show-targets: error: {out / 'targets_000_image'}") and err.endswith(
        ".png: File too large"), err
    assert list(out.iterdir()) == []
