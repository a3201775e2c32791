"""`grapepose train`: train a model in one process, or as every rank of a `torchrun` DDP job.

Running the same command again resumes from RUN_DIR/last.pt (a larger --epochs continues training).
"""

from __future__ import annotations

import argparse
import logging
import os

__all__ = ["add_arguments", "run", "resolve_config"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="crowdpose_w32", help="preset name or YAML config (default: crowdpose_w32)")
    p.add_argument("--data", metavar="ROOT", help="training image folder (data.root)")
    p.add_argument("--ann", metavar="ANN.json", help="training COCO-format keypoint JSON (data.ann)")
    p.add_argument("--val-data", metavar="ROOT", help="validation image folder (data.val_root)")
    p.add_argument("--val-ann", metavar="ANN.json", help="validation keypoint JSON (data.val_ann)")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default: runs/<config name>)")
    p.add_argument("--epochs", type=int, help="train.epochs")
    p.add_argument("--batch-size", type=int, help="train.batch_size: images per step and process")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available); under torchrun, the local GPU")
    p.add_argument("--workers", type=int, help="DataLoader workers (data.num_workers)")
    p.add_argument("--synthetic", metavar="PRESET",
                   help="train on grapepose.synth.SyntheticSource PRESET generated on the fly instead of --data/--ann")
    p.add_argument("--synthetic-length", type=int, default=1000, metavar="N",
                   help="images per pass over the synthetic data (default 1000)")
    p.add_argument("--init-backbone", metavar="HRNET.pth", help="initialise the backbone from HRNet ImageNet weights")
    p.add_argument("--weights", metavar="W", help="initialise from a trained model (safetensors or the authors' .pth)")
    p.add_argument("--max-steps", type=int, metavar="N",
                   help="stop at global step N (saving last.pt) to train in chunks; rerun to continue")
    p.add_argument("--time-limit", type=float, metavar="MIN",
                   help="stop after MIN minutes of training (saving last.pt), e.g. to fit a job slot; rerun to continue")
    p.add_argument("--no-resume", action="store_true", help="ignore RUN_DIR/last.pt (it is overwritten)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. train.lr=5e-4 (repeatable; same as a positional one)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. train.lr=5e-4 train.val_interval=5 (one group; --set works anywhere)")


def resolve_config(args: argparse.Namespace):  # noqa: ANN201 - Config, imported lazily
    """The run's config: preset, then the explicit flags, then KEY=VALUE overrides."""
    from grapepose.config import load_config

    flags = []
    for flag, key in (("data", "data.root"), ("ann", "data.ann"), ("val_data", "data.val_root"),
                      ("val_ann", "data.val_ann"), ("epochs", "train.epochs"), ("batch_size", "train.batch_size"),
                      ("workers", "data.num_workers")):  # fmt: skip
        value = getattr(args, flag, None)
        if value is not None:
            flags.append(f"{key}={value}")
    return load_config(args.preset, [*flags, *args.overrides, *args.set])


def _synthetic_source(args: argparse.Namespace, cfg):  # noqa: ANN001, ANN202
    from grapepose.engine.setup import source_spec
    from grapepose.synth import SyntheticSource

    spec = source_spec(None, cfg)  # the built-in keypoints of data.dataset
    return SyntheticSource(args.synthetic, size=cfg.data.input_size, seed=cfg.train.seed,
                           length=args.synthetic_length, spec=spec)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from grapepose.engine.distributed import cleanup_distributed, env_rank
    from grapepose.engine.trainer import Trainer

    if env_rank() != 0:  # only rank 0 talks
        logging.getLogger("grapepose").setLevel(logging.WARNING)
    cfg = resolve_config(args)
    source = _synthetic_source(args, cfg) if args.synthetic else None
    out = args.out or os.path.join("runs", cfg.name)
    try:
        trainer = Trainer(cfg, out, source=source, device=args.device, weights=args.weights,
                          init_backbone=args.init_backbone, resume=not args.no_resume,
                          progress=not args.no_progress)  # fmt: skip
        result = trainer.fit(max_steps=args.max_steps, max_seconds=args.time_limit * 60 if args.time_limit else None)
    finally:
        cleanup_distributed()
    if env_rank() == 0:
        state = "finished" if result.finished else "stopped"
        done = result.step / result.steps_per_epoch
        best = f", best AP {result.best_ap:.4f}" if result.best_ap >= 0 else ""
        print(f"{state} at step {result.step} ({done:.4g} of {cfg.train.epochs} epochs){best}; run directory {out}",
              flush=True)  # fmt: skip
    return 0
