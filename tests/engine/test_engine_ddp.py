"""`grapepose train` under torchrun: two gloo ranks on CPU stay in lockstep and resume."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from engine_helpers import tiny_overrides

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"


def test_torchrun_two_ranks_identical_weights(crowdpose: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"

    def torchrun(max_steps: int) -> subprocess.CompletedProcess:
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER),
            str(tmp_path),
            "train", "--preset", "crowdpose_w18", "--out", str(run_dir), "--device", "cpu", "--max-steps", str(max_steps),
            "--epochs", "5", "--no-progress", *tiny_overrides(crowdpose), "train.sync_bn=true",
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    proc = torchrun(3)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["world"] == r1["world"] == 2 and r0["step"] == r1["step"] == 3
    assert r0["batches_per_pass"] == 1  # two images split over two ranks
    assert r0["state"].keys() == r1["state"].keys()
    assert all(torch.equal(r0["state"][k], r1["state"][k]) for k in r0["state"])
    assert (run_dir / "last.pt").is_file() and (run_dir / "config.yaml").is_file()
    # only rank 0 reports
    assert proc.stdout.count("stopped at step 3 (3 of 5 epochs)") == 1, proc.stdout
    assert proc.stderr.count("training crowdpose_w18 on 2 x cpu") == 1, proc.stderr[-3000:]

    proc = torchrun(4)  # the same command resumes (each rank restores its own RNG state)
    assert proc.stderr.count("resuming from") == 1 and "at epoch 3, step 3" in proc.stderr, proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["step"] == r1["step"] == 4
    assert all(torch.equal(r0["state"][k], r1["state"][k]) for k in r0["state"])
