"""`grapepose synth` writes a dataset all at once or not at all.

Before: a re-run into an existing folder replaced the annotations and left the old images beside
them; Ctrl-C left images without annotations; `--size 100000` tried to allocate 30 GB; `--seed -5`
was a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability_meta_helpers import fails

SRC = Path(__file__).resolve().parents[2] / "src"


def _synth(out: Path, *extra: str) -> list[str]:
    return ["synth", "--num-images", "2", "--size", "64", "--out", str(out), "--no-progress", "--format", "png", *extra]


def test_non_empty_out_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code, err = fails(_synth(out), capsys)
    assert (code, err) == (2, f"grapepose synth: error: {out}: output folder is not empty; choose a new one or overwrite it")
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_overwrite_replaces_the_whole_folder(tmp_path, capsys):
    out = tmp_path / "ds"
    assert fails(["synth", "--num-images", "3", "--size", "64", "--out", str(out), "--no-progress"], capsys)[0] == 0
    assert fails(_synth(out, "--overwrite", "--seed", "4"), capsys)[0] == 0
    images = sorted(p.name for p in (out / "images").iterdir())
    assert images == ["000000.png", "000001.png"]  # none of the first run's three jpgs is left
    data = json.loads((out / "annotations.json").read_text())
    assert [im["file_name"] for im in data["images"]] == images and data["info"]["seed"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temporary folders left


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--size", "100000"], "--size must be in [64, 4096], got 100000"),  # the CLI checks while parsing
        (["--seed", "-5"], "--seed must be in [0, 4294967295], got -5"),
        (["--seed", str(2**32)], "--seed must be in [0, 4294967295], got 4294967296"),
    ],
)
def test_bounds(tmp_path, capsys, extra, message):
    out = tmp_path / "ds"
    assert fails(_synth(out, *extra), capsys) == (2, f"grapepose synth: error: {message}")
    assert not out.exists()


def test_error_midway_leaves_nothing(tmp_path, monkeypatch, capsys):
    import grapepose.synth.coco as coco

    real, calls = coco._render_one, []

    def flaky(job):
        calls.append(job[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(coco, "_render_one", flaky)
    out = tmp_path / "ds"
    assert fails(_synth(out), capsys)[0] == 130
    assert list(tmp_path.iterdir()) == []  # no dataset, no temporary folder, no image without annotations


def test_ctrl_c_from_another_process_leaves_nothing(tmp_path):
    out = tmp_path / "ds"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    argv = [sys.executable, "-m", "grapepose", *_synth(out)]
    # Far more images than it can make before the signal comes (500 once finished first, exit 0).
    argv[argv.index("2")] = "1000000"
    # Ctrl-C as in a terminal, also when this process was started with SIGINT ignored (a background job
    # of a script): an ignored SIGINT is inherited, and Python then raises no KeyboardInterrupt.
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(tmp_path.glob(".ds.synth-*/images/*.png")):
            time.sleep(0.05)
        assert list(tmp_path.glob(".ds.synth-*/images/*.png")), "synth wrote no image in time"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        proc.kill()
        proc.wait()
    assert list(tmp_path.iterdir()) == []
