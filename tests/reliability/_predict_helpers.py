"""Shared by the predict/video reliability tests: tiny inputs, a CLI run in a subprocess, signals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from grapepose.cli.main import main

SRC = Path(__file__).resolve().parents[2] / "src"
FAST = ["--set", "test.base_size=64", "--no-flip", "--score-thr", "0", "--device", "cpu", "--batch-size", "1"]


def run_predict(*args: object, weights: object) -> int:
    """`grapepose predict ARGS --weights W` with `FAST`'s settings, in this process (its exit code)."""
    return main(["predict", *map(str, args), "--weights", str(weights), *FAST])


def tiny_images(folder: Path, n: int, size: int = 48) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = np.random.default_rng(i).integers(0, 255, (size, size, 3), dtype=np.uint8)
        paths.append(folder / f"{i:03d}.png")
        cv2.imwrite(str(paths[-1]), img)
    return paths


def tiny_video(path: Path, frames: int, fourcc: str = "mp4v", size: tuple[int, int] = (64, 48)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, size)
    for i in range(frames):
        writer.write(np.random.default_rng(i).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


def start_predict(args: list[str], cwd: Path) -> subprocess.Popen:
    # the thread count of this process: --resume tests compare its results with in-process runs byte
    # for byte, and another thread count may round the convolutions' last bits differently
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    return subprocess.Popen([sys.executable, "-m", "grapepose", "predict", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for_lines(journal: Path, n: int, proc: subprocess.Popen, timeout: float = 240.0) -> int:
    """Wait until the journal holds `n` complete lines (the run is mid-way), return the count."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"predict ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        if journal.is_file():
            count = journal.read_text().count("\n")
            if count >= n:
                return count
        time.sleep(0.05)
    raise AssertionError(f"{journal}: fewer than {n} lines after {timeout} s")


def frames_in(video: Path) -> int:
    cap = cv2.VideoCapture(str(video))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def results(out: Path) -> list[dict]:
    return json.loads((out / "results.json").read_text())
