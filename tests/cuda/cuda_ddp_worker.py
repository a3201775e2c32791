"""One rank of the CUDA DDP test: two engine training steps of a DDP-wrapped network, then its weights.

Usage: python -m torch.distributed.run --standalone --nproc_per_node=2 cuda_ddp_worker.py OUT BACKEND DEVICE
(BACKEND nccl or gloo; DEVICE cuda, or cpu to rehearse the script without a GPU).
"""

from __future__ import annotations

import datetime
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from grapepose.bench.train import random_batch
from grapepose.config import load_config
from grapepose.utils.distributed import all_reduce_mean
from grapepose.engine.losses import GrapeLoss
from grapepose.engine.optim import build_optimizer
from grapepose.engine.precision import resolve_precision
from grapepose.engine.step import apply_update, forward_backward
from grapepose.models import build_model

if __name__ == "__main__":
    out, backend, device = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    rank, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if device == "cuda":  # both ranks share GPU 0 when there is only one (gloo can; nccl cannot)
        dev = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=120))
    torch.manual_seed(0)
    cfg = load_config("crowdpose_w18s", ["model.d_model=64", "model.dim_feedforward=128", "model.nhead=2",
                                         "train.amp=bf16" if dev.type == "cuda" else "train.amp=fp32"])  # fmt: skip
    model = build_model(cfg).to(dev)
    if dev.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model) if backend == "nccl" else model
        model = model.to(memory_format=torch.channels_last)
    net = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    precision = resolve_precision(cfg.train.amp, dev)
    optimizer, scaler = build_optimizer(model, cfg.train), precision.scaler()
    criterion = GrapeLoss.from_config(cfg.train)
    losses = []
    for step in range(2):
        batch = random_batch(2, 128, cfg.model.num_keypoints, seed=10 * step + rank)  # each rank its own data
        loss = forward_backward(net, batch, criterion, precision, scaler, optimizer, dev)
        apply_update(model, optimizer, scaler, None, cfg.train.grad_clip)
        losses.append(float(all_reduce_mean(loss["total"].detach().float())))
    # Parameters, not buffers: BatchNorm statistics stay per rank (DDP re-broadcasts them each forward).
    weights = {k: v.detach().float().cpu() for k, v in model.named_parameters()}
    torch.save({"weights": weights, "losses": losses, "world": dist.get_world_size(), "device": str(dev),
                "backend": dist.get_backend()}, out / f"rank{rank}.pt")  # fmt: skip
    dist.destroy_process_group()
