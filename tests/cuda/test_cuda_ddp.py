"""CUDA-only: a 2-process DDP training step on the GPU(s), the ranks ending with identical weights.

NCCL needs one GPU per rank (two ranks on one GPU fail with "Duplicate GPU detected"), so on a
one-GPU machine the two ranks share it through gloo, which moves CUDA tensors too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).resolve().with_name("cuda_ddp_worker.py")
GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_two_ranks(tmp_path: Path, backend: str, device: str) -> list[dict]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER),
           str(tmp_path), backend, device]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


def check_lockstep(ranks: list[dict], device: str) -> None:
    r0, r1 = ranks
    assert r0["world"] == r1["world"] == 2 and device in r0["device"] and device in r1["device"]
    assert r0["losses"] == r1["losses"]  # the all-reduced loss
    assert r0["weights"].keys() == r1["weights"].keys()
    for k in r0["weights"]:
        torch.testing.assert_close(r0["weights"][k], r1["weights"][k], atol=0, rtol=0, msg=k)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_ddp_step_gloo_shares_one_gpu(tmp_path):
    ranks = run_two_ranks(tmp_path, "gloo", "cuda")
    assert ranks[0]["backend"] == "gloo"
    check_lockstep(ranks, "cuda")


@pytest.mark.skipif(GPUS < 2, reason="NCCL DDP needs two GPUs (one per rank)")
def test_cuda_ddp_step_nccl(tmp_path):
    ranks = run_two_ranks(tmp_path, "nccl", "cuda")
    assert ranks[0]["backend"] == "nccl"
    check_lockstep(ranks, "cuda")
